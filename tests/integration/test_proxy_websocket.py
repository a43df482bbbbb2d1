"""WebSocket and other Upgrade tunnels through proxy_pass (nginx's
ngx_http_upstream_upgrade), with a real RFC 6455 echo backend.

Invariants:
- The client is written here against the RFC (masked frames, the
  Sec-WebSocket-Accept check); the backend is tests/backends.py's
  ``websocket`` mode, a separate thread with real sockets.
- A tunnel ends when either side closes; the access log then shows 101.
- Timeouts are driven by short proxy_read_timeout values; tests wait for
  the outcome (a closed socket, a log line), never measure time.
"""
from __future__ import annotations

import base64
import os
import socket
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend, ws_accept, ws_frame, ws_read_frame  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request, wait_for  # noqa: E402

WS_LOC = """
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
"""
MAP = "map $http_upgrade $connection_upgrade { default upgrade; '' close; }"


def _conf(b: Backend, port: int, extra: str = "") -> str:
    return base_conf(f"server {{ listen 127.0.0.1:{port};\n"
                     f"  location /ws/ {{ {WS_LOC} {extra} proxy_pass http://{b.addr}; }}\n"
                     f"  location /plain/ {{ {extra} proxy_pass http://{b.addr}; }}\n}}",
                     http_extra=MAP)


def _handshake(port: int, path: str = "/ws/chat") -> tuple[socket.socket, bytes, bytearray]:
    key = base64.b64encode(os.urandom(16)).decode()
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(65536)
        assert d, data
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    assert hdrs.get("sec-websocket-accept") == ws_accept(key)
    return c, head + b"\r\n\r\n", bytearray(rest)


def test_websocket_echo_both_ways(server: Any) -> None:
    b = Backend("websocket")
    try:
        port = free_port()
        s = server(_conf(b, port))
        c, head, buf = _handshake(port)
        lines = head.decode().split("\r\n")
        assert lines[0] == "HTTP/1.1 101 Switching Protocols"
        names = [ln.split(":")[0].lower() for ln in lines[1:] if ln]
        # nginx's order: Server, Date, Connection: upgrade, then the upstream's headers
        assert names[:3] == ["server", "date", "connection"]
        assert "Connection: upgrade" in lines and "Upgrade: websocket" in lines
        assert not any(n in ("content-length", "transfer-encoding") for n in names)
        # what the backend got: HTTP/1.1 with the client's Upgrade
        up_head = b.heads[0].decode()
        assert up_head.startswith("GET /ws/chat HTTP/1.1\r\n")
        assert "\r\nUpgrade: websocket\r\n" in up_head and "\r\nConnection: upgrade\r\n" in up_head
        for msg in (b"hello", b"x" * 300, b"y" * 70000):
            c.sendall(ws_frame(0x1, msg, True))
            op, data = ws_read_frame(c, buf)
            assert (op, data) == (0x1, msg)
        c.sendall(ws_frame(0x9, b"ping!", True))
        assert ws_read_frame(c, buf) == (0xA, b"ping!")
        c.sendall(ws_frame(0x8, b"\x03\xe8", True))
        assert ws_read_frame(c, buf) == (0x8, b"\x03\xe8")
        assert c.recv(10) == b""  # the backend closed: so does the tunnel
        c.close()
        assert wait_for(lambda: '"GET /ws/chat HTTP/1.1" 101 ' in s.log("access.log"))
        line = next(ln for ln in s.log("access.log").splitlines() if " 101 " in ln)
        sent = int(line.split('" 101 ')[1].split()[0])
        assert sent >= 70000 + 300 + 5  # tunnelled bytes count in $body_bytes_sent
    finally:
        b.close()


def test_client_close_ends_tunnel_and_upstream(server: Any) -> None:
    b = Backend("websocket")
    try:
        port = free_port()
        s = server(_conf(b, port))
        c, _, buf = _handshake(port)
        c.sendall(ws_frame(0x2, b"\x00\x01\x02", True))
        assert ws_read_frame(c, buf) == (0x2, b"\x00\x01\x02")
        c.close()
        assert wait_for(lambda: b.count("close") == 1)
        assert wait_for(lambda: " 101 " in s.log("access.log"))
        # the server is still fine afterwards
        st, _, body, _ = parse_response(raw_request(port, b"GET /plain/x HTTP/1.1\r\nHost: x\r\n"
                                                          b"Connection: close\r\n\r\n"))
        assert st == 426 and body == b""
    finally:
        b.close()


