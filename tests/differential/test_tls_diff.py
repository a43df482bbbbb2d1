"""Differential suite over TLS: Debian's nginx 1.22 and Portico on the same
config (``listen ... ssl http2``, two servers chosen by SNI, client
certificates), the same requests over HTTP/1.1 (Python ssl) and HTTP/2
(curl --http2), and the same handshake outcomes.

Invariants:
- One nginx and one Portico for the module; file mtimes are pinned so ETag
  and Last-Modified agree; certificates come from tests/pki.py.
- Compared per request: the status, the response headers in order (Date
  and Last-Modified values aside; Content-Length too when the body holds
  the product token, whose length differs), and the body with ports and
  the product token normalised.
- Handshake cases compare outcomes only: completed (and which certificate
  name) or refused.
"""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server, free_port, have_nginx, parse_response  # noqa: E402
from pki import ca_cert, client_cert, server_cert  # noqa: E402

if not have_nginx():
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)

MTIME = 1_600_000_000
FILES = {"html/index.html": "<h1>tls</h1>\n", "html/a.txt": "text file over tls\n" * 40}


def _conf() -> str:
    a_crt, a_key = server_cert("a.test")
    b_crt, b_key = server_cert("b.test", kind="rsa")
    return f"""
worker_processes 1;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log info;
events {{ worker_connections 256; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    gzip on;
    gzip_types text/plain;
    # nginx 1.22's default is TLSv1 TLSv1.1 TLSv1.2; 1.23.4 added TLSv1.3 and
    # Portico has 1.29's default (TLSv1.2 TLSv1.3): say it
    ssl_protocols TLSv1.2 TLSv1.3;
    server {{
        listen 127.0.0.1:%PORT% ssl http2 default_server;
        server_name a.test;
        ssl_certificate {a_crt};
        ssl_certificate_key {a_key};
        ssl_client_certificate {ca_cert()};
        ssl_verify_client optional;
        root html;
        location = /who {{ return 200 "$ssl_client_verify|$ssl_client_s_dn|$https|$ssl_server_name|$server_name\\n"; }}
        location = /moved {{ return 301 /a.txt; }}
        location = /hdr {{ add_header X-Custom v1; add_header Strict-Transport-Security "max-age=60"; return 204; }}
    }}
    server {{
        listen 127.0.0.1:%PORT% ssl http2;
        server_name b.test;
        ssl_certificate {b_crt};
        ssl_certificate_key {b_key};
        ssl_client_certificate {ca_cert()};
        ssl_verify_client on;
        location / {{ return 200 "b $ssl_client_verify $ssl_protocol\\n"; }}
    }}
}}
"""


class Pair:
    def __init__(self) -> None:
        self.servers: dict[str, tuple[Server, int]] = {}
        for kind in ("nginx", "portico"):
            port = free_port()
            s = Server(_conf().replace("%PORT%", str(port)), kind, files=FILES)
            for rel in FILES:
                os.utime(s.path(rel), (MTIME, MTIME))
            s.start()
            self.servers[kind] = (s, port)

    def close(self) -> None:
        for s, _ in self.servers.values():
            s.cleanup()


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


def _norm(data: bytes, port: int) -> bytes:
    return data.replace(str(port).encode(), b"PORT").replace(b"nginx/1.22.1", b"SERVER").replace(
        b"portico/0.1.0", b"SERVER")


def _h1(port: int, sni: str, path: str, cert: tuple[str, str] | None, extra: str = "") -> tuple[int, list[str], bytes]:
    ctx = ssl.create_default_context(cafile=ca_cert())
    if cert:
        ctx.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n{extra}\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    data = _norm(data, port)
    status, _, body, _ = parse_response(data)
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    lines = [ln if not ln.lower().startswith(("date:", "last-modified:")) else ln.split(":")[0] for ln in head]
    if b"SERVER" in body:  # the product tokens differ in length
        lines = [ln for ln in lines if not ln.lower().startswith("content-length:")]
    return status, lines, body


def _h2(port: int, sni: str, path: str, cert: tuple[str, str] | None, extra: list[str]) -> tuple[bytes, bytes]:
    args = ["curl", "-sS", "--http2", "--cacert", ca_cert(), "--resolve", f"{sni}:{port}:127.0.0.1",
            "-D", "-", f"https://{sni}:{port}{path}", *extra]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    out = subprocess.run(args, capture_output=True, timeout=20)
    head, _, body = _norm(out.stdout, port).partition(b"\r\n\r\n")
    skip: tuple[bytes, ...] = (b"date:", b"last-modified:")
    if b"SERVER" in body:  # the product tokens differ in length
        skip += (b"content-length:",)
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith(skip)]
    return b"\r\n".join(lines), body


#: (SNI name, path, client certificate, extra request header)
CASES = [
    ("a.test", "/", None, ""),
    ("a.test", "/a.txt", None, ""),
    ("a.test", "/a.txt", None, "Accept-Encoding: gzip\r\n"),
    ("a.test", "/a.txt", None, "Range: bytes=3-9\r\n"),
    ("a.test", "/missing", None, ""),
    ("a.test", "/moved", None, ""),
    ("a.test", "/hdr", None, ""),
    ("a.test", "/who", None, ""),
    ("a.test", "/who", "good", ""),
    ("a.test", "/who", "rogue", ""),  # optional: the request is refused with 400 (495) all the same
    ("b.test", "/", None, ""),  # verify on, no certificate: 400 (496)
    ("b.test", "/", "good", ""),
    ("b.test", "/", "rogue", ""),
]


def _cert(which: str | None) -> tuple[str, str] | None:
    return {None: None, "good": client_cert("alice"), "rogue": client_cert("mallory", ca="rogue")}[which]


@pytest.mark.parametrize("sni,path,cert,extra", CASES)
def test_https_h1_same_as_nginx(pair: Pair, sni: str, path: str, cert: str | None, extra: str) -> None:
    got = {kind: _h1(port, sni, path, _cert(cert), extra) for kind, (_, port) in pair.servers.items()}
    assert got["portico"] == got["nginx"]


@pytest.mark.parametrize("sni,path,cert,extra", CASES)
def test_https_h2_same_as_nginx(pair: Pair, sni: str, path: str, cert: str | None, extra: str) -> None:
    hdr = [extra.strip()] if extra else []
    args = ["-H", hdr[0]] if hdr else []
    got = {kind: _h2(port, sni, path, _cert(cert), args) for kind, (_, port) in pair.servers.items()}
    assert got["portico"] == got["nginx"]
    assert got["nginx"][0].startswith(b"HTTP/2 ")


def _handshake(port: int, sni: str | None, version: ssl.TLSVersion | None) -> str:
    ctx = ssl.create_default_context(cafile=ca_cert())
    ctx.check_hostname = False
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
                return f"ok {s.version()} {cn}"
    except (ssl.SSLError, ConnectionResetError) as e:
        return f"refused {type(e).__name__}"


@pytest.mark.parametrize("sni,version", [
    ("a.test", None), ("b.test", None), (None, None), ("unknown.test", None),
    ("a.test", ssl.TLSVersion.TLSv1_2), ("b.test", ssl.TLSVersion.TLSv1_3),
])
def test_handshake_outcomes_same_as_nginx(pair: Pair, sni: str | None, version: ssl.TLSVersion | None) -> None:
    got = {kind: _handshake(port, sni, version) for kind, (_, port) in pair.servers.items()}
    assert got["portico"] == got["nginx"]
