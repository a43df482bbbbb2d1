"""ngx_http_upstream_module (upstream{}, server) and
ngx_http_upstream_keepalive_module (keepalive, keepalive_requests,
keepalive_timeout, keepalive_time), with the $upstream_* variables.

Invariants:
- ``UpstreamMain.upstreams`` (main conf) lists every upstream, explicit
  and implicit (proxy_pass http://host:port), in configuration order.
  An upstream{} block is finished (peers resolved, balancer made) when
  it closes; implicit ones at postconfiguration.
- Per request, the upstream attempts are ``r.ctx["upstream_states"]`` (a
  list of ``UpState``), the last response's headers
  ``r.ctx["upstream_headers"]``; the variables read only those.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import values
from ...core.module import HTTP, MORE1, TAKE1, UPSTREAM, Conf, Module, dir
from ...upstream import block as ub_mod
from ...upstream.block import KeepaliveConf, UpstreamBlock, Upstreams

H = frozenset({HTTP})
U = frozenset({UPSTREAM})


class UpstreamMain(Conf):
    upstreams: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.upstreams = Upstreams()

    def merge(self, parent: Conf | None) -> None:
        pass


class UpState:
    """One attempt (nginx's ngx_http_upstream_state_t)."""
    __slots__ = ("addr", "status", "connect_time", "header_time", "response_time", "length",
                 "bytes_received", "bytes_sent")

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.status = 0
        self.connect_time = -1.0
        self.header_time = -1.0
        self.response_time = -1.0
        self.length = 0
        self.bytes_received = 0
        self.bytes_sent = 0


def upstreams_of(cf: Any) -> Upstreams:
    return cf.main["upstream"].upstreams


# --- directives ----------------------------------------------------------------------

def _upstream(cf: Any, node: Node, conf: UpstreamMain) -> None:
    name = node.args[0]
    ub = conf.upstreams.add(node, name, 0, True, True)
    sub = cf.child(UPSTREAM)
    sub.extra = dict(cf.extra, upstream=ub)
    sub.process(node.block or [])
    if not ub.servers:
        raise node.error("no servers are inside upstream")  # at the closing brace, as nginx
    _finish_keepalive(ub)
    ub_mod.finish(ub, sub)


def _finish_keepalive(ub: UpstreamBlock) -> None:
    ka = ub.keepalive
    if ka is not None:
        if ub.ka_requests is not None:
            ka.requests = ub.ka_requests
        if ub.ka_timeout is not None:
            ka.timeout = ub.ka_timeout
        if ub.ka_time is not None:
            ka.time = ub.ka_time


def _server(cf: Any, node: Node, conf: Any) -> None:
    ub_mod.parse_server(cf.extra["upstream"], node)


def _keepalive(cf: Any, node: Node, conf: Any) -> None:
    ub: UpstreamBlock = cf.extra["upstream"]
    if ub.keepalive is not None:
        raise node.error('"keepalive" directive is duplicate')
    n = values.parse_number(node.args[0])
    if n is None or n == 0:
        raise node.error(f'invalid value "{node.args[0]}" in "keepalive" directive')
    ub.keepalive = KeepaliveConf(n)


def _ka_param(attr: str, kind: str) -> Any:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        ub: UpstreamBlock = cf.extra["upstream"]
        if getattr(ub, attr) is not None:
            raise node.error(f'"{node.name}" directive is duplicate')
        if kind == "num":
            v: Any = values.parse_number(node.args[0])
        else:
            v = values.parse_time(node.args[0], default_unit_ms=True)
        if v is None:
            raise node.error(f'"{node.name}" directive invalid {"number" if kind == "num" else "value"}')
        setattr(ub, attr, v)
    return setter


# --- variables -----------------------------------------------------------------------

def _states(r: Any) -> list[UpState] | None:
    return r.ctx.get("upstream_states")


def _join(r: Any, fn: Any) -> str | None:
    st = _states(r)
    if not st:
        return None
    return ", ".join(fn(s) for s in st)


def _ms(t: float) -> str:
    if t < 0:
        return "-"
    ms = int(t * 1000)
    return f"{ms // 1000}.{ms % 1000:03d}"


def _status(s: UpState) -> str:
    return str(s.status) if s.status else "-"


def _upstream_http(name: str) -> Any:
    want = name.replace("_", "-").lower()

    def get(r: Any) -> str | None:
        hs = r.ctx.get("upstream_headers")
        if not hs:
            return None
        for k, v in hs:
            if k.lower() == want:
                return v
        return None
    return get


class UpstreamModule(Module):
    name = "upstream"
    nginx_name = "ngx_http_upstream_module"
    is_http = True
    main_conf = UpstreamMain
    directives = [
        dir("upstream", H, TAKE1, _upstream, "main", block=True),
        dir("server", U, MORE1, _server, "none"),
    ]

    def preconfiguration(self, http: Any) -> None:
        v = http.variables
        v.add("upstream_addr", lambda r: _join(r, lambda s: s.addr))
        v.add("upstream_status", lambda r: _join(r, _status))
        v.add("upstream_response_time", lambda r: _join(r, lambda s: _ms(s.response_time)))
        v.add("upstream_connect_time", lambda r: _join(r, lambda s: _ms(s.connect_time)))
        v.add("upstream_header_time", lambda r: _join(r, lambda s: _ms(s.header_time)))
        v.add("upstream_response_length", lambda r: _join(r, lambda s: str(s.length)))
        v.add("upstream_bytes_received", lambda r: _join(r, lambda s: str(s.bytes_received)))
        v.add("upstream_bytes_sent", lambda r: _join(r, lambda s: str(s.bytes_sent)))
        v.add_prefix("upstream_http_", _upstream_http)

    def postconfiguration(self, http: Any) -> None:
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.group is None:
                ub_mod.finish(ub, None)

    def init_worker(self, worker: Any) -> None:
        self._worker = worker

    def tick_worker(self) -> None:
        """Close idle keepalive connections past their keepalive_timeout."""
        worker = getattr(self, "_worker", None)
        http = getattr(worker.cycle, "http", None) if worker is not None else None
        if http is None or "upstream" not in http.main:
            return
        now = worker.loop.time()
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.pool is not None:
                ub.pool.sweep(now)

    def exit_worker(self, worker: Any) -> None:
        http = getattr(worker.cycle, "http", None)
        if http is None or "upstream" not in http.main:
            return
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.pool is not None:
                ub.pool.close_all()


class UpstreamKeepaliveModule(Module):
    name = "upstream_keepalive"
    nginx_name = "ngx_http_upstream_keepalive_module"
    is_http = True
    directives = [
        dir("keepalive", U, TAKE1, _keepalive, "none"),
        dir("keepalive_requests", U, TAKE1, _ka_param("ka_requests", "num"), "none"),
        dir("keepalive_timeout", U, TAKE1, _ka_param("ka_timeout", "time"), "none"),
        dir("keepalive_time", U, TAKE1, _ka_param("ka_time", "time"), "none"),
    ]
