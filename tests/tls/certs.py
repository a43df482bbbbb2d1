"""Test certificates made on the fly (never committed): a CA, server
certificates (RSA and ECDSA), client certificates signed by the CA or
self-signed.

Invariant: every file is written under the directory given to ``make_all``;
private keys are unencrypted except ``enc.key`` (password ``secret``).
"""
from __future__ import annotations

import datetime
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def new_key(kind: str) -> Any:
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def cert(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool = False,
          sans: list[str] | None = None, client: bool = False, serial: int | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(serial or x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    if client:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write(d: str, name: str, data: bytes) -> str:
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def pem_key(key: Any, password: bytes | None = None) -> bytes:
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def make_all(d: str) -> dict[str, str]:
    """Write the set into ``d``; returns name -> path."""
    out: dict[str, str] = {}
    ca_key = new_key("rsa")
    ca_name = name("Portico Test CA", "Portico")
    ca = cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    out["ca.crt"] = write(d, "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    for host, kind in (("a.test", "rsa"), ("b.test", "rsa"), ("a.test", "ec")):
        k = new_key(kind)
        c = cert(name(host), k, ca_name, ca_key, sans=[host])
        stem = f"{host}-{kind}"
        out[f"{stem}.crt"] = write(d, f"{stem}.crt", c.public_bytes(serialization.Encoding.PEM))
        out[f"{stem}.key"] = write(d, f"{stem}.key", pem_key(k))
    k = new_key("rsa")
    c = cert(name("client one", "Clients, Inc."), k, ca_name, ca_key, client=True, serial=0x1234ABCD)
    out["client.crt"] = write(d, "client.crt", c.public_bytes(serialization.Encoding.PEM))
    out["client.key"] = write(d, "client.key", pem_key(k))
    k = new_key("rsa")
    c = cert(name("rogue"), k, name("rogue"), k, client=True)
    out["rogue.crt"] = write(d, "rogue.crt", c.public_bytes(serialization.Encoding.PEM))
    out["rogue.key"] = write(d, "rogue.key", pem_key(k))
    k = new_key("rsa")
    c = cert(name("enc.test"), k, ca_name, ca_key, sans=["enc.test"])
    out["enc.crt"] = write(d, "enc.crt", c.public_bytes(serialization.Encoding.PEM))
    out["enc.key"] = write(d, "enc.key", pem_key(k, b"secret"))
    out["passwords"] = write(d, "passwords", b"wrong\n\nsecret\n")
    out["ticket80"] = write(d, "ticket80", os.urandom(80))
    out["ticket48"] = write(d, "ticket48", os.urandom(48))
    return out
