"""allow/deny (ngx_http_access_module), satisfy, and the real client address
from a trusted header (ngx_http_realip_module), on a live portico and, for
the differential tests, on Debian's nginx with the same configuration.

Only loopback is used: clients bind to 127.0.0.x source addresses to be
different clients; every other address (IPv6, IPv4-mapped, ports) arrives
through X-Forwarded-For / X-Real-IP with realip.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
from typing import Any, Callable

import pytest

from harness import Server, base_conf, free_port, have_nginx, parse_response, wait_for

needs_nginx = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")

FILES = {"html/f.txt": "file\n", "html/a.txt": "a\n", "html/b.txt": "b\n", "html/c.txt": "c\n",
         "html/d.txt": "d\n", "html/e.txt": "e\n", "html/g.txt": "g\n", "html/h.txt": "h\n",
         "html/u.txt": "u\n", "html/x.txt": "x\n", "html/y.txt": "y\n", "html/z.txt": "z\n",
         "html/ok.txt": "ok\n"}

Result = tuple[int, dict[str, str], bytes]


def request(port: int, path: str, headers: str = "", src: str = "127.0.0.1", host: str = "localhost",
            dst: str = "127.0.0.1") -> Result:
    """One HTTP/1.0 request from source address ``src``."""
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.bind((src, 0))
        s.connect((dst, port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n{headers}\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    status, hdrs, body, _ = parse_response(data)
    return status, hdrs, body


def unix_request(path: str, uri: str, headers: str = "") -> Result:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(f"GET {uri} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    status, hdrs, body, _ = parse_response(data)
    return status, hdrs, body


def both(server: Callable[..., Server], make: Callable[[int], str],
         run: Callable[[int], list[Any]]) -> tuple[list[Any], list[Any], dict[str, Server]]:
    """Run ``run(port)`` against portico and nginx, each with ``make(port)``."""
    out: dict[str, list[Any]] = {}
    servers: dict[str, Server] = {}
    for kind in ("portico", "nginx"):
        port = free_port()
        servers[kind] = server(make(port), kind=kind, files=FILES)
        out[kind] = run(port)
    return out["portico"], out["nginx"], servers


def status_body(results: list[Result]) -> list[tuple[int, bytes]]:
    """(status, body) with the server's name in error pages made neutral."""
    return [(st, re.sub(rb"<hr><center>[^<]*</center>", b"<hr><center>SERVER</center>", body))
            for st, _, body in results]


_ERR = re.compile(r"\[error\] \d+#\d+: \*\d+ (.*)$", re.M)


def error_lines(s: Server, needle: str) -> list[str]:
    """Messages of [error] lines containing ``needle`` (time, pid and
    connection number stripped), waiting briefly for them to be written."""
    wait_for(lambda: needle in s.log(), timeout=3)
    return [m for m in _ERR.findall(s.log()) if needle in m]


# --- realip: the address walk, compared with nginx -------------------------------------

REALIP_SERVERS = """
    server {{
        listen 127.0.0.1:{port};
        server_name rec;
        set_real_ip_from 127.0.0.1;
        set_real_ip_from 10.0.0.0/8;
        set_real_ip_from 2001:db8::/32;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name norec;
        set_real_ip_from 127.0.0.1;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name xreal;
        set_real_ip_from 127.0.0.0/24;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name custom;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Client;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name lowxff;
        set_real_ip_from 127.0.0.1;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header x-forwarded-for;
        real_ip_recursive on;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name untrusted;
        set_real_ip_from 10.0.0.0/8;
        real_ip_header X-Forwarded-For;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr\\n"; }}
    }}
"""

