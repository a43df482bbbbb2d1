"""limit_rate, limit_rate_after and $limit_rate on a live portico.

Rate tests assert lower bounds only (a response under limit_rate cannot
arrive sooner than the rate allows), never an upper bound on speed; the
exact pacing is nginx's (checked by hand against Debian's nginx: the same
300 KB at 100k takes 2.0 s in both, the header counting against the rate).
"""
from __future__ import annotations

import socket
import time

from harness import base_conf, free_port, parse_response, wait_for

BIG = bytes(range(256)) * 1200  # 307,200 bytes


def conf(port: int) -> str:
    return base_conf(f"""
    log_format rate '$uri $limit_rate';
    server {{
        listen 127.0.0.1:{port};
        root html;
        sendfile on;
        access_log logs/rate.log rate;
        location /slow/ {{ alias html/; limit_rate 100k; }}
        location /after/ {{ alias html/; limit_rate 100k; limit_rate_after 1m; }}
        location /var/ {{ alias html/; limit_rate $arg_r; }}
        location /set/ {{ alias html/; limit_rate 1k; set $limit_rate 200k; }}
        location /free/ {{ alias html/; }}
        location /text {{ limit_rate 100; return 200 "{'x' * 300}"; }}
    }}""")


def fetch(port: int, path: str) -> tuple[int, bytes, float]:
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    status, _, body, _ = parse_response(data)
    return status, body, time.monotonic() - t0


def test_limit_rate_paces_the_body(server):
    port = free_port()
    srv = server(conf(port), files={"html/big.bin": BIG})
    status, body, took = fetch(port, "/slow/big.bin")
    assert status == 200 and body == BIG
    # 307,200 bytes + header at 102,400 B/s with one second up front: >= 2 s
    assert took >= 1.9
    status, body, took = fetch(port, "/text")
    assert status == 200 and body == b"x" * 300
    assert took >= 3.0  # ~450 bytes at 100 B/s, one second's worth free
    assert wait_for(lambda: "/slow/big.bin 102400" in srv.log("rate.log"), 5)
    assert "/text 100" in srv.log("rate.log")


def test_limit_rate_after_and_variables(server):
    port = free_port()
    srv = server(conf(port), files={"html/big.bin": BIG})
    # everything fits under limit_rate_after: the rate never applies
    assert fetch(port, "/after/big.bin")[:2] == (200, BIG)
    # the rate comes from the query: 150k still makes 307 KB wait a second
    status, body, took = fetch(port, "/var/big.bin?r=150k")
    assert status == 200 and body == BIG and took >= 0.9
    # set $limit_rate wins over the location's limit_rate 1k
    status, body, took = fetch(port, "/set/big.bin")
    assert status == 200 and body == BIG and took >= 0.9
    # an unparsable rate is logged and means no limit
    assert fetch(port, "/var/big.bin?r=fast")[:2] == (200, BIG)
    assert wait_for(lambda: 'invalid size "fast"' in srv.log(), 5)
    log = srv.log("rate.log")
    assert "/set/big.bin 204800" in log
    assert "/var/big.bin 153600" in log
    assert "/free/" not in log


def test_unlimited_location_reports_zero(server):
    port = free_port()
    srv = server(conf(port), files={"html/big.bin": BIG})
    assert fetch(port, "/free/big.bin")[:2] == (200, BIG)
    assert wait_for(lambda: "/free/big.bin 0" in srv.log("rate.log"), 5)


def test_client_leaving_during_the_pause_is_logged(server):
    port = free_port()
    srv = server(conf(port), files={"html/big.bin": BIG})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /slow/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")
    # the connection is gone while the writer waits on its rate timer: the
    # request is logged (not 200-complete) and the worker keeps serving
    assert wait_for(lambda: "/slow/big.bin" in srv.log("rate.log"), 10)
    assert fetch(port, "/after/big.bin")[:2] == (200, BIG)
