"""proxy_pass: what the backend receives, what the client gets, errors,
round robin, against Debian's nginx where it can be compared.

Invariants:
- Backends are real sockets (tests/backends.py); for differential tests
  nginx and Portico run the same http{} text in front of the same backends.
- The request a backend receives is compared verbatim (request line and
  header lines in order), except the Host header value when it contains
  the front server's own port.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend, header_lines, request_line  # noqa: E402
from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request  # noqa: E402

NGINX_TOKEN = b"nginx/1.22.1"
PORTICO_TOKEN = b"portico/0.1.0"


def get(port: int, path: str, headers: str = "", method: str = "GET", body: bytes = b"",
        timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    req = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}".encode()
    if body:
        req += f"Content-Length: {len(body)}\r\n".encode()
    req += b"\r\n" + body
    st, h, b, _ = parse_response(raw_request(port, req, timeout=timeout))
    return st, h, b


class Pair:
    """nginx and Portico from the same http{} text (%PORT% = own port)."""

    def __init__(self, server: Any, http: str, kinds: tuple[str, ...] = ("nginx", "portico")) -> None:
        self.ports: dict[str, int] = {}
        self.servers: dict[str, Server] = {}
        for kind in kinds:
            port = free_port()
            conf = base_conf(http.replace("%PORT%", str(port)))
            self.servers[kind] = server(conf, kind=kind)
            self.ports[kind] = port


@pytest.fixture(scope="module")
def echo() -> Iterator[Backend]:
    b = Backend("echo")
    yield b
    b.close()


# --- what the backend receives ----------------------------------------------------------

URI_LOCATIONS = """
location /a/ { proxy_pass http://B/; }
location /b/ { proxy_pass http://B/z/; }
location /c { proxy_pass http://B; }
location /d/ { proxy_pass http://B/e; }
location ~ ^/re/ { proxy_pass http://B; }
location /rw/ { rewrite ^/rw/(.*)$ /new/$1 break; proxy_pass http://B; }
location /rw2/ { rewrite ^/rw2/(.*)$ /new/$1 break; proxy_pass http://B/p/; }
location /args/ { proxy_pass http://B/q?fixed=1; }
location /if/ { if ($arg_x) { proxy_pass http://B; } proxy_pass http://B/other/; }
location /var/ { proxy_pass http://$arg_h/path; }
location /varup/ { set $up bk; proxy_pass http://$up; }
location /hdr/ {
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header Host $host:$server_port;
    proxy_set_header Accept-Encoding "";
    proxy_set_header X-FF $proxy_add_x_forwarded_for;
    proxy_set_header X-PH "$proxy_host|$proxy_port";
    proxy_pass http://B;
}
location /noh/ { proxy_pass_request_headers off; proxy_pass http://B; }
location /meth/ { proxy_method POST; proxy_set_body "hello $arg_a"; proxy_pass http://B; }
location /v11/ { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://bk; }
location /nobody/ { proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_pass http://B; }
location /tf/ { try_files /nonexistent @named; }
location @named { proxy_pass http://B; }
location /ep/ { error_page 404 = /c/fromerror; return 404; }
"""

URI_REQUESTS = [
    ("GET", "/a/x?y=1", "", b""),
    ("GET", "/b/c/d", "", b""),
    ("GET", "/c/%41%20b?q=%20", "", b""),
    ("GET", "/cc//x/../y", "", b""),
    ("GET", "/d/f", "", b""),
    ("GET", "/re/x%2Fy?z", "", b""),
    ("GET", "/rw/a%20b?x=1", "", b""),
    ("GET", "/rw2/a%20b?x=1", "", b""),
    ("GET", "/args/x?y=2", "", b""),
    ("GET", "/if/a?x=1", "", b""),
    ("GET", "/if/a", "", b""),
    ("GET", "/varup/k?l=m", "", b""),
    ("GET", "/hdr/1", "X-Forwarded-For: 10.0.0.1\r\nAccept-Encoding: gzip\r\nUser-Agent: t\r\n", b""),
    ("GET", "/hdr/2", "Upgrade: websocket\r\nTE: trailers\r\nKeep-Alive: 5\r\nExpect: x\r\nX-Custom: 1\r\n", b""),
    ("GET", "/noh/1", "X-Custom: 1\r\n", b""),
    ("GET", "/meth/1?a=b", "", b""),
    ("POST", "/c/post", "Content-Type: text/plain\r\n", b"body-data"),
    ("POST", "/nobody/1", "", b"dropped"),
    ("HEAD", "/c/head", "", b""),
    ("GET", "/v11/x", "", b""),
    ("GET", "/tf/q?r=1", "", b""),
    ("GET", "/ep/z?k=1", "", b""),
]


@pytest.fixture(scope="module")
def uri_pair(echo: Backend, tmp_path_factory: Any) -> Iterator[Pair]:
    from harness import Server as S
    started: list[S] = []

    def make(conf: str, kind: str = "portico") -> S:
        s = S(conf, kind)
        started.append(s)
        s.start()
        return s
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    http = ("upstream bk { server %s; keepalive 4; }\nserver { listen 127.0.0.1:%%PORT%%;\n%s\n}"
            % (echo.addr, URI_LOCATIONS.replace("http://B", f"http://{echo.addr}")))
    pair = Pair(make, http)
    yield pair
    for s in started:
        s.cleanup()


def _received(echo: Backend, port: int, method: str, path: str, headers: str, body: bytes) -> tuple[str, list[str], bytes]:
    n = len(echo.heads)
    path = path.replace("%ECHO%", echo.addr)
    get(port, path, headers, method, body)
    assert len(echo.heads) == n + 1, "the backend got no request"
    head = echo.heads[-1]
    lines = [ln.replace(str(port), "PORT") for ln in header_lines(head)]
    return request_line(head), lines, echo.bodies[-1]


@pytest.mark.parametrize("method,path,headers,body", URI_REQUESTS, ids=[f"{m} {p}" for m, p, _, _ in URI_REQUESTS])
def test_backend_receives_same_request_as_nginx(uri_pair: Pair, echo: Backend, method: str, path: str,
                                                headers: str, body: bytes) -> None:
    want = _received(echo, uri_pair.ports["nginx"], method, path, headers, body)
    got = _received(echo, uri_pair.ports["portico"], method, path, headers, body)
    assert got == want


def test_dynamic_ip_target_same_as_nginx(uri_pair: Pair, echo: Backend) -> None:
    path = f"/var/?h={echo.addr}"
    want = _received(echo, uri_pair.ports["nginx"], "GET", path, "", b"")
    got = _received(echo, uri_pair.ports["portico"], "GET", path, "", b"")
    assert got == want
    assert got[0] == "GET /path HTTP/1.0"


def test_response_headers_same_as_nginx(server: Any) -> None:
    b = Backend("fixed", status=302, body=b"moved",
                headers=[("Location", "http://B/inner/x"), ("X-Accel-Expires", "5"), ("X-Pad", "p"),
                         ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Powered-By", "py"),
                         ("Keep-Alive", "timeout=5"), ("Refresh", "5; url=http://B/inner/y"),
                         ("Cache-Control", "no-cache")])
    b.headers = [(k, v.replace("B", b.addr)) for k, v in b.headers]
    try:
        pair = Pair(server, "server { listen 127.0.0.1:%%PORT%%;\nlocation /outer/ { proxy_pass http://%s/inner/; }\n"
                            "location /rel/ { proxy_pass http://%s/inner/; proxy_redirect http://%s/inner/ /r/; }\n"
                            "location /off/ { proxy_pass http://%s/inner/; proxy_redirect off; }\n}"
                    % (b.addr, b.addr, b.addr, b.addr))
        for path in ("/outer/1", "/rel/1", "/off/1"):
            res = {}
            for kind, port in pair.ports.items():
                data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                data = data.replace(str(port).encode(), b"PORT")
                head = data.split(b"\r\n\r\n")[0].split(b"\r\n")
                # the status code only: nginx relays the upstream's reason phrase ("302 Found"),
                # Portico writes its own table's (a known difference, see the report)
                res[kind] = (head[0][:12], sorted(ln for ln in head[1:] if not ln.startswith((b"Date:", b"Server:"))),
                             data.split(b"\r\n\r\n", 1)[1])
            assert res["portico"] == res["nginx"], path
    finally:
        b.close()


# --- errors ---------------------------------------------------------------------------------

def _norm(data: bytes) -> bytes:
    return data.replace(NGINX_TOKEN, PORTICO_TOKEN)


def test_errors_same_status_and_body_as_nginx(server: Any) -> None:
    slow = Backend("slow", delay=1.0)
    bad500 = Backend("fixed", status=500, body=b"err")
    ok = Backend("echo", name="ok")
    dead = free_port()
    try:
        http = f"""
upstream nx {{ server {bad500.addr}; server {ok.addr}; }}
upstream nxoff {{ server {bad500.addr}; server {ok.addr}; }}
server {{ listen 127.0.0.1:%PORT%;
  location /refused {{ proxy_pass http://127.0.0.1:{dead}; }}
  location /timeout {{ proxy_read_timeout 200ms; proxy_pass http://{slow.addr}; }}
  location /next500 {{ proxy_next_upstream error http_500; proxy_pass http://nx; }}
  location /nonext {{ proxy_next_upstream off; proxy_pass http://nxoff; }}
  location /post500 {{ proxy_next_upstream error http_500; proxy_pass http://nx; }}
}}"""
        pair = Pair(server, http)
        for method, path in (("GET", "/refused"), ("GET", "/timeout"), ("GET", "/next500"), ("GET", "/next500"),
                             ("POST", "/post500"), ("POST", "/post500")):
            res = {}
            for kind, port in pair.ports.items():
                st, h, body = get(port, path, method=method, body=b"x" if method == "POST" else b"")
                res[kind] = (st, h.get("content-type"), _norm(body).replace(str(port).encode(), b"P"))
            assert res["portico"] == res["nginx"], (method, path)
        nlog = pair.servers["nginx"].log()
        plog = pair.servers["portico"].log()
        for needle in (f'connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, '
                       f'server: , request: "GET /refused HTTP/1.1", upstream: "http://127.0.0.1:{dead}/refused", '
                       f'host: "x"',
                       'upstream timed out (110: Connection timed out) while reading response header from upstream, '
                       f'client: 127.0.0.1, server: , request: "GET /timeout HTTP/1.1", upstream: '
                       f'"http://{slow.addr}/timeout", host: "x"'):
            assert needle in nlog
            assert needle in plog
    finally:
        slow.close()
        bad500.close()
        ok.close()


def test_round_robin_sequence_same_as_nginx(server: Any) -> None:
    bs = [Backend("echo", name=n) for n in "abc"]
    try:
        http = (f"upstream rr {{ server {bs[0].addr} weight=5; server {bs[1].addr}; server {bs[2].addr}; }}\n"
                f"upstream eq {{ server {bs[0].addr}; server {bs[1].addr} weight=2; server {bs[2].addr} weight=3; }}\n"
                "server { listen 127.0.0.1:%PORT%; location /rr { proxy_pass http://rr; }"
                " location /eq { proxy_pass http://eq; } }")
        pair = Pair(server, http)
        for path, n in (("/rr", 14), ("/eq", 12)):
            seqs = {}
            for kind, port in pair.ports.items():
                seqs[kind] = "".join(get(port, path)[1]["x-backend"] for _ in range(n))
            assert seqs["portico"] == seqs["nginx"]
            assert len(set(seqs["portico"])) == 3
    finally:
        for b in bs:
            b.close()


def test_weights_5_1_1_sequence(server: Any) -> None:
    """Without nginx too: the smooth weighted sequence itself."""
    bs = [Backend("echo", name=n) for n in "abc"]
    try:
        port = free_port()
        server(base_conf(f"upstream rr {{ server {bs[0].addr} weight=5; server {bs[1].addr}; server {bs[2].addr}; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://rr; }} }}"))
        seq = "".join(get(port, "/")[1]["x-backend"] for _ in range(14))
        assert seq == "aabacaa" * 2
    finally:
        for b in bs:
            b.close()


# --- passive health, backup -------------------------------------------------------------------

def test_dead_primary_marked_down_then_backup(server: Any) -> None:
    a = Backend("echo", name="a")
    bk = Backend("echo", name="backup")
    dead = free_port()
    try:
        port = free_port()
        s = server(base_conf(f"upstream u {{ server 127.0.0.1:{dead} max_fails=1 fail_timeout=2s; server {a.addr};"
                             f" server {bk.addr} backup; }}\n"
                             f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}"))
        names = [get(port, "/")[1]["x-backend"] for _ in range(6)]
        assert names == ["a"] * 6  # the dead one failed once, then left rotation
        assert s.log().count("connect() failed (111: Connection refused)") == 1
        assert "upstream server temporarily disabled while connecting to upstream" in s.log()
        a.close()
        names = [get(port, "/")[1]["x-backend"] for _ in range(3)]
        assert names == ["backup"] * 3  # every primary down: the backup answers
    finally:
        a.close()
        bk.close()


def test_no_live_upstreams_502_quickly(server: Any) -> None:
    port = free_port()
    d1, d2 = free_port(), free_port()
    s = server(base_conf(f"upstream u {{ server 127.0.0.1:{d1}; server 127.0.0.1:{d2}; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }} }}"))
    assert get(port, "/")[0] == 502
    t = time.monotonic()
    assert get(port, "/x")[0] == 502
    assert time.monotonic() - t < 1.0
    assert ('no live upstreams while connecting to upstream, client: 127.0.0.1, server: , '
            'request: "GET /x HTTP/1.1", upstream: "http://u/x", host: "x"') in s.log()


# --- bad backends -----------------------------------------------------------------------------

def test_slow_backend_504_and_log(server: Any) -> None:
    slow = Backend("slow", delay=2.0)
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_read_timeout 300ms;"
                             f" proxy_pass http://{slow.addr}; }} }}"))
        t = time.monotonic()
        assert get(port, "/s")[0] == 504
        assert time.monotonic() - t < 1.5
        assert "upstream timed out (110: Connection timed out) while reading response header from upstream" in s.log()
    finally:
        slow.close()


def test_never_answering_backend_connect_ok_read_timeout(server: Any) -> None:
    never = Backend("never")
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_read_timeout 200ms;"
                             f" proxy_pass http://{never.addr}; }} }}"))
        assert get(port, "/")[0] == 504
        assert get(port, "/")[0] == 504  # the worker is still fine
        assert s.log().count("upstream timed out") == 2
    finally:
        never.close()


def test_close_mid_body_closes_client_and_logs(server: Any) -> None:
    b = Backend("close_mid")
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{b.addr}; }} }}"))
        data = raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive asked
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Length: 1000" in head
        assert body == b"0123456789"  # truncated, then the connection closed
        assert "upstream prematurely closed connection while reading upstream" in s.log()
    finally:
        b.close()


def test_invalid_status_line_502(server: Any) -> None:
    b = Backend("invalid")
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{b.addr}; }} }}"))
        assert get(port, "/")[0] == 502
        assert "upstream sent no valid HTTP/1.0 header while reading response header from upstream" in s.log()
    finally:
        b.close()


def test_too_big_header_502(server: Any) -> None:
    b = Backend("fixed", headers=[("X-Big", "v" * 6000)])
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_buffer_size 4k;"
                             f" proxy_pass http://{b.addr}; }} }}"))
        assert get(port, "/")[0] == 502
        assert "upstream sent too big header while reading response header from upstream" in s.log()
    finally:
        b.close()


def test_reset_backend_502_and_next(server: Any) -> None:
    rst = Backend("reset")
    ok = Backend("echo", name="ok")
    try:
        port = free_port()
        s = server(base_conf(f"upstream u {{ server {rst.addr}; server {ok.addr}; }}\n"
                             f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://u; }}"
                             f" location /one {{ proxy_pass http://{rst.addr}; }} }}"))
        assert get(port, "/one")[0] == 502
        assert "(104: Connection reset by peer) while reading response header from upstream" in s.log()
        st, h, _ = get(port, "/")
        assert st == 200 and h["x-backend"] == "ok"
    finally:
        rst.close()
        ok.close()


def test_no_resolver_for_name_in_variable(server: Any) -> None:
    port = free_port()
    s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ set $h localhost;"
                         f" proxy_pass http://$h:1; }} }}"))
    assert get(port, "/")[0] == 502
    assert "no resolver defined to resolve localhost" in s.log()


def test_upstream_variables_in_access_log(server: Any) -> None:
    ok = Backend("echo", name="ok", headers=[("X-Up", "yes")])
    dead = free_port()
    try:
        port = free_port()
        conf = base_conf(f"upstream u {{ server 127.0.0.1:{dead}; server {ok.addr}; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; access_log logs/up.log up;"
                         f" location / {{ proxy_pass http://u; }} }}",
                         http_extra="log_format up '$upstream_addr|$upstream_status|$upstream_http_x_up|"
                                    "$upstream_response_length|$upstream_connect_time';")
        s = server(conf)
        names = set()
        for _ in range(2):
            assert get(port, "/")[0] == 200
        time.sleep(0.2)
        lines = s.log("up.log").strip().splitlines()
        for ln in lines:
            addr, status, xup, length, ct = ln.split("|")
            names.add(addr)
            assert xup == "yes"
            assert status.endswith("200")
            assert int(length.split(", ")[-1]) > 0
        assert f"127.0.0.1:{dead}, {ok.addr}" in names
        assert any(ln.startswith(f"127.0.0.1:{dead}, {ok.addr}|502, 200|") for ln in lines)
    finally:
        ok.close()


def test_client_gone_cancels_upstream(server: Any) -> None:
    slow = Backend("slow", delay=1.0)
    ok = Backend("echo")
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location /s {{ proxy_pass http://{slow.addr}; }}"
                             f" location /ok {{ proxy_pass http://{ok.addr}; }} }}"))
        c = socket.create_connection(("127.0.0.1", port))
        c.sendall(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)
        c.close()
        assert get(port, "/ok")[0] == 200
        time.sleep(1.2)
        assert slow.count("close") >= 1  # the upstream connection did not outlive the client
        assert " 499 " in s.log("access.log")
    finally:
        slow.close()
        ok.close()
