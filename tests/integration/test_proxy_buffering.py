"""Upstream keepalive pools and response buffering with slow clients.

Invariants:
- A "slow client" sends its request and reads nothing for a while; the
  backend records every connection it accepted and closed, so a test can
  see whether the upstream connection was released (reused by the next
  request) while the slow client was still reading.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request  # noqa: E402

SIZE = 24 * 1024 * 1024


def _conf(b: Backend, port: int, extra: str = "") -> str:
    return base_conf(f"upstream u {{ server {b.addr}; keepalive 4; }}\n"
                     f"server {{ listen 127.0.0.1:{port};\n"
                     f"  location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\"; {extra}"
                     f" proxy_pass http://u; }} }}")


def _read_all(c: socket.socket) -> bytes:
    out = []
    while True:
        d = c.recv(65536)
        if not d:
            break
        out.append(d)
    return b"".join(out)


def _slow_client(port: int) -> socket.socket:
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return c


def test_keepalive_pool_reuses_connections(server: Any) -> None:
    b = Backend("echo")
    try:
        port = free_port()
        server(_conf(b, port))
        for i in range(5):
            data = raw_request(port, f"GET /k{i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert parse_response(data)[0] == 200
        assert b.count("request") == 5
        assert b.count("open") == 1  # one upstream connection served all five
        head = b.heads[-1].decode()
        assert head.startswith("GET /k4 HTTP/1.1\r\n") and "Connection" not in head
    finally:
        b.close()


def test_no_keepalive_without_http11(server: Any) -> None:
    b = Backend("echo")
    try:
        port = free_port()
        server(base_conf(f"upstream u {{ server {b.addr}; keepalive 4; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}"))
        for i in range(3):
            assert parse_response(raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0] == 200
        assert b.count("open") == 3  # HTTP/1.0 + "Connection: close": nothing to keep
    finally:
        b.close()


def test_keepalive_requests_limit(server: Any) -> None:
    b = Backend("echo")
    try:
        port = free_port()
        server(base_conf(f"upstream u {{ server {b.addr}; keepalive 4; keepalive_requests 2; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_http_version 1.1;"
                         f" proxy_set_header Connection \"\"; proxy_pass http://u; }} }}"))
        for i in range(4):
            assert parse_response(raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))[0] == 200
        assert b.count("open") == 2
    finally:
        b.close()


def test_buffering_releases_upstream_while_client_is_slow(server: Any) -> None:
    b = Backend("big", size=SIZE)
    try:
        port = free_port()
        s = server(_conf(b, port))
        c = _slow_client(port)
        time.sleep(0.5)  # the slow client reads nothing meanwhile
        # the whole response was read from the backend and the connection parked:
        # a second request reuses it while the first client has not read its response
        data = raw_request(port, b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
        st, _, body, _ = parse_response(data)
        assert st == 200 and len(body) == SIZE
        assert b.count("open") == 1
        assert b.count("request") == 2
        got = _read_all(c)
        c.close()
        st, h, body, _ = parse_response(got)
        assert st == 200 and body == b"x" * SIZE
        assert "an upstream response is buffered to a temporary file" in s.log()
    finally:
        b.close()


def test_buffering_off_holds_upstream_with_backpressure(server: Any) -> None:
    b = Backend("big", size=SIZE)
    try:
        port = free_port()
        server(_conf(b, port, "proxy_buffering off;"))
        c = _slow_client(port)
        time.sleep(0.5)
        data = raw_request(port, b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
        assert parse_response(data)[0] == 200
        assert b.count("open") == 2  # the first upstream connection is still busy
        got = _read_all(c)
        c.close()
        st, h, body, _ = parse_response(got)
        assert st == 200 and len(body) == SIZE and body == b"x" * SIZE
    finally:
        b.close()


def test_x_accel_buffering_no_disables_buffering(server: Any) -> None:
    b = Backend("big", size=SIZE, headers=[("X-Accel-Buffering", "no")])
    try:
        port = free_port()
        server(_conf(b, port))
        c = _slow_client(port)
        time.sleep(0.5)
        data = raw_request(port, b"GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
        st, h, _, _ = parse_response(data)
        assert st == 200 and "x-accel-buffering" not in h
        assert b.count("open") == 2
        assert len(parse_response(_read_all(c))[2]) == SIZE
        c.close()
    finally:
        b.close()


def test_chunked_request_body_is_buffered_with_length(server: Any) -> None:
    b = Backend("echo")
    try:
        port = free_port()
        server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{b.addr}; }} }}"))
        req = (b"POST /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert parse_response(raw_request(port, req))[0] == 200
        assert b.bodies[-1] == b"hello world"
        assert "Content-Length: 11\r\n" in b.heads[-1].decode()
        assert "Transfer-Encoding" not in b.heads[-1].decode()
    finally:
        b.close()
