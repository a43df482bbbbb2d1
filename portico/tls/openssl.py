"""A ctypes bridge to the OpenSSL that CPython's ``_ssl`` is linked with.

Python's ``ssl`` module cannot express several things nginx does with
OpenSSL: a verify callback that always accepts (nginx finishes the
handshake with a bad or missing client certificate and answers 400 at
request time), session ticket key callbacks, an external session cache,
``SSL_CONF_cmd``, certificates loaded from memory (``data:``), and nginx's
wording of OpenSSL errors.  This module reaches the same libssl/libcrypto
objects Python's ``ssl`` uses.

Invariants:
- The libraries are the ones already mapped into the process by ``_ssl``
  (found in /proc/self/maps), so ``ctypes.CDLL`` returns the same handles:
  an ``SSL_CTX*`` from Python and one from here are the same objects.
- ``SSL_CTX*`` is the first field after PyObject_HEAD in CPython's
  PySSLContext, ``SSL*`` the second one (after the socket weakref) in
  PySSLSocket (CPython 3.8-3.13 layout).  ``load()`` checks both layouts on
  live objects before anything uses them; when a check fails ``load()``
  returns None with the reason in ``unavailable_reason``, and a config
  that uses ssl is refused with ``[emerg] TLS is not available: REASON``
  (nginx's client-certificate and session semantics cannot be had without
  it, so there is no silent fallback).
- Every ``CFUNCTYPE`` object handed to OpenSSL is kept referenced by the
  ``Bridge`` (module lifetime) or by its owner object, never only by a
  local, or OpenSSL would call freed memory.
- ``error_text`` drains the OpenSSL error queue exactly like nginx's
  ``ngx_ssl_error``: ``MSG (SSL: err[:data] err[:data]...)``.
"""
from __future__ import annotations

import ctypes
import ssl
from ctypes import (CFUNCTYPE, POINTER, byref, c_char_p, c_int, c_long, c_size_t, c_ubyte,
                    c_uint, c_uint64, c_ulong, c_void_p)
from typing import Any

__all__ = ["Bridge", "load", "unavailable_reason", "VERIFY_CB", "PEM_PASSWORD_CB"]

# ssl.h / tls1.h constants (OpenSSL 3.0)
SSL_CTRL_MODE = 33
SSL_CTRL_SET_READ_AHEAD = 41
SSL_CTRL_SET_SESS_CACHE_SIZE = 42
SSL_CTRL_SET_SESS_CACHE_MODE = 44
SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB = 72
SSL_CTRL_CHAIN_CERT = 89
SSL_CTRL_GET_GROUPS = 90
SSL_CTRL_SET_GROUPS_LIST = 92
SSL_CTRL_GET_RAW_CIPHERLIST = 110
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
SSL_CTRL_GET_NEGOTIATED_GROUP = 134
BIO_CTRL_RESET = 1
BIO_CTRL_PENDING = 10

SSL_OP_IGNORE_UNEXPECTED_EOF = 1 << 7
SSL_OP_NO_TICKET = 1 << 14
SSL_OP_NO_COMPRESSION = 1 << 17
SSL_OP_CIPHER_SERVER_PREFERENCE = 1 << 22
SSL_OP_NO_ANTI_REPLAY = 1 << 24
SSL_OP_NO_SSLv3 = 1 << 25
SSL_OP_NO_TLSv1 = 1 << 26
SSL_OP_NO_TLSv1_2 = 1 << 27
SSL_OP_NO_TLSv1_1 = 1 << 28
SSL_OP_NO_TLSv1_3 = 1 << 29
SSL_OP_NO_RENEGOTIATION = 1 << 30
SSL_MODE_NO_AUTO_CHAIN = 0x8
SSL_MODE_RELEASE_BUFFERS = 0x10

