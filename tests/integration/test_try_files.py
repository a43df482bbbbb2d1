"""try_files on a live Portico, differentially against Debian's nginx.

One nginx and one Portico per module start from the same configuration
(one virtual server per scenario, picked by the Host header) and the same
files; each request goes to both on a fresh connection and the status,
Location (port normalised), Content-Type, X-Uri and body (product token
normalised) must be equal.  Portico-only tests check what a differential
test cannot see (error-log lines, the phase handler being absent).
"""
from __future__ import annotations

import os
import re
from typing import Iterator

import pytest

from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request

SERVERS = r"""
    server {
        listen 127.0.0.1:%PORT%;
        server_name wp;
        root %PREFIX%/html;
        index index.html index.php;
        location / { try_files $uri $uri/ /index.php?$args; }
        location ~ \.php$ { return 200 "php uri=$uri args=$args\n"; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name laravel;
        root %PREFIX%/html;
        location / { try_files $uri $uri/ /index.php?$query_string; }
        location ~ \.php$ { return 200 "laravel uri=$uri qs=$query_string\n"; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name spa;
        root %PREFIX%/spa;
        location / { try_files $uri /index.html; add_header X-Uri $uri always; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name code;
        root %PREFIX%/html;
        location / { try_files $uri =404; }
        location /dir3/ { try_files $uri $uri/ =403; }
        location /nc/ { try_files $uri =204; }
        location /teapot/ { try_files $uri =418; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name named;
        root %PREFIX%/html;
        location / { try_files $uri @back; }
        location /nope/ { try_files $uri @missing; }
        location @back { return 200 "back uri=$uri args=$args\n"; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name dirs;
        root %PREFIX%/html;
        location / { try_files $uri/ $uri =404; }
        location /loop/ { try_files $uri $uri/; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name alias;
        root %PREFIX%/html;
        location /images/ { alias %PREFIX%/data/imgs/; try_files $uri $uri/ =404; }
        location /const/ { alias %PREFIX%/data/imgs/; try_files /a.png =404; }
        location ~ ^/rx/(.+)$ { alias %PREFIX%/data/imgs/$1; try_files $uri =404; }
        location ~ ^/rx2/(.+)$ { alias %PREFIX%/data/imgs/$1; try_files "" =404; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name args;
        root %PREFIX%/html;
        location / { try_files /cache$uri$is_args$args.html $uri /f.html; }
        location = /f.html { return 200 "f uri=$uri args=$args\n"; }
        location /keep/ { try_files $uri /f.html?kept=$args; }
        # "if is evil": the if block is a location of its own, without try_files
        location /evil/ { if ($arg_x) { add_header X-Uri if-matched; } try_files $uri /a.txt; }
    }
    server {
        listen 127.0.0.1:%PORT%;
        server_name srvlevel;
        root %PREFIX%/html;
        try_files $uri /a.txt;
        location /x/ { }
    }
"""

FILES = {
    "html/index.php": "<?php front();\n",
    "html/style.css": "body{}\n",
    "html/blog/index.html": "blog\n",
    "html/a.txt": "a text\n",
    "html/dir3/sub/x.txt": "x\n",
    "html/cache/page?x=1.html": "cached page\n",
    "html/loop/dir/x.txt": "x\n",
    "html/x/y.txt": "y\n",
    "spa/index.html": "<app></app>\n",
    "spa/assets/app.js": "run();\n",
    "data/imgs/a.png": "PNG\n",
    "data/imgs/index.html": "imgs index\n",
    "data/imgs/sub/b.png": "PNG b\n",
}

# (host, uri) pairs sent to both servers
REQUESTS = [
    ("wp", "/style.css"), ("wp", "/blog"), ("wp", "/blog/"), ("wp", "/hello-world/"),
    ("wp", "/hello-world/?p=1&x=y"), ("wp", "/nope?s=a+b"), ("wp", "/style.css/"), ("wp", "/"),
    ("laravel", "/users/42?page=2"), ("laravel", "/users"), ("laravel", "/style.css?v=1"),
    ("spa", "/"), ("spa", "/app/route?x=1"), ("spa", "/assets/app.js"), ("spa", "/assets/missing.js"),
    ("code", "/a.txt"), ("code", "/missing"), ("code", "/blog/"), ("code", "/dir3/sub/"),
    ("code", "/dir3/none"), ("code", "/nc/x"), ("code", "/teapot/x"),
    ("named", "/a.txt"), ("named", "/missing?q=1"), ("named", "/nope/x"),
    ("dirs", "/a.txt"), ("dirs", "/blog"), ("dirs", "/blog/"), ("dirs", "/none"), ("dirs", "/loop/dir"),
    ("alias", "/images/a.png"), ("alias", "/images/missing.png"), ("alias", "/images/"),
    ("alias", "/images/sub"), ("alias", "/images/sub/b.png"), ("alias", "/const/zzz"),
    ("alias", "/rx/a.png"), ("alias", "/rx2/a.png"),
    ("args", "/page?x=1"), ("args", "/a.txt?z=9"), ("args", "/none?y=2"), ("args", "/keep/none?k=3"),
    ("args", "/evil/none"), ("args", "/evil/none?x=1"),
    ("srvlevel", "/missing"), ("srvlevel", "/x/y.txt"), ("srvlevel", "/x/missing"),
]

_FOOTER = re.compile(rb"<hr><center>[^<]*</center>")


class Pair:
    def __init__(self, nginx: Server, portico: Server, ports: dict[str, int]) -> None:
        self.nginx = nginx
        self.portico = portico
        self.ports = ports