XFF = "X-Forwarded-For"
REALIP_CASES = [
    ("rec", f"{XFF}: 1.2.3.4\r\n"),
    ("rec", f"{XFF}: 1.2.3.4, 10.1.1.1\r\n"),
    ("rec", f"{XFF}: 9.9.9.9, 1.2.3.4, 10.1.1.1, 10.2.2.2\r\n"),
    ("rec", f"{XFF}: 10.3.3.3, 10.1.1.1\r\n"),  # all trusted: the left-most
    ("rec", f"{XFF}: junk, 10.1.1.1\r\n"),  # stops on junk: the last good one
    ("rec", f"{XFF}: 10.1.1.1, junk\r\n"),  # the right-most is junk: unchanged
    ("rec", f"{XFF}: 5.5.5.5:8080, 10.1.1.1\r\n"),  # a port becomes $remote_port
    ("rec", f"{XFF}: [2001:db8::5]:443\r\n"),
    ("rec", f"{XFF}: 2001:db9::1, 2001:db8::5\r\n"),
    ("rec", f"{XFF}: 1.1.1.1, ::ffff:10.0.0.9\r\n"),  # mapped: trusted by 10/8
    ("rec", f"{XFF}: 0:0:0:0:0:ffff:7f00:1\r\n"),
    ("rec", f"{XFF}: 2001:0DB8:0000:0000:0000:0000:0000:0001\r\n"),
    ("rec", f"{XFF}: 001.002.003.004\r\n"),
    # nginx's own IPv6 text (ngx_inet6_ntop), not inet_ntop's
    ("rec", f"{XFF}: 0:0:0:0:0:0:102:304\r\n"),
    ("rec", f"{XFF}: 0:0:0:0:0:0:0:2\r\n"),
    ("rec", f"{XFF}: 0:0:0:0:0:0:1:1\r\n"),
    ("rec", f"{XFF}: 1:0:0:2:0:0:0:3\r\n"),
    ("rec", f"{XFF}: 0:0:0:0:0:1:0:0\r\n"),
    ("rec", f"{XFF}: 1:0:2:0:3:0:4:0\r\n"),
    ("rec", f"{XFF}: 1:2:3:4:5:6:7.8.9.10\r\n"),
    ("rec", f"{XFF}: 1..2.3\r\n"),
    ("rec", f"{XFF}: fe80::1%eth0\r\n"),
    ("rec", f"{XFF}: [::1]\r\n"),
    ("rec", f"{XFF}: [::1]:\r\n"),
    ("rec", f"{XFF}: 1.2.3.4:65535\r\n"),
    ("rec", f"{XFF}: 1.2.3.4:65536\r\n"),
    ("rec", f"{XFF}: 1.2.3.4:080\r\n"),
    ("rec", f"{XFF}: 1.2.3.4,,, \r\n"),
    ("rec", f"{XFF}: 1.2.3.4 10.1.1.1\r\n"),  # a space separates too
    ("rec", f"{XFF}: 255.255.255.255\r\n"),  # INADDR_NONE: refused
    ("rec", f"{XFF}: 1.2.3.4:0\r\n"),
    ("rec", f"{XFF}: \r\n"),
    ("rec", f"{XFF}: 7.7.7.7\r\n{XFF}: 10.1.1.1\r\n"),  # two lines: walked from the last
    ("rec", f"{XFF}: 7.7.7.7, 10.5.5.5\r\n{XFF}: 10.1.1.1, 10.2.2.2\r\n"),
    ("rec", f"{XFF}: 10.9.9.9\r\n{XFF}: junk\r\n"),
    ("rec", ""),
    ("norec", f"{XFF}: 9.9.9.9, 1.2.3.4, 10.1.1.1\r\n"),  # the right-most only
    ("norec", f"{XFF}: 7.7.7.7\r\n{XFF}: 8.8.8.8\r\n"),  # the last line only
    ("norec", f"{XFF}: 8.8.8.8:99\r\n"),
    ("xreal", "X-Real-IP: 6.6.6.6\r\n"),
    ("xreal", "X-Real-IP: 6.6.6.6, 7.7.7.7\r\n"),  # X-Real-IP is walked like a list too
    ("xreal", "X-Real-IP: 6.6.6.6\r\nX-Real-IP: 7.7.7.7\r\n"),  # the first line
    ("xreal", f"{XFF}: 6.6.6.6\r\n"),  # default header is X-Real-IP
    ("custom", "x-client: 4.4.4.4\r\n"),
    ("custom", "X-Client: 4.4.4.4\r\nX-Client: 5.5.5.5\r\n"),
    ("lowxff", f"{XFF}: 7.7.7.7\r\n{XFF}: 10.1.1.1, 8.8.8.8\r\n"),  # a custom name: first line only
    ("untrusted", f"{XFF}: 1.2.3.4\r\n"),
]


