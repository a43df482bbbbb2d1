"""ngx_http_rewrite_module: rewrite, return, set, if, break, rewrite_log,
uninitialized_variable_warn.

Invariants:
- Each server and location owns a script (a list of steps, see
  ``portico.http.script``); scripts are not inherited, as in nginx.  The
  server's script runs in SERVER_REWRITE, a location's in REWRITE.  When no
  location matched, the server's script is not run a second time (nginx's
  "server null location" rule).
- ``if`` in a location is an implicit nested location: its own confs for
  every module, merged from the enclosing location (``Location.if_children``),
  selected when the condition is true.  Its rewrite-module directives are
  compiled into the enclosing script; its own script stays empty.
- ``set`` on ``$args`` / ``$limit_rate`` goes through their set handlers
  (``Variables.setter``); on
  a map/geo/split_clients variable it overrides the value for this request;
  a name nginx does not let ``set`` change is ``the duplicate "x" variable``.
- A ``set`` variable read before it is set is empty and, with
  ``uninitialized_variable_warn on``, logs nginx's warning once per request.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import (HTTP, LIF, LOCATION, MORE1, NOARGS, SERVER, SIF, TAKE1, TAKE12, TAKE2, TAKE23,
                            Conf, Module, UNSET, dir, set_flag)
from .. import script
from ..location import Location
from ..request import DECLINED, DONE, Request
from .map import check_new_variable
from .static import content_type_for

_REDIRECTS = (301, 302, 303, 307, 308)
SL_IF = frozenset({SERVER, LOCATION, SIF, LIF})
HSL_IF = frozenset({HTTP, SERVER, LOCATION, SIF, LIF})


class RewriteLocConf(Conf):
    script: list = None  # type: ignore[assignment]
    log: bool = False
    uninitialized_variable_warn: bool = True

    def merge(self, parent: Conf | None) -> None:
        own = self.script
        super().merge(parent)
        self.script = own if own is not UNSET else []  # never inherited


def _script(conf: RewriteLocConf) -> list[script.Step]:
    if conf.script is UNSET:
        conf.script = []
    return conf.script


# --- return ----------------------------------------------------------------------------

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

    def step(r: Request, log: bool) -> int:
        return do_return(r, code, text)
    _script(conf).append(step)


def do_return(r: Request, code: int, text: Any) -> int:
    # ngx_http_send_response sets the status before the text is evaluated,
    # so $status in a return body is the code being returned
    r.hout.status = code
    if code >= 400 and text is None:
        return code
    if code in _REDIRECTS:
        r.hout.location = text.eval(r) if text is not None else ""
        return code
    body = text.eval(r).encode("utf-8", "surrogateescape") if text is not None else b""
    if code == 444:
        return 444
    h = r.hout
    if not h.content_type:  # ngx_http_set_content_type keeps one already set (X-Accel-Redirect)
        h.content_type = content_type_for(r, r.uri)
    h.content_length = len(body)
    if r.body is not None:
        r.body.discard()
    r.send_header()
    r.send([body] if body and not r.header_only else None, True)
    return DONE


# --- rewrite ---------------------------------------------------------------------------

class RewriteStep:
    """One ``rewrite regex replacement [flag]`` (ngx_http_script_regex_start_code
    and regex_end_code)."""

    __slots__ = ("rx", "pattern", "repl", "redirect", "status", "break_cycle", "last", "add_args")

    def __init__(self, rx: Any, pattern: str, repl: script.Replacement, redirect: bool, status: int,
                 break_cycle: bool, last: bool, add_args: bool) -> None:
        self.rx = rx
        self.pattern = pattern
        self.repl = repl
        self.redirect = redirect
        self.status = status
        self.break_cycle = break_cycle
        self.last = last
        self.add_args = add_args

    def __call__(self, r: Request, log: bool) -> int | None:
        if script.regex_exec(r, self.rx, self.pattern, r.uri, log) is None:
            return None
        repl = self.repl
        quoted = repl.has_caps and script.uri_is_quoted(r)
        if self.redirect:
            url = script.unescape_redirect(repl.render(r, repl.uri, quoted))
            if self.add_args and r.args:
                url += ("&" if repl.has_q else "?") + r.args
            if log:
                r.log_error(logmod.NOTICE, f'rewritten redirect: "{url}"')
            r.hout.location = url
            return self.status
        r.internal = True
        if self.break_cycle:
            r.uri_changed = False
            r.valid_location = False
        else:
            r.uri_changed = True
        new_uri = repl.render(r, repl.uri, False)
        if repl.args is not None:
            args = repl.render(r, repl.args, quoted)
            if self.add_args and r.args:
                args += "&" + r.args
            r.args = args
        elif not self.add_args:
            r.args = ""
        if log:
            r.log_error(logmod.NOTICE, f'rewritten data: "{new_uri}", args: "{r.args}"')
        r.uri = new_uri
        if not new_uri:
            r.log_error(logmod.ERROR, "the rewritten URI has a zero length")
            return 500
        return DECLINED if self.last else None


def _rewrite(cf: Any, node: Node, conf: RewriteLocConf) -> None:
    main = cf.extra["http"]
    pattern, repl = node.args[0], node.args[1]
    if not repl:
        raise node.error("empty replacement")
    rx = script.compile_regex(pattern, node)
    if rx.groupindex:
        main.variables.declare_named_captures(list(rx.groupindex))
    redirect = repl.startswith(("http://", "https://", "$scheme"))
    status = 302 if redirect else 0
    last = redirect
    break_cycle = False
    if len(node.args) == 3:
        flag = node.args[2]
        if flag == "last":
            last = True
        elif flag == "break":
            break_cycle = last = True
        elif flag == "redirect":
            status, redirect, last = 302, True, True
        elif flag == "permanent":
            status, redirect, last = 301, True, True
        else:
            raise node.error(f'invalid parameter "{flag}"')
    # a trailing '?' drops the original arguments
    add_args = True
    if repl.endswith("?"):
        repl = repl[:-1]
        add_args = False
    compiled = script.compile_replacement(main.variables, repl, not redirect, node)
    _script(conf).append(RewriteStep(rx, pattern, compiled, redirect, status, break_cycle, last, add_args))


# --- set -------------------------------------------------------------------------------

def _set(cf: Any, node: Node, conf: RewriteLocConf) -> None:
    main = cf.extra["http"]
    variables = main.variables
    target = node.args[0]
    if not target.startswith("$"):
        raise node.error(f'invalid variable name "{target}"')
    # nginx's variable names are case-insensitive: reuse the registered key
    low = target[1:].lower()
    name = next((k for k in variables.vars if k.lower() == low), low)
    handler = variables.setter(name)
    if handler is None:
        # ngx_http_add_variable(CHANGEABLE), as for map, geo and split_clients
        check_new_variable(main, node, target[1:])
        if name not in variables.vars:
            _declare_set_variable(variables, name)
    cv = variables.compile(node.args[1], node.file, node.line)
    if handler is not None:
        def set_builtin(r: Request, log: bool) -> None:
            handler(r, cv.eval(r))
        _script(conf).append(set_builtin)
        return

    def set_var(r: Request, log: bool) -> None:
        r.vars[name] = cv.eval(r)
    _script(conf).append(set_var)


def _declare_set_variable(variables: Any, name: str) -> None:
    """A variable that only ``set`` writes: ngx_http_rewrite_var when unset."""
    def get(r: Request) -> str:
        v = r.vars.get(name)
        if v is not None:
            return v
        if r.loc.rewrite.uninitialized_variable_warn:
            r.log_error(logmod.WARN, f'using uninitialized "{name}" variable')
        r.vars[name] = ""  # cached: nginx warns once per request
        return ""
    variables.vars[name] = get
    variables.changeable.add(name)


# --- break, if -----------------------------------------------------------------------

def _break(cf: Any, node: Node, conf: RewriteLocConf) -> None:
    _script(conf).append(script.break_step)


def _if(cf: Any, node: Node, conf: RewriteLocConf) -> None:
    main = cf.extra["http"]
    parent: Location = cf.extra["location"]
    in_server = cf.ctx == SERVER
    mods = main.modules
    confs = {m.name: m.loc_conf() for m in mods if m.loc_conf}
    cond = script.compile_condition(main.variables, node)
    if in_server:
        step = script.IfStep(cond, None)
        sub = cf.child(SIF)
    else:
        ifloc = Location(parent.name, "if", confs, parent, node.file, node.line)
        parent.if_children.append(ifloc)
        step = script.IfStep(cond, ifloc)
        sub = cf.child(LIF)
        sub.extra = dict(cf.extra, location=ifloc)
    _script(conf).append(step)
    # the block's rewrite directives compile into this step; its own script stays empty
    confs["rewrite"].script = step.steps
    sub.loc = confs
    sub.process(node.block or [])
    confs["rewrite"].script = []


# --- the phase handler -------------------------------------------------------------------

def rewrite_handler(r: Request) -> int:
    engine = r.http.engine
    if r.phase_index >= engine.rewrite_index and r.location is r.server.root:  # type: ignore[union-attr]
        return DECLINED
    conf = r.loc.rewrite
    steps = conf.script
    if not steps:
        return DECLINED
    rc = script.run(r, steps, conf.log)
    return DECLINED if rc is None else rc


class RewriteModule(Module):
    name = "rewrite"
    nginx_name = "ngx_http_rewrite_module"
    is_http = True
    loc_conf = RewriteLocConf
    directives = [
        dir("rewrite", SL_IF, TAKE23, _rewrite),
        dir("return", SL_IF, TAKE12, _return),
        dir("break", SL_IF, NOARGS, _break),
        dir("if", frozenset({SERVER, LOCATION}), MORE1, _if, block=True),
        dir("set", SL_IF, TAKE2, _set),
        dir("rewrite_log", HSL_IF, TAKE1, set_flag("log")),
        dir("uninitialized_variable_warn", HSL_IF, TAKE1, set_flag("uninitialized_variable_warn")),
    ]

    def postconfiguration(self, http: Any) -> None:
        # Per-configuration, not per-request: without any script the
        # rewrite phases have no handler at all.
        if any(loc.confs_raw["rewrite"].script for loc in http.all_locations()):
            http.add_phase_handler("server_rewrite", rewrite_handler)
            http.add_phase_handler("rewrite", rewrite_handler, lambda lc: bool(lc.rewrite.script))
