"""ngx_http_addition_filter_module on a live portico, compared with Debian's
nginx: add_before_body / add_after_body through subrequests, addition_types,
error pages of missing additions, HEAD, and what happens to the headers."""
from __future__ import annotations

import socket

import pytest

from harness import base_conf, free_port, have_nginx

pytestmark = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")

CONF = """
    server {{
        listen 127.0.0.1:{port};
        root html;
        location / {{
            add_before_body /parts/head.html;
            add_after_body /parts/foot.html;
        }}
        location /txt/ {{
            alias html/;
            add_after_body /parts/foot.html;
        }}
        location /anytype/ {{
            alias html/;
            addition_types *;
            add_before_body /parts/head.html;
        }}
        location /missing/ {{
            alias html/;
            add_after_body /parts/nope.html;
        }}
        location /dyn/ {{
            default_type text/html;
            add_before_body /gen/before;
            add_after_body /gen/after;
            return 200 "<p>dynamic $uri</p>";
        }}
        location /gen/ {{ return 200 "[$uri $args $request_uri]"; }}
        location /parts/ {{ }}
    }}"""

FILES = {
    "html/page.html": "<p>page</p>\n",
    "html/big.html": "<p>" + "x" * 100_000 + "</p>\n",
    "html/note.txt": "plain\n",
    "html/parts/head.html": "<header>H</header>\n",
    "html/parts/foot.html": "<footer>F</footer>\n",
}


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


def view(data: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    keep = [lines[0]] + sorted(ln for ln in lines[1:] if not ln.lower().startswith(
        (b"date:", b"server:", b"last-modified:", b"content-length:")))
    keep.append(b"has-length: %d" % any(ln.lower().startswith(b"content-length:") for ln in lines))
    if b"Transfer-Encoding: chunked" in head:
        payload = b""
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line, 16)
            if not size:
                break
            payload += body[:size]
            body = body[size + 2:]
        body = payload
    return keep, body.replace(b"nginx/1.22.1", b"TOKEN").replace(b"portico/0.1.0", b"TOKEN")


REQUESTS = {
    "page": b"GET /page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "page_http10": b"GET /page.html HTTP/1.0\r\n\r\n",
    "big": b"GET /big.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "head_method": b"HEAD /page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "text_type_untouched": b"GET /txt/note.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "any_type": b"GET /anytype/note.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "missing_addition": b"GET /missing/page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "not_found_main": b"GET /none.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "dynamic": b"GET /dyn/x?a=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    "range": b"GET /page.html HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n",
}


@pytest.fixture(scope="module")
def answers() -> dict[str, dict[str, bytes]]:
    import harness
    out: dict[str, dict[str, bytes]] = {}
    for kind in ("nginx", "portico"):
        port = free_port()
        s = harness.Server(base_conf(CONF.format(port=port)), kind, dict(FILES))
        import os
        for dirpath, _dirs, files in os.walk(s.prefix):
            os.chmod(dirpath, 0o755)
            for f in files:
                os.chmod(os.path.join(dirpath, f), 0o644)
        try:
            s.start()
            out[kind] = {name: exchange(port, raw) for name, raw in REQUESTS.items()}
        finally:
            s.cleanup()
    return out


@pytest.mark.parametrize("name", list(REQUESTS))
def test_same_as_nginx(answers, name):
    assert view(answers["portico"][name]) == view(answers["nginx"][name])


def test_the_additions_are_there(answers):
    _, body = view(answers["portico"]["page"])
    assert body == b"<header>H</header>\n<p>page</p>\n<footer>F</footer>\n"
    _, body = view(answers["portico"]["dynamic"])
    assert body == b"[/gen/before  /dyn/x?a=1]<p>dynamic /dyn/x</p>[/gen/after  /dyn/x?a=1]"
