"""add_trailer on a live portico, compared with Debian's nginx: trailers
make an HTTP/1.1 response chunked, follow the last chunk, skip empty values,
respect ``always``, and are absent on HTTP/1.0."""
from __future__ import annotations

import socket

import pytest

from harness import base_conf, free_port, have_nginx

CONF = """
    server {{
        listen 127.0.0.1:{port};
        root html;
        location / {{
            add_trailer X-Checksum "sum-$uri";
            add_trailer X-Empty "$arg_none";
        }}
        location /always/ {{
            alias html/;
            add_trailer X-Status "$status" always;
            add_trailer X-Ok "ok";
        }}
        location /ret {{ add_trailer X-T t; return 200 "body"; }}
    }}"""


def exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    return data


def dechunk(body: bytes) -> tuple[bytes, bytes]:
    """(payload, trailer section) of a chunked body."""
    payload = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return payload, body
        payload += body[:size]
        body = body[size + 2:]


def normalise(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Headers without the varying ones, payload (product token normalised)
    and trailers."""
    head, _, body = data.partition(b"\r\n\r\n")
    keep = [ln for ln in head.split(b"\r\n")
            if not ln.lower().startswith((b"date:", b"server:", b"etag:", b"last-modified:"))]
    # the product tokens differ in length: keep only Content-Length's presence
    keep = [b"Content-Length: *" if ln.lower().startswith(b"content-length:") else ln for ln in keep]
    trailers = b""
    if b"Transfer-Encoding: chunked" in head and body:
        body, trailers = dechunk(body)
    body = body.replace(b"nginx/1.22.1", b"TOKEN").replace(b"portico/0.1.0", b"TOKEN")
    return b"\r\n".join(keep), body, trailers


REQUESTS = [
    b"GET /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET /f.txt HTTP/1.0\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET /always/missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET /always/f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"GET /ret HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    b"HEAD /f.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
]


@pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")
@pytest.mark.parametrize("raw", REQUESTS, ids=[r.split(b"\r\n")[0].decode() for r in REQUESTS])
def test_same_bytes_as_nginx(server, raw):
    out = {}
    for kind in ("nginx", "portico"):
        port = free_port()
        server(base_conf(CONF.format(port=port)), kind=kind, files={"html/f.txt": "hello\n"})
        out[kind] = normalise(exchange(port, raw))
    assert out["portico"] == out["nginx"]


def test_trailer_follows_last_chunk(server):
    port = free_port()
    server(base_conf(CONF.format(port=port)), files={"html/f.txt": "hello\n"})
    data = exchange(port, REQUESTS[0])
    assert b"Transfer-Encoding: chunked" in data and b"Content-Length" not in data
    assert data.endswith(b"6\r\nhello\n\r\n0\r\nX-Checksum: sum-/f.txt\r\n\r\n")
    assert b"X-Empty" not in data
