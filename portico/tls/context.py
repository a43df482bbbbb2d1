"""Building a server{}'s ``ssl.SSLContext`` as nginx's merge of
ngx_http_ssl_module does (ngx_ssl_create, ngx_ssl_certificates, ...), and
loading certificates, keys, CAs and CRLs through the OpenSSL bridge.

Invariants:
- ``build(conf, ...)`` makes every OpenSSL call in nginx's order, so the
  first error reported is nginx's, with nginx's words and OpenSSL's error
  queue (``Bridge.error_text``).  Errors nginx logs through ``cf->log``
  carry no FILE:LINE (a ``ConfError`` without position); the ticket key
  file errors, which nginx reports with ``ngx_conf_log_error`` after the
  http{} block was read, carry the position of the block's closing brace
  (``conf.http_end``).
- A context is complete when returned: options, ciphers, certificates,
  client verification (always-accept verify callback: the verdict is read
  at request time), session cache and tickets, ALPN.  The SNI callback is
  installed by the caller (``portico.tls.sni``), which owns the tables.
- Paths are resolved against the configuration prefix (nginx's
  ``ngx_conf_full_name(cycle, name, 1)``); a ``data:`` value is read from
  memory.  Nothing is written to disk.
- Objects OpenSSL calls back (CFUNCTYPEs, their owners) are kept in
  ``ctx.portico_keep`` so they live exactly as long as the context.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import ssl
from ctypes import c_void_p
from typing import Any, Callable

from ..conf.errors import ConfError
from . import openssl as osl
from .sessions import SharedSessionCache, TicketKeys, ticket_keys_from_bytes

__all__ = ["build", "Builder", "NO_SCACHE", "NONE_SCACHE", "NO_BUILTIN_SCACHE", "DFLT_BUILTIN_SCACHE",
           "PROTOCOLS", "alpn_for"]

# nginx's builtin_session_cache values
NO_SCACHE, NONE_SCACHE, NO_BUILTIN_SCACHE, DFLT_BUILTIN_SCACHE = -2, -3, -4, -5

#: ssl_protocols names and the option that disables each (SSLv2 has none in OpenSSL 3)
PROTOCOLS: dict[str, int] = {
    "SSLv2": 0, "SSLv3": osl.SSL_OP_NO_SSLv3, "TLSv1": osl.SSL_OP_NO_TLSv1,
    "TLSv1.1": osl.SSL_OP_NO_TLSv1_1, "TLSv1.2": osl.SSL_OP_NO_TLSv1_2, "TLSv1.3": osl.SSL_OP_NO_TLSv1_3,
}

_H1_ALPN = ["http/1.1", "http/1.0", "http/0.9"]  # nginx's NGX_HTTP_ALPN_PROTOS


def alpn_for(h2: bool) -> list[str]:
    """nginx's ALPN list, in its (server) preference order."""
    return ["h2", *_H1_ALPN] if h2 else list(_H1_ALPN)