SSL_SESS_CACHE_OFF = 0
SSL_SESS_CACHE_SERVER = 0x2
SSL_SESS_CACHE_NO_AUTO_CLEAR = 0x80
SSL_SESS_CACHE_NO_INTERNAL_LOOKUP = 0x100
SSL_SESS_CACHE_NO_INTERNAL_STORE = 0x200
SSL_SESS_CACHE_NO_INTERNAL = 0x300

SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1
SSL_CONF_FLAG_FILE = 0x2
SSL_CONF_FLAG_SERVER = 0x8
SSL_CONF_FLAG_SHOW_ERRORS = 0x10
SSL_CONF_FLAG_CERTIFICATE = 0x20
X509_V_FLAG_CRL_CHECK = 0x4
X509_V_FLAG_CRL_CHECK_ALL = 0x8
XN_FLAG_RFC2253 = 0x1110317  # ASN1_STRFLGS_RFC2253 | SEP_COMMA_PLUS | DN_REV | FN_SN | DUMP_UNKNOWN_FIELDS
ERR_TXT_STRING = 0x02
ERR_LIB_PEM = 9
PEM_R_NO_START_LINE = 108
TLSEXT_NID_UNKNOWN = 0x1000000
TLS1_3_VERSION = 0x0304

VERIFY_CB = CFUNCTYPE(c_int, c_int, c_void_p)
PEM_PASSWORD_CB = CFUNCTYPE(c_int, c_void_p, c_int, c_int, c_void_p)
NEW_SESSION_CB = CFUNCTYPE(c_int, c_void_p, c_void_p)
GET_SESSION_CB = CFUNCTYPE(c_void_p, c_void_p, POINTER(c_ubyte), c_int, POINTER(c_int))
REMOVE_SESSION_CB = CFUNCTYPE(None, c_void_p, c_void_p)
TICKET_KEY_CB = CFUNCTYPE(c_int, c_void_p, POINTER(c_ubyte), POINTER(c_ubyte), c_void_p, c_void_p, c_int)
GENERIC_CB = CFUNCTYPE(None)

