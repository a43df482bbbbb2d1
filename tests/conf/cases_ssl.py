"""ngx_http_ssl_module configurations compared against ``nginx -t``.

Invariants: ids start with ``ok_`` or ``err_`` by nginx's outcome.  The
oracle is Debian's nginx 1.22 while Portico follows 1.29, so only what the
two versions say alike is here (not: the removed ``ssl on``, the
``ssl_verify_client`` without a CA message, CA/CRL/dhparam parse errors,
whose wording changed).  The certificate and key are made once per run
(never stored in the repository); the same OpenSSL 3.0 is used by both
programs, so its error strings agree.
"""
from __future__ import annotations

import datetime


from .cases import EV, Case


def _pair() -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conf.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


CERT, KEY = _pair()
F = {"c.pem": CERT, "k.pem": KEY}
PAIR = "ssl_certificate c.pem;\nssl_certificate_key k.pem;\n"


def tls(body: str, http: str = "") -> str:
    """An ssl server on 127.0.0.1:8443 with the pair; ``body`` starts on line 7."""
    return f"events {{}}\nhttp {{\n{http}\nserver {{\nlisten 127.0.0.1:8443 ssl;\n{PAIR}{body}\n}}\n}}\n"


def bare(body: str) -> str:
    """An ssl server without certificates; ``body`` starts on line 5."""
    return f"events {{}}\nhttp {{\nserver {{\nlisten 127.0.0.1:8443 ssl;\n{body}\n}}\n}}\n"


