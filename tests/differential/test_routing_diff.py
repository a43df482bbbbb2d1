"""Differential suite for request routing: rewrite, if, set, map, geo,
split_clients, try_files, error_page, internal, redirects.

Invariants:
- Each deployment of ``corpus_routing`` runs once in Debian's nginx and once
  in Portico (module-scoped cache), from the same ``http{}`` text and files.
- For every request the two answers must agree on the status, the Location
  header (each server's port replaced by PORT), every ``X-*`` header,
  Cache-Control, and the body (nginx's product token and each server's
  prefix directory normalised).
"""
from __future__ import annotations

import os
import socket
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server, free_port, have_nginx, parse_response  # noqa: E402

from .corpus_routing import DEPLOYMENTS, Deployment, Req  # noqa: E402

if not have_nginx():
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)

NGINX_TOKEN = b"nginx/1.22.1"
PORTICO_TOKEN = b"portico/0.1.0"

CONF = """
worker_processes 1;
daemon off;
master_process off;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 64; }
http {
    include mime.types;
    default_type application/octet-stream;
    access_log off;
%HTTP%
}
"""


class Running:
    def __init__(self) -> None:
        self.servers: dict[str, dict[str, tuple[Server, int]]] = {}

    def get(self, dep: Deployment) -> dict[str, tuple[Server, int]]:
        got = self.servers.get(dep.id)
        if got is None:
            # registered before starting, so close() stops whatever did start
            got = self.servers[dep.id] = {}
            for kind in ("nginx", "portico"):
                port = free_port()
                conf = CONF.replace("%HTTP%", dep.http.replace("%PORT%", str(port)))
                s = Server(conf, kind, dict(dep.files))
                _readable(s, dep)
                got[kind] = (s, port)
                s.start()
        return got

    def close(self) -> None:
        for pair in self.servers.values():
            for s, _ in pair.values():
                s.cleanup()


def _readable(s: Server, dep: Deployment) -> None:
    """nginx started as root serves as "nobody": make the tree readable."""
    for rel in dep.files:
        d = os.path.dirname(s.path(rel))
        while d.startswith(s.prefix) and d != s.prefix:
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        os.chmod(s.path(rel), 0o644)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    r = Running()
    yield r
    r.close()


def _ask(port: int, req: Req) -> tuple[int, dict[str, str], bytes]:
    lines = [f"{req.method} {req.uri} HTTP/1.1", f"Host: {req.host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in req.headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    status, headers, body, _ = parse_response(b"".join(chunks))
    return status, headers, body


def _view(s: Server, port: int, answer: tuple[int, dict[str, str], bytes]) -> dict[str, object]:
    status, headers, body = answer
    kind = s.kind
    view: dict[str, object] = {"status": status}
    for k, v in headers.items():
        lk = k.lower()
        if lk == "location" or lk.startswith("x-") or lk == "cache-control":
            view[lk] = v.replace(str(port), "PORT")
    body = body.replace(NGINX_TOKEN if kind == "nginx" else PORTICO_TOKEN, b"TOKEN")
    view["body"] = body.replace(s.prefix.encode(), b"PREFIX")
    return view


def _cases() -> list[object]:
    out = []
    for dep in DEPLOYMENTS:
        for i, req in enumerate(dep.requests):
            out.append(pytest.param(dep, req, id=f"{dep.id}-{i}-{req.method}-{req.host}{req.uri}"))
    return out


@pytest.mark.parametrize("dep,req", _cases())
def test_same_as_nginx(dep: Deployment, req: Req, running: Running) -> None:
    pair = running.get(dep)
    views = {kind: _view(s, port, _ask(port, req)) for kind, (s, port) in pair.items()}
    assert views["portico"] == views["nginx"]
