"""A first-run certificate: ``portico --self-signed-cert [-p PREFIX] [NAME ...]``
writes ``conf/portico.crt`` and ``conf/portico.key`` under the prefix, for
the HTTPS example of the bundled configuration (conf/https.conf.example).

Invariants:
- The option is a long one that nginx's single-letter parser never
  accepts, so it cannot change the meaning of any nginx command line; it
  must come first and is handled before nginx's options are parsed.
- Existing files are never overwritten: the command says so and exits 1.
- The key is an unencrypted ECDSA P-256 key written with mode 0600; the
  certificate is self-signed for one year with the names given
  (default ``localhost``, plus 127.0.0.1 and ::1 as IP SANs).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import sys

__all__ = ["OPTION", "make", "main"]

OPTION = "--self-signed-cert"


def make(cert_path: str, key_path: str, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "xb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def main(args: list[str], default_prefix: str) -> int:
    prefix = default_prefix
    names: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-p" and i + 1 < len(args):
            prefix = args[i + 1]
            i += 2
            continue
        if a.startswith("-"):
            sys.stderr.write(f"portico: usage: portico {OPTION} [-p prefix] [name ...]\n")
            return 1
        names.append(a)
        i += 1
    conf = os.path.join(os.path.abspath(prefix), "conf")
    cert, key = os.path.join(conf, "portico.crt"), os.path.join(conf, "portico.key")
    for p in (cert, key):
        if os.path.exists(p):
            sys.stderr.write(f'portico: "{p}" exists, not overwritten\n')
            return 1
    os.makedirs(conf, exist_ok=True)
    make(cert, key, names or ["localhost"])
    sys.stderr.write(f'portico: wrote "{cert}" and "{key}" (self-signed for {", ".join(names or ["localhost"])})\n')
    return 0