@needs_nginx
def test_realip_address_walk_matches_nginx(server):
    def run(port: int) -> list[Result]:
        return [request(port, "/", h, host=host) for host, h in REALIP_CASES]
    p, n, _ = both(server, lambda port: base_conf(REALIP_SERVERS.format(port=port)), run)

    def norm(results: list[Result]) -> list[tuple[int, bytes]]:
        # an address left alone keeps the connection's own (random) port
        return [(st, re.sub(rb"^127\.0\.0\.1\|\d+\|", b"127.0.0.1|PORT|", body))
                for st, body in status_body(results)]
    assert norm(p) == norm(n)
    # and the walk did what the cases say, not merely the same thing twice
    bodies = [b.decode() for _, _, b in p]
    assert bodies[0] == "1.2.3.4||127.0.0.1\n"
    assert bodies[2] == "1.2.3.4||127.0.0.1\n"
    assert bodies[6] == "5.5.5.5|8080|127.0.0.1\n"
    assert bodies[7] == "2001:db8::5|443|127.0.0.1\n"
    assert bodies[13] == "::1.2.3.4||127.0.0.1\n"
    assert bodies[-11] == "10.1.1.1||127.0.0.1\n"


def test_realip_remote_port_is_the_original(server):
    port = free_port()
    server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        location / {{ return 200 "$remote_addr|$remote_port|$realip_remote_addr|$realip_remote_port"; }}
    }}"""))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        cport = s.getsockname()[1]
        s.sendall(b"GET / HTTP/1.0\r\nX-Real-IP: 3.3.3.3:77\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    assert parse_response(data)[2] == f"3.3.3.3|77|127.0.0.1|{cport}".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        cport = s.getsockname()[1]
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    # not replaced: both pairs are the connection's own
    assert parse_response(data)[2] == f"127.0.0.1|{cport}|127.0.0.1|{cport}".encode()


# --- realip: which phase, which level ----------------------------------------------------

PHASES_CONF = """
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        real_ip_header X-Forwarded-For;
        # location level only: PREACCESS, after the rewrite phase's return
        location = /x.txt {{
            set_real_ip_from 127.0.0.1;
            add_header X-Addr "$remote_addr $realip_remote_addr";
        }}
        location = /ret {{
            set_real_ip_from 127.0.0.1;
            return 200 "$remote_addr $realip_remote_addr";
        }}
        # realip in PREACCESS comes before the access check
        location = /y.txt {{
            set_real_ip_from 127.0.0.1;
            deny 8.8.8.8;
        }}
        # applied once per request: the redirect target's own realip conf is not used
        location = /first {{
            set_real_ip_from 127.0.0.1;
            real_ip_header X-Real-IP;
            error_page 404 = /second;
        }}
        location = /second {{
            set_real_ip_from 0.0.0.0/0;
            real_ip_recursive on;
            return 200 "$remote_addr $realip_remote_addr";
        }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name srv;
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        # server level: POST_READ, so even the rewrite phase sees it
        location = /ret {{ return 200 "$remote_addr $realip_remote_addr"; }}
        # with no X-Forwarded-For POST_READ leaves the address; PREACCESS then
        # uses the location's conf: its own list replaces the server's ...
        location = /z.txt {{
            root html;
            set_real_ip_from 10.0.0.0/8;
            real_ip_header X-Real-IP;
            add_header X-Addr $remote_addr;
        }}
        # ... while a location without one inherits it
        location = /g.txt {{ root html; real_ip_header X-Real-IP; add_header X-Addr $remote_addr; }}
    }}