def test_read_timeout_closes_idle_tunnel(server: Any) -> None:
    b = Backend("websocket")
    try:
        port = free_port()
        s = server(_conf(b, port, "proxy_read_timeout 300ms;"))
        c, _, buf = _handshake(port)
        c.settimeout(10)
        assert c.recv(10) == b""  # nothing moved for proxy_read_timeout: closed
        assert wait_for(lambda: "upstream timed out (110: Connection timed out) while proxying upgraded "
                                "connection" in s.log())
        assert wait_for(lambda: b.count("close") == 1)
        assert wait_for(lambda: " 101 " in s.log("access.log"))
    finally:
        b.close()


def test_traffic_keeps_tunnel_alive(server: Any) -> None:
    b = Backend("websocket")
    try:
        port = free_port()
        server(_conf(b, port, "proxy_read_timeout 1s;"))
        c, _, buf = _handshake(port)
        # a few echoes, each well inside the timeout: the tunnel stays up
        for i in range(5):
            c.sendall(ws_frame(0x1, b"m%d" % i, True))
            assert ws_read_frame(c, buf) == (0x1, b"m%d" % i)
        c.close()
    finally:
        b.close()


def test_upgrade_not_passed_without_proxy_set_header(server: Any) -> None:
    """Without proxy_set_header Upgrade nginx drops the client's Upgrade:
    the backend refuses (426) and the client gets that, no tunnel."""
    b = Backend("websocket")
    try:
        port = free_port()
        server(_conf(b, port))
        data = raw_request(port, b"GET /plain/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 b"Sec-WebSocket-Version: 13\r\n\r\n", timeout=3)
        assert parse_response(data)[0] == 426
        assert "upgrade" not in b.heads[0].decode().lower().split("\r\nhost")[1]
    finally:
        b.close()


def test_101_without_client_upgrade_is_a_response(server: Any) -> None:
    """nginx (checked with 1.22): a 101 the client did not ask for is sent
    with Connection: upgrade and the upstream's bytes until it closes; the
    client connection then stays usable."""
    b = Backend("switch", body=b"DATA-AFTER")
    try:
        port = free_port()
        s = server(_conf(b, port))
        data = raw_request(port, b"GET /ws/a HTTP/1.1\r\nHost: x\r\n\r\nGET /ws/b HTTP/1.1\r\nHost: x\r\n"
                                 b"Connection: close\r\n\r\n", timeout=3)
        first, sep, rest = data.partition(b"DATA-AFTER")
        assert sep and first.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"\r\nConnection: upgrade\r\n" in first and b"\r\nUpgrade: foo\r\n" in first
        assert rest.startswith(b"HTTP/1.1 101 ") and rest.endswith(b"DATA-AFTER")
        assert wait_for(lambda: s.log("access.log").count(" 101 10 ") == 2)
    finally:
        b.close()


def test_frame_in_the_upgrade_packet_reaches_the_backend(server: Any) -> None:
    """A client may send its first frame right behind the Upgrade request,
    before the 101 arrives: those bytes belong to the tunnel."""
    b = Backend("websocket")
    try:
        port = free_port()
        server(_conf(b, port))
        key = base64.b64encode(os.urandom(16)).decode()
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(f"GET /ws/early HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
                  + ws_frame(0x1, b"early bird", True))
        data = b""
        while b"\r\n\r\n" not in data:
            d = c.recv(65536)
            assert d, data
            data += d
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert ws_read_frame(c, bytearray(rest)) == (0x1, b"early bird")
        c.close()
    finally:
        b.close()


def test_pipelined_request_after_refused_upgrade(server: Any) -> None:
    """An Upgrade request answered without 101 leaves the connection an
    ordinary one: the request pipelined behind it is answered."""
    b = Backend("websocket")
    try:
        port = free_port()
        server(_conf(b, port))
        data = raw_request(port, b"GET /plain/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n\r\n"
                                 b"GET /plain/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=5)
        status, _, _, rest = parse_response(data)
        assert status == 426
        assert parse_response(rest)[0] == 426  # the second request reached the backend too
        assert len(b.heads) == 2 and b.heads[1].startswith(b"GET /plain/y HTTP/1.0\r\n")
    finally:
        b.close()
