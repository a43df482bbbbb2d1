"""Differential suite over HTTP/2 (prior-knowledge h2c): Debian's nginx 1.22
and Portico, same config (``listen ... http2``, which both accept on a plain
listener), same requests through the same raw ``h2`` client.

Invariants:
- One nginx and one Portico for the module, same ``CONF`` and ``FILES``;
  file mtimes are pinned so ETag and Last-Modified agree.
- Each case is one stream on a fresh connection.  Compared: ``:status``,
  the order of the response header names (``server`` and ``date`` values
  aside), the values of the headers that matter (ports and the product
  token normalised), and the body.
"""
from __future__ import annotations

import gzip
import os
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server, free_port, have_nginx  # noqa: E402

from ..integration.test_http2_support import Client  # noqa: E402

if not have_nginx():
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)

MTIME = 1_600_000_000
FILES = {
    "html/index.html": "<h1>index</h1>\n",
    "html/a.txt": "plain text file\n" * 50,
    "html/dir/index.html": "dir index\n",
    "html/img.gif": b"GIF89a" + bytes(range(64)),
}
CONF = """
worker_processes 1;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 256; }
http {
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    server {
        listen 127.0.0.1:%PORT% http2;
        server_name localhost;
        root html;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 10;
        location = /ret { return 200 "returned\\n"; }
        location = /teapot { return 418; }
        location = /moved { return 302 /a.txt; }
        location = /rw { rewrite ^ /dir/ permanent; }
        location = /hdr { add_header X-Custom "v1"; add_header Cache-Control "no-cache"; return 200 "h\\n"; }
        location /err/ { error_page 404 /index.html; }
        location = /vars { return 200 "$server_protocol|$request|$http_host|$host|$request_uri|$args\\n"; }
    }
}
"""
#: (path, method, extra headers)
CASES: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("/", "GET", []),
    ("/index.html", "GET", []),
    ("/index.html", "HEAD", []),
    ("/a.txt", "GET", []),
    ("/a.txt", "GET", [("accept-encoding", "gzip")]),
    ("/a.txt", "GET", [("range", "bytes=5-14")]),
    ("/a.txt", "GET", [("range", "bytes=-4")]),
    ("/a.txt", "GET", [("range", "bytes=9999-")]),
    ("/img.gif", "GET", []),
    ("/dir", "GET", []),
    ("/dir/", "GET", []),
    ("/missing", "GET", []),
    ("/err/missing", "GET", []),
    ("/ret", "GET", []),
    ("/ret", "POST", []),
    ("/teapot", "GET", []),
    ("/moved", "GET", []),
    ("/rw", "GET", []),
    ("/hdr", "GET", []),
    ("/vars?x=1&y=%20", "GET", []),
    ("/%2e%2e/a.txt", "GET", []),
    ("/a.txt", "DELETE", []),
]
COMPARED = ("content-type", "content-length", "location", "etag", "last-modified", "accept-ranges",
            "content-range", "content-encoding", "vary", "x-custom", "cache-control")


def _start(kind: str) -> tuple[Server, int]:
    port = free_port()
    s = Server(CONF.replace("%PORT%", str(port)), kind, FILES)
    os.chmod(os.path.join(s.prefix, "html"), 0o755)
    for root, dirs, files in os.walk(os.path.join(s.prefix, "html")):
        for n in dirs + files:
            p = os.path.join(root, n)
            os.chmod(p, 0o755 if n in dirs else 0o644)
            os.utime(p, (MTIME, MTIME))
    s.start()
    return s, port


@pytest.fixture(scope="module")
def pair() -> Iterator[dict[str, int]]:
    servers = [_start("nginx"), _start("portico")]
    yield {"nginx": servers[0][1], "portico": servers[1][1]}
    for s, _ in servers:
        s.cleanup()


def _fetch(port: int, path: str, method: str, headers: list[tuple[str, str]]) -> tuple[int, list[str], dict[str, str], bytes]:
    c = Client(port)
    try:
        st = c.get(path, method=method, headers=headers, authority=f"localhost:{port}")
    finally:
        c.close()
    names = [k.decode() for k, _ in st.headers]
    values = {}
    for k, v in st.headers:
        text = v.decode("latin-1").replace(str(port), "PORT")
        values[k.decode()] = text
    body = st.data.replace(b"nginx/1.22.1", b"PRODUCT").replace(b"portico/0.1.0", b"PRODUCT")
    body = body.replace(str(port).encode(), b"PORT")
    return st.status, names, values, body


@pytest.mark.parametrize("path,method,headers", CASES, ids=[f"{m} {p} {h}" for p, m, h in CASES])
def test_same_over_h2(pair: dict[str, int], path: str, method: str, headers: list[tuple[str, str]]) -> None:
    n = _fetch(pair["nginx"], path, method, headers)
    p = _fetch(pair["portico"], path, method, headers)
    assert p[0] == n[0], "status"
    assert p[1] == n[1], "header order"
    for h in COMPARED:
        if h == "content-length" and n[0] >= 300 and n[3].startswith(b"<html>"):
            continue  # the product token in the error page has another length
        assert p[2].get(h) == n[2].get(h), h
    if n[2].get("content-encoding") == "gzip":
        # the deflate stream may be cut in other places; the content is what counts
        assert gzip.decompress(p[3]) == gzip.decompress(n[3]), "body"
    else:
        assert p[3] == n[3], "body"
