"""Test certificates on demand for integration tests and benches: a CA,
server certificates (RSA and ECDSA) and client certificates, built with the
helpers of tests/tls/certs.py (the ``cryptography`` package).

Invariants:
- Everything lives in one temporary directory per process; nothing is committed.
- ``server_cert(name)`` certificates carry ``name`` as CN and as a DNS
  subjectAltName, signed by the test CA; ``client_cert(name, ca=...)`` are
  signed by the named CA ("ca" is trusted by the tests' servers, "rogue" not).
- Files are world-readable: workers of a server started as root run as nobody.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from cryptography.hazmat.primitives import serialization

from tls.certs import cert, name, new_key, pem_key, write

_DIR: str | None = None
_CAS: dict[str, tuple[Any, Any]] = {}  # CA name -> (certificate, key)


def _dir() -> str:
    global _DIR
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="portico-pki-")
        os.chmod(_DIR, 0o755)
    return _DIR


def _ca(ca: str) -> tuple[Any, Any]:
    if ca not in _CAS:
        key = new_key("ec")
        subject = name(f"Portico Test {ca.upper()}")
        crt = cert(subject, key, subject, key, ca=True)
        write(_dir(), f"{ca}.crt", crt.public_bytes(serialization.Encoding.PEM))
        _CAS[ca] = (crt, key)
    return _CAS[ca]


def _issue(stem: str, cn: str, ca: str, kind: str, **kw: Any) -> tuple[str, str]:
    d = _dir()
    crt_path, key_path = os.path.join(d, f"{stem}.crt"), os.path.join(d, f"{stem}.key")
    if not os.path.exists(crt_path):
        ca_crt, ca_key = _ca(ca)
        key = new_key(kind)
        c = cert(name(cn, "Portico Tests"), key, ca_crt.subject, ca_key, **kw)
        write(d, f"{stem}.key", pem_key(key))
        write(d, f"{stem}.crt", c.public_bytes(serialization.Encoding.PEM))
        os.chmod(key_path, 0o644)
    return crt_path, key_path


def server_cert(host: str, kind: str = "ec") -> tuple[str, str]:
    """(certificate, key) paths for a server name; kind "ec" or "rsa"."""
    return _issue(f"{host}@{kind}", host, "ca", kind, sans=[host])


def client_cert(cn: str, ca: str = "ca") -> tuple[str, str]:
    return _issue(f"{cn}@client-{ca}", cn, ca, "ec", client=True)


def ca_cert(ca: str = "ca") -> str:
    _ca(ca)
    return os.path.join(_dir(), f"{ca}.crt")
