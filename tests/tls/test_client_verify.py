"""Client certificates: the handshake always completes (nginx's verify
callback accepts), the verdict is given at request time by
``check_request`` (495/496/421) and read by the $ssl_client_* variables.
"""
from __future__ import annotations

import re
from typing import Any

from portico.http.modules.ssl import check_request
from portico.http.request import Request

from .conftest import client_ctx, handshake, load, table_of


class Conn:
    """The fields of an HTTP connection that a request and these checks read."""
    ssl = True
    client_addr = "127.0.0.1"
    client_port = 50000
    id = 7

    def __init__(self, obj: Any) -> None:
        self.ssl_object = obj


def request(cycle: Any, table: Any, hs: Any, host: str) -> Request:
    r = Request(Conn(hs.server), cycle.http, "GET", "/", "/", "", "HTTP/1.1", [("Host", host)],
                {"host": host}, host)
    r.server = table.find(host)[0]
    r.request_line = "GET / HTTP/1.1"
    return r


def _conf(certs: dict[str, str], verify: str) -> str:
    return f"""
    server {{ listen 127.0.0.1:8443 ssl; server_name a.test;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']};
        ssl_client_certificate {certs['ca.crt']}; ssl_verify_client {verify}; }}
    server {{ listen 127.0.0.1:8443 ssl; server_name b.test;
        ssl_certificate {certs['b.test-rsa.crt']}; ssl_certificate_key {certs['b.test-rsa.key']}; }}"""


def test_verify_on(tmp_path, certs, capfd) -> None:
    c = load(tmp_path, _conf(certs, "on"))
    t = table_of(c, 8443)
    var = c.http.variables.getter
    # no certificate: the handshake completes, the request gets 496
    hs = handshake(t, client_ctx(certs), "a.test")
    r = request(c, t, hs, "a.test")
    assert check_request(r) == 496
    assert var("ssl_client_verify")(r) == "NONE"
    assert var("ssl_client_s_dn")(r) is None
    # a certificate of an unknown issuer: 495
    hs = handshake(t, client_ctx(certs, cert="rogue"), "a.test")
    r = request(c, t, hs, "a.test")
    assert check_request(r) == 495
    assert var("ssl_client_verify")(r) == "FAILED:self-signed certificate"
    # a good one
    hs = handshake(t, client_ctx(certs, cert="client"), "a.test")
    r = request(c, t, hs, "a.test")
    assert check_request(r) == 0
    assert var("ssl_client_verify")(r) == "SUCCESS"
    assert var("ssl_client_s_dn")(r) == "CN=client one,O=Clients\\, Inc."
    assert var("ssl_client_i_dn")(r) == "CN=Portico Test CA,O=Portico"
    assert var("ssl_client_serial")(r) == "1234ABCD"
    with open(certs["client.crt"]) as f:
        pem = f.read()
    assert var("ssl_client_raw_cert")(r) == pem
    assert var("ssl_client_cert")(r) == pem[:-1].replace("\n", "\n\t")
    assert var("ssl_client_escaped_cert")(r).startswith("-----BEGIN%20CERTIFICATE-----%0A")
    import hashlib
    import ssl
    assert var("ssl_client_fingerprint")(r) == hashlib.sha1(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT", var("ssl_client_v_end")(r))
    assert var("ssl_client_v_start")(r).endswith(" GMT")
    assert var("ssl_client_v_remain")(r) in ("28", "29")
    assert var("ssl_protocol")(r) == "TLSv1.3"
    assert var("ssl_cipher")(r) == hs.server.cipher()[0]
    assert var("ssl_server_name")(r) == "a.test"
    assert var("ssl_curve")(r) in ("X25519", "prime256v1", "secp384r1")
    assert "TLS_AES_256_GCM_SHA384" in var("ssl_ciphers")(r).split(":")
    assert var("ssl_curves")(r)
    assert var("ssl_early_data")(r) is None
    assert var("https")(r) == "on"
    err = capfd.readouterr().err
    assert "[info]" not in err  # info is below the default error_log level


def test_verify_optional_no_ca(tmp_path, certs) -> None:
    c = load(tmp_path, _conf(certs, "optional_no_ca"))
    t = table_of(c, 8443)
    hs = handshake(t, client_ctx(certs, cert="rogue"), "a.test")
    r = request(c, t, hs, "a.test")
    assert check_request(r) == 0
    assert c.http.variables.getter("ssl_client_verify")(r) == "FAILED:self-signed certificate"
    hs = handshake(t, client_ctx(certs), "a.test")
    assert check_request(request(c, t, hs, "a.test")) == 0  # no certificate is fine


def test_verify_optional(tmp_path, certs) -> None:
    c = load(tmp_path, _conf(certs, "optional"))
    t = table_of(c, 8443)
    assert check_request(request(c, t, handshake(t, client_ctx(certs), "a.test"), "a.test")) == 0
    hs = handshake(t, client_ctx(certs, cert="rogue"), "a.test")
    assert check_request(request(c, t, hs, "a.test")) == 495


def test_misdirected_request(tmp_path, certs) -> None:
    c = load(tmp_path, _conf(certs, "on"))
    t = table_of(c, 8443)
    # negotiated b.test (no verification), Host a.test (verification): 421
    hs = handshake(t, client_ctx(certs), "b.test")
    assert check_request(request(c, t, hs, "a.test")) == 421
    # the other way round: the Host's server does not verify: no 421
    hs = handshake(t, client_ctx(certs, cert="client"), "a.test")
    assert check_request(request(c, t, hs, "b.test")) == 0
    # an unknown SNI name negotiates no server: no 421
    hs = handshake(t, client_ctx(certs, cert="client"), "zzz.test")
    assert check_request(request(c, t, hs, "a.test")) == 0


def test_plain_connection_variables(tmp_path, certs) -> None:
    c = load(tmp_path, _conf(certs, "off"))
    t = table_of(c, 8443)
    r = Request(Conn(None), c.http, "GET", "/", "/", "", "HTTP/1.1", [], {}, "")
    r.server = t.default
    assert check_request(r) == 0
    for name in ("ssl_protocol", "ssl_client_verify", "ssl_server_name", "ssl_session_reused"):
        assert c.http.variables.getter(name)(r) is None