def _start(kind: str) -> tuple[Server, int]:
    port = free_port()
    s = Server(base_conf(SERVERS.replace("%PORT%", str(port))), kind, dict(FILES))
    # nginx's workers run as "nobody": everything readable
    for dirpath, dirnames, filenames in os.walk(s.prefix):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    s.start()
    return s, port


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    started: list[Server] = []
    try:
        n, np_ = _start("nginx")
        started.append(n)
        p, pp = _start("portico")
        started.append(p)
        yield Pair(n, p, {"nginx": np_, "portico": pp})
    finally:
        for s in started:
            s.cleanup()


def get(port: int, host: str, uri: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    data = raw_request(port, f"{method} {uri} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    status, headers, body, _ = parse_response(data)
    return status, headers, body


def _view(port: int, host: str, uri: str) -> dict[str, object]:
    status, headers, body = get(port, host, uri)
    loc = headers.get("location")
    return {
        "status": status,
        "location": loc.replace(f":{port}", ":PORT") if loc else None,
        "content-type": headers.get("content-type"),
        "x-uri": headers.get("x-uri"),
        "body": _FOOTER.sub(b"<hr><center>X</center>", body),
    }


@pytest.mark.parametrize("host,uri", REQUESTS, ids=[f"{h}:{u}" for h, u in REQUESTS])
def test_same_as_nginx(pair: Pair, host: str, uri: str) -> None:
    want = _view(pair.ports["nginx"], host, uri)
    got = _view(pair.ports["portico"], host, uri)
    assert got == want


# --- Portico's own answers, stated explicitly (they also hold for nginx above) ---------

def test_wordpress_fallback_carries_its_own_args(pair: Pair) -> None:
    status, _, body = get(pair.ports["portico"], "wp", "/hello-world/?p=1&x=y")
    assert status == 200 and body == b"php uri=/index.php args=p=1&x=y\n"


def test_fallback_without_query_empties_the_args(pair: Pair) -> None:
    status, _, body = get(pair.ports["portico"], "args", "/none?y=2")
    assert status == 200 and body == b"f uri=/f.html args=\n"


def test_found_candidate_keeps_args_and_changes_uri(pair: Pair) -> None:
    status, headers, body = get(pair.ports["portico"], "spa", "/assets/app.js?v=3")
    assert status == 200 and body == b"run();\n"
    assert headers["x-uri"] == "/assets/app.js"
    status, headers, body = get(pair.ports["portico"], "spa", "/deep/link?v=3")
    assert status == 200 and body == b"<app></app>\n" and headers["x-uri"] == "/index.html"


def test_directory_candidate_redirects_then_serves_index(pair: Pair) -> None:
    status, headers, _ = get(pair.ports["portico"], "wp", "/blog")
    assert status == 301 and headers["location"].endswith("/blog/")
    status, _, body = get(pair.ports["portico"], "wp", "/blog/")
    assert status == 200 and body == b"blog\n"


def test_missing_named_location_is_500_and_logged(pair: Pair) -> None:
    status, _, _ = get(pair.ports["portico"], "named", "/nope/x")
    assert status == 500
    assert 'could not find named location "@missing"' in pair.portico.log()


def test_fallback_loop_ends_in_500(pair: Pair) -> None:
    status, _, _ = get(pair.ports["portico"], "dirs", "/loop/dir")
    assert status == 500
    assert "rewrite or internal redirection cycle" in pair.portico.log()


def test_server_level_try_files_is_not_inherited(pair: Pair) -> None:
    status, _, body = get(pair.ports["portico"], "srvlevel", "/missing")
    assert status == 200 and body == b"a text\n"
    status, _, _ = get(pair.ports["portico"], "srvlevel", "/x/missing")
    assert status == 404


def test_alias_in_regex_location_appends_candidate(pair: Pair) -> None:
    # nginx's well-known trap: $uri is appended to the whole alias path
    assert get(pair.ports["portico"], "alias", "/rx/a.png")[0] == 404
    assert get(pair.ports["portico"], "alias", "/rx2/a.png")[:3:2] == (200, b"PNG\n")


def test_unreadable_parent_logs_crit(server) -> None:
    """stat() failing with EACCES is logged at crit and the next candidate
    is tried (workers run as "nobody" when started as root, like nginx's)."""
    port = free_port()
    s = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root %PREFIX%/html;
        location / {{ try_files /locked/f.txt /ok.txt; }}
        location = /ok.txt {{ }}
    }}"""), files={"html/locked/f.txt": "no\n", "html/ok.txt": "ok\n"}, start=False)
    os.chmod(s.prefix, 0o755)
    os.chmod(s.path("html"), 0o755)
    os.chmod(s.path("html/ok.txt"), 0o644)
    os.chmod(s.path("html/locked"), 0)
    try:
        s.start()
        assert get(port, "x", "/")[::2] == (200, b"ok\n")
        assert '[crit]' in s.log() and f'stat() "{s.path("html/locked/f.txt")}" failed (13: Permission denied)' in s.log()
    finally:
        os.chmod(s.path("html/locked"), 0o755)


def test_no_phase_handler_without_try_files(server) -> None:
    """Requests of a configuration without try_files pay nothing for it."""
    port = free_port()
    s = server(base_conf(f"""
    server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}"""))
    assert get(port, "x", "/")[0] == 200
    # The engine is built in the worker; check through a fresh parse instead.
    from portico.core.cycle import Cycle
    c = Cycle(s.conf_path, s.prefix)
    c.load()
    assert all(h.__name__ != "try_files_handler" for h in c.http.phases.get("precontent", []))
