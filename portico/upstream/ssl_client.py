"""proxy_ssl_*: TLS to https:// upstreams with the standard library's ssl
(the client side of ngx_http_proxy_set_ssl / ngx_http_upstream_ssl_init_connection).

Invariants:
- One ``ssl.SSLContext`` per distinct set of proxy_ssl_* values, built at
  configuration time (so ``-t`` reports unreadable certificates as nginx's
  ``[emerg]``) and shared by the locations that have the same values.
- proxy_ssl_verify off (the default) checks nothing, as nginx; on: the
  chain against proxy_ssl_trusted_certificate (required, nginx's
  ``no proxy_ssl_trusted_certificate for proxy_ssl_verify`` otherwise) up
  to proxy_ssl_verify_depth, and the name (proxy_ssl_name, default the
  proxy_pass host) against the certificate.
- SNI is sent with proxy_ssl_server_name on, and always while verifying
  (the ssl module checks the name it sends).  proxy_ssl_conf_command has
  no equivalent in the ssl module: accepted and logged at info.
- proxy_ssl_session_reuse: TLS connections are kept in the upstream's
  keepalive pool under their own key (``tls:`` + peer), never mixed with
  plain ones; abbreviated handshakes for new connections are not done
  (the asyncio API takes no session), which the directive's "on" accepts.
"""
from __future__ import annotations

import ssl
from typing import Any

from ..conf.errors import ConfError

PROTOCOLS = {"SSLv2": None, "SSLv3": None, "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
DEFAULT_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
HANDSHAKING = "SSL handshaking to upstream"


def protocols(cf: Any, node: Any, conf: Any) -> None:
    if not _unset(conf.ssl_protocols):
        raise node.error(f'"{node.name}" directive is duplicate')
    for a in node.args:
        if a not in PROTOCOLS:
            raise node.error(f'invalid value "{a}"')
    conf.ssl_protocols = tuple(node.args)


def conf_command(cf: Any, node: Any, conf: Any) -> None:
    cur = conf.ssl_conf_commands
    if _unset(cur) or cur is None:
        cur = []
        conf.ssl_conf_commands = cur
    cur.append((node.args[0], node.args[1]))
    cf.extra["http"].cycle.info(f'"proxy_ssl_conf_command {node.args[0]} {node.args[1]}" has no effect in '
                                f'portico (the ssl module has no SSL_CONF_cmd)', node)


def _unset(v: Any) -> bool:
    from ..core.module import UNSET
    return v is UNSET


def _key(conf: Any) -> tuple[Any, ...]:
    return (conf.ssl_verify, conf.ssl_trusted_certificate, conf.ssl_verify_depth, conf.ssl_certificate,
            conf.ssl_certificate_key, conf.ssl_password_file, tuple(conf.ssl_protocols or DEFAULT_PROTOCOLS),
            conf.ssl_ciphers, conf.ssl_crl)


def build(cycle: Any, conf: Any, cache: dict[tuple[Any, ...], ssl.SSLContext], where: tuple[str, int]) -> None:
    """Give ``conf.ssl_ctx`` its context (once per distinct settings)."""
    key = _key(conf)
    ctx = cache.get(key)
    if ctx is None:
        ctx = cache[key] = _make(cycle, conf, where)
    conf.ssl_ctx = ctx


def _make(cycle: Any, conf: Any, where: tuple[str, int]) -> ssl.SSLContext:
    file, line = where
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    vers = [PROTOCOLS[p] for p in (conf.ssl_protocols or DEFAULT_PROTOCOLS) if PROTOCOLS[p] is not None]
    if vers:
        try:
            ctx.minimum_version = min(vers)
            ctx.maximum_version = max(vers)
        except ValueError:
            pass
    if conf.ssl_ciphers and conf.ssl_ciphers != "DEFAULT":
        try:
            ctx.set_ciphers(conf.ssl_ciphers)
        except ssl.SSLError as e:
            raise ConfError(f'SSL_CTX_set_cipher_list("{conf.ssl_ciphers}") failed ({e.reason})', file, line)
    if conf.ssl_certificate:
        if not conf.ssl_certificate_key:
            raise ConfError(f'no "proxy_ssl_certificate_key" is defined for certificate "{conf.ssl_certificate}"',
                            file, line)
        passwords = _passwords(cycle, conf, where)
        cert = cycle.full_path(conf.ssl_certificate)
        key = cycle.full_path(conf.ssl_certificate_key)
        last: Exception | None = None
        for pw in passwords or [None]:
            try:
                ctx.load_cert_chain(cert, key, password=pw)
                last = None
                break
            except (OSError, ssl.SSLError) as e:
                last = e
        if last is not None:
            raise ConfError(f'cannot load certificate key "{key}": {last}', file, line)
    if conf.ssl_verify:
        if not conf.ssl_trusted_certificate:
            raise ConfError("no proxy_ssl_trusted_certificate for proxy_ssl_verify", file, line)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        _verify_depth(ctx, conf.ssl_verify_depth)
    if conf.ssl_trusted_certificate:
        path = cycle.full_path(conf.ssl_trusted_certificate)
        try:
            ctx.load_verify_locations(path)
        except (OSError, ssl.SSLError) as e:
            raise ConfError(f'SSL_CTX_load_verify_locations("{path}") failed ({e})', file, line)
    if conf.ssl_crl:
        path = cycle.full_path(conf.ssl_crl)
        try:
            ctx.load_verify_locations(path)
        except (OSError, ssl.SSLError) as e:
            raise ConfError(f'X509_LOOKUP_load_file("{path}") failed ({e})', file, line)
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return ctx


def _verify_depth(ctx: ssl.SSLContext, depth: int) -> None:
    """SSL_CTX_set_verify_depth, which Python's ssl does not expose (through
    the ctypes bridge of portico/tls; without it OpenSSL's default applies)."""
    from ..tls import openssl as osl
    b = osl.load()
    if b is not None:
        b.SSL_CTX_set_verify_depth(b.ctx_ptr(ctx), depth)


def _passwords(cycle: Any, conf: Any, where: tuple[str, int]) -> list[str]:
    if not conf.ssl_password_file:
        return []
    path = cycle.full_path(conf.ssl_password_file)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return [ln.rstrip("\r\n") for ln in f if ln.strip()]
    except OSError as e:
        raise ConfError(f'open() "{path}" failed ({e.errno}: {e.strerror})', *where)


def server_name(r: Any, conf: Any, vars_: Any) -> str | None:
    """The name sent as SNI / verified, None for no SNI."""
    if not (conf.ssl_server_name or conf.ssl_verify):
        return None
    if conf.ssl_name is not None:
        name = conf.ssl_name.eval(r)
    else:
        name = vars_.host_header
    if name.startswith("["):
        return name[1:name.find("]")] if "]" in name else name
    return name.rsplit(":", 1)[0] if name.count(":") == 1 else name


def handshake_error(e: BaseException, name: str | None) -> str:
    """nginx's error-log text for a failed handshake."""
    if isinstance(e, ssl.SSLCertVerificationError):
        if e.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
            return f'upstream SSL certificate does not match "{name}"'
        return f"upstream SSL certificate verify error: ({e.verify_code}:{e.verify_message})"
    if isinstance(e, ssl.SSLError):
        return f"SSL_do_handshake() failed (SSL: {e.reason or e})"
    return f"SSL_do_handshake() failed ({e})"
