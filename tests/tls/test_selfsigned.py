"""``portico --self-signed-cert`` and the ``-V`` line."""
from __future__ import annotations

import os
import ssl

from portico.cli import main
from portico.modules import configure_arguments

from .conftest import handshake, load, table_of


def test_self_signed_pair_serves_the_example(tmp_path) -> None:
    assert main(["--self-signed-cert", "-p", str(tmp_path), "localhost", "example.test"]) == 0
    crt, key = tmp_path / "conf" / "portico.crt", tmp_path / "conf" / "portico.key"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert main(["--self-signed-cert", "-p", str(tmp_path)]) == 1  # never overwrites
    c = load(tmp_path, f"server {{ listen 127.0.0.1:8443 ssl; ssl_certificate {crt}; ssl_certificate_key {key}; }}")
    cc = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cc.load_verify_locations(str(crt))
    hs = handshake(table_of(c, 8443), cc, "example.test")  # hostname checked by the client
    assert hs.client.version() == "TLSv1.3"


def test_configure_arguments_has_ssl() -> None:
    assert "--with-http_ssl_module" in configure_arguments().split()