"""

PHASE_CASES = [
    ("localhost", "/x.txt", f"{XFF}: 8.8.8.8\r\n"),
    ("localhost", "/ret", f"{XFF}: 8.8.8.8\r\n"),
    ("localhost", "/y.txt", f"{XFF}: 8.8.8.8\r\n"),
    ("localhost", "/y.txt", f"{XFF}: 8.8.8.9\r\n"),
    ("localhost", "/first", f"X-Real-IP: 9.9.9.9\r\n{XFF}: 6.6.6.6\r\n"),
    ("srv", "/ret", f"{XFF}: 8.8.8.8\r\n"),
    ("srv", "/z.txt", f"{XFF}: 8.8.8.8\r\n"),
    ("srv", "/z.txt", "X-Real-IP: 8.8.8.8\r\n"),
    ("srv", "/g.txt", "X-Real-IP: 8.8.8.8\r\n"),
]


@needs_nginx
def test_realip_phases_and_levels_match_nginx(server):
    def run(port: int) -> list[Result]:
        return [request(port, uri, h, host=host) for host, uri, h in PHASE_CASES]
    p, n, _ = both(server, lambda port: base_conf(PHASES_CONF.format(port=port)), run)
    assert status_body(p) == status_body(n)
    assert [h.get("x-addr") for _, h, _ in p] == [h.get("x-addr") for _, h, _ in n]
    assert p[0][1]["x-addr"] == "8.8.8.8 127.0.0.1"
    assert p[1][2] == b"127.0.0.1 127.0.0.1"  # return ran before PREACCESS
    assert [p[2][0], p[3][0]] == [403, 200]
    assert p[4][2] == b"9.9.9.9 127.0.0.1"
    assert p[5][2] == b"8.8.8.8 127.0.0.1"
    assert p[6][1]["x-addr"] == "8.8.8.8"  # POST_READ replaced it: PREACCESS does nothing more
    assert p[7][1]["x-addr"] == "127.0.0.1"
    assert p[8][1]["x-addr"] == "8.8.8.8"


def test_realip_address_in_access_log_and_error_log(server):
    port = free_port()
    s = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        set_real_ip_from 127.0.0.1;
        location = /x.txt {{ deny 2001:db8::7; }}
    }}""", http_extra='log_format ra "$remote_addr $realip_remote_addr $status"; '
                      "access_log logs/ra.log ra;"), files=FILES)
    assert request(port, "/x.txt", "X-Real-IP: 2001:db8::7\r\n")[0] == 403
    assert request(port, "/x.txt")[0] == 200
    assert wait_for(lambda: s.log("ra.log").count("\n") >= 2, timeout=3)
    assert s.log("ra.log").splitlines()[:2] == ["2001:db8::7 127.0.0.1 403", "127.0.0.1 127.0.0.1 200"]
    lines = error_lines(s, "access forbidden by rule")
    assert len(lines) == 1 and "client: 2001:db8::7," in lines[0]


def test_realip_restored_for_next_request_on_keepalive(server):
    port = free_port()
    server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        location / {{ return 200 "$remote_addr;"; }}
    }}"""))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        # three pipelined requests: replaced, original, replaced again
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1.1.1.1\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 2.2.2.2\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    bodies = []
    while data:
        _, _, body, data = parse_response(data)
        bodies.append(body)
    assert bodies == [b"1.1.1.1;", b"127.0.0.1;", b"2.2.2.2;"]


@needs_nginx
def test_realip_hostname_and_unix_listener_match_nginx(server):
    sock_dir = tempfile.mkdtemp(prefix="realip-")
    os.chmod(sock_dir, 0o777)

    def make(port: int) -> str:
        return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        listen unix:{sock_dir}/{port}.sock;
        server_name localhost;
        set_real_ip_from localhost;
        set_real_ip_from unix:;
        location / {{ return 200 "$remote_addr|$realip_remote_addr"; }}
    }}""")

    def run(port: int) -> list[Result]:
        return [request(port, "/", "X-Real-IP: 4.4.4.4\r\n"),
                request(port, "/", "X-Real-IP: 4.4.4.4\r\n", src="127.0.0.2"),
                unix_request(f"{sock_dir}/{port}.sock", "/", "X-Real-IP: 5.5.5.5\r\n"),
                unix_request(f"{sock_dir}/{port}.sock", "/")]
    p, n, _ = both(server, make, run)
    assert status_body(p) == status_body(n)
    assert [b for _, _, b in p] == [b"4.4.4.4|127.0.0.1", b"127.0.0.2|127.0.0.2",
                                    b"5.5.5.5|unix:", b"unix:|unix:"]


