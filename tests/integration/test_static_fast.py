"""The static fast path (portico/http/static_fast.py).

Two things are shown:
- which locations get a plan: only those where no phase handler and no
  filter can act (loaded in-process, as ``portico -t`` would load them);
- that it answers exactly as the generic path: one portico serves the same
  tree on two ports, the second with ``disable_symlinks on`` (no plan, and
  for these regular files no other effect); the same raw requests go to
  both, and status, every header but Date, body and access-log line must
  be equal.  Requests the fast path leaves alone (conditionals, Range,
  errors, big files) are in the corpus too: they must still be right.
"""
from __future__ import annotations

import os
import socket
import time

import pytest

from harness import base_conf, free_port, loaded_cycle, parse_response, raw_request, wait_for
from portico.http.static_fast import StaticPlan

ELIGIBILITY = """
worker_processes 1; daemon off; pid logs/nginx.pid; error_log logs/error.log;
events { worker_connections 64; }
http {
    include mime.types;
    limit_req_zone $binary_remote_addr zone=z:1m rate=10r/s;
    server {
        listen 127.0.0.1:18081;
        root html;
        location /plain/ { }
        location /types/ { types { text/x-a a; } default_type text/x-b; index i.html; autoindex on; }
        location /set/ { set $x 1; }
        location /ret/ { return 204; }
        location /deny/ { deny all; }
        location /tf/ { try_files $uri =404; }
        location /hdr/ { add_header X-A b; }
        location /exp/ { expires 1h; }
        location /gz/ { gzip on; }
        location /lr/ { limit_req zone=z; }
        location /alias/ { alias html/; }
        location /varroot/ { root $document_root/x; }
        location /ofc/ { open_file_cache max=10; }
        location /rate/ { limit_rate 10k; }
        location /sub/ { sub_filter a b; }
        location /charset/ { charset utf-8; }
        location /internal/ { internal; }
        location /proxy/ { proxy_pass http://127.0.0.1:1; }
    }
}
"""

PLANNED = {"", "/plain/", "/types/"}  # "" is the server level


def test_plans_only_where_nothing_else_acts() -> None:
    with loaded_cycle(ELIGIBILITY) as cycle:
        got = {loc.name: isinstance(loc.conf.fast_plan, StaticPlan)
               for loc in cycle.http.all_locations() if loc.modifier != "if"}
    assert got == {name: name in PLANNED for name in got}, got
    assert len(got) == 19


FILES = {
    "html/a.txt": "hello, fast path\n",
    "html/UPPER.TXT": "upper\n",
    "html/noext": "no extension\n",
    "html/x.unknownext": "unknown\n",
    "html/.hidden": "dot file\n",
    "html/dir.d/file": "in a dotted dir\n",
    "html/sp ace.txt": "space\n",
    "html/empty.txt": "",
    "html/big.bin": b"\x01" * 40000,
    "html/page.html": "<p>page</p>\n",
    "html/dir/index.html": "index\n",
    "html/ka/one.txt": "one\n",
    "html/opts/f.txt": "options\n",
}

CONF = """
    log_format t '$remote_addr "$request" $status $body_bytes_sent $bytes_sent $request_length '
                 '"$http_user_agent" "$http_x_y" "$sent_http_content_type" "$sent_http_etag" '
                 '"$sent_http_last_modified" "$sent_http_content_length" "$sent_http_connection"';
    server {{
        listen 127.0.0.1:{fast};
        root html;
        access_log logs/fast.log t;
        location /ka/ {{ keepalive_requests 2; }}
        location /opts/ {{ {opts} }}
    }}
    server {{
        listen 127.0.0.1:{slow};
        root html;
        disable_symlinks on;
        access_log logs/slow.log t;
        location /ka/ {{ keepalive_requests 2; }}
        location /opts/ {{ {opts} }}
    }}"""
# every setting the fast path copies into its header, away from the defaults
OPTS = "etag off; max_ranges 0; keepalive_timeout 10s 5s; server_tokens off; types {} default_type \"\";"

