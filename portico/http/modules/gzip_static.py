"""ngx_http_gzip_static_module: ``FILE.gz`` for ``FILE`` (on, off, always).

Invariants:
- The handler itself is ``portico.http.encoding.static_handler``, shared
  with brotli_static and zstd_static; it is added to the CONTENT phase only
  when some level of the configuration turns one of them on, so other
  configurations pay nothing.
- The answer is nginx's: status 200, Content-Length, Last-Modified and
  ETag of the ``.gz`` file, Content-Type of the URI, ``Content-Encoding:
  gzip``, no Accept-Ranges; ``on`` sets Vary (with gzip_vary) whenever the
  ``.gz`` exists, ``always`` never does.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import HSL, TAKE1, Conf, Module, UNSET, dir
from .. import encoding


class GzipStaticLocConf(Conf):
    mode: int = encoding.OFF


class GzipStaticMainConf(Conf):
    used: bool = False


def static_mode_setter(module: str) -> Any:
    """ngx_conf_set_enum_slot over off/on/always; marks the module as used."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        if conf.mode is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        v = encoding.STATIC_MODES.get(node.args[0].lower())
        if v is None:
            raise node.error(f'invalid value "{node.args[0]}"')
        conf.mode = v
        if v != encoding.OFF:
            cf.extra["http"].main[module].used = True
    return setter


class GzipStaticModule(Module):
    name = "gzip_static"
    nginx_name = "ngx_http_gzip_static_module"
    is_http = True
    main_conf = GzipStaticMainConf
    loc_conf = GzipStaticLocConf
    directives = [dir("gzip_static", HSL, TAKE1, static_mode_setter("gzip_static"))]

    def postconfiguration(self, http: Any) -> None:
        if http.main["gzip_static"].used:
            encoding.register_static(http)