# --- access: rule order, families, inheritance, compared with nginx -----------------------

ACCESS_CONF = """
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        deny 127.0.0.3;
        location = /a.txt {{ allow 127.0.0.2; deny 127.0.0.0/24; }}
        location = /b.txt {{ deny 127.0.0.2; allow all; }}
        location = /c.txt {{ allow 127.0.0.0/31; }}
        location = /d.txt {{ deny all; }}
        location = /e.txt {{ allow ::1; deny all; }}
        location = /f.txt {{ deny ::/0; }}
        location = /g.txt {{ allow 127.0.0.4; }}
        location = /h.txt {{ }}
        location = /u.txt {{ deny unix:; }}
        location = /x.txt {{ allow 127.0.0.5/8; deny all; }}
        location /nested/ {{
            deny 127.0.0.4;
            location = /nested/ok.txt {{ alias html/ok.txt; }}
            location = /nested/own.txt {{ alias html/ok.txt; allow all; }}
        }}
    }}
"""

ACCESS_URIS = ["/a.txt", "/b.txt", "/c.txt", "/d.txt", "/e.txt", "/f.txt", "/g.txt", "/h.txt",
               "/u.txt", "/x.txt", "/nested/ok.txt", "/nested/own.txt"]
SOURCES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


@needs_nginx
def test_access_rules_match_nginx(server):
    def run(port: int) -> list[Result]:
        return [request(port, uri, src=src) for uri in ACCESS_URIS for src in SOURCES]
    p, n, servers = both(server, lambda port: base_conf(ACCESS_CONF.format(port=port)), run)
    assert status_body(p) == status_body(n)
    got = {(uri, src): st for (uri, src), (st, _, _) in
           zip([(u, s) for u in ACCESS_URIS for s in SOURCES], p)}
    assert got[("/a.txt", "127.0.0.2")] == 200 and got[("/a.txt", "127.0.0.1")] == 403
    assert got[("/b.txt", "127.0.0.2")] == 403 and got[("/b.txt", "127.0.0.5")] == 200
    assert got[("/c.txt", "127.0.0.5")] == 200  # no rule matched: declined, not denied
    assert got[("/f.txt", "127.0.0.1")] == 200  # only IPv6 rules: an IPv4 client passes
    assert got[("/g.txt", "127.0.0.3")] == 200  # own rules: the server's deny is not merged
    assert got[("/h.txt", "127.0.0.3")] == 403  # no rules: inherited
    assert got[("/nested/ok.txt", "127.0.0.4")] == 403
    assert got[("/nested/own.txt", "127.0.0.4")] == 200
    # the deny's error-log line, as nginx writes it
    want = 'access forbidden by rule, client: 127.0.0.1, server: localhost, request: "GET /d.txt HTTP/1.0", host: "localhost"'
    assert want in error_lines(servers["portico"], "GET /d.txt")
    assert error_lines(servers["portico"], "access forbidden") == error_lines(servers["nginx"], "access forbidden")


REALIP_ACCESS_CONF = """
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        set_real_ip_from 127.0.0.1;
        location = /a.txt {{ allow 10.0.0.0/8; deny all; }}
        location = /b.txt {{ deny ::ffff:10.1.2.3; }}
        location = /c.txt {{ deny ::ffff:10.1.2.3; allow 192.0.2.1; }}
        location = /d.txt {{ allow 2001:db8::/32; deny all; }}
        location = /e.txt {{ deny 2001:db8:0:0:0:0:0:1/128; allow 2001:db8::/126; deny ::/0; }}
    }}
"""

REALIP_ACCESS_CASES = [
    ("/a.txt", "10.9.9.9"), ("/a.txt", "11.1.1.1"), ("/a.txt", "::ffff:10.1.2.3"),
    ("/a.txt", "::ffff:11.1.2.3"), ("/a.txt", "2001:db8::1"),
    ("/b.txt", "::ffff:10.1.2.3"), ("/b.txt", "10.1.2.3"),
    ("/c.txt", "::ffff:10.1.2.3"),
    ("/d.txt", "2001:db8::99"), ("/d.txt", "2001:db9::1"),
    ("/e.txt", "2001:db8::1"), ("/e.txt", "2001:db8::2"), ("/e.txt", "2001:db8::4"), ("/e.txt", "1.2.3.4"),
]