H = "Host: t\r\n"
CORPUS = [
    f"GET /a.txt HTTP/1.1\r\n{H}User-Agent: ua\r\n\r\n",
    f"HEAD /a.txt HTTP/1.1\r\n{H}\r\n",
    "GET /a.txt HTTP/1.0\r\n\r\n",
    "GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    f"GET /a.txt HTTP/1.1\r\n{H}Connection: close\r\n\r\n",
    f"GET /a.txt?x=1&y HTTP/1.1\r\n{H}\r\n",
    f"GET /UPPER.TXT HTTP/1.1\r\n{H}\r\n",
    f"GET /noext HTTP/1.1\r\n{H}\r\n",
    f"GET /x.unknownext HTTP/1.1\r\n{H}\r\n",
    f"GET /.hidden HTTP/1.1\r\n{H}\r\n",
    f"GET /dir.d/file HTTP/1.1\r\n{H}\r\n",
    f"GET /sp%20ace.txt HTTP/1.1\r\n{H}\r\n",
    f"GET /empty.txt HTTP/1.1\r\n{H}\r\n",
    f"GET /page.html HTTP/1.1\r\n{H}\r\n",
    f"GET /./a.txt HTTP/1.1\r\n{H}\r\n",
    f"GET //a.txt HTTP/1.1\r\n{H}\r\n",
    f"GET /opts/f.txt HTTP/1.1\r\n{H}\r\n",
    "HEAD /opts/f.txt HTTP/1.0\r\n\r\n",
    # repeated header names: $http_* must still join them
    f"GET /a.txt HTTP/1.1\r\n{H}User-Agent: one\r\nuser-agent: two\r\nX-Y: a\r\nx-y: b\r\n\r\n",
    # left to the generic path
    f"GET /missing.txt HTTP/1.1\r\n{H}\r\n",
    f"GET /dir HTTP/1.1\r\n{H}\r\n",
    f"GET /dir/ HTTP/1.1\r\n{H}\r\n",
    f"GET /big.bin HTTP/1.1\r\n{H}\r\n",
    f"POST /a.txt HTTP/1.1\r\n{H}Content-Length: 3\r\n\r\nabc",
    f"DELETE /a.txt HTTP/1.1\r\n{H}\r\n",
    f"GET /a.txt HTTP/1.1\r\n{H}Range: bytes=0-4\r\n\r\n",
    f"GET /a.txt HTTP/1.1\r\n{H}If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT\r\n\r\n",
    f"GET /a.txt HTTP/1.1\r\n{H}If-None-Match: *\r\n\r\n",
    f"GET /a.txt HTTP/1.1\r\n{H}If-Match: \"nope\"\r\n\r\n",
]


def _responses(port: int, reqs: list[str]) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """Send ``reqs`` at once on one connection and read their responses (all
    of them, or until the server closes): (status, headers in order with
    Date left out and the port made neutral, body)."""
    heads = [r.startswith("HEAD ") for r in reqs]
    out: list[tuple[int, list[tuple[str, str]], bytes]] = []
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall("".join(reqs).encode())
        while len(out) < len(reqs):
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                lines = buf[:end].decode("latin-1").split("\r\n")
                status = int(lines[0].split()[1])
                fields = [tuple(x.split(": ", 1)) for x in lines[1:]]
                n = 0 if heads[len(out)] or status in (204, 304) else int(dict(fields).get("Content-Length", 0))
                if len(buf) >= end + 4 + n:
                    fields = [(k, v.replace(f":{port}/", ":PORT/")) for k, v in fields if k != "Date"]
                    out.append((status, fields, buf[end + 4:end + 4 + n]))
                    buf = buf[end + 4 + n:]
                    continue
            data = s.recv(65536)
            if not data:
                break
            buf += data
    return out


@pytest.fixture
def pair(server):
    fast, slow = free_port(), free_port()
    srv = server(base_conf(CONF.format(fast=fast, slow=slow, opts=OPTS)), files=FILES)
    return srv, fast, slow


