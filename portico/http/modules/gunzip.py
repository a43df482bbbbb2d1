"""ngx_http_gunzip_filter_module: gzip bodies decoded for clients without gzip.

Invariants:
- Acts only where ``gunzip on``, on responses whose Content-Encoding is
  exactly "gzip" (any case), and only when ngx_http_gzip_ok says the
  client cannot take gzip; it always marks Vary (nginx's r->gzip_vary).
- Decoding drops Content-Encoding, Content-Length and Accept-Ranges and
  weakens the ETag (ngx_http_weak_etag, as nginx since 1.7.3), and streams through ``encoding.pump``
  (the compression filters' loop): file regions are read in chunks, output
  leaves in bounded pieces.  Concatenated gzip members are
  decoded one after another (nginx's inflateReset).
- Corrupt data is nginx 1.22's ``[error] inflate() failed: FLUSH, -3`` and
  data that ends inside a member its ``inflate() returned -5 on response
  end``; either way the connection closes with the body truncated (no
  final chunk), as nginx does.  (nginx had not written the header yet
  when the first buffer fails, so its client sees no response at all;
  Portico's header is already queued and goes out first.)  Never a traceback.
- gunzip_buffers is checked as nginx does and changes only buffering.
"""
from __future__ import annotations

import zlib
from typing import Any

from ...core import log as logmod
from ...core.module import HSL, TAKE1, TAKE2, Conf, Module, dir, set_bufs, set_flag
from .. import encoding
from ..request import Request
from .gzip import gzip_ok
from .static import body_changed

Z_NO_FLUSH, Z_FINISH, Z_BUF_ERROR, Z_DATA_ERROR = 0, 4, -5, -3


class GunzipLocConf(Conf):
    enable: bool = False
    bufs: tuple = (32, 4096)


class _InflateError(Exception):
    """Corrupt gzip data; ``flush`` is the inflate() flush nginx's message
    names (Z_FINISH for the body's last buffer)."""

    def __init__(self, flush: int) -> None:
        super().__init__(flush)
        self.flush = flush


class _Inflater:
    __slots__ = ("d", "done")

    def __init__(self) -> None:
        self.d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.done = False

    def feed(self, data: bytes, final: bool) -> bytes:
        """Decode ``data`` (``final``: from the body's last buffer)."""
        out = []
        while data:
            try:
                out.append(self.d.decompress(data))
            except zlib.error:
                raise _InflateError(Z_FINISH if final else Z_NO_FLUSH) from None
            if not self.d.eof:
                break
            data = self.d.unused_data
            if data:
                self.d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        return b"".join(out)


def gunzip_header_filter(r: Request, next: Any) -> None:
    h = r.hout
    ce = h.content_encoding
    if not ce or len(ce) != 4 or ce.lower() != "gzip" or not r.loc.gunzip.enable:
        next(r)
        return
    encoding.mark_vary(r)
    if gzip_ok(r):
        next(r)
        return
    r.ctx["gunzip"] = _Inflater()
    h.content_encoding = None
    body_changed(r)
    next(r)


def gunzip_body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
    inf: _Inflater | None = r.ctx.get("gunzip")
    if inf is None or inf.done:
        next(r, bufs, last)
        return
    try:
        out = encoding.pump(r, bufs, last, inf.feed, next)
    except _InflateError as e:
        inf.done = True
        encoding.fail(r, logmod.ERROR, f"inflate() failed: {e.flush}, {Z_DATA_ERROR}")
        return
    except EOFError:
        inf.done = True
        encoding.fail(r, logmod.ALERT, "file was truncated while sending")
        return
    if out is None:  # the request ended while output went on
        inf.done = True
        return
    if last:
        inf.done = True
        if not inf.d.eof:
            if out:
                next(r, out, False)
            encoding.fail(r, logmod.ERROR, f"inflate() returned {Z_BUF_ERROR} on response end")
            return
    if out or last:
        next(r, out, last)


class GunzipModule(Module):
    name = "gunzip"
    nginx_name = "ngx_http_gunzip_filter_module"
    is_http = True
    loc_conf = GunzipLocConf
    directives = [
        dir("gunzip", HSL, TAKE1, set_flag("enable")),
        dir("gunzip_buffers", HSL, TAKE2, set_bufs("bufs"), status="partial"),
    ]

    def postconfiguration(self, http: Any) -> None:
        http.header_filters.append(("gunzip", gunzip_header_filter, lambda loc: loc.gunzip.enable))
        http.body_filters.append(("gunzip", gunzip_body_filter, lambda loc: loc.gunzip.enable))
