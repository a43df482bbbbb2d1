"""Run-time name resolution: ``server NAME resolve`` in a zoned upstream
follows a changed A record for every worker, and ``proxy_pass`` with
variables resolves through ``resolver`` (502 and nginx's log line when a
name does not resolve).  The DNS server is a tiny one on 127.0.0.1
(tests/upstream/dnsserver.py); backends listen on 127.0.0.1 and 127.0.0.2
with the same port."""
from __future__ import annotations

import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import base_conf, free_port, parse_response, raw_request, wait_for  # noqa: E402
from upstream.dnsserver import DnsServer  # noqa: E402


def named_backend(ip: str, port: int, name: str) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: Any) -> None:
            pass
    srv = ThreadingHTTPServer((ip, port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def two_backends() -> tuple[int, list[ThreadingHTTPServer]]:
    for _ in range(20):
        port = free_port()
        try:
            return port, [named_backend("127.0.0.1", port, "one"), named_backend("127.0.0.2", port, "two")]
        except OSError:
            continue
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    status, _h, body, _r = parse_response(data)
    return status, body


def test_resolve_follows_a_changed_record(server):
    dns = DnsServer({"app.test": ["127.0.0.1"]}, ttl=1)
    bport, backends = two_backends()
    try:
        port = free_port()
        s = server(base_conf(f"""
    upstream be {{
        zone be 64k;
        resolver {dns.addr} ipv6=off;
        server app.test:{bport} resolve;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{ proxy_pass http://be; }}
    }}""", workers=2))
        assert wait_for(lambda: get(port) == (200, b"one"))
        assert {get(port)[1] for _ in range(10)} == {b"one"}
        dns.records["app.test"] = ["127.0.0.2"]
        assert wait_for(lambda: get(port) == (200, b"two"), 10)
        # every worker follows (fresh connections reach both)
        assert {get(port)[1] for _ in range(20)} == {b"two"}
        # both addresses: round robin over the two
        dns.records["app.test"] = ["127.0.0.1", "127.0.0.2"]
        assert wait_for(lambda: {get(port)[1] for _ in range(4)} == {b"one", b"two"}, 10)
        # one look-up per expiry for the whole server, not one per worker
        n = dns.count("app.test")
        assert n >= 3
        assert "could not be resolved" not in s.log()
        # the name disappears: no peer left (502), nginx's log line
        del dns.records["app.test"]
        assert wait_for(lambda: "app.test could not be resolved (3: Host not found)" in s.log(), 10)
        assert wait_for(lambda: get(port)[0] == 502, 10)
    finally:
        dns.close()
        for b in backends:
            b.shutdown()
            b.server_close()


def test_proxy_pass_with_variables_uses_the_resolver(server):
    dns = DnsServer({"app.test": ["127.0.0.2"]}, ttl=30)
    bport, backends = two_backends()
    try:
        port = free_port()
        s = server(base_conf(f"""
    resolver {dns.addr};
    resolver_timeout 2s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            set $b app.test;
            proxy_pass http://$b:{bport};
        }}
        location /nope {{
            set $b nope.test;
            proxy_pass http://$b:{bport};
        }}
    }}"""))
        assert get(port) == (200, b"two")
        assert get(port) == (200, b"two")
        assert dns.count("app.test") == 1  # the answer is cached for its TTL
        assert get(port, "/nope")[0] == 502
        log = s.log()
        assert "nope.test could not be resolved (3: Host not found)" in log
        line = [ln for ln in log.splitlines() if "nope.test could not be resolved" in ln][0]
        assert "[error]" in line and 'request: "GET /nope HTTP/1.1"' in line
    finally:
        dns.close()
        for b in backends:
            b.shutdown()
            b.server_close()


def test_without_resolver_a_name_is_a_502(server):
    port = free_port()
    s = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ set $b app.test; proxy_pass http://$b; }}
    }}"""))
    assert get(port)[0] == 502
    assert "no resolver defined to resolve app.test" in s.log()


def test_resolver_timeout(server):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        port = free_port()
        s = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        resolver 127.0.0.1:{silent.getsockname()[1]};
        resolver_timeout 1s;
        location / {{ set $b app.test; proxy_pass http://$b; }}
    }}"""))
        assert get(port)[0] == 502
        assert "app.test could not be resolved (110: Operation timed out)" in s.log()
    finally:
        silent.close()
