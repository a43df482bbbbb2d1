"""Contexts built from configuration text, exercised by real handshakes in
memory: SNI, RSA+ECDSA, ALPN after an SNI switch, protocols and ciphers,
ssl_reject_handshake, password files, data: certificates, variables.
"""
from __future__ import annotations

import ssl

import pytest

from .conftest import client_ctx, handshake, load, table_of


def _cn(hs: object) -> str:
    cert = hs.client.getpeercert()  # type: ignore[attr-defined]
    return dict(x[0] for x in cert["subject"])["commonName"]


def _two_servers(certs: dict[str, str], extra_a: str = "", extra_b: str = "", listen: str = "ssl") -> str:
    return f"""
    server {{ listen 127.0.0.1:8443 {listen}; server_name a.test;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']}; {extra_a} }}
    server {{ listen 127.0.0.1:8443 {listen}; server_name b.test *.b.test;
        ssl_certificate {certs['b.test-rsa.crt']}; ssl_certificate_key {certs['b.test-rsa.key']}; {extra_b} }}
    """


def test_sni_picks_certificate(tmp_path, certs) -> None:
    t = table_of(load(tmp_path, _two_servers(certs)), 8443)
    assert isinstance(t.ssl_ctx, ssl.SSLContext)
    cc = client_ctx(certs)
    assert _cn(handshake(t, cc, "a.test")) == "a.test"
    hs = handshake(t, cc, "B.Test")
    assert _cn(hs) == "b.test"
    assert hs.server.portico_sni == "b.test"
    assert hs.server.portico_sni_server.names[0] == "b.test"
    assert _cn(handshake(t, cc, "x.b.test")) == "b.test"
    # unknown name and no SNI: the default server's certificate, no negotiated server
    hs = handshake(t, cc, "other.test")
    assert _cn(hs) == "a.test" and not hasattr(hs.server, "portico_sni_server")
    hs = handshake(t, cc, None)
    assert _cn(hs) == "a.test" and not hasattr(hs.server, "portico_sni")


def test_rsa_and_ecdsa_pair_chosen_by_sigalgs(tmp_path, certs) -> None:
    conf = f"""server {{ listen 127.0.0.1:8443 ssl;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']};
        ssl_certificate {certs['a.test-ec.crt']}; ssl_certificate_key {certs['a.test-ec.key']}; }}"""
    t = table_of(load(tmp_path, conf), 8443)
    ec = handshake(t, client_ctx(certs, sigalgs="ECDSA+SHA256"), "a.test")
    rsa = handshake(t, client_ctx(certs, sigalgs="RSA-PSS+SHA256:RSA+SHA256"), "a.test")
    der_ec = ec.client.getpeercert(True)
    der_rsa = rsa.client.getpeercert(True)
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec as ecmod, rsa as rsamod
    assert isinstance(x509.load_der_x509_certificate(der_ec).public_key(), ecmod.EllipticCurvePublicKey)
    assert isinstance(x509.load_der_x509_certificate(der_rsa).public_key(), rsamod.RSAPublicKey)


def test_alpn_follows_the_server_after_sni_switch(tmp_path, certs) -> None:
    # a.test (default) has no http2; b.test turns it on with "listen ... http2" on another address
    conf = _two_servers(certs) + f"""
    server {{ listen 127.0.0.1:8444 ssl http2; server_name b.test;
        ssl_certificate {certs['b.test-rsa.crt']}; ssl_certificate_key {certs['b.test-rsa.key']}; }}
    server {{ listen 127.0.0.1:8444 ssl; server_name a.test;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']}; }}"""
    c = load(tmp_path, conf)
    cc = client_ctx(certs, alpn=["h2", "http/1.1"])
    t1, t2 = table_of(c, 8443), table_of(c, 8444)
    assert handshake(t1, cc, "b.test").server.selected_alpn_protocol() == "http/1.1"
    hs = handshake(t2, cc, "a.test")  # default b.test has h2; SNI switches to a.test's h2 variant
    assert _cn(hs) == "a.test" and hs.server.selected_alpn_protocol() == "h2"
    assert handshake(t2, client_ctx(certs, alpn=["http/1.1"]), "b.test").client.selected_alpn_protocol() == "http/1.1"


def test_alpn_no_overlap_and_http10(tmp_path, certs) -> None:
    t = table_of(load(tmp_path, _two_servers(certs)), 8443)
    hs = handshake(t, client_ctx(certs, alpn=["http/1.0"]), "a.test")
    assert hs.server.selected_alpn_protocol() == "http/1.0"
    assert handshake(t, client_ctx(certs, alpn=["h2"]), "a.test").server.selected_alpn_protocol() is None