def test_same_answers_as_the_generic_path(pair) -> None:
    srv, fast, slow = pair
    for req in CORPUS:
        a = _responses(fast, [req])
        b = _responses(slow, [req])
        assert a and a == b, req
    # the access-log lines match too, request for request
    def lines(name: str) -> list[str]:
        with open(srv.path(f"logs/{name}")) as f:
            return f.read().splitlines()
    assert wait_for(lambda: len(lines("fast.log")) == len(lines("slow.log")) >= len(CORPUS))
    assert lines("fast.log") == lines("slow.log")
    first = lines("fast.log")[0]
    assert '"GET /a.txt HTTP/1.1" 200 17 ' in first and '"text/plain"' in first
    joined = [x for x in lines("fast.log") if '"one, two" "a, b"' in x]
    assert len(joined) == 1
    opts = _responses(fast, [f"GET /opts/f.txt HTTP/1.1\r\n{H}\r\n"])[0][1]
    assert opts == [("Server", "portico"), ("Content-Length", "8"), ("Last-Modified", opts[2][1]),
                    ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5")]


def test_pipelined_and_keepalive_limit(pair) -> None:
    _, fast, slow = pair
    three = [f"GET /a.txt HTTP/1.1\r\n{H}\r\n", f"HEAD /page.html HTTP/1.1\r\n{H}\r\n",
             f"GET /missing HTTP/1.1\r\n{H}\r\n"]
    a = _responses(fast, three)
    assert [r[0] for r in a] == [200, 200, 404]
    assert a == _responses(slow, three)
    # keepalive_requests 2: the second answer closes, as the generic path does
    two = [f"GET /ka/one.txt HTTP/1.1\r\n{H}\r\n"] * 3
    a = _responses(fast, two)
    assert len(a) == 2 and ("Connection", "close") in a[1][1]
    assert a == _responses(slow, two)


def test_a_changed_file_is_served_fresh(pair) -> None:
    srv, fast, _ = pair
    path = srv.path("html/a.txt")

    def get() -> tuple[int, dict[str, str], bytes]:
        status, headers, body, _ = parse_response(raw_request(fast, "GET /a.txt HTTP/1.0\r\n\r\n".encode()))
        return status, headers, body
    _, h1, b1 = get()
    with open(path, "w") as f:
        f.write("a new, longer text for the same name\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    _, h2, b2 = get()
    assert b1 == b"hello, fast path\n" and b2 == b"a new, longer text for the same name\n"
    assert h2["content-length"] == str(len(b2)) and h2["etag"] != h1["etag"]
    os.unlink(path)
    status, _, _ = get()
    assert status == 404
    with socket.create_connection(("127.0.0.1", fast), timeout=2):
        pass
    assert "a.txt" in srv.log()  # the 404 was logged by the generic path


def test_kept_contents_follow_every_change(pair) -> None:
    """Contents kept between requests (static_fast._FILES, for files whose
    timestamps have settled) never outlive a change: same size and mtime
    restored, a rename over the file, a lost read permission."""
    from portico.http.static_fast import SETTLED
    srv, fast, slow = pair
    path = srv.path("html/kept.txt")
    spare = srv.path("html/spare.txt")
    old = time.time() - 3600
    for p, text in ((path, "AAAA\n"), (spare, "CCCC\n")):
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)
        os.utime(p, (old, old))
    time.sleep(SETTLED + 0.3)  # both are now old enough to be kept

    def get() -> tuple[int, bytes]:
        status, _, body, _ = parse_response(raw_request(fast, b"GET /kept.txt HTTP/1.0\r\n\r\n"))
        return status, body
    assert get() == (200, b"AAAA\n") and get() == (200, b"AAAA\n")
    # answered from the kept copy, exactly as the generic path answers
    for req in (f"GET /kept.txt HTTP/1.1\r\n{H}\r\n", f"HEAD /kept.txt HTTP/1.1\r\n{H}\r\n",
                "GET /kept.txt HTTP/1.0\r\n\r\n", f"GET /kept.txt?a=b HTTP/1.1\r\n{H}Connection: close\r\n\r\n"):
        assert _responses(fast, [req]) == _responses(slow, [req]), req
    # HEAD of a kept file: the header only, its Content-Length the file's
    data = raw_request(fast, b"HEAD /kept.txt HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 ") and b"\r\nContent-Length: 5\r\n" in data
    assert data.endswith(b"\r\n\r\n")  # and nothing after the header
    with open(path, "r+") as f:  # in place, same size, mtime put back
        f.write("BBBB\n")
    os.utime(path, (old, old))
    assert get() == (200, b"BBBB\n")
    os.rename(spare, path)  # another inode under the name
    assert get() == (200, b"CCCC\n")
    # workers run as nobody under root (and a non-root owner cannot read a
    # 0000 file either): the kept copy must not be served
    os.chmod(path, 0)
    assert get()[0] == 403