class Builder:
    """What a context build needs besides the conf: the bridge, the
    configuration prefix, logging hooks and the shared-cache registry."""

    def __init__(self, b: osl.Bridge, conf_prefix: str, warn: Callable[[str], None],
                 info: Callable[[str], None], session_cache: Callable[[str, int], SharedSessionCache],
                 ticket_key_for_zone: Callable[[SharedSessionCache], bytes],
                 http_end: Callable[[], tuple[str | None, int | None]] = lambda: (None, None)) -> None:
        self.b = b
        self.http_end = http_end
        self.conf_prefix = conf_prefix
        self.warn = warn
        self.info = info
        self.session_cache = session_cache
        self.ticket_key_for_zone = ticket_key_for_zone

    def full(self, path: str) -> str:
        if path.startswith("data:") or os.path.isabs(path):
            return path
        return os.path.join(self.conf_prefix, path)

    def fail(self, msg: str, file: str | None = None, line: int | None = None) -> ConfError:
        return ConfError(self.b.error_text(msg), file, line)

    # --- loading (nginx's ngx_ssl_cache_*_create and their users) -----------------------
    def _bio(self, path: str, what: str) -> tuple[int, Any]:
        bio, keep = self.b.bio_for(path)
        if not bio:
            raise self.fail(f'cannot load {what} "{path}": BIO_new_file() failed')
        return bio, keep

    def use_certificate(self, ctxp: int, path: str) -> None:
        b = self.b
        bio, keep = self._bio(path, "certificate")
        try:
            x509 = b.PEM_read_bio_X509_AUX(bio, None, None, None)
            if not x509:
                raise self.fail(f'cannot load certificate "{path}": PEM_read_bio_X509_AUX() failed')
            chain = self._read_rest(bio, b.PEM_read_bio_X509, b.X509_free, path, "certificate",
                                    "PEM_read_bio_X509() failed")
            if b.SSL_CTX_use_certificate(ctxp, x509) == 0:
                b.X509_free(x509)
                for c in chain:
                    b.X509_free(c)
                raise self.fail(f'SSL_CTX_use_certificate("{path}") failed')
            b.X509_free(x509)  # the context holds its own reference
            for c in chain:  # SSL_CTX_add0_chain_cert: the context takes each
                if b.SSL_CTX_ctrl(ctxp, osl.SSL_CTRL_CHAIN_CERT, 0, c) == 0:
                    b.X509_free(c)
                    raise self.fail(f'SSL_CTX_set0_chain("{path}") failed')
        finally:
            b.BIO_free(bio)
            del keep

    def _read_rest(self, bio: int, reader: Any, free: Any, path: str, what: str, err: str) -> list[int]:
        """Read PEM objects until the end of input (nginx stops at "no start line")."""
        b = self.b
        out: list[int] = []
        while True:
            obj = reader(bio, None, None, None)
            if obj:
                out.append(obj)
                continue
            n = b.ERR_peek_last_error()
            if (n >> 23) & 0xFF == osl.ERR_LIB_PEM and n & 0x7FFFFF == osl.PEM_R_NO_START_LINE:
                b.ERR_clear_error()
                return out
            for o in out:
                free(o)
            raise self.fail(f'cannot load {what} "{path}": {err}')

    def use_private_key(self, ctxp: int, path: str, passwords: list[bytes] | None) -> None:
        b = self.b
        if path.startswith("engine:"):
            raise ConfError(f'cannot load certificate key "{path}": loading "engine:..." keys is '
                            'not supported by portico')
        bio, keep = self._bio(path, "certificate key")
        pwds: list[bytes | None] = list(passwords) if passwords else [None]
        try:
            for i, pwd in enumerate(pwds):
                cb = _password_cb(pwd)
                pkey = b.PEM_read_bio_PrivateKey(bio, None, ctypes.cast(cb, c_void_p), None)
                if pkey:
                    break
                if i + 1 < len(pwds):
                    b.ERR_clear_error()
                    b.BIO_ctrl(bio, osl.BIO_CTRL_RESET, 0, None)
                    continue
                raise self.fail(f'cannot load certificate key "{path}": PEM_read_bio_PrivateKey() failed')
            ok = b.SSL_CTX_use_PrivateKey(ctxp, pkey)
            b.EVP_PKEY_free(pkey)
            if ok == 0:
                raise self.fail(f'SSL_CTX_use_PrivateKey("{path}") failed')
        finally:
            b.BIO_free(bio)
            del keep

    def _read_file(self, path: str, what: str, reader: Any, free: Any) -> list[int]:
        """Every PEM object of one kind in ``path`` (CAs, CRLs)."""
        bio, keep = self._bio(path, what)
        try:
            return self._read_rest(bio, reader, free, path, what, "PEM_X509_INFO_read_bio() failed")
        finally:
            self.b.BIO_free(bio)
            del keep

    def add_cas(self, ctxp: int, path: str, client_names: bool) -> None:
        """ssl_client_certificate (names sent to clients too) / ssl_trusted_certificate."""
        b = self.b
        certs = self._read_file(path, "certificate", b.PEM_read_bio_X509, b.X509_free)
        store = b.SSL_CTX_get_cert_store(ctxp)
        try:
            for x in certs:
                if b.X509_STORE_add_cert(store, x) != 1:
                    raise self.fail(f'X509_STORE_add_cert("{path}") failed')
                if client_names:
                    b.SSL_CTX_add_client_CA(ctxp, x)
        finally:
            for x in certs:
                b.X509_free(x)

    def add_crl(self, ctxp: int, path: str) -> None:
        b = self.b
        crls = self._read_file(path, "CRL", b.PEM_read_bio_X509_CRL, b.X509_CRL_free)
        store = b.SSL_CTX_get_cert_store(ctxp)
        try:
            for c in crls:
                if b.X509_STORE_add_crl(store, c) != 1:
                    raise self.fail(f'X509_STORE_add_crl("{path}") failed')
        finally:
            for c in crls:
                b.X509_CRL_free(c)
        b.X509_STORE_set_flags(store, osl.X509_V_FLAG_CRL_CHECK | osl.X509_V_FLAG_CRL_CHECK_ALL)

    def dhparam(self, ctxp: int, path: str) -> None:
        b = self.b
        bio, keep = b.bio_for(path)
        if not bio:
            raise self.fail(f'BIO_new_file("{path}") failed')
        try:
            dh = b.PEM_read_bio_Parameters(bio, None)
            if not dh:
                raise self.fail(f'PEM_read_bio_Parameters("{path}") failed')
            if b.SSL_CTX_set0_tmp_dh_pkey(ctxp, dh) != 1:
                b.EVP_PKEY_free(dh)
                raise self.fail(f'SSL_CTX_set0_tmp_dh_pkey({path}") failed')  # sic, nginx's typo
        finally:
            b.BIO_free(bio)
            del keep


