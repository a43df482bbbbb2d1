"""Server Name Indication: choosing the server{} (and its context) during
the handshake, as nginx's ngx_http_ssl_servername.

The transport wraps with ``table.ssl_ctx`` (the default server's context)
and sets ``sslobj.portico_table = table`` before the first handshake step;
``sni_callback`` then:

- validates the name (nginx's ngx_http_validate_host: lower-case, one
  trailing dot dropped, no "/", "\\" or empty label) and records it as
  ``sslobj.portico_sni``; with no valid name the default server stays;
- finds the server with ``table.find``; only a server matched by one of its
  names (not the default fallback) counts as negotiated
  (``sslobj.portico_sni_server``, nginx's ``hc->ssl_servername``, used by the
  421 rule at request time);
- switches ``sslobj.context`` to that server's context, copying verify mode,
  depth and options as nginx does after ``SSL_set_SSL_CTX`` (OpenSSL keeps
  the old ones otherwise); ALPN and certificates then come from the new
  context;
- rejects the handshake (``unrecognized_name`` alert) when the chosen server
  (or the default one, for an unknown name or no SNI) has
  ``ssl_reject_handshake on``.

Invariants: ``TableTls`` is built in the master once per Cycle and never
changes; per-handshake work is a dict lookup unless certificates have
variables, whose contexts are kept in a small LRU (``DynamicCerts``).
"""
from __future__ import annotations

import ssl
from collections import OrderedDict
from typing import Any, Callable

from . import openssl as osl

__all__ = ["TableTls", "sni_callback", "validate_host", "DynamicCerts"]

ALERT_UNRECOGNIZED_NAME = ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
ALERT_INTERNAL_ERROR = ssl.ALERT_DESCRIPTION_INTERNAL_ERROR


def validate_host(name: str) -> str | None:
    """ngx_http_validate_host for an SNI name: the name to look up, or None."""
    host = name.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or host.startswith(".") or ".." in host:
        return None
    for ch in host:
        if ch in "/\\\0" or ord(ch) < 0x20:
            return None
    return host


class DynamicCerts:
    """Contexts of a server whose certificate paths have variables, keyed
    by the evaluated paths (nginx loads them in its certificate callback)."""

    MAX = 64

    def __init__(self, make: Callable[[Any, tuple[tuple[str, str], ...]], ssl.SSLContext | None],
                 evaluate: Callable[[Any], tuple[tuple[str, str], ...]]) -> None:
        self.make = make
        self.evaluate = evaluate
        self.cache: OrderedDict[tuple[tuple[str, str], ...], ssl.SSLContext] = OrderedDict()

    def context(self, sslobj: Any) -> ssl.SSLContext | None:
        pairs = self.evaluate(sslobj)
        ctx = self.cache.get(pairs)
        if ctx is not None:
            self.cache.move_to_end(pairs)
            return ctx
        ctx = self.make(sslobj, pairs)
        if ctx is None:
            return None
        self.cache[pairs] = ctx
        if len(self.cache) > self.MAX:
            self.cache.popitem(last=False)
        return ctx


class TableTls:
    """The TLS side of one ServerTable: each server's context (or None when
    it has no certificate), its reject flag, and dynamic certificates."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.contexts: dict[int, ssl.SSLContext | None] = {}
        self.reject: dict[int, bool] = {}
        self.dynamic: dict[int, DynamicCerts] = {}
        self.verify: dict[int, int] = {}

    def context_of(self, srv: Any) -> ssl.SSLContext | None:
        return self.contexts.get(id(srv))


def _matched_by_name(table: Any, host: str, srv: Any) -> bool:
    """Whether ``table.find(host)`` found ``srv`` by one of its names."""
    if srv is not table.default:
        return True
    if table.exact.get(host) is srv:
        return True
    for suffix, s in table.head:
        if s is srv and host.endswith(suffix) and len(host) > len(suffix):
            return True
    for prefix, s in table.tail:
        if s is srv and host.startswith(prefix) and len(host) > len(prefix):
            return True
    return any(s is srv and rx.search(host) is not None for rx, s in table.regex)


def _copy_settings(b: osl.Bridge, sslobj: Any, ctx: ssl.SSLContext) -> None:
    """What nginx does after SSL_set_SSL_CTX: verify mode, callback, depth, options."""
    sp = b.ssl_ptr(sslobj)
    cp = b.ctx_ptr(ctx)
    b.SSL_set_verify(sp, b.SSL_CTX_get_verify_mode(cp), b.SSL_CTX_get_verify_callback(cp))
    b.SSL_set_verify_depth(sp, b.SSL_CTX_get_verify_depth(cp))
    want = b.SSL_CTX_get_options(cp)
    b.SSL_clear_options(sp, b.SSL_get_options(sp) & ~want)
    b.SSL_set_options(sp, want | osl.SSL_OP_NO_RENEGOTIATION)


def sni_callback(sslobj: Any, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
    """Installed as ``sni_callback`` on every server context."""
    table = getattr(sslobj, "portico_table", None)
    tls: TableTls | None = getattr(table, "ssl_tls", None)
    if table is None or tls is None:
        return None
    srv = table.default
    if server_name is not None:
        host = validate_host(server_name)
        if host is not None:
            sslobj.portico_sni = host
            found, _m = table.find(host)
            if found is not None and _matched_by_name(table, host, found):
                srv = found
                sslobj.portico_sni_server = found
    try:
        dyn = tls.dynamic.get(id(srv))
        ctx = dyn.context(sslobj) if dyn is not None else tls.contexts.get(id(srv))
        if dyn is not None and ctx is None:
            return ALERT_INTERNAL_ERROR
    except Exception:
        return ALERT_INTERNAL_ERROR
    if ctx is not None and ctx is not sslobj.context:
        sslobj.context = ctx
        b = osl.load()
        if b is not None:
            _copy_settings(b, sslobj, ctx)
    if tls.reject.get(id(srv)):
        return ALERT_UNRECOGNIZED_NAME
    return None