@needs_nginx
def test_access_ipv6_and_mapped_through_realip_match_nginx(server):
    def run(port: int) -> list[Result]:
        return [request(port, uri, f"X-Real-IP: {addr}\r\n") for uri, addr in REALIP_ACCESS_CASES]
    p, n, _ = both(server, lambda port: base_conf(REALIP_ACCESS_CONF.format(port=port)), run)
    assert status_body(p) == status_body(n)
    assert [st for st, _, _ in p] == [200, 403, 200, 403, 403, 403, 200, 200, 200, 403, 403, 200, 403, 200]


def test_access_on_unix_listener(server):
    sock = os.path.join(tempfile.mkdtemp(prefix="access-"), "s.sock")
    server(base_conf(f"""
    server {{
        listen unix:{sock};
        root html;
        location = /a.txt {{ deny unix:; }}
        location = /b.txt {{ deny 127.0.0.1; }}
        location = /c.txt {{ allow unix:; deny all; }}
        location = /d.txt {{ deny all; }}
    }}"""), files=FILES)
    assert [unix_request(sock, u)[0] for u in ("/a.txt", "/b.txt", "/c.txt", "/d.txt")] == [403, 200, 200, 403]


def test_access_on_ipv6_listener(server):
    port = free_port()
    server(base_conf(f"""
    server {{
        listen [::1]:{port};
        root html;
        location = /a.txt {{ deny ::1; }}
        location = /b.txt {{ allow ::1; deny all; }}
        location = /c.txt {{ deny 127.0.0.1; }}
    }}"""), files=FILES)
    got = [request(port, u, src="::1", dst="::1")[0] for u in ("/a.txt", "/b.txt", "/c.txt")]
    assert got == [403, 200, 200]


# --- satisfy ------------------------------------------------------------------------------

SATISFY_CONF = """
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        location = /a.txt {{ satisfy any; deny all; }}
        location = /b.txt {{ satisfy any; allow 127.0.0.2; deny all; }}
        location = /c.txt {{ satisfy any; allow 10.0.0.0/8; }}
        location = /d.txt {{ satisfy all; allow 127.0.0.2; deny all; }}
        satisfy any;
        location = /e.txt {{ deny 127.0.0.1; }}
        location = /g.txt {{ error_page 404 = /d.txt; }}
        location = /h.txt {{ error_page 403 = /ok.txt; deny all; }}
    }}
"""

SATISFY_CASES = [("/a.txt", "127.0.0.1"), ("/b.txt", "127.0.0.1"), ("/b.txt", "127.0.0.2"),
                 ("/c.txt", "127.0.0.1"), ("/d.txt", "127.0.0.1"), ("/d.txt", "127.0.0.2"),
                 ("/e.txt", "127.0.0.1"), ("/e.txt", "127.0.0.2"), ("/g.txt", "127.0.0.1"),
                 ("/h.txt", "127.0.0.1")]


@needs_nginx
def test_satisfy_matches_nginx(server):
    files = dict(FILES)
    del files["html/g.txt"]  # /g.txt is missing: its 404 goes to /d.txt

    def run(port: int) -> list[Result]:
        return [request(port, uri, src=src) for uri, src in SATISFY_CASES]
    out: dict[str, list[Result]] = {}
    srvs: dict[str, Server] = {}
    for kind in ("portico", "nginx"):
        port = free_port()
        srvs[kind] = server(base_conf(SATISFY_CONF.format(port=port)), kind=kind, files=files)
        out[kind] = run(port)
    assert status_body(out["portico"]) == status_body(out["nginx"])
    assert [st for st, _, _ in out["portico"]] == [403, 403, 200, 200, 403, 200, 403, 200, 403, 200]
    # satisfy any logs the denial once, from the post-access phase
    lines = error_lines(srvs["portico"], "GET /a.txt")
    assert lines == [m for m in error_lines(srvs["nginx"], "GET /a.txt")]
    assert len(lines) == 1 and lines[0].startswith("access forbidden by rule, client: 127.0.0.1,")


# --- configuration messages ----------------------------------------------------------------

