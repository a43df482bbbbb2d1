"""Fixtures for TLS tests: certificates, configurations loaded into a real
Cycle, and handshakes run in memory (two SSLObjects over MemoryBIOs).

Invariant: nothing binds a socket or forks; the server side of every
handshake is exactly what a worker uses (``table.ssl_ctx`` wrapped with
``portico_table`` set before the first step).
"""
from __future__ import annotations

import os
import ssl
import warnings
from typing import Any

import pytest

from portico.core.cycle import Cycle

from .certs import make_all


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_all(str(tmp_path_factory.mktemp("certs")))


def load(tmp: Any, http_body: str, name: str = "nginx.conf") -> Cycle:
    """A Cycle for ``http { http_body }`` in prefix ``tmp``."""
    os.makedirs(os.path.join(str(tmp), "logs"), exist_ok=True)
    path = os.path.join(str(tmp), name)
    with open(path, "w") as f:
        f.write("events {}\nhttp {\n" + http_body + "\n}\n")
    c = Cycle(path, str(tmp))
    c.load()
    return c


def table_of(cycle: Cycle, port: int) -> Any:
    for spec in cycle.http.listen_specs:
        if spec.opt.port == port:
            return spec.tables[""]
    raise KeyError(port)


def client_ctx(certs: dict[str, str], *, cert: str | None = None, alpn: list[str] | None = None,
               maxv: ssl.TLSVersion | None = None, minv: ssl.TLSVersion | None = None,
               sigalgs: str | None = None) -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False  # tests look at the certificate the server chose
    c.load_verify_locations(certs["ca.crt"])
    if cert:
        c.load_cert_chain(certs[f"{cert}.crt"], certs[f"{cert}.key"])
    if alpn:
        c.set_alpn_protocols(alpn)
    with warnings.catch_warnings():
        # asking for TLS 1.0/1.1 on purpose (to see the server refuse them)
        warnings.simplefilter("ignore", DeprecationWarning)
        if maxv:
            c.maximum_version = maxv
        if minv:
            c.minimum_version = minv
    if sigalgs:
        import ctypes
        from portico.tls import openssl as osl
        b = osl.load()
        assert b is not None
        # SSL_CTX_set1_sigalgs_list (SSL_CTRL_SET_SIGALGS_LIST = 98)
        assert b.SSL_CTX_ctrl(b.ctx_ptr(c), 98, 0, ctypes.c_char_p(sigalgs.encode())) == 1
    return c


class Handshake:
    def __init__(self, server: Any, client: Any) -> None:
        self.server = server
        self.client = client


def handshake(table: Any, cctx: ssl.SSLContext, sni: str | None, session: Any = None) -> Handshake:
    """Run a full handshake in memory; raises ssl.SSLError on failure."""
    s_in, s_out, c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    server = table.ssl_ctx.wrap_bio(s_in, s_out, server_side=True)
    server.portico_table = table
    client = cctx.wrap_bio(c_in, c_out, server_side=False, server_hostname=sni, session=session)
    done_c = done_s = False
    for _ in range(20):
        if not done_c:
            try:
                client.do_handshake()
                done_c = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not done_s:
            try:
                server.do_handshake()
                done_s = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                # the alert goes to the client, which raises what a client sees
                c_in.write(s_out.read())
                client.do_handshake()
                raise
        c_in.write(s_out.read())
        if done_c and done_s:
            # let TLS 1.3 tickets (sent after the handshake) reach the client
            try:
                client.read(1)
            except ssl.SSLWantReadError:
                pass
            return Handshake(server, client)
    raise AssertionError("handshake did not finish")
