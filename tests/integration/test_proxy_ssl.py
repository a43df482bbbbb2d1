"""proxy_pass https:// with proxy_ssl_*: a real TLS backend (Python's ssl,
certificates made by the ``cryptography`` package in a fixture).

Invariants:
- A private CA signs the backend's certificate (for "backend.test" and
  127.0.0.1) and a client certificate; a second, unrelated CA is what a
  "wrong trust" test gives Portico.  Nothing leaves loopback.
- Error-log wording is nginx's ("upstream SSL certificate verify error",
  "upstream SSL certificate does not match").
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import sys
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backends import Backend  # noqa: E402
from harness import base_conf, free_port, parse_response, raw_request  # noqa: E402


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer_key: Any, issuer: str, key: Any, ca: bool, sans: list[Any]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(path: str, *objs: Any) -> str:
    with open(path, "wb") as f:
        for o in objs:
            if isinstance(o, x509.Certificate):
                f.write(o.public_bytes(serialization.Encoding.PEM))
            else:
                f.write(o.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> Iterator[dict[str, str]]:
    d = str(tmp_path_factory.mktemp("pki"))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test CA", ca_key, "Test CA", ca_key, True, [])
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _cert("Other CA", other_key, "Other CA", other_key, True, [])
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("backend.test", ca_key, "Test CA", srv_key, False,
                [x509.DNSName("backend.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cl_key = ec.generate_private_key(ec.SECP256R1())
    cl = _cert("portico-client", ca_key, "Test CA", cl_key, False, [])
    # a chain with an intermediate CA: backend.test <- Test Intermediate <- Test CA
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = _cert("Test Intermediate", ca_key, "Test CA", mid_key, True, [])
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("backend.test", mid_key, "Test Intermediate", leaf_key, False, [x509.DNSName("backend.test")])
    yield {"ca": _write(f"{d}/ca.pem", ca), "other": _write(f"{d}/other.pem", other),
           "chain": _write(f"{d}/chain.pem", leaf, mid), "chain_key": _write(f"{d}/chain.key", leaf_key),
           "srv": _write(f"{d}/srv.pem", srv), "srv_key": _write(f"{d}/srv.key", srv_key),
           "cl": _write(f"{d}/cl.pem", cl), "cl_key": _write(f"{d}/cl.key", cl_key)}


def _backend(pki: dict[str, str], want_client_cert: bool = False, chain: bool = False) -> Backend:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if chain:
        ctx.load_cert_chain(pki["chain"], pki["chain_key"])
    else:
        ctx.load_cert_chain(pki["srv"], pki["srv_key"])
    if want_client_cert:
        ctx.load_verify_locations(pki["ca"])
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return Backend("echo", ssl_ctx=ctx)


def _get(port: int, path: str) -> tuple[int, bytes]:
    st, _, body, _ = parse_response(raw_request(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                                .encode()))
    return st, body


def test_https_upstream_no_verify_by_default(server: Any, pki: dict[str, str]) -> None:
    b = _backend(pki)
    try:
        port = free_port()
        server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass https://{b.addr}; }} }}"))
        st, body = _get(port, "/hello")
        assert st == 200 and body.startswith(b"GET /hello HTTP/1.0\r\n")
        assert b.tls_names == [None]  # proxy_ssl_server_name is off by default
    finally:
        b.close()


def test_verify_ok_with_sni_and_client_certificate(server: Any, pki: dict[str, str]) -> None:
    b = _backend(pki, want_client_cert=True)
    try:
        port = free_port()
        server(base_conf(f"upstream backend.test {{ server {b.addr}; keepalive 2; }}\n"
                         f"server {{ listen 127.0.0.1:{port}; location / {{\n"
                         f"  proxy_ssl_verify on; proxy_ssl_trusted_certificate {pki['ca']};\n"
                         f"  proxy_ssl_verify_depth 2; proxy_ssl_server_name on;\n"
                         f"  proxy_ssl_certificate {pki['cl']}; proxy_ssl_certificate_key {pki['cl_key']};\n"
                         f"  proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_session_reuse on;\n"
                         f"  proxy_http_version 1.1; proxy_set_header Connection \"\";\n"
                         f"  proxy_pass https://backend.test; }} }}"))
        for i in range(3):
            st, body = _get(port, f"/v{i}")
            assert st == 200 and body.startswith(f"GET /v{i} HTTP/1.1\r\n".encode())
        assert b.tls_names == ["backend.test"]  # one TLS connection, kept alive, SNI sent
        assert b.count("open") == 1 and b.count("request") == 3
        peer = b.tls_peers[0]
        assert peer and ("commonName", "portico-client") in [t[0] for t in peer["subject"]]
    finally:
        b.close()


def test_verify_fails_with_wrong_ca(server: Any, pki: dict[str, str]) -> None:
    b = _backend(pki)
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_ssl_verify on;"
                             f" proxy_ssl_trusted_certificate {pki['other']}; proxy_ssl_name backend.test;"
                             f" proxy_pass https://{b.addr}; }} }}"))
        assert _get(port, "/")[0] == 502
        log = s.log()
        assert "upstream SSL certificate verify error: (20:unable to get local issuer certificate) " \
               "while SSL handshaking to upstream" in log
        assert f'upstream: "https://{b.addr}/"' in log
        assert b.count("request") == 0
    finally:
        b.close()


def test_verify_fails_on_name_mismatch(server: Any, pki: dict[str, str]) -> None:
    b = _backend(pki)
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_ssl_verify on;"
                             f" proxy_ssl_trusted_certificate {pki['ca']}; proxy_ssl_name other.test;"
                             f" proxy_pass https://{b.addr}; }} }}"))
        assert _get(port, "/")[0] == 502
        assert 'upstream SSL certificate does not match "other.test" while SSL handshaking to upstream' in s.log()
    finally:
        b.close()


def test_verify_without_trusted_certificate_is_emerg(server: Any, pki: dict[str, str]) -> None:
    port = free_port()
    s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{ proxy_ssl_verify on;"
                         f" proxy_pass https://127.0.0.1:1; }} }}"), start=False)
    res = s.run("-t")
    assert res.returncode != 0
    assert "no proxy_ssl_trusted_certificate for proxy_ssl_verify" in res.stderr


def test_conf_command_accepted_with_info(server: Any, pki: dict[str, str]) -> None:
    b = _backend(pki)
    try:
        port = free_port()
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location / {{"
                             f" proxy_ssl_conf_command Options PrioritizeChaCha;"
                             f" proxy_pass https://{b.addr}; }} }}"))
        assert _get(port, "/")[0] == 200
        assert '"proxy_ssl_conf_command Options PrioritizeChaCha" has no effect' in s.log()
    finally:
        b.close()


def test_verify_depth_is_enforced(server: Any, pki: dict[str, str]) -> None:
    """A backend chain with one intermediate CA: proxy_ssl_verify_depth 0
    (no intermediate allowed) refuses it with OpenSSL's "certificate chain
    too long", as nginx does; 1 accepts it."""
    b = _backend(pki, chain=True)
    try:
        port = free_port()
        loc = (f"proxy_ssl_verify on; proxy_ssl_trusted_certificate {pki['ca']}; proxy_ssl_name backend.test;"
               f" proxy_pass https://{b.addr};")
        s = server(base_conf(f"server {{ listen 127.0.0.1:{port};"
                             f" location /d0/ {{ proxy_ssl_verify_depth 0; {loc} }}"
                             f" location /d1/ {{ proxy_ssl_verify_depth 1; {loc} }} }}"))
        assert _get(port, "/d1/")[0] == 200
        assert _get(port, "/d0/")[0] == 502
        assert "upstream SSL certificate verify error: (22:certificate chain too long)" in s.log()
    finally:
        b.close()