_WARN = re.compile(r"\[warn\] (?:\d+#\d+: )?(.*)$", re.M)


@needs_nginx
@pytest.mark.parametrize("directive", ["allow 10.0.0.1/8", "deny fe80::1/64", "set_real_ip_from 10.1.1.1/8",
                                       "set_real_ip_from 001.2.3.4/08"])
def test_low_address_bits_warning_matches_nginx(server, directive):
    conf = base_conf(f"""
    server {{
        listen 127.0.0.1:{free_port()};
        location / {{
            {directive};
        }}
    }}""")
    warns = {}
    for kind in ("portico", "nginx"):
        s = server(conf, kind=kind, start=False)
        res = s.run("-t")
        assert res.returncode == 0, res.stderr
        warns[kind] = [w.replace(s.prefix, "DIR") for w in _WARN.findall(res.stderr)]
    value = directive.split()[1]
    assert warns["portico"] == warns["nginx"]
    assert len(warns["portico"]) == 1
    assert warns["portico"][0].startswith(f"low address bits of {value} are meaningless in DIR/conf/nginx.conf:")


def test_proxy_protocol_header_warns_and_keeps_address(server):
    port = free_port()
    conf = base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        real_ip_header proxy_protocol;
        location / {{ return 200 "$remote_addr"; }}
    }}""")
    s = server(conf, start=False)
    res = s.run("-t")
    assert res.returncode == 0
    assert "does not read the PROXY protocol yet" in res.stderr
    s.start()
    assert request(port, "/", "X-Real-IP: 1.2.3.4\r\n")[2] == b"127.0.0.1"


def test_handlers_registered_only_when_configured(server, tmp_path):
    """Without allow/deny or set_real_ip_from no phase handler is added (the
    realip variables are still defined: they always are, as in nginx)."""
    from portico.core.cycle import Cycle
    from portico.http.modules.access import access_handler
    from portico.http.modules.realip import realip_handler

    def phases(body: str) -> list[Any]:
        path = tmp_path / "nginx.conf"
        (tmp_path / "logs").mkdir(exist_ok=True)
        path.write_text("events {}\nhttp {\nserver {\nlisten 127.0.0.1:8080;\n" + body + "\n}\n}\n")
        c = Cycle(str(path), str(tmp_path))
        c.load()
        try:
            return [h for hs in c.http.phases.values() for h in hs] + list(c.http.log_handlers)
        finally:
            c.close()

    plain = phases('location / { return 200 "$realip_remote_addr"; }')
    assert access_handler not in plain and realip_handler not in plain
    both_used = phases("location / { deny all; }\nlocation /x { set_real_ip_from 10.0.0.0/8; }")
    assert access_handler in both_used and realip_handler in both_used
    port = free_port()
    server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "$realip_remote_addr $remote_addr"; }}
    }}"""))
    st, _, body = request(port, "/", "X-Real-IP: 1.2.3.4\r\n", src="127.0.0.3")
    assert (st, body) == (200, b"127.0.0.3 127.0.0.3")


@needs_nginx
def test_binary_remote_addr_follows_realip(server):
    def make(port: int) -> str:
        return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        location / {{ return 200 "[$binary_remote_addr]"; }}
    }}""")

    def run(port: int) -> list[Result]:
        return [request(port, "/", "X-Real-IP: 2001:db8::1\r\n"), request(port, "/", "X-Real-IP: 1.2.3.4\r\n")]
    p, n, _ = both(server, make, run)
    assert n[0][2] == b"[" + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + b"]"
    assert status_body(p) == status_body(n)


@needs_nginx
def test_satisfy_any_denies_after_internal_redirect(server):
    files = {"html/b.txt": "secret\n"}

    def make(port: int) -> str:
        return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root html;
        satisfy any;
        location = /a.txt {{ allow all; error_page 404 = /b.txt; }}
        location = /b.txt {{ deny all; }}
    }}""")
    out = {}
    for kind in ("portico", "nginx"):
        port = free_port()
        server(make(port), kind=kind, files=files)
        out[kind] = request(port, "/a.txt")[0]
    assert out["nginx"] == 403
    assert out["portico"] == out["nginx"]
