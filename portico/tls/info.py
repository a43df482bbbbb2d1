"""What nginx's ``$ssl_*`` variables read from a connection, computed from
the ``ssl.SSLObject`` of a finished handshake, in nginx's exact formats
(ngx_ssl_get_* in ngx_event_openssl.c).

Invariants:
- Every function takes the SSLObject and returns ``str`` or None (nginx's
  "not found": an empty value).  Values about the client certificate are
  None when the client sent none.
- Hex dumps are lower case (ngx_hex_dump); DNs use ``XN_FLAG_RFC2253``
  (nginx >= 1.11.6); ``$ssl_client_cert`` prefixes continuation lines with
  a tab and drops the final newline; times are ``ASN1_TIME_print``'s.
- Without the OpenSSL bridge the values Python's ``ssl`` can give are still
  given (protocol, cipher, ALPN, server name, reuse); the others are None.
"""
from __future__ import annotations

import ctypes
import email.utils
import time
from ctypes import byref, c_uint, c_void_p
from typing import Any, Callable

from . import openssl as osl

__all__ = ["GETTERS", "peer_verify_result", "peer_has_cert", "verify_error_string"]

_Getter = Callable[[Any], "str | None"]


def _b() -> osl.Bridge | None:
    return osl.load()


def protocol(obj: Any) -> str | None:
    return obj.version()


def cipher(obj: Any) -> str | None:
    c = obj.cipher()
    return c[0] if c else None


