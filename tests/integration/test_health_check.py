"""Active health checks (health_check / match) with a real portico running
2 workers: a failing server leaves rotation for every worker and comes back
after ``passes``; the check runs once per interval for the whole server;
``mandatory``; match rules; nginx Plus's log lines."""
from __future__ import annotations

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request, wait_for  # noqa: E402


def conf(port: int, upstream: str, location: str, http_extra: str = "") -> str:
    return base_conf(f"""
    {upstream}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://be;
            {location}
        }}
    }}""", http_extra=http_extra, workers=2)


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    status, _h, body, _r = parse_response(data)
    return status, body


def checks(b: Backend, path: str = "/health") -> int:
    with b.lock:
        return sum(1 for h in b.heads if h.startswith(f"GET {path} ".encode()))


def others(b: Backend, path: str = "/health") -> int:
    with b.lock:
        return sum(1 for h in b.heads if not h.startswith(f"GET {path} ".encode()))


def test_unhealthy_server_leaves_rotation_and_comes_back(server):
    a = Backend("fixed", body=b"A")
    b = Backend("fixed", body=b"B")
    try:
        port = free_port()
        s = server(conf(port, f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{a.port};
        server 127.0.0.1:{b.port};
    }}""", "health_check interval=1s fails=2 passes=2 uri=/health;"))
        assert wait_for(lambda: checks(a) >= 1 and checks(b) >= 1)
        assert {get(port)[1] for _ in range(10)} == {b"A", b"B"}
        a.status = 503
        where = f'health check "" of peer 127.0.0.1:{a.port} in upstream "be"'
        assert wait_for(lambda: f"peer is unhealthy while checking status code, {where}" in s.log(), 15)
        # every worker now sends everything to B
        assert {get(port)[1] for _ in range(30)} == {b"B"}
        log = s.log()
        assert "[warn]" in log.split(f"peer is unhealthy while checking status code, {where}")[0].rsplit("\n", 1)[-1]
        n = checks(a)
        a.status = 200
        assert wait_for(lambda: f"peer is healthy while checking status code, {where}" in s.log(), 15)
        assert checks(a) >= n + 2  # passes=2: two good checks in a row
        assert b"A" in {get(port)[1] for _ in range(20)}
        pids = set(re.findall(r"\[notice\] (\d+)#\d+: peer is healthy", s.log()))
        assert len(pids) == 1  # one transition, written once for the whole server
    finally:
        a.close()
        b.close()


def test_check_runs_once_per_interval_for_the_whole_server(server):
    a = Backend("fixed", body=b"A")
    try:
        port = free_port()
        server(conf(port, f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{a.port};
    }}""", "health_check interval=1s uri=/health;"))
        assert wait_for(lambda: checks(a) >= 1)
        n0 = checks(a)
        time.sleep(4.5)
        n = checks(a) - n0
        # once per second for the server (2 workers would make it ~9)
        assert 2 <= n <= 5, n
    finally:
        a.close()


def test_mandatory_server_gets_no_request_before_passing(server):
    a = Backend("fixed", body=b"A", status=500)
    b = Backend("fixed", body=b"B")
    try:
        port = free_port()
        s = server(conf(port, f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{a.port};
        server 127.0.0.1:{b.port};
    }}""", "health_check interval=1s uri=/health mandatory;"))
        # until a check has passed, a "checking" server gets nothing: 502
        early = {get(port) for _ in range(5)}
        assert early <= {(200, b"B")} | {r for r in early if r[0] == 502}
        hc = 'health check "" of peer 127.0.0.1:{} in upstream "be"'
        assert wait_for(lambda: f"peer is healthy while checking status code, {hc.format(b.port)}" in s.log())
        assert wait_for(lambda: f"peer is unhealthy while checking status code, {hc.format(a.port)}" in s.log())
        assert {get(port)[1] for _ in range(20)} == {b"B"}
        assert others(a) == 0
        a.status = 200
        assert wait_for(lambda: f"peer is healthy while checking status code, {hc.format(a.port)}" in s.log(), 10)
        assert b"A" in {get(port)[1] for _ in range(20)}
    finally:
        a.close()
        b.close()


def test_match_status_header_body(server):
    good = Backend("fixed", body=b"all good here", headers=[("X-Ok", "yes")])
    no_header = Backend("fixed", body=b"all good here")
    bad_body = Backend("fixed", body=b"all broken", headers=[("X-Ok", "yes")])
    try:
        port = free_port()
        s = server(conf(port, f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{good.port};
        server 127.0.0.1:{no_header.port};
        server 127.0.0.1:{bad_body.port};
    }}""", "health_check interval=1s uri=/health match=welcome;", http_extra="""
    match welcome {
        status 200-299;
        status ! 204;
        header X-Ok = yes;
        header ! X-Broken;
        body ~ "good";
        body !~ "broken";
    }"""))
        hc = 'health check "welcome" of peer 127.0.0.1:{} in upstream "be"'
        assert wait_for(lambda: hc.format(bad_body.port) in s.log() and hc.format(no_header.port) in s.log())
        log = s.log()
        assert f"peer is unhealthy while checking headers, {hc.format(no_header.port)}" in log
        assert f"peer is unhealthy while checking body, {hc.format(bad_body.port)}" in log
        assert hc.format(good.port) not in log
        assert {get(port)[1] for _ in range(20)} == {b"all good here"}
        assert others(no_header) == 0 and others(bad_body) == 0
    finally:
        for x in (good, no_header, bad_body):
            x.close()


def test_connect_failure_is_logged_as_nginx_plus(server):
    dead = free_port()
    b = Backend("fixed", body=b"B")
    try:
        port = free_port()
        s = server(conf(port, f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{dead};
        server 127.0.0.1:{b.port};
    }}""", "health_check interval=1s;"))
        where = f'health check "" of peer 127.0.0.1:{dead} in upstream "be"'
        assert wait_for(lambda: f"peer is unhealthy while connecting to upstream, {where}" in s.log())
        assert f"connect() failed (111: Connection refused) while connecting to upstream, {where}" in s.log()
        assert {get(port)[1] for _ in range(10)} == {b"B"}
        # a check request carries the upstream's name as Host
        with b.lock:
            assert any(h.startswith(b"GET / HTTP/1.0\r\n") and b"\r\nHost: be\r\n" in h for h in b.heads)
    finally:
        b.close()


def test_health_check_configuration_errors(server):
    port = free_port()
    cases = [
        ("upstream be { server 127.0.0.1:1; }", "health_check;", "",
         'health check requires upstream "be" in '),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "health_check match=nope;", "",
         'match "nope" not found'),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "health_check interval=x;", "",
         'invalid parameter "interval=x"'),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "health_check persistent;", "",
         '"persistent" requires "mandatory"'),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "health_check bogus;", "",
         'invalid parameter "bogus"'),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "", "match m { status 999; }",
         'invalid status "999"'),
        ("upstream be { zone be 64k; server 127.0.0.1:1; }", "", "match m { colour red; }",
         'unknown directive "colour"'),
    ]
    for up, loc, extra, want in cases:
        s = server(conf(port, up, loc, http_extra=extra), start=False)
        out = s.run("-t")
        assert out.returncode == 1, (want, out.stderr)
        assert "[emerg]" in out.stderr and want in out.stderr, (want, out.stderr)
    s = server(conf(port, "", "", http_extra="server { location / { health_check; } }"), start=False)
    out = s.run("-t")
    assert '"health_check" directive is not allowed here' not in out.stderr
