"""proxy_request_buffering off: the body reaches the upstream while the
client is still sending it, chunked when its length is unknown, and no
other upstream is tried once the request went out (nginx's rules).

Invariants:
- The "streaming" backend here is a real socket served by a thread of the
  test; it reports what it has received so far, so a test can see the
  head and the first part of the body arrive before the client sends the
  rest.  Other backends are tests/backends.py's.
"""
from __future__ import annotations

import os
import socket
import sys
import threading
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request  # noqa: E402


class RawBackend:
    """Accepts one connection; ``until(marker)`` waits for bytes up to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(10)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.got = b""
        self.conn: socket.socket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            self.conn, _ = self.sock.accept()
            self.conn.settimeout(10)
        except OSError:
            return
        self.ready.set()

    def until(self, marker: bytes) -> bytes:
        assert self.ready.wait(10), "no connection from the proxy"
        assert self.conn is not None
        while marker not in self.got:
            d = self.conn.recv(65536)
            assert d, self.got
            self.got += d
        return self.got

    def answer(self) -> None:
        assert self.conn is not None
        self.conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
        self.conn.close()

    def close(self) -> None:
        self.sock.close()
        if self.conn is not None:
            self.conn.close()


def _conf(port: int, addr: str, extra: str = "", version: str = "1.1") -> str:
    return base_conf(f"server {{ listen 127.0.0.1:{port};\n"
                     f"  location / {{ proxy_request_buffering off; proxy_http_version {version}; {extra}"
                     f" proxy_pass http://{addr}; }} }}")


def _read_response(c: socket.socket) -> bytes:
    out = b""
    while True:
        d = c.recv(65536)
        if not d:
            return out
        out += d


def test_chunked_body_streams_chunked(server: Any) -> None:
    be = RawBackend()
    try:
        port = free_port()
        server(_conf(port, be.addr))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  b"5\r\nhello\r\n")
        got = be.until(b"hello\r\n")  # before the client sent the rest
        head = got.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("POST /up HTTP/1.1\r\n")
        assert "\r\nTransfer-Encoding: chunked" in head and "Content-Length" not in head
        c.sendall(b"6\r\n world\r\n0\r\n\r\n")
        got = be.until(b"0\r\n\r\n")
        assert got.split(b"\r\n\r\n", 1)[1] == b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        be.answer()
        st, _, body, _ = parse_response(_read_response(c))
        assert (st, body) == (200, b"ok\n")
        c.close()
    finally:
        be.close()


def test_content_length_body_streams_as_is(server: Any) -> None:
    be = RawBackend()
    try:
        port = free_port()
        server(_conf(port, be.addr, version="1.0"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nfirst")
        got = be.until(b"first")
        head = got.split(b"\r\n\r\n")[0].decode()
        assert head.startswith("PUT /f HTTP/1.0\r\n") and "\r\nContent-Length: 10" in head
        c.sendall(b"-last")
        assert be.until(b"first-last").endswith(b"\r\n\r\nfirst-last")
        be.answer()
        assert parse_response(_read_response(c))[0] == 200
        c.close()
    finally:
        be.close()


def test_chunked_to_http10_upstream_is_buffered(server: Any) -> None:
    b = Backend("echo")
    try:
        port = free_port()
        server(_conf(port, b.addr, version="1.0"))
        data = raw_request(port, b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                 b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        st, _, body, _ = parse_response(data)
        assert st == 200
        head = b.heads[0].decode()
        assert "\r\nContent-Length: 3\r\n" in head and "chunked" not in head
        assert b.bodies[0] == b"abc"
    finally:
        b.close()


def test_no_next_upstream_once_body_was_sent(server: Any) -> None:
    bad = Backend("reset")
    good = Backend("echo")
    try:
        port = free_port()
        up = f"upstream u {{ server {bad.addr}; server {good.addr}; }}\n"
        s = server(base_conf(up + f"server {{ listen 127.0.0.1:{port};\n"
                             f"  location /off/ {{ proxy_request_buffering off; proxy_pass http://u; }}\n"
                             f"  location /on/ {{ proxy_pass http://u; }} }}"))
        req = b"POST /off/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
        assert parse_response(raw_request(port, req))[0] == 502
        assert good.count("request") == 0  # nginx does not resend a streamed body
        assert "while sending request to upstream" in s.log() or "while reading response header" in s.log()
        # buffered: the same failure moves on to the next server
        req = req.replace(b"/off/", b"/on/")
        st, _, body, _ = parse_response(raw_request(port, req))
        assert st == 200 and good.count("request") == 1 and good.bodies[0] == b"body"
    finally:
        bad.close()
        good.close()


def test_chunked_body_too_large_is_413(server: Any) -> None:
    be = RawBackend()
    try:
        port = free_port()
        s = server(_conf(port, be.addr, "client_max_body_size 8;"))
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                  b"5\r\nhello\r\n")
        be.until(b"hello\r\n")
        c.sendall(b"5\r\nworld\r\n0\r\n\r\n")
        st, _, _, _ = parse_response(_read_response(c))
        assert st == 413
        assert "client intended to send too large chunked body: 10 bytes" in s.log()
        c.close()
    finally:
        be.close()