def _password_cb(pwd: bytes | None) -> Any:
    """nginx's ngx_ssl_password_callback for one password (None: refuse, never prompt)."""
    def cb(buf: int, size: int, rwflag: int, _u: int) -> int:
        if rwflag or pwd is None:
            return 0
        n = min(len(pwd), size)
        ctypes.memmove(buf, pwd, n)
        return n
    return osl.PEM_PASSWORD_CB(cb)


def _file_bytes(path: str) -> bytes:
    if path.startswith("data:"):
        return path[5:].encode("utf-8", "surrogateescape")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def build(conf: Any, bld: Builder, h2: bool, certificates: list[tuple[str, str]] | None = None) -> ssl.SSLContext:
    """The context of one server (conf: the merged ssl conf of the server).

    ``certificates``: (cert, key) paths already evaluated, for certificates
    with variables (loaded per handshake); default: the conf's own pairs.
    """
    b = bld.b
    b.clear_errors()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    p = b.ctx_ptr(ctx)
    keep: list[Any] = []
    ctx.portico_keep = keep  # type: ignore[attr-defined]
    # --- ngx_ssl_create -----------------------------------------------------------------
    b.SSL_CTX_clear_options(p, osl.SSL_OP_CIPHER_SERVER_PREFERENCE | osl.SSL_OP_NO_TICKET)
    for name, opt in PROTOCOLS.items():
        if not opt:
            continue
        b.SSL_CTX_clear_options(p, opt)
        if name not in conf.protocols:
            b.SSL_CTX_set_options(p, opt)
    b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_MIN_PROTO_VERSION, 0, None)
    b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_MAX_PROTO_VERSION, osl.TLS1_3_VERSION, None)
    b.SSL_CTX_set_options(p, osl.SSL_OP_NO_COMPRESSION | osl.SSL_OP_NO_ANTI_REPLAY
                          | osl.SSL_OP_IGNORE_UNEXPECTED_EOF | osl.SSL_OP_NO_RENEGOTIATION)
    b.SSL_CTX_ctrl(p, osl.SSL_CTRL_MODE, osl.SSL_MODE_RELEASE_BUFFERS | osl.SSL_MODE_NO_AUTO_CHAIN, None)
    # --- ALPN (ngx_http_ssl_alpn_select) ------------------------------------------------------
    ctx.set_alpn_protocols(alpn_for(h2))
    # --- ciphers -------------------------------------------------------------------------------
    if b.SSL_CTX_set_cipher_list(p, conf.ciphers.encode("utf-8", "surrogateescape")) == 0:
        raise bld.fail(f'SSL_CTX_set_cipher_list("{conf.ciphers}") failed')
    if conf.prefer_server_ciphers:
        b.SSL_CTX_set_options(p, osl.SSL_OP_CIPHER_SERVER_PREFERENCE)
    # --- certificates ------------------------------------------------------------------------
    pairs = certificates
    if pairs is None and conf.certificates and not conf.certificate_values:
        pairs = [(bld.full(c), bld.full(k)) for c, k in zip(conf.certificates, conf.certificate_keys)]
    id_material = [b"HTTP"]
    for cert, key in pairs or ():
        bld.use_certificate(p, cert)
        bld.use_private_key(p, key, conf.passwords)
        id_material.append(_file_bytes(cert))
    # --- client verification -----------------------------------------------------------------
    if conf.verify:
        if conf.verify != 3 and not conf.client_certificate and not conf.trusted_certificate:
            raise ConfError("no ssl_client_certificate or ssl_trusted_certificate for ssl_verify_client")
        b.SSL_CTX_set_verify(p, osl.SSL_VERIFY_PEER, b.accept_all_ptr)
        b.SSL_CTX_set_verify_depth(p, conf.verify_depth)
        if conf.client_certificate:
            path = bld.full(conf.client_certificate)
            bld.add_cas(p, path, client_names=True)
            id_material.append(_file_bytes(path))
    b.SSL_CTX_set_verify(p, b.SSL_CTX_get_verify_mode(p), b.accept_all_ptr)
    b.SSL_CTX_set_verify_depth(p, conf.verify_depth)
    if conf.trusted_certificate:
        bld.add_cas(p, bld.full(conf.trusted_certificate), client_names=False)
    if conf.crl:
        bld.add_crl(p, bld.full(conf.crl))
    if conf.ocsp:
        if conf.verify == 3:
            raise ConfError('"ssl_ocsp" is incompatible with "ssl_verify_client optional_no_ca"')
        bld.info('"ssl_ocsp" has no effect in portico: client certificates are not checked with OCSP')
    if conf.dhparam:
        bld.dhparam(p, bld.full(conf.dhparam))
    if conf.ecdh_curve != "auto":
        if b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_GROUPS_LIST, 0,
                          conf.ecdh_curve.encode("utf-8", "surrogateescape")) == 0:
            raise bld.fail(f'SSL_CTX_set1_curves_list("{conf.ecdh_curve}") failed')
    # --- sessions (ngx_ssl_session_cache) -------------------------------------------------------
    shared = _session_cache(conf, bld, p, id_material, keep)
    if not conf.session_tickets:
        b.SSL_CTX_set_options(p, osl.SSL_OP_NO_TICKET)
    _ticket_keys(conf, bld, p, shared, keep)
    if conf.stapling:
        _stapling_notes(conf, bld, pairs or [])
    if conf.early_data:
        bld.info('"ssl_early_data" has no effect in portico: TLS 1.3 early data is not accepted')
    if conf.conf_commands:
        _conf_commands(b, p, conf.conf_commands, bld)
    return ctx


