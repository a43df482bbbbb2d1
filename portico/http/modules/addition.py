"""ngx_http_addition_filter_module: add_before_body, add_after_body,
addition_types.

Invariants:
- Only a main request's 200 response whose type is in ``addition_types``
  (text/html by default, ``*`` for any; ``portico.http.types``) gets additions; its Content-Length
  and Accept-Ranges are dropped and a strong ETag is weakened, as nginx does.
- The before-body subrequest starts with the first body buffer; the main
  body waits behind it (``_Ctx.pending``) until it has finished, so the
  order holds even when a subrequest answers later (a proxied one).  The
  after-body subrequest starts when the main body's last buffer has passed,
  and the response ends when it finishes.
- A subrequest's answer is inserted whatever its status, error page
  included (nginx does the same).
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import HSL, MORE1, TAKE1, Conf, Module, UNSET, dir
from ..request import Request
from ..subrequest import subrequest
from ..types import HTML_TYPES, type_listed, types_setter
from .static import body_changed


class AdditionLocConf(Conf):
    before_body: str = ""
    after_body: str = ""
    types: Any = HTML_TYPES  # a frozenset, or ANY_TYPE for "*"


def _uri(cf: Any, node: Node, conf: AdditionLocConf) -> None:
    attr = "before_body" if node.name == "add_before_body" else "after_body"
    if getattr(conf, attr) is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    setattr(conf, attr, node.args[0])


class _Ctx:
    __slots__ = ("before_started", "waiting", "pending")

    def __init__(self) -> None:
        self.before_started = False
        self.waiting = False  # the before-body subrequest has not finished yet
        self.pending: list[tuple[list[Any], bool]] = []


def addition_header_filter(r: Request, next: Any) -> None:
    conf = r.loc.addition
    h = r.hout
    if (h.status == 200 and not r.internal_sub and (conf.before_body or conf.after_body)
            and type_listed(conf.types, h)):
        if not r.header_only:  # a HEAD response never reaches nginx's body filters
            r.ctx["addition"] = _Ctx()
        body_changed(r)
    next(r)


def addition_body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
    ctx = r.ctx.get("addition")
    if ctx is None:
        next(r, bufs, last)
        return
    conf = r.loc.addition
    if not ctx.before_started:
        ctx.before_started = True
        if conf.before_body:
            ctx.waiting = True

            def before_done(sr: Request) -> None:
                ctx.waiting = False
                pending, ctx.pending = ctx.pending, []
                for pb, pl in pending:
                    _main_body(r, ctx, pb, pl, next)
            subrequest(r, conf.before_body, "", before_done)
    if ctx.waiting:
        ctx.pending.append((bufs, last))
        return
    _main_body(r, ctx, bufs, last, next)


def _main_body(r: Request, ctx: _Ctx, bufs: list[Any], last: bool, next: Any) -> None:
    after = r.loc.addition.after_body
    if not last or not after:
        next(r, bufs, last)
        return
    next(r, bufs, False)
    del r.ctx["addition"]
    subrequest(r, after, "", lambda sr: next(r, [], True))


class AdditionModule(Module):
    name = "addition"
    nginx_name = "ngx_http_addition_filter_module"
    is_http = True
    loc_conf = AdditionLocConf
    directives = [
        dir("add_before_body", HSL, TAKE1, _uri),
        dir("add_after_body", HSL, TAKE1, _uri),
        dir("addition_types", HSL, MORE1, types_setter("types")),
    ]

    def postconfiguration(self, http: Any) -> None:
        def applies(loc: Any) -> bool:
            return bool(loc.addition.before_body or loc.addition.after_body)
        http.header_filters.append(("addition", addition_header_filter, applies))
        http.body_filters.append(("addition", addition_body_filter, applies))