# (name, restype, argtypes) of every function used; a missing one makes the
# whole bridge unavailable rather than failing later
_SSL_FUNCS: list[tuple[str, Any, list[Any]]] = [
    ("SSL_CTX_set_options", c_uint64, [c_void_p, c_uint64]),
    ("SSL_CTX_clear_options", c_uint64, [c_void_p, c_uint64]),
    ("SSL_CTX_get_options", c_uint64, [c_void_p]),
    ("SSL_CTX_ctrl", c_long, [c_void_p, c_int, c_long, c_void_p]),
    ("SSL_CTX_callback_ctrl", c_long, [c_void_p, c_int, c_void_p]),
    ("SSL_CTX_set_verify", None, [c_void_p, c_int, c_void_p]),
    ("SSL_CTX_set_verify_depth", None, [c_void_p, c_int]),
    ("SSL_CTX_get_verify_mode", c_int, [c_void_p]),
    ("SSL_CTX_get_verify_depth", c_int, [c_void_p]),
    ("SSL_CTX_get_verify_callback", c_void_p, [c_void_p]),
    ("SSL_CTX_set_cipher_list", c_int, [c_void_p, c_char_p]),
    ("SSL_CTX_use_certificate", c_int, [c_void_p, c_void_p]),
    ("SSL_CTX_use_PrivateKey", c_int, [c_void_p, c_void_p]),
    ("SSL_CTX_get_cert_store", c_void_p, [c_void_p]),
    ("SSL_CTX_add_client_CA", c_int, [c_void_p, c_void_p]),
    ("SSL_CTX_set_session_id_context", c_int, [c_void_p, c_char_p, c_uint]),
    ("SSL_CTX_set_timeout", c_long, [c_void_p, c_long]),
    ("SSL_CTX_get_timeout", c_long, [c_void_p]),
    ("SSL_CTX_sess_set_new_cb", None, [c_void_p, c_void_p]),
    ("SSL_CTX_sess_set_get_cb", None, [c_void_p, c_void_p]),
    ("SSL_CTX_sess_set_remove_cb", None, [c_void_p, c_void_p]),
    ("SSL_CTX_remove_session", c_int, [c_void_p, c_void_p]),
    ("SSL_CTX_set0_tmp_dh_pkey", c_int, [c_void_p, c_void_p]),
    ("SSL_CONF_CTX_new", c_void_p, []),
    ("SSL_CONF_CTX_set_flags", c_uint, [c_void_p, c_uint]),
    ("SSL_CONF_CTX_set_ssl_ctx", None, [c_void_p, c_void_p]),
    ("SSL_CONF_cmd", c_int, [c_void_p, c_char_p, c_char_p]),
    ("SSL_CONF_CTX_finish", c_int, [c_void_p]),
    ("SSL_CONF_CTX_free", None, [c_void_p]),
    ("SSL_get_SSL_CTX", c_void_p, [c_void_p]),
    ("SSL_get_verify_result", c_long, [c_void_p]),
    ("SSL_get1_peer_certificate", c_void_p, [c_void_p]),
    ("SSL_set_verify", None, [c_void_p, c_int, c_void_p]),
    ("SSL_set_verify_depth", None, [c_void_p, c_int]),
    ("SSL_get_options", c_uint64, [c_void_p]),
    ("SSL_set_options", c_uint64, [c_void_p, c_uint64]),
    ("SSL_clear_options", c_uint64, [c_void_p, c_uint64]),
    ("SSL_ctrl", c_long, [c_void_p, c_int, c_long, c_void_p]),
    ("SSL_get_session", c_void_p, [c_void_p]),
    ("SSL_get_servername", c_char_p, [c_void_p, c_int]),
    ("SSL_version", c_int, [c_void_p]),
    ("SSL_is_init_finished", c_int, [c_void_p]),
    ("SSL_CIPHER_find", c_void_p, [c_void_p, c_void_p]),
    ("SSL_CIPHER_get_name", c_char_p, [c_void_p]),
    ("SSL_SESSION_get_id", c_void_p, [c_void_p, POINTER(c_uint)]),
    ("SSL_SESSION_get_time", c_long, [c_void_p]),
    ("SSL_SESSION_get_timeout", c_long, [c_void_p]),
    ("SSL_SESSION_free", None, [c_void_p]),
    ("i2d_SSL_SESSION", c_int, [c_void_p, c_void_p]),
    ("d2i_SSL_SESSION", c_void_p, [c_void_p, c_void_p, c_long]),
]
_CRYPTO_FUNCS: list[tuple[str, Any, list[Any]]] = [
    ("ERR_peek_error", c_ulong, []),
    ("ERR_peek_last_error", c_ulong, []),
    ("ERR_peek_error_data", c_ulong, [POINTER(c_char_p), POINTER(c_int)]),
    ("ERR_get_error", c_ulong, []),
    ("ERR_error_string_n", None, [c_ulong, c_char_p, c_size_t]),
    ("ERR_clear_error", None, []),
    ("BIO_new_file", c_void_p, [c_char_p, c_char_p]),
    ("BIO_new_mem_buf", c_void_p, [c_void_p, c_int]),
    ("BIO_s_mem", c_void_p, []),
    ("BIO_new", c_void_p, [c_void_p]),
    ("BIO_free", c_int, [c_void_p]),
    ("BIO_read", c_int, [c_void_p, c_void_p, c_int]),
    ("BIO_write", c_int, [c_void_p, c_void_p, c_int]),
    ("BIO_ctrl", c_long, [c_void_p, c_int, c_long, c_void_p]),
    ("PEM_read_bio_X509_AUX", c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
    ("PEM_read_bio_X509", c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
    ("PEM_read_bio_X509_CRL", c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
    ("PEM_read_bio_PrivateKey", c_void_p, [c_void_p, c_void_p, c_void_p, c_void_p]),
    ("PEM_read_bio_Parameters", c_void_p, [c_void_p, c_void_p]),
    ("PEM_write_bio_X509", c_int, [c_void_p, c_void_p]),
    ("X509_free", None, [c_void_p]),
    ("X509_CRL_free", None, [c_void_p]),
    ("EVP_PKEY_free", None, [c_void_p]),
    ("X509_STORE_add_cert", c_int, [c_void_p, c_void_p]),
    ("X509_STORE_add_crl", c_int, [c_void_p, c_void_p]),
    ("X509_STORE_set_flags", c_int, [c_void_p, c_ulong]),
    ("X509_get_subject_name", c_void_p, [c_void_p]),
    ("X509_get_issuer_name", c_void_p, [c_void_p]),
    ("X509_NAME_print_ex", c_int, [c_void_p, c_void_p, c_int, c_ulong]),
    ("X509_get_serialNumber", c_void_p, [c_void_p]),
    ("i2a_ASN1_INTEGER", c_int, [c_void_p, c_void_p]),
    ("X509_get0_notBefore", c_void_p, [c_void_p]),
    ("X509_get0_notAfter", c_void_p, [c_void_p]),
    ("ASN1_TIME_print", c_int, [c_void_p, c_void_p]),
    ("X509_verify_cert_error_string", c_char_p, [c_long]),
    ("i2d_X509", c_int, [c_void_p, c_void_p]),
    ("OBJ_nid2sn", c_char_p, [c_int]),
    ("EVP_aes_128_cbc", c_void_p, []),
    ("EVP_aes_256_cbc", c_void_p, []),
    ("EVP_sha256", c_void_p, []),
    ("EVP_EncryptInit_ex", c_int, [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]),
    ("EVP_DecryptInit_ex", c_int, [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p]),
    ("HMAC_Init_ex", c_int, [c_void_p, c_void_p, c_int, c_void_p, c_void_p]),
    ("RAND_bytes", c_int, [c_void_p, c_int]),
]


def _mapped_lib(stem: str) -> str | None:
    """The path of ``libssl.so.3``/``libcrypto.so.3`` as mapped by ``_ssl``."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1] if line.count(" ") >= 5 else ""
                name = path.rsplit("/", 1)[-1]
                if name.startswith(stem + ".so"):
                    return path
    except OSError:
        pass
    return None


class Bridge:
    """The loaded libraries, with typed functions as attributes."""

    def __init__(self, libssl: Any, libcrypto: Any) -> None:
        self.ssl = libssl
        self.crypto = libcrypto
        for lib, table in ((libssl, _SSL_FUNCS), (libcrypto, _CRYPTO_FUNCS)):
            for name, res, args in table:
                fn = getattr(lib, name)
                fn.restype = res
                fn.argtypes = args
                setattr(self, name, fn)
        # nginx's ngx_ssl_verify_callback: accept, decide at request time
        self.accept_all = VERIFY_CB(lambda ok, store: 1)
        self.accept_all_ptr = ctypes.cast(self.accept_all, c_void_p).value
        self.keep: list[Any] = []  # callbacks owned by contexts that live as long as the process

    # --- pointers behind Python objects -------------------------------------------------
    @staticmethod
    def ctx_ptr(ctx: ssl.SSLContext) -> int:
        return c_void_p.from_address(id(ctx) + _HEAD).value or 0

    @staticmethod
    def ssl_ptr(obj: Any) -> int:
        """``SSL*`` of an ``ssl.SSLObject`` (or of its ``_sslobj``)."""
        inner = getattr(obj, "_sslobj", obj)
        return c_void_p.from_address(id(inner) + _HEAD + ctypes.sizeof(c_void_p)).value or 0

    # --- errors -----------------------------------------------------------------------------
    def error_text(self, msg: str) -> str:
        """``msg`` followed by the drained OpenSSL error queue, as ngx_ssl_error."""
        if not self.ERR_peek_error():
            return msg
        parts: list[str] = []
        data = c_char_p()
        flags = c_int()
        buf = ctypes.create_string_buffer(256)
        while True:
            n = self.ERR_peek_error_data(byref(data), byref(flags))
            if n == 0:
                break
            self.ERR_error_string_n(n, buf, 256)
            s = buf.value.decode("utf-8", "replace")
            d = data.value
            if d and flags.value & ERR_TXT_STRING:
                s += ":" + d.decode("utf-8", "replace")
            parts.append(s)
            self.ERR_get_error()
        return f"{msg} (SSL: {' '.join(parts)})"

    def clear_errors(self) -> None:
        self.ERR_clear_error()

    # --- BIO helpers ----------------------------------------------------------------------------
    def bio_for(self, source: str) -> tuple[int, Any]:
        """A read BIO over a file path or ``data:...`` text; (bio, keepalive)."""
        if source.startswith("data:"):
            raw = source[5:].encode("utf-8", "surrogateescape")
            buf = ctypes.create_string_buffer(raw, len(raw))
            return self.BIO_new_mem_buf(buf, len(raw)) or 0, buf
        return self.BIO_new_file(source.encode("utf-8", "surrogateescape"), b"r") or 0, None

    def mem_bio_text(self, write: Any) -> str | None:
        """Run ``write(bio)`` on a fresh memory BIO and return what it wrote."""
        bio = self.BIO_new(self.BIO_s_mem())
        if not bio:
            return None
        try:
            if write(bio) is False:
                return None
            n = self.BIO_ctrl(bio, BIO_CTRL_PENDING, 0, None)
            out = ctypes.create_string_buffer(max(n, 1))
            got = self.BIO_read(bio, out, n) if n > 0 else 0
            return out.raw[:max(got, 0)].decode("utf-8", "surrogateescape")
        finally:
            self.BIO_free(bio)


_HEAD = 2 * ctypes.sizeof(c_void_p)  # PyObject_HEAD: ob_refcnt, ob_type
_bridge: Bridge | None = None
_tried = False
unavailable_reason = ""


def _validate(b: Bridge) -> str:
    """Check the assumed CPython object layouts on live objects."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    p = b.ctx_ptr(ctx)
    if not p:
        return "no SSL_CTX pointer in SSLContext"
    before = b.SSL_CTX_get_options(p)
    if before != int(ctx.options):
        return "SSLContext layout mismatch (options differ)"
    ctx.options |= ssl.OP_NO_TICKET
    if not b.SSL_CTX_get_options(p) & SSL_OP_NO_TICKET:
        return "SSLContext layout mismatch (options not shared)"
    obj = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_side=True)
    sp = b.ssl_ptr(obj)
    if not sp or b.SSL_get_SSL_CTX(sp) != p:
        return "SSLObject layout mismatch (SSL_get_SSL_CTX differs)"
    return ""


def load() -> Bridge | None:
    """The bridge, or None (``unavailable_reason`` says why)."""
    global _bridge, _tried, unavailable_reason
    if _tried:
        return _bridge
    _tried = True
    try:  # ``import ssl`` above mapped _ssl, hence libssl/libcrypto
        ssl_path = _mapped_lib("libssl")
        crypto_path = _mapped_lib("libcrypto")
        if ssl_path is None or crypto_path is None:
            unavailable_reason = "libssl is not a shared library of this Python"
            return None
        b = Bridge(ctypes.CDLL(ssl_path), ctypes.CDLL(crypto_path))
        why = _validate(b)
        if why:
            unavailable_reason = why
            return None
        b.ERR_clear_error()
        _bridge = b
    except (OSError, AttributeError, ValueError) as e:
        unavailable_reason = f"OpenSSL bridge unavailable: {e}"
        _bridge = None
    return _bridge