CASES: list[Case] = [
    Case("ok_ssl_minimal", tls(""), F),
    Case("ok_ssl_all_directives", tls(
        "ssl_protocols TLSv1.2 TLSv1.3;\nssl_ciphers HIGH:!aNULL;\nssl_prefer_server_ciphers on;\n"
        "ssl_ecdh_curve X25519:prime256v1;\nssl_session_cache builtin:1000 shared:SSL:1m;\n"
        "ssl_session_timeout 10m;\nssl_session_tickets off;\nssl_buffer_size 4k;\n"
        "ssl_verify_client optional_no_ca;\nssl_verify_depth 2;\nssl_trusted_certificate c.pem;\n"
        "ssl_client_certificate c.pem;\nssl_early_data on;\nssl_conf_command Options -SessionTicket;\n"
        "ssl_reject_handshake off;\nssl_ocsp off;\nssl_ocsp_cache shared:OCSP:1m;\n"
        "ssl_stapling_verify on;\nssl_password_file pw;"), {**F, "pw": "a\n\nb\n"}),
    Case("ok_ssl_http_level_pair", f"events {{}}\nhttp {{\n{PAIR}server {{\nlisten 127.0.0.1:8443 ssl;\n}}\n}}\n", F),
    Case("ok_ssl_pair_without_ssl_listen", f"events {{}}\nhttp {{\nserver {{\nlisten 127.0.0.1:8080;\n{PAIR}}}\n}}\n", F),
    Case("ok_ssl_reject_default", "events {}\nhttp {\nserver {\nlisten 127.0.0.1:8443 ssl default_server;\n"
         "ssl_reject_handshake on;\n}\nserver {\nlisten 127.0.0.1:8443 ssl;\nserver_name a;\n" + PAIR + "}\n}\n", F),
    Case("ok_ssl_variables_in_certificate", bare("ssl_certificate $ssl_server_name.pem;\n"
                                                 "ssl_certificate_key $ssl_server_name.key;"), F),
    Case("ok_ssl_ticket_keys", tls("ssl_session_ticket_key t80;\nssl_session_ticket_key t48;"),
         {**F, "t80": "x" * 80, "t48": "y" * 48}),
    Case("ok_ssl_protocols_duplicate_value_warns", tls("ssl_protocols TLSv1.2 tlsv1.2;"), F),
    Case("ok_ssl_two_pairs_same_server", tls(PAIR), F),
    Case("err_ssl_no_certificate", bare(""), F),
    Case("err_ssl_no_certificate_second_server", "events {}\nhttp {\nssl_reject_handshake on;\n"
         "server {\nlisten 127.0.0.1:8443 ssl;\n}\nserver {\nlisten 127.0.0.1:8443 ssl;\n"
         "ssl_reject_handshake off;\n}\n}\n", F),
    Case("err_ssl_no_key", bare("ssl_certificate c.pem;"), F),
    Case("err_ssl_fewer_keys", bare(PAIR + "ssl_certificate c.pem;"), F),
    Case("err_ssl_certificate_missing", bare("ssl_certificate nope.pem;\nssl_certificate_key k.pem;"), F),
    Case("err_ssl_key_missing", bare("ssl_certificate c.pem;\nssl_certificate_key nope.pem;"), F),
    Case("err_ssl_certificate_is_a_key", bare("ssl_certificate k.pem;\nssl_certificate_key k.pem;"), F),
    Case("err_ssl_key_is_a_certificate", bare("ssl_certificate c.pem;\nssl_certificate_key c.pem;"), F),
    Case("err_ssl_ciphers", tls("ssl_ciphers FOO;"), F),
    Case("err_ssl_ciphers_duplicate", tls("ssl_ciphers HIGH;\nssl_ciphers HIGH;"), F),
    Case("err_ssl_protocols_invalid", tls("ssl_protocols TLSv1.2 TLSv1.4;"), F),
    Case("ok_ssl_protocols_twice_add_up", tls("ssl_protocols TLSv1.2;\nssl_protocols TLSv1.3;"), F),
    Case("err_ssl_ecdh_curve", tls("ssl_ecdh_curve nosuchcurve;"), F),
    Case("err_ssl_session_cache_too_small", tls("ssl_session_cache shared:S:1k;"), F),
    Case("err_ssl_session_cache_builtin_number", tls("ssl_session_cache builtin:abc;"), F),
    Case("err_ssl_session_cache_no_name", tls("ssl_session_cache shared::1m;"), F),
    Case("err_ssl_session_cache_no_size", tls("ssl_session_cache shared:S;"), F),
    Case("err_ssl_session_cache_unknown", tls("ssl_session_cache on;"), F),
    Case("err_ssl_session_cache_three_args", tls("ssl_session_cache none off builtin;"), F),
    Case("err_ssl_session_zone_size_conflict", tls("ssl_session_cache shared:Z:1m;",
                                                    http="limit_req_zone $uri zone=Z:2m rate=1r/s;"), F),
    Case("err_ssl_session_zone_other_use", tls("ssl_session_cache shared:Z:1m;",
                                                http="limit_req_zone $uri zone=Z:1m rate=1r/s;"), F),
    Case("err_ssl_ocsp_cache_invalid", tls("ssl_ocsp_cache private:O:1m;"), F),
    Case("err_ssl_ocsp_cache_too_small", tls("ssl_ocsp_cache shared:O:10k;"), F),
    Case("err_ssl_ticket_key_size", tls("ssl_session_ticket_key c.pem;"), F),
    Case("err_ssl_ticket_key_missing_reports_http_end", tls("ssl_session_ticket_key nope;\n\n"), F),
    Case("err_ssl_conf_command_unknown", tls("ssl_conf_command NoSuchCommand x;"), F),
    Case("err_ssl_conf_command_bad_value", tls("ssl_conf_command Options NoSuchOption;"), F),
    Case("err_ssl_conf_command_one_arg", tls("ssl_conf_command Options;"), F),
    Case("err_ssl_password_file_missing", tls("ssl_password_file nope;"), F),
    Case("err_ssl_password_file_duplicate", tls("ssl_password_file pw;\nssl_password_file pw;"), {**F, "pw": "x\n"}),
    Case("err_ssl_ocsp_with_optional_no_ca", tls("ssl_verify_client optional_no_ca;\nssl_ocsp on;"), F),
    Case("err_ssl_verify_client_invalid", tls("ssl_verify_client maybe;"), F),
    Case("err_ssl_verify_depth_invalid", tls("ssl_verify_depth deep;"), F),
    Case("err_ssl_buffer_size_invalid", tls("ssl_buffer_size big;"), F),
    Case("err_ssl_session_timeout_invalid", tls("ssl_session_timeout 1x;"), F),
    Case("err_ssl_stapling_not_flag", tls("ssl_stapling yes;"), F),
    Case("err_ssl_dhparam_missing", tls("ssl_dhparam nope.pem;"), F),
    Case("err_ssl_directive_in_location", tls("location / {\nssl_ciphers HIGH;\n}"), F),
    Case("err_ssl_directive_in_main", "ssl_protocols TLSv1.2;\n" + EV, F),
    Case("err_ssl_certificate_no_args", tls("ssl_certificate;"), F),
]


