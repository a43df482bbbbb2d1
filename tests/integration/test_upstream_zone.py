"""``zone`` in upstream{}: peer state shared by every worker (a real portico
with 2 workers), nginx's configuration errors, and the $upstream_*
variables in nginx's format across retries and internal redirects."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request, wait_for  # noqa: E402


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    status, _h, body, _r = parse_response(data)
    return status, body


def both_workers_serve(s, port: int) -> None:
    """Send requests (new connections) until both workers have served some
    (the access log's first field is $pid)."""
    for n in range(1, 400):
        assert get(port) == (200, b"B")
        if n >= 20 and n % 10 == 0:
            assert wait_for(lambda: s.log("w.log").count("\n") >= n)
            if len({line.split()[0] for line in s.log("w.log").splitlines()}) == 2:
                return
    raise AssertionError("one worker served every request")


def test_passive_failures_are_shared_by_all_workers(server):
    dead = free_port()
    b = Backend("fixed", body=b"B")
    try:
        port = free_port()
        s = server(base_conf(f"""
    log_format w "$pid $upstream_addr";
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{dead} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:{b.port};
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        access_log logs/w.log w;
        location / {{ proxy_pass http://be; }}
    }}""", workers=2))
        both_workers_serve(s, port)
        # the dead server was tried once, by one worker: the other saw the failure
        assert s.log().count("connect() failed (111: Connection refused)") == 1
        assert s.log().count("upstream server temporarily disabled") == 1
    finally:
        b.close()


def test_without_zone_each_worker_keeps_its_own_state(server):
    dead = free_port()
    b = Backend("fixed", body=b"B")
    try:
        port = free_port()
        s = server(base_conf(f"""
    log_format w "$pid $upstream_addr";
    upstream be {{
        server 127.0.0.1:{dead} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:{b.port};
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        access_log logs/w.log w;
        location / {{ proxy_pass http://be; }}
    }}""", workers=2))
        both_workers_serve(s, port)
        lines = s.log("w.log").splitlines()
        tried = {ln.split()[0] for ln in lines if f":{dead}," in ln}
        served = {ln.split()[0] for ln in lines}
        assert tried == served and len(served) == 2
    finally:
        b.close()


def test_least_conn_sees_connections_of_every_worker(server):
    slow = Backend("slow", body=b"slow", delay=1.5)
    quick = Backend("fixed", body=b"quick")
    try:
        port = free_port()
        server(base_conf(f"""
    upstream be {{
        zone be 64k;
        least_conn;
        server 127.0.0.1:{slow.port};
        server 127.0.0.1:{quick.port};
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ proxy_pass http://be; }}
    }}""", workers=2))
        import threading
        # the first pick of the server goes to the first peer (a tie)
        held = threading.Thread(target=lambda: get(port))
        held.start()
        assert wait_for(lambda: slow.count("request") == 1)
        # while it is held, every worker sees its connection in the zone
        assert {get(port)[1] for _ in range(12)} == {b"quick"}
        held.join()
        assert slow.count("request") == 1
    finally:
        slow.close()
        quick.close()


ZONE_ERRORS = [
    ("upstream be { zone be 1k; server 127.0.0.1:1; }", 'zone "be" is too small'),
    ("upstream be { zone be 1x; server 127.0.0.1:1; }", 'invalid zone size "1x"'),
    ("upstream be { zone be 64k; server 127.0.0.1:1; } upstream b2 { zone be 128k; server 127.0.0.1:2; }",
     'the size 131072 of shared memory zone "be" conflicts with already declared size 65536'),
    ("limit_req_zone $binary_remote_addr zone=be:64k rate=1r/s; upstream be { zone be 64k; server 127.0.0.1:1; }",
     'the shared memory zone "be" is already declared for a different use'),
    ("upstream be { zone nosize; server 127.0.0.1:1; }", 'zero size shared memory zone "nosize"'),
    ("zone be 64k;", '"zone" directive is not allowed here'),
    ("upstream be { zone be 64k 1 2; server 127.0.0.1:1; }", 'invalid number of arguments in "zone" directive'),
    ("upstream be { server app.test resolve; }",
     'resolving names at run time requires upstream "be" in '),
    ("upstream be { zone be 64k; server app.test resolve; }",
     'no resolver defined to resolve names at run time in upstream "be" in '),
    ("upstream be { zone be 64k; resolver 127.0.0.1 ipv4=off ipv6=off; server 127.0.0.1:1; }",
     '"ipv4" and "ipv6" cannot both be "off"'),
    ("resolver 127.0.0.1 valid=zz;", "invalid parameter: valid=zz"),
]


def test_zone_configuration_errors(server):
    port = free_port()
    for http, want in ZONE_ERRORS:
        s = server(base_conf(f"""
    {http}
    server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}"""), start=False)
        out = s.run("-t")
        assert out.returncode == 1 and want in out.stderr, (want, out.stderr)
    # several upstreams may share one zone: the second names it without a size
    s = server(base_conf(f"""
    upstream a {{ zone shared 64k; server 127.0.0.1:1; }}
    upstream b {{ zone shared; server 127.0.0.1:2; }}
    server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://a; }} }}"""), start=False)
    out = s.run("-t")
    assert out.returncode == 0, out.stderr


def test_zone_survives_reload(server):
    b = Backend("fixed", body=b"B")
    dead = free_port()
    try:
        port = free_port()
        text = base_conf(f"""
    upstream be {{
        zone be 64k;
        server 127.0.0.1:{dead} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:{b.port};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://be; }}
        location /x {{ proxy_pass http://be; }}
    }}""", workers=2)
        s = server(text)
        assert get(port) == (200, b"B")
        import signal
        s.kill(signal.SIGHUP)
        assert wait_for(lambda: s.log().count("start worker process") >= 4)
        for _ in range(10):
            assert get(port) == (200, b"B")
        # a new Cycle starts its peers afresh (as nginx does): the dead
        # server is tried once more after the reload, not once per worker
        assert s.log().count("connect() failed (111") == 2
    finally:
        b.close()


def test_upstream_variables_across_retries_and_redirects(server):
    dead = free_port()
    b = Backend("fixed", body=b"B", headers=[("Set-Cookie", "sid=abc123; Path=/"), ("X-Multi", "1"),
                                             ("X-Multi", "2")])
    c = Backend("fixed", body=b"C", status=404)
    try:
        port = free_port()
        fmt = ("addr=[$upstream_addr] status=[$upstream_status] rt=[$upstream_response_time] "
               "ct=[$upstream_connect_time] ht=[$upstream_header_time] rl=[$upstream_response_length] "
               "br=[$upstream_bytes_received] bs=[$upstream_bytes_sent] cookie=[$upstream_cookie_sid] "
               "multi=[$upstream_http_x_multi] cache=[$upstream_cache_status] tr=[$upstream_trailer_x]")
        s = server(base_conf(f"""
    log_format v "{fmt}";
    upstream be {{
        server 127.0.0.1:{dead};
        server 127.0.0.1:{b.port};
    }}
    server {{
        listen 127.0.0.1:{port};
        access_log logs/v.log v;
        location / {{ proxy_pass http://be; }}
        location /redir {{
            proxy_pass http://127.0.0.1:{c.port};
            proxy_intercept_errors on;
            error_page 404 = @fallback;
        }}
        location @fallback {{ proxy_pass http://127.0.0.1:{b.port}; }}
    }}"""))
        assert get(port) == (200, b"B")
        assert get(port, "/redir") == (200, b"B")
        assert wait_for(lambda: s.log("v.log").count("\n") >= 2)
        first, second = s.log("v.log").splitlines()[:2]
        t = r"\d+\.\d{3}"
        assert f"addr=[127.0.0.1:{dead}, 127.0.0.1:{b.port}]" in first
        assert "status=[502, 200]" in first
        assert re.search(rf"rt=\[{t}, {t}\] ct=\[{t}, {t}\] ht=\[{t}, {t}\]", first), first
        assert re.search(r"rl=\[0, 1\] br=\[0, \d+\] bs=\[0, \d+\]", first), first
        assert "cookie=[abc123]" in first and "multi=[1, 2]" in first
        assert "cache=[-]" in first and "tr=[-]" in first
        assert f"addr=[127.0.0.1:{c.port} : 127.0.0.1:{b.port}]" in second
        assert "status=[404 : 200]" in second
        assert re.search(rf"rt=\[{t} : {t}\]", second), second
    finally:
        b.close()
        c.close()