def _session_cache(conf: Any, bld: Builder, p: int, id_material: list[bytes],
                   keep: list[Any]) -> SharedSessionCache | None:
    b = bld.b
    builtin = conf.builtin_session_cache
    if builtin == NO_SCACHE:
        b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_SESS_CACHE_MODE, osl.SSL_SESS_CACHE_OFF, None)
        return None
    sid = hashlib.sha1(b"".join(id_material)).digest()  # ngx_ssl_session_id_context
    b.SSL_CTX_set_session_id_context(p, sid, len(sid))
    if builtin == NONE_SCACHE:
        # pretend to support session reuse but store nothing (nginx's Outlook workaround)
        b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_SESS_CACHE_MODE, osl.SSL_SESS_CACHE_SERVER
                       | osl.SSL_SESS_CACHE_NO_AUTO_CLEAR | osl.SSL_SESS_CACHE_NO_INTERNAL_STORE, None)
        b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_SESS_CACHE_SIZE, 1, None)
        return None
    mode = osl.SSL_SESS_CACHE_SERVER
    zone = conf.shm_zone
    if zone and builtin == NO_BUILTIN_SCACHE:
        mode |= osl.SSL_SESS_CACHE_NO_INTERNAL
    b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)
    if builtin not in (NO_BUILTIN_SCACHE, DFLT_BUILTIN_SCACHE):
        b.SSL_CTX_ctrl(p, osl.SSL_CTRL_SET_SESS_CACHE_SIZE, builtin, None)
    b.SSL_CTX_set_timeout(p, int(conf.session_timeout))
    if not zone:
        return None
    cache = bld.session_cache(zone[0], zone[1])
    cache.install(p)
    keep.append(cache)
    return cache