def test_protocols_and_ciphers(tmp_path, certs) -> None:
    # as with nginx (OpenSSL picks the version before the SNI callback), the
    # default server's ssl_protocols govern every name; ciphers follow SNI
    t = table_of(load(tmp_path, _two_servers(
        certs, extra_a="ssl_protocols TLSv1.2; ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;")), 8443)
    hs = handshake(t, client_ctx(certs), "a.test")
    assert hs.server.version() == "TLSv1.2"
    assert hs.server.cipher()[0] == "ECDHE-RSA-AES128-GCM-SHA256"
    hs = handshake(t, client_ctx(certs), "b.test")
    assert hs.server.version() == "TLSv1.2"
    assert hs.server.cipher()[0] != "ECDHE-RSA-AES128-GCM-SHA256"
    with pytest.raises(ssl.SSLError):
        handshake(t, client_ctx(certs, minv=ssl.TLSVersion.TLSv1_3), "a.test")
    t = table_of(load(tmp_path, _two_servers(certs)), 8443)
    assert handshake(t, client_ctx(certs), "b.test").server.version() == "TLSv1.3"


def test_default_protocols_refuse_tls11(tmp_path, certs) -> None:
    t = table_of(load(tmp_path, _two_servers(certs)), 8443)
    cc = client_ctx(certs, maxv=ssl.TLSVersion.TLSv1_1, minv=ssl.TLSVersion.TLSv1)
    cc.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        handshake(t, cc, "a.test")


def test_reject_handshake(tmp_path, certs) -> None:
    conf = f"""
    server {{ listen 127.0.0.1:8443 ssl default_server; ssl_reject_handshake on; }}
    server {{ listen 127.0.0.1:8443 ssl; server_name a.test;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']}; }}"""
    t = table_of(load(tmp_path, conf), 8443)
    assert _cn(handshake(t, client_ctx(certs), "a.test")) == "a.test"
    for sni in ("unknown.test", None):
        with pytest.raises(ssl.SSLError) as e:
            handshake(t, client_ctx(certs), sni)
        assert "UNRECOGNIZED_NAME" in str(e.value).upper()


def test_encrypted_key_with_password_file_and_data_certificate(tmp_path, certs) -> None:
    with open(certs["a.test-rsa.crt"]) as f:
        pem = f.read().replace("\n", "\\n")
    conf = f"""
    server {{ listen 127.0.0.1:8443 ssl; server_name enc.test;
        ssl_certificate {certs['enc.crt']}; ssl_certificate_key {certs['enc.key']};
        ssl_password_file {certs['passwords']}; }}
    server {{ listen 127.0.0.1:8443 ssl; server_name a.test;
        ssl_certificate "data:{pem}"; ssl_certificate_key {certs['a.test-rsa.key']}; }}"""
    t = table_of(load(tmp_path, conf), 8443)
    assert _cn(handshake(t, client_ctx(certs), "enc.test")) == "enc.test"
    assert _cn(handshake(t, client_ctx(certs), "a.test")) == "a.test"


def test_certificate_with_variables(tmp_path, certs) -> None:
    import os
    d = os.path.dirname(certs["a.test-rsa.crt"])
    conf = f"""server {{ listen 127.0.0.1:8443 ssl;
        ssl_certificate {d}/$ssl_server_name-rsa.crt; ssl_certificate_key {d}/$ssl_server_name-rsa.key; }}"""
    t = table_of(load(tmp_path, conf), 8443)
    assert _cn(handshake(t, client_ctx(certs), "a.test")) == "a.test"
    assert _cn(handshake(t, client_ctx(certs), "b.test")) == "b.test"
    with pytest.raises(ssl.SSLError):
        handshake(t, client_ctx(certs), "nosuch.test")


def test_plain_tables_have_no_context_and_buffer_size(tmp_path, certs) -> None:
    c = load(tmp_path, _two_servers(certs, extra_a="ssl_buffer_size 4k;") +
             "server { listen 127.0.0.1:8080; }")
    assert getattr(table_of(c, 8080), "ssl_ctx", None) is None
    t = table_of(c, 8443)
    assert t.default.root.conf.ssl.buffer_size == 4096
    assert t.servers[1].root.conf.ssl.buffer_size == 16384
