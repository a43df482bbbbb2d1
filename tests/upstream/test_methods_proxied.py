"""The balancing methods end to end: the same upstream{} behind proxy_pass in
Debian's nginx and in Portico, the same requests, the same backend chosen
for each (hash, hash consistent, ip_hash), and least_conn steering away
from a busy backend."""
from __future__ import annotations

import os
import socket
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, have_nginx  # noqa: E402

pytestmark = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")


def conf(port: int, method: str, backends: list[Backend]) -> str:
    servers = "\n".join(f"server 127.0.0.1:{b.port} weight={i + 1};" for i, b in enumerate(backends))
    return base_conf(f"""
    upstream u {{
        {method}
        {servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://u; }}
    }}""")


def ask(port: int, path: str, src: str = "127.0.0.1") -> bytes:
    with socket.socket() as s:
        s.settimeout(5)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: t\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    return data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("method", ["hash $arg_k;", "hash $arg_k consistent;", "ip_hash;"])
def test_same_backend_as_nginx(server, method):
    backends = [Backend("fixed", body=f"backend-{n}\n".encode()) for n in range(4)]
    try:
        picks = {}
        for kind in ("nginx", "portico"):
            port = free_port()
            server(conf(port, method, backends), kind=kind)
            if method == "ip_hash;":
                picks[kind] = [ask(port, "/", f"127.0.{n}.{n % 7 + 1}") for n in range(40)]
            else:
                picks[kind] = [ask(port, f"/?k=key{n}") for n in range(60)]
        assert picks["portico"] == picks["nginx"]
        assert len(set(picks["portico"])) > 1  # the keys did spread
    finally:
        for b in backends:
            b.close()


def test_least_conn_avoids_the_busy_backend(server):
    slow = Backend("slow", body=b"slow\n", delay=2.0)
    quick = [Backend("fixed", body=f"quick-{n}\n".encode()) for n in range(2)]
    try:
        port = free_port()
        server(base_conf(f"""
    upstream u {{
        least_conn;
        server 127.0.0.1:{slow.port};
        server 127.0.0.1:{quick[0].port};
        server 127.0.0.1:{quick[1].port};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://u; }}
    }}"""))
        # the first request goes to the first peer (all idle: round robin)
        # and stays busy there; the next ones must avoid it
        held = threading.Thread(target=ask, args=(port, "/held"))
        held.start()
        import time
        deadline = time.monotonic() + 5
        while not slow.heads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow.heads, "the first request did not reach the first peer"
        answers = [ask(port, f"/n{n}") for n in range(6)]
        held.join()
        assert all(a.startswith(b"quick-") for a in answers), answers
    finally:
        for b in [slow, *quick]:
            b.close()
