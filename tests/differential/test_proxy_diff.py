"""Differential suite for the proxy's response-header work: proxy_cookie_domain,
proxy_cookie_path, proxy_cookie_flags and X-Accel-* (redirect, hidden
headers, proxy_ignore_headers, proxy_pass_header), against Debian's nginx.

Invariants:
- nginx and Portico run the same ``http{}`` text in front of the same real
  backends (tests/backends.py, ``fixed`` mode: one Set-Cookie list, one set
  of X-Accel headers per backend).
- For every request the two answers must agree on the status, every
  header but Date and Server (in order, each server's port replaced by
  PORT) and the body.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import Server, base_conf, free_port, have_nginx, raw_request  # noqa: E402

if not have_nginx():
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)

COOKIES = [
    "sid=1; Domain=.Backend.Example; Path=/app/x; HttpOnly",
    "b=2; domain=backend.example; path=/APP/; Secure; SameSite=Lax",
    "c=3;Path=/other ;  Domain = sub.backend.example ;secure",
    "noeq; Path=/app/",
    "d=4; Max-Age=10; samesite=strict",
    "e=5",
    "f=6; Path=/app/y; Domain=x.org; samesite",
]

LOCATIONS = """
location /dom/ { proxy_cookie_domain backend.example front.example; proxy_pass http://CK; }
location /dom2/ { proxy_cookie_domain .backend.example .$host; proxy_pass http://CK; }
location /domre/ { proxy_cookie_domain ~^(.+)\\.backend\\.example$ $1.front.example;
                   proxy_cookie_domain ~\\.org$ org.example; proxy_pass http://CK; }
location /path/ { proxy_cookie_path /app/ /front/; proxy_pass http://CK; }
location /pathre/ { proxy_cookie_path ~*^/app(/.*)?$ /f$1; proxy_cookie_path ~^/oth /o; proxy_pass http://CK; }
location /both/ { proxy_cookie_domain backend.example f.example; proxy_cookie_path /app/x /x;
                  proxy_cookie_path / /root/; proxy_pass http://CK; }
location /flags/ { proxy_cookie_flags sid nohttponly secure samesite=none;
                   proxy_cookie_flags ~^[bd]$ nosecure samesite=strict;
                   proxy_cookie_flags ~ httponly; proxy_pass http://CK; }
location /flagsoff/ { proxy_cookie_flags ~ nosamesite nosecure; proxy_pass http://CK; }
location /flagvar/ { proxy_cookie_flags $arg_c $arg_f; proxy_pass http://CK; }
location /off/ { proxy_cookie_path off; proxy_cookie_domain off; proxy_pass http://CK; }
location /inherit/ { location /inherit/in/ { proxy_pass http://CK; } }
location /xa/ { proxy_pass http://XA; }
location /xaign/ { proxy_ignore_headers X-Accel-Redirect X-Accel-Limit-Rate; proxy_pass http://XA; }
location /xapass/ { proxy_ignore_headers X-Accel-Redirect; proxy_pass_header X-Accel-Redirect;
                    proxy_pass_header X-Accel-Expires; proxy_hide_header X-Other; proxy_pass http://XA; }
location /xacookie/ { proxy_cookie_path /app/ /moved/; proxy_pass http://XA; }
location /xanamed/ { proxy_pass http://XN; }
location /xaunsafe/ { proxy_pass http://XU; }
location /internal/ { internal; return 200 "internal $uri args=$args $request_method\\n"; }
location @named { return 200 "named $uri $request_method\\n"; }
"""

REQUESTS = ["/dom/a", "/dom2/a", "/domre/a", "/path/a", "/pathre/a", "/both/a", "/flags/a", "/flagsoff/a",
            "/flagvar/a?c=e&f=secure", "/flagvar/a?c=E&f=nohttponly", "/off/a", "/inherit/in/a",
            "/xa/a?q=1", "/xaign/a", "/xapass/a", "/xacookie/a", "/xanamed/a", "/xaunsafe/a",
            "POST /xa/p", "HEAD /xa/h"]


class Running:
    def __init__(self, tmp: Any) -> None:
        self.backends = {
            "CK": Backend("fixed", headers=[("Set-Cookie", c) for c in COOKIES], body=b"cookies\n"),
            "XA": Backend("fixed", body=b"upstream body\n", headers=[
                ("X-Accel-Redirect", "/internal/t%20x?k=v"), ("X-Accel-Expires", "30"),
                ("X-Accel-Limit-Rate", "100000"), ("X-Accel-Charset", "utf-8"),
                ("X-Accel-Buffering", "no"), ("Set-Cookie", "z=1; Path=/app/z"),
                ("Cache-Control", "max-age=5"), ("Content-Disposition", "attachment"),
                ("Expires", "Thu, 01 Jan 2037 00:00:00 GMT"), ("X-Other", "o"), ("Content-Type", "text/x")]),
            "XN": Backend("fixed", headers=[("X-Accel-Redirect", "@named"), ("X-Other", "o")]),
            "XU": Backend("fixed", headers=[("X-Accel-Redirect", "/internal/../etc/passwd")]),
        }
        http = "server { listen 127.0.0.1:%PORT%;\n" + LOCATIONS + "}\n"
        http = http.replace("proxy_pass http://CK;", "proxy_cookie_path /app/ /inh/; proxy_pass http://CK;", 0)
        for name, b in self.backends.items():
            http = http.replace(f"http://{name};", f"http://{b.addr};")
        # /inherit/ sets a rule its nested location inherits
        http = http.replace("location /inherit/ {", "location /inherit/ { proxy_cookie_path /app/ /inh/;")
        self.servers: dict[str, tuple[Server, int]] = {}
        for kind in ("nginx", "portico"):
            port = free_port()
            s = Server(base_conf(http.replace("%PORT%", str(port))), kind)
            self.servers[kind] = (s, port)
            s.start()

    def close(self) -> None:
        for s, _ in self.servers.values():
            s.cleanup()
        for b in self.backends.values():
            b.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: Any) -> Iterator[Running]:
    r = Running(tmp_path_factory)
    yield r
    r.close()


NGINX_TOKEN = b"nginx/1.22.1"
PORTICO_TOKEN = b"portico/0.1.0"

def _answer(port: int, req: str) -> tuple[str, list[str], bytes]:
    method, _, path = req.rpartition(" ")
    method = method or "GET"
    body = b"data" if method == "POST" else b""
    extra = f"Content-Length: {len(body)}\r\n" if body else ""
    data = raw_request(port, f"{method} {path} HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n{extra}\r\n"
                             .encode() + body)
    data = data.replace(str(port).encode(), b"PORT")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    skip: tuple[str, ...] = ("Date:", "Server:")
    if NGINX_TOKEN in rest or PORTICO_TOKEN in rest:
        rest = rest.replace(NGINX_TOKEN, PORTICO_TOKEN)
        skip += ("Content-Length:",)
    hdrs = [ln for ln in lines[1:] if not ln.startswith(skip)]
    return lines[0], hdrs, rest


@pytest.mark.parametrize("req", REQUESTS)
def test_same_answer_as_nginx(running: Running, req: str) -> None:
    want = _answer(running.servers["nginx"][1], req)
    got = _answer(running.servers["portico"][1], req)
    assert got == want


def test_cookie_rewrites_did_something(running: Running) -> None:
    """Guard against a vacuous pass: the rewritten cookies are really different."""
    _, hdrs, _ = _answer(running.servers["portico"][1], "/both/a")
    assert "Set-Cookie: sid=1; Domain=.f.example; Path=/x; HttpOnly" in hdrs
    _, hdrs, body = _answer(running.servers["portico"][1], "/xa/a?q=1")
    assert body == b"internal /internal/t x args=k=v GET\n"
    assert not any(h.lower().startswith(("x-accel", "x-other")) for h in hdrs)


def test_unsafe_x_accel_redirect_logged(running: Running) -> None:
    s, port = running.servers["portico"]
    _answer(port, "/xaunsafe/a")
    assert 'unsafe URI "/internal/../etc/passwd" was detected' in s.log()
