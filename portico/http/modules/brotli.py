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
- The directives and hooks it shares with gzip and zstd are
  ``portico.http.encoding``'s ``filter_directives`` and ``FilterModule``.
"""
from __future__ import annotations

import brotli as brotlilib

from ...core.module import HSL, TAKE1, Conf, dir
from .. import encoding
from .gzip_static import static_mode_setter

MIN_WBITS, MAX_WBITS = 10, 24


class BrotliLocConf(encoding.FilterLocConf):
    quality: int = 6
    lg_win: int = 19
    mode: int = encoding.OFF  # brotli_static


class BrotliMainConf(Conf):
    used: bool = False  # some level has brotli_static on|always


class BrotliEncoder(encoding.LibEncoder):
    __slots__ = ()
    failed_msg = "BrotliEncoderCompressStream() failed"

    def __init__(self, c: BrotliLocConf, length: int | None) -> None:
        wbits = c.lg_win
        if length is not None and length > 0:
            wbits = MIN_WBITS
            while wbits < c.lg_win and length > (1 << wbits):
                wbits += 1
        comp = brotlilib.Compressor(quality=c.quality, lgwin=wbits)
        super().__init__(comp.process, comp.finish)


BROTLI = encoding.Coding("br", 1, "brotli", ".br", lambda r: BrotliEncoder(r.loc.brotli, r.hout.content_length),
                         "brotli")
encoding.register(BROTLI)


class BrotliModule(encoding.FilterModule):
    name = "brotli"
    nginx_name = "ngx_http_brotli_filter_module"
    main_conf = BrotliMainConf
    loc_conf = BrotliLocConf
    coding = BROTLI
    static_here = True
    directives = [
        *encoding.filter_directives("brotli"),
        dir("brotli_comp_level", HSL, TAKE1, encoding.bounded_number("quality", 0, 11)),
        dir("brotli_window", HSL, TAKE1,
            encoding.pow2_size("lg_win", MIN_WBITS, MAX_WBITS, 0, "1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, "
                               "512k, 1m, 2m, 4m, 8m or 16m")),
        dir("brotli_static", HSL, TAKE1, static_mode_setter("brotli")),
    ]