def ciphers(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return None
    sp = b.ssl_ptr(obj)
    raw = c_void_p()
    n = b.SSL_ctrl(sp, osl.SSL_CTRL_GET_RAW_CIPHERLIST, 0, byref(raw))
    if n <= 0 or not raw.value:
        return None
    data = ctypes.string_at(raw.value, n)
    out = []
    for i in range(0, n - 1, 2):
        c = b.SSL_CIPHER_find(sp, data[i:i + 2])
        if c:
            out.append(b.SSL_CIPHER_get_name(c).decode())
        else:
            out.append("0x" + data[i:i + 2].hex())
    return ":".join(out) or None


def _group_name(b: osl.Bridge, nid: int) -> str:
    if nid & osl.TLSEXT_NID_UNKNOWN:
        return f"0x{nid & 0xFFFF:04x}"
    sn = b.OBJ_nid2sn(nid)
    return sn.decode() if sn else f"0x{nid & 0xFFFF:04x}"


def curve(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return None
    nid = b.SSL_ctrl(b.ssl_ptr(obj), osl.SSL_CTRL_GET_NEGOTIATED_GROUP, 0, None)
    return _group_name(b, nid) if nid > 0 else None


def curves(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return None
    sp = b.ssl_ptr(obj)
    n = b.SSL_ctrl(sp, osl.SSL_CTRL_GET_GROUPS, 0, None)
    if n <= 0:
        return None
    arr = (ctypes.c_int * n)()
    n = b.SSL_ctrl(sp, osl.SSL_CTRL_GET_GROUPS, 0, arr)
    return ":".join(_group_name(b, arr[i]) for i in range(n)) or None


def session_id(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return None
    sess = b.SSL_get_session(b.ssl_ptr(obj))
    if not sess:
        return None
    ln = c_uint()
    p = b.SSL_SESSION_get_id(sess, byref(ln))
    return ctypes.string_at(p, ln.value).hex() if ln.value else None


def session_reused(obj: Any) -> str:
    return "r" if obj.session_reused else "."


def early_data(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return None
    return "1" if not b.SSL_is_init_finished(b.ssl_ptr(obj)) else None


def server_name(obj: Any) -> str | None:
    b = _b()
    if b is None:
        return getattr(obj, "portico_sni", None)
    name = b.SSL_get_servername(b.ssl_ptr(obj), 0)
    return name.decode("utf-8", "surrogateescape") if name else None


def alpn_protocol(obj: Any) -> str | None:
    return obj.selected_alpn_protocol()


# --- the client certificate ------------------------------------------------------------------

def _with_peer(fn: Callable[[osl.Bridge, int], "str | None"]) -> _Getter:
    def get(obj: Any) -> str | None:
        b = _b()
        if b is None:
            return None
        cert = b.SSL_get1_peer_certificate(b.ssl_ptr(obj))
        if not cert:
            return None
        try:
            return fn(b, cert)
        finally:
            b.X509_free(cert)
    return get


def _raw_pem(b: osl.Bridge, cert: int) -> str | None:
    return b.mem_bio_text(lambda bio: b.PEM_write_bio_X509(bio, cert) != 0)


def _cert(b: osl.Bridge, cert: int) -> str | None:
    pem = _raw_pem(b, cert)
    if not pem:
        return None
    return pem[:-1].replace("\n", "\n\t")


# ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT): everything but unreserved and a few
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escaped(b: osl.Bridge, cert: int) -> str | None:
    pem = _raw_pem(b, cert)
    if not pem:
        return None
    return "".join(chr(c) if c in _KEEP else f"%{c:02X}" for c in pem.encode())


def _dn(which: str) -> Callable[[osl.Bridge, int], "str | None"]:
    def get(b: osl.Bridge, cert: int) -> str | None:
        name = b.X509_get_subject_name(cert) if which == "s" else b.X509_get_issuer_name(cert)
        if not name:
            return None
        return b.mem_bio_text(lambda bio: b.X509_NAME_print_ex(bio, name, 0, osl.XN_FLAG_RFC2253) >= 0)
    return get


def _serial(b: osl.Bridge, cert: int) -> str | None:
    return b.mem_bio_text(lambda bio: b.i2a_ASN1_INTEGER(bio, b.X509_get_serialNumber(cert)))


def _fingerprint(b: osl.Bridge, cert: int) -> str | None:
    import hashlib
    n = b.i2d_X509(cert, None)
    buf = ctypes.create_string_buffer(n)
    p = c_void_p(ctypes.addressof(buf))
    b.i2d_X509(cert, byref(p))
    return hashlib.sha1(buf.raw).hexdigest()


def _time(which: str) -> Callable[[osl.Bridge, int], "str | None"]:
    def get(b: osl.Bridge, cert: int) -> str | None:
        t = b.X509_get0_notBefore(cert) if which == "start" else b.X509_get0_notAfter(cert)
        return b.mem_bio_text(lambda bio: b.ASN1_TIME_print(bio, t))
    return get


def _remain(b: osl.Bridge, cert: int) -> str | None:
    text = _time("end")(b, cert)
    if not text:
        return None
    try:  # ngx_ssl_parse_time: "MMM DD HH:MM:SS YYYY GMT" read as an HTTP date
        parts = text.split()
        end = email.utils.parsedate_to_datetime(
            f"Tue, {parts[1]} {parts[0]} {parts[3]} {parts[2]} GMT").timestamp()
    except (ValueError, IndexError, TypeError):
        return None
    now = time.time()
    if end < now + 86400:
        return "0"
    return str(int((end - now) // 86400))


def verify_error_string(rc: int) -> str:
    b = _b()
    if b is None:
        return "certificate verify failed"
    s = b.X509_verify_cert_error_string(rc)
    return s.decode() if s else "unknown"


def peer_has_cert(obj: Any) -> bool:
    b = _b()
    if b is None:
        return obj.getpeercert(True) is not None
    cert = b.SSL_get1_peer_certificate(b.ssl_ptr(obj))
    if cert:
        b.X509_free(cert)
        return True
    return False


def peer_verify_result(obj: Any) -> int:
    b = _b()
    if b is None:
        return 0
    return int(b.SSL_get_verify_result(b.ssl_ptr(obj)))


def client_verify(obj: Any) -> str:
    if not peer_has_cert(obj):
        return "NONE"
    rc = peer_verify_result(obj)
    if rc == 0:
        return "SUCCESS"
    return f"FAILED:{verify_error_string(rc)}"


#: variable name (without ``ssl_``) -> getter of an SSLObject
GETTERS: dict[str, _Getter] = {
    "protocol": protocol,
    "cipher": cipher,
    "ciphers": ciphers,
    "curve": curve,
    "curves": curves,
    "session_id": session_id,
    "session_reused": session_reused,
    "early_data": early_data,
    "server_name": server_name,
    "alpn_protocol": alpn_protocol,
    "client_cert": _with_peer(_cert),
    "client_raw_cert": _with_peer(_raw_pem),
    "client_escaped_cert": _with_peer(_escaped),
    "client_s_dn": _with_peer(_dn("s")),
    "client_i_dn": _with_peer(_dn("i")),
    "client_serial": _with_peer(_serial),
    "client_fingerprint": _with_peer(_fingerprint),
    "client_verify": client_verify,
    "client_v_start": _with_peer(_time("start")),
    "client_v_end": _with_peer(_time("end")),
    "client_v_remain": _with_peer(_remain),
}
