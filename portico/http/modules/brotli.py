"""ngx_brotli (google/ngx_brotli): the brotli filter and brotli_static.

Directives as ngx_http_brotli_filter_module and ngx_http_brotli_static_module
define them: ``brotli``, ``brotli_comp_level`` (0-11, default 6),
``brotli_window`` (1k-16m, default 512k), ``brotli_min_length`` (default
20), ``brotli_types`` (default text/html, ``*`` for any), ``brotli_buffers``
(deprecated there, accepted here), ``brotli_static on|off|always``;
variable ``$brotli_ratio``.

Invariants:
- The filter acts like ngx_brotli's: 200/403/404, not HEAD, no
  Content-Encoding, listed type, not known shorter than min_length; it
  ignores gzip_proxied/gzip_disable/gzip_http_version (ngx_brotli does) but
  marks Vary (gzip_vary) like gzip.  Which coding wins is decided in
  ``portico.http.encoding``.
- The window shrinks for a known length as ngx_brotli does (from 2^10 up
  to the first power of two not below the length, at most brotli_window).
- Output is the ``brotli`` package's stream, checked by its decoder.
"""
from __future__ import annotations

from typing import Any

import brotli as brotlilib

from ...conf.parser import Node
from ...core import values
from ...core.module import HSL, MORE1, TAKE1, TAKE2, Conf, Module, UNSET, dir, set_bufs, set_flag, set_size
from .. import encoding
from ..request import Request
from .gzip_static import static_mode_setter

MIN_WBITS, MAX_WBITS = 10, 24


class BrotliLocConf(Conf):
    enable: bool = False
    quality: int = 6
    lg_win: int = 19
    min_length: int = 20
    types: Any = encoding.HTML_TYPES
    bufs: tuple = (32, 4096)
    mode: int = encoding.OFF  # brotli_static


class BrotliMainConf(Conf):
    used: bool = False  # some level has brotli_static on|always


def _comp_level(cf: Any, node: Node, conf: BrotliLocConf) -> None:
    if conf.quality is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    v = values.parse_number(node.args[0])
    if v is None:
        raise node.error(f'"{node.name}" directive invalid number')
    if not 0 <= v <= 11:
        raise node.error("value must be between 0 and 11")
    conf.quality = v


def _window(cf: Any, node: Node, conf: BrotliLocConf) -> None:
    if conf.lg_win is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    v = values.parse_size(node.args[0])
    if v is None:
        raise node.error(f'"{node.name}" directive invalid value')
    for bits in range(MIN_WBITS, MAX_WBITS + 1):
        if v == 1 << bits:
            conf.lg_win = bits
            return
    raise node.error(f'"{node.name}" directive must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, '
                     f'512k, 1m, 2m, 4m, 8m or 16m')


class BrotliEncoder(encoding.Encoder):
    __slots__ = ("c",)
    failed_msg = "BrotliEncoderCompressStream() failed"

    def __init__(self, c: BrotliLocConf, length: int | None) -> None:
        super().__init__()
        wbits = c.lg_win
        if length is not None and length > 0:
            wbits = MIN_WBITS
            while wbits < c.lg_win and length > (1 << wbits):
                wbits += 1
        self.c = brotlilib.Compressor(quality=c.quality, lgwin=wbits)

    def feed(self, data: bytes) -> bytes:
        self.zin += len(data)
        out = self.c.process(data)
        self.zout += len(out)
        return out

    def end(self) -> bytes:
        out = self.c.finish()
        self.zout += len(out)
        return out


def _eligible(r: Request) -> bool:
    c: BrotliLocConf = r.loc.brotli
    return encoding.filter_eligible(r, c.enable, c.min_length, c.types)


def _quality(r: Request) -> int:
    return encoding.quality(r, "br")


def brotli_header_filter(r: Request, next: Any) -> None:
    if encoding.negotiate(r) == "br":
        encoding.start_encoding(r, "br", BrotliEncoder(r.loc.brotli, r.hout.content_length))
    next(r)


def _brotli_ratio(r: Request) -> str | None:
    enc = r.ctx.get("enc:br")
    if enc is None or not enc.done or enc.zout == 0:
        return None
    return encoding.ratio(enc.zin, enc.zout)


encoding.register(encoding.Coding("br", 1, "brotli", ".br", _quality, _eligible, lambda loc: loc.brotli.mode))


class BrotliModule(Module):
    name = "brotli"
    nginx_name = "ngx_http_brotli_filter_module"
    is_http = True
    main_conf = BrotliMainConf
    loc_conf = BrotliLocConf
    directives = [
        dir("brotli", HSL | {"lif"}, TAKE1, set_flag("enable")),
        dir("brotli_buffers", HSL, TAKE2, set_bufs("bufs"), status="partial"),
        dir("brotli_types", HSL, MORE1, encoding.types_setter("types")),
        dir("brotli_comp_level", HSL, TAKE1, _comp_level),
        dir("brotli_window", HSL, TAKE1, _window),
        dir("brotli_min_length", HSL, TAKE1, set_size("min_length")),
        dir("brotli_static", HSL, TAKE1, static_mode_setter("brotli")),
    ]

    def preconfiguration(self, http: Any) -> None:
        http.variables.add("brotli_ratio", _brotli_ratio)

    def postconfiguration(self, http: Any) -> None:
        http.header_filters.append(("brotli", brotli_header_filter, lambda loc: loc.brotli.enable))
        http.body_filters.append(("brotli", encoding.compress_body_filter("br"), lambda loc: loc.brotli.enable))
        if http.main["brotli"].used:
            encoding.register_static(http)
