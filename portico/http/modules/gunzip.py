"""ngx_http_gunzip_filter_module: gzip bodies decoded for clients without gzip.

Invariants:
- Acts only where ``gunzip on``, on responses whose Content-Encoding is
  exactly "gzip" (any case), and only when ngx_http_gzip_ok says the
  client cannot take gzip; it always marks Vary (nginx's r->gzip_vary).
- Decoding drops Content-Encoding, Content-Length and Accept-Ranges and
  weakens the ETag (ngx_http_weak_etag, as nginx since 1.7.3), and streams: file regions are read in
  chunks, output leaves in bounded pieces.  Concatenated gzip members are
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

Z_NO_FLUSH, Z_FINISH, Z_BUF_ERROR, Z_DATA_ERROR = 0, 4, -5, -3


class GunzipLocConf(Conf):
    enable: bool = False
    bufs: tuple = (32, 4096)


class _Inflater:
    __slots__ = ("d", "done")

    def __init__(self) -> None:
        self.d = zlib.decompressobj(zlib.MAX_WBITS | 16)
        self.done = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self.d.decompress(data))
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
    h.content_length = None
    h.accept_ranges = False
    r.allow_ranges = False
    encoding.weak_etag(h)
    next(r)


def gunzip_body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
    inf: _Inflater | None = r.ctx.get("gunzip")
    if inf is None or inf.done:
        next(r, bufs, last)
        return
    out: list[bytes] = []
    size = 0
    n = len(bufs)
    try:
        for i, b in enumerate(bufs):
            for chunk in encoding.read_chunks(r, b):
                flush = Z_FINISH if last and i == n - 1 else Z_NO_FLUSH
                try:
                    data = inf.feed(chunk)
                except zlib.error:
                    inf.done = True
                    encoding.fail(r, logmod.ERROR, f"inflate() failed: {flush}, {Z_DATA_ERROR}")
                    return
                if data:
                    out.append(data)
                    size += len(data)
                    if size >= encoding.FLUSH_AT:
                        next(r, out, False)
                        out, size = [], 0
                        if r.done:
                            inf.done = True
                            return
    except EOFError:
        inf.done = True
        encoding.fail(r, logmod.ALERT, "file was truncated while sending")
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
