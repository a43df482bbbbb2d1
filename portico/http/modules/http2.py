"""ngx_http_v2_module: the ``http2`` directives and the ``$http2`` variable.

The protocol itself is ``portico.http.proto.h2``; this file holds only its
configuration, as nginx 1.29 declares it (ngx_http_v2_module.c).

Invariants:
- One conf struct, kept at location level so that it merges top-down with
  every other module: ``server.root.conf.http2`` is the server's merged
  view (``enable``, ``concurrent_streams``, ``preread_size``...; the TLS
  code reads ``enable`` to offer ALPN "h2") and ``r.loc.http2.chunk_size``
  the location's.  Contexts are nginx's, so a server-only directive can
  never differ between locations.
- ``recv_buffer_size`` is http-level only (nginx's main conf).
- Directives nginx made obsolete are accepted with nginx's ``[warn]``
  wording and change nothing.
- ``$http2`` is "h2" over TLS, "h2c" over plain TCP, "" on HTTP/1.x.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import (HSL, HTTP, SERVER, TAKE1, Conf, Module, dir, set_flag, set_num,
                            set_size)
from ..request import Request

H = frozenset({HTTP})
HS = frozenset({HTTP, SERVER})

#: NGX_HTTP_V2_MAX_FRAME_SIZE and NGX_HTTP_V2_MAX_WINDOW
MAX_FRAME_SIZE = (1 << 24) - 1
MAX_WINDOW = (1 << 31) - 1
_STATE_BUFFER_SIZE = 16  # NGX_HTTP_V2_STATE_BUFFER_SIZE


class Http2Conf(Conf):
    enable: bool = False  # http2 on|off (server)
    concurrent_streams: int = 128
    preread_size: int = 65536
    chunk_size: int = 8192
    recv_buffer_size: int = 256 * 1024
    pool_size: int = 4096
    streams_index_size: int = 32


def _recv_buffer_size(cf: Any, node: Node, conf: Http2Conf) -> None:
    set_size("recv_buffer_size")(cf, node, conf)
    if conf.recv_buffer_size <= _STATE_BUFFER_SIZE:
        raise node.error(f'"{node.name}" directive value is too small')


def _preread_size(cf: Any, node: Node, conf: Http2Conf) -> None:
    set_size("preread_size")(cf, node, conf)
    if conf.preread_size > MAX_WINDOW:
        raise node.error(f"the maximum body preread buffer size is {MAX_WINDOW}")


def _chunk_size(cf: Any, node: Node, conf: Http2Conf) -> None:
    set_size("chunk_size")(cf, node, conf)
    if conf.chunk_size == 0:
        raise node.error("the http2 chunk size cannot be zero")
    if conf.chunk_size > MAX_FRAME_SIZE:
        conf.chunk_size = MAX_FRAME_SIZE


def _pool_size(cf: Any, node: Node, conf: Http2Conf) -> None:
    # nginx sizes a memory pool with it; Portico has none: checked, no effect
    set_size("pool_size")(cf, node, conf)
    if conf.pool_size < 80:  # NGX_MIN_POOL_SIZE on 64-bit Linux
        raise node.error("the pool size must be no less than 80")
    if conf.pool_size % 16:
        raise node.error("the pool size must be a multiple of 16")


def _streams_index_size(cf: Any, node: Node, conf: Http2Conf) -> None:
    set_num("streams_index_size")(cf, node, conf)
    n = conf.streams_index_size
    if n == 0 or n & (n - 1):
        raise node.error(f'"{node.name}" directive must be a power of two')


def _obsolete(new: str | None) -> Any:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        if new is None:
            cf.cycle.warn(f'the "{node.name}" directive is obsolete, ignored', node)
        else:
            cf.cycle.warn(f'the "{node.name}" directive is obsolete, use the "{new}" directive instead', node)
    return setter


def http2_variable(r: Request) -> str:
    """ngx_http_v2_variable: only a request of an HTTP/2 stream has a value."""
    if r.version != "HTTP/2.0":
        return ""
    return "h2" if r.conn.ssl else "h2c"


class Http2Module(Module):
    name = "http2"
    nginx_name = "ngx_http_v2_module"
    is_http = True
    loc_conf = Http2Conf
    directives = [
        dir("http2", HS, TAKE1, set_flag("enable")),
        dir("http2_recv_buffer_size", H, TAKE1, _recv_buffer_size),
        dir("http2_pool_size", HS, TAKE1, _pool_size),
        dir("http2_max_concurrent_streams", HS, TAKE1, set_num("concurrent_streams")),
        dir("http2_max_concurrent_pushes", HS, TAKE1, _obsolete(None)),
        dir("http2_max_requests", HS, TAKE1, _obsolete("keepalive_requests")),
        dir("http2_max_field_size", HS, TAKE1, _obsolete("large_client_header_buffers")),
        dir("http2_max_header_size", HS, TAKE1, _obsolete("large_client_header_buffers")),
        dir("http2_body_preread_size", HS, TAKE1, _preread_size),
        dir("http2_streams_index_size", HS, TAKE1, _streams_index_size),
        dir("http2_recv_timeout", HS, TAKE1, _obsolete("client_header_timeout")),
        dir("http2_idle_timeout", HS, TAKE1, _obsolete("keepalive_timeout")),
        dir("http2_chunk_size", HSL, TAKE1, _chunk_size),
        dir("http2_push_preload", HSL, TAKE1, _obsolete(None)),
        dir("http2_push", HSL, TAKE1, _obsolete(None)),
    ]

    def preconfiguration(self, http: Any) -> None:
        http.variables.add("http2", http2_variable)
        # load the protocol (and the h2 package) in the master: workers may
        # run as a user that cannot read site-packages
        from ..proto import h2  # noqa: F401
