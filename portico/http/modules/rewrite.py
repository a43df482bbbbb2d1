"""ngx_http_rewrite_module (the part the core needs now: ``return``).

Invariants:
- Each server and location owns a script (a list of steps); scripts are not
  inherited, as in nginx.  The server's script runs in SERVER_REWRITE; a
  location's in REWRITE.  When no location matched, the server's script is
  not run a second time (nginx's "server null location" rule).
- A step returns None to go on, or a status code that ends the script.
"""
from __future__ import annotations

from typing import Any, Callable

from ...conf.parser import Node
from ...core.module import LOCATION, SERVER, TAKE12, Conf, Module, UNSET, dir
from ..request import DECLINED, DONE, Request
from .static import content_type_for

_REDIRECTS = (301, 302, 303, 307, 308)


class RewriteLocConf(Conf):
    script: list = None  # type: ignore[assignment]

    def merge(self, parent: Conf | None) -> None:
        if self.script is UNSET:
            self.script = []  # never inherited


def _script(conf: RewriteLocConf) -> list[Callable[[Request], "int | None"]]:
    if conf.script is UNSET:
        conf.script = []
    return conf.script


def _return(cf: Any, node: Node, conf: RewriteLocConf) -> None:
    main = cf.extra["http"]
    args = node.args
    first = args[0]
    text = None
    if first.isdigit():
        code = int(first)
        if code > 999:
            raise node.error(f'invalid return code "{first}"')
        if len(args) == 2:
            text = main.variables.compile(args[1], node.file, node.line)
    else:
        if len(args) == 2:
            raise node.error(f'invalid return code "{first}"')
        if not (first.startswith("http://") or first.startswith("https://") or first.startswith("$scheme")):
            raise node.error(f'invalid return code "{first}"')
        code = 302
        text = main.variables.compile(first, node.file, node.line)

    def step(r: Request) -> int:
        return do_return(r, code, text)
    _script(conf).append(step)


def do_return(r: Request, code: int, text: Any) -> int:
    if code >= 400 and text is None:
        return code
    if code in _REDIRECTS:
        r.hout.location = text.eval(r) if text is not None else ""
        return code
    body = text.eval(r).encode("utf-8", "surrogateescape") if text is not None else b""
    if code == 444:
        return 444
    h = r.hout
    h.status = code
    h.content_type = content_type_for(r, r.uri)
    h.content_length = len(body)
    if r.body is not None:
        r.body.discard()
    r.send_header()
    r.send([body] if body and not r.header_only else None, True)
    return DONE


def rewrite_handler(r: Request) -> int:
    engine = r.http.engine
    if r.phase_index >= engine.rewrite_index and r.location is r.server.root:  # type: ignore[union-attr]
        return DECLINED
    script = r.loc.rewrite.script
    if not script:
        return DECLINED
    for step in script:
        rc = step(r)
        if rc is not None:
            return rc
    return DECLINED


class RewriteModule(Module):
    name = "rewrite"
    nginx_name = "ngx_http_rewrite_module"
    is_http = True
    loc_conf = RewriteLocConf
    directives = [
        dir("return", frozenset({SERVER, LOCATION, "sif", "lif"}), TAKE12, _return, status="partial"),
    ]

    def postconfiguration(self, http: Any) -> None:
        # Per-configuration, not per-request: without any script the
        # rewrite phases have no handler at all.
        if any(loc.confs_raw["rewrite"].script for loc in http.all_locations()):
            http.add_phase_handler("server_rewrite", rewrite_handler)
            http.add_phase_handler("rewrite", rewrite_handler)
