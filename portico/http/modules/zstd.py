"""zstd-nginx-module (tokers/zstd-nginx-module): the zstd filter and zstd_static.

Directives as its ngx_http_zstd_filter_module and ngx_http_zstd_static_module
define them: ``zstd``, ``zstd_comp_level`` (ZSTD_minCLevel..22 excluding
0, default 1), ``zstd_min_length`` (default 20), ``zstd_types`` (default
text/html, ``*`` for any), ``zstd_buffers`` (accepted), ``zstd_dict_file``
(http{} only), ``zstd_static on|off|always`` (``FILE.zst``); variable
``$zstd_ratio`` ("%ui.%03ui", truncated, as the module prints it).

Invariants:
- The filter acts like the module's: 200/403/404, not HEAD, no
  Content-Encoding, listed type, not known shorter than min_length; it marks
  Vary (gzip_vary).  Which coding wins is decided in ``portico.http.encoding``.
- The dictionary is read once, when the configuration is read; every
  response gets a fresh compression context (streams may interleave).
- Output is one zstd frame from the ``zstandard`` package.
- The directives and hooks it shares with gzip and brotli are
  ``portico.http.encoding``'s ``filter_directives`` and ``FilterModule``.
"""
from __future__ import annotations

from typing import Any

import zstandard

from ...conf.parser import Node
from ...core import values
from ...core.module import HSL, HTTP, MORE1, TAKE1, Conf, UNSET, dir
from .. import encoding
from ..request import Request
from .gzip_static import static_mode_setter

MIN_LEVEL = -(1 << 17)  # ZSTD_minCLevel() of libzstd 1.5
MAX_LEVEL = zstandard.MAX_COMPRESSION_LEVEL


class ZstdLocConf(encoding.FilterLocConf):
    level: int = 1
    mode: int = encoding.OFF  # zstd_static


class ZstdMainConf(Conf):
    dict_data: Any = None  # zstandard.ZstdCompressionDict | None
    used: bool = False  # some level has zstd_static on|always


def _comp_level(cf: Any, node: Node, conf: ZstdLocConf) -> None:
    if conf.level is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    a = node.args[0]
    v = values.parse_number(a[1:] if a.startswith("-") else a)
    if v is None:
        raise node.error(f'"{node.name}" directive invalid number')
    if a.startswith("-"):
        v = -v
    if v == 0 or not MIN_LEVEL <= v <= MAX_LEVEL:
        raise node.error(f"zstd compress level must between {MIN_LEVEL} and {MAX_LEVEL} excluding 0")
    conf.level = v


def _dict_file(cf: Any, node: Node, conf: ZstdMainConf) -> None:
    if conf.dict_data is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    path = cf.cycle.full_path(node.args[0])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise node.error(f'open() "{path}" failed ({e.errno}: {e.strerror})') from None
    conf.dict_data = zstandard.ZstdCompressionDict(data)


class ZstdEncoder(encoding.LibEncoder):
    __slots__ = ()
    failed_msg = "ZSTD_compressStream2() failed"

    def __init__(self, c: ZstdLocConf, dict_data: Any) -> None:
        # one frame per response, from a context of its own
        o = zstandard.ZstdCompressor(level=c.level, dict_data=dict_data).compressobj()
        super().__init__(o.compress, o.flush)


def _encoder(r: Request) -> ZstdEncoder:
    return ZstdEncoder(r.loc.zstd, r.http.main["zstd"].dict_data)


# $zstd_ratio: "%ui.%03ui", truncated, as the module prints it
ZSTD = encoding.Coding("zstd", 0, "zstd", ".zst", _encoder, "zstd", ratio_digits=3)
encoding.register(ZSTD)


class ZstdModule(encoding.FilterModule):
    name = "zstd"
    nginx_name = "ngx_http_zstd_filter_module"
    main_conf = ZstdMainConf
    loc_conf = ZstdLocConf
    coding = ZSTD
    static_here = True
    directives = [
        *encoding.filter_directives("zstd", min_length_nargs=MORE1),
        dir("zstd_comp_level", HSL, TAKE1, _comp_level),
        dir("zstd_dict_file", frozenset({HTTP}), TAKE1, _dict_file, level="main"),
        dir("zstd_static", HSL, TAKE1, static_mode_setter("zstd")),
    ]