def _ticket_keys(conf: Any, bld: Builder, p: int, shared: SharedSessionCache | None, keep: list[Any]) -> None:
    """ngx_ssl_session_ticket_keys (files), or a key kept in the shared zone."""
    if not conf.session_tickets:
        return
    keys = []
    if conf.session_ticket_keys:
        file, line = bld.http_end()
        for path in conf.session_ticket_keys:
            full = bld.full(path)
            try:
                with open(full, "rb") as f:
                    data = f.read(81)
            except OSError as e:
                raise ConfError(f'open() "{full}" failed ({e.errno}: {e.strerror})', file, line) from None
            if len(data) not in (48, 80):
                raise ConfError(f'"{full}" must be 48 or 80 bytes', file, line)
            keys.append(ticket_keys_from_bytes(data))
    elif shared is not None:
        keys.append(ticket_keys_from_bytes(bld.ticket_key_for_zone(shared), shared=True))
    if keys:
        tk = TicketKeys(bld.b, keys)
        tk.install(p)
        keep.append(tk)


def _stapling_notes(conf: Any, bld: Builder, pairs: list[tuple[str, str]]) -> None:
    """Stapling is accepted but not done; say so, and say clearly what
    nginx would silently skip: a certificate without an OCSP responder."""
    if conf.stapling_file:
        bld.info('"ssl_stapling" has no effect in portico: the OCSP response of '
                 f'"{conf.stapling_file}" is not stapled')
        return
    for cert, _ in pairs:
        if not conf.stapling_responder and not _has_ocsp_url(cert):
            bld.warn(f'"ssl_stapling" ignored, no OCSP responder URL in the certificate "{cert}" '
                     'and no "ssl_stapling_responder"')
    bld.info('"ssl_stapling" has no effect in portico: OCSP responses are not fetched nor stapled')


def _has_ocsp_url(cert_path: str) -> bool:
    try:
        from cryptography import x509
        from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
        cert = x509.load_pem_x509_certificate(_file_bytes(cert_path))
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        return any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia)
    except Exception:
        return False


def _conf_commands(b: osl.Bridge, p: int, commands: list[tuple[str, str]], bld: Builder) -> None:
    cctx = b.SSL_CONF_CTX_new()
    try:
        b.SSL_CONF_CTX_set_flags(cctx, osl.SSL_CONF_FLAG_FILE | osl.SSL_CONF_FLAG_SERVER
                                 | osl.SSL_CONF_FLAG_CERTIFICATE | osl.SSL_CONF_FLAG_SHOW_ERRORS)
        b.SSL_CONF_CTX_set_ssl_ctx(cctx, p)
        for k, v in commands:
            if b.SSL_CONF_cmd(cctx, k.encode("utf-8", "surrogateescape"),
                              v.encode("utf-8", "surrogateescape")) <= 0:
                raise bld.fail(f'SSL_CONF_cmd("{k}", "{v}") failed')
        if b.SSL_CONF_CTX_finish(cctx) != 1:
            raise bld.fail("SSL_CONF_finish() failed")
    finally:
        b.SSL_CONF_CTX_free(cctx)
