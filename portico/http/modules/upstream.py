"""ngx_http_upstream_module (upstream{}, server, resolver,
resolver_timeout), ngx_http_upstream_zone_module (zone) and
ngx_http_upstream_keepalive_module (keepalive, keepalive_requests,
keepalive_timeout, keepalive_time), with the $upstream_* variables.

Invariants:
- ``UpstreamMain.upstreams`` (main conf) lists every upstream, explicit
  and implicit (proxy_pass http://host:port), in configuration order.
  An upstream{} block is finished (peers resolved, balancer made) when
  it closes; implicit ones at postconfiguration.
- Per request, the upstream attempts are ``r.ctx["upstream_states"]`` (a
  list of ``UpState``; a None between two proxied locations of one request,
  after an internal redirect), the last response's headers
  ``r.ctx["upstream_headers"]`` and trailers ``r.ctx["upstream_trailers"]``;
  the variables read only those and print nginx's format: attempts joined
  by ", ", internal redirects by " : ", times as seconds.milliseconds
  ("-" for an attempt without a status; a header or connect time that was
  never reached shows the response time, as nginx does).
- A zoned upstream attaches to its zone in each worker (``init_worker``);
  the worker's tick starts the health checks and re-resolutions that are
  due for the whole server (``upstream/health.py``, ``upstream/resolve.py``).
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import values
from ...core.module import HTTP, MORE1, TAKE1, UPSTREAM, Conf, Module, dir
from ...core.resolver import parse_resolver
from ...core.shm.declare import check_zero_size, shared_memory_add
from ...core.shm.zone import MIN_ZONE_SIZE
from ...upstream import block as ub_mod
from ...upstream import health, resolve
from ...upstream.block import KeepaliveConf, UpstreamBlock, Upstreams
from ...upstream.zone import TAG as ZONE_TAG

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


def _zone(cf: Any, node: Node, conf: Any) -> None:
    """``zone NAME [SIZE]`` (ngx_http_upstream_zone)."""
    ub: UpstreamBlock = cf.extra["upstream"]
    name = node.args[0]
    if not name:
        raise node.error(f'invalid zone name "{name}"')
    size = 0
    if len(node.args) == 2:
        n = values.parse_size(node.args[1])
        if n is None:
            raise node.error(f'invalid zone size "{node.args[1]}"')
        if n < MIN_ZONE_SIZE:
            raise node.error(f'zone "{name}" is too small')
        size = n
    shared_memory_add(cf.cycle, node, name, size, ZONE_TAG)
    ub.zone = name
    ub.zone_size = size


def _up_resolver(cf: Any, node: Node, conf: Any) -> None:
    ub: UpstreamBlock = cf.extra["upstream"]
    if ub.resolver is not None:
        raise node.error('"resolver" directive is duplicate')
    ub.resolver = parse_resolver(node)


def _up_resolver_timeout(cf: Any, node: Node, conf: Any) -> None:
    ub: UpstreamBlock = cf.extra["upstream"]
    if ub.resolver_timeout is not None:
        raise node.error('"resolver_timeout" directive is duplicate')
    t = values.parse_time(node.args[0], default_unit_ms=True)
    if t is None:
        raise node.error('"resolver_timeout" directive invalid value')
    ub.resolver_timeout = t


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
    """nginx's loop over r->upstream_states: ", " between attempts, " : "
    where a new upstream started after an internal redirect (None)."""
    st = _states(r)
    if not st:
        return None
    out: list[str] = []
    for s in st:
        if s is None:
            out.append(" : ")
            continue
        if out and out[-1] != " : ":
            out.append(", ")
        out.append(fn(s))
    return "".join(out)


def _ms(t: float) -> str:
    ms = max(int(t * 1000), 0)
    return f"{ms // 1000}.{ms % 1000:03d}"


def _time(which: str) -> Any:
    """ngx_http_upstream_response_time_variable: "-" without a status; a
    header/connect time never reached falls back to the response time."""
    def fn(s: UpState) -> str:
        if not s.status:
            return "-"
        t = getattr(s, which)
        if t < 0:
            t = s.response_time
        return _ms(t)
    return fn


def _status(s: UpState) -> str:
    return str(s.status) if s.status else "-"


def _header_values(hs: Any, want: str) -> list[str]:
    return [v for k, v in hs if k.lower() == want] if hs else []


def _upstream_http(name: str) -> Any:
    """$upstream_http_NAME: every such header of the last response, joined
    with ", " (ngx_http_variable_unknown_header, nginx 1.23+)."""
    want = name.replace("_", "-").lower()

    def get(r: Any) -> str | None:
        vals = _header_values(r.ctx.get("upstream_headers"), want)
        return ", ".join(vals) if vals else None
    return get


def _upstream_trailer(name: str) -> Any:
    want = name.replace("_", "-").lower()

    def get(r: Any) -> str | None:
        vals = _header_values(r.ctx.get("upstream_trailers"), want)
        return ", ".join(vals) if vals else None
    return get


def _upstream_cookie(name: str) -> Any:
    """$upstream_cookie_NAME: the value of cookie NAME in the last
    response's Set-Cookie lines (ngx_http_parse_set_cookie_lines)."""
    want = name.lower()

    def get(r: Any) -> str | None:
        for line in _header_values(r.ctx.get("upstream_headers"), "set-cookie"):
            k, eq, v = line.partition("=")
            if eq and k.strip().lower() == want:
                return v.split(";", 1)[0].strip()
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
        dir("resolver", U, MORE1, _up_resolver, "none"),
        dir("resolver_timeout", U, TAKE1, _up_resolver_timeout, "none"),
    ]

    def preconfiguration(self, http: Any) -> None:
        v = http.variables
        v.add("upstream_addr", lambda r: _join(r, lambda s: s.addr))
        v.add("upstream_status", lambda r: _join(r, _status))
        resp, conn, head = _time("response_time"), _time("connect_time"), _time("header_time")
        v.add("upstream_response_time", lambda r: _join(r, resp))
        v.add("upstream_connect_time", lambda r: _join(r, conn))
        v.add("upstream_header_time", lambda r: _join(r, head))
        v.add("upstream_response_length", lambda r: _join(r, lambda s: str(s.length)))
        v.add("upstream_bytes_received", lambda r: _join(r, lambda s: str(s.bytes_received)))
        v.add("upstream_bytes_sent", lambda r: _join(r, lambda s: str(s.bytes_sent)))
        v.add_prefix("upstream_http_", _upstream_http)
        v.add_prefix("upstream_trailer_", _upstream_trailer)
        v.add_prefix("upstream_cookie_", _upstream_cookie)
        v.add("upstream_cache_status", lambda r: None)  # no proxy_cache yet

    def postconfiguration(self, http: Any) -> None:
        check_zero_size(http.cycle)
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.group is None:
                ub_mod.finish(ub, None)
            http_core = ub.cf.loc.get("core") if ub.cf is not None else None
            ub_mod.check_resolve(ub, http_core)

    def init_worker(self, worker: Any) -> None:
        self._worker = worker
        self._checks: list[Any] = []
        self._resolving: list[tuple[Any, list[int]]] = []
        http = getattr(worker.cycle, "http", None)
        if http is None or "upstream" not in http.main:
            return
        for ub in http.main["upstream"].upstreams.blocks:
            zs = ub.shared
            if zs is None:
                continue
            zs.attach(worker.cycle)
            self._checks.extend(ub.health_checks)
            ks = resolve.resolve_servers(zs)
            if ks:
                self._resolving.append((zs, ks))

    def tick_worker(self) -> None:
        """Close idle keepalive connections past their keepalive_timeout;
        start the health checks and look-ups due for the whole server."""
        worker = getattr(self, "_worker", None)
        http = getattr(worker.cycle, "http", None) if worker is not None else None
        if http is None or "upstream" not in http.main:
            return
        now = worker.loop.time()
        from ...upstream import proxy_fast  # (imports this module)
        proxy_fast.sweep(now)
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.pool is not None:
                ub.pool.sweep(now)
        if getattr(worker, "shutting_down", False):
            return
        if self._checks:
            health.tick(self._checks, worker.loop, worker.cycle.log)
        if self._resolving:
            resolve.tick(self._resolving, worker.loop, worker.cycle.log)

    def exit_worker(self, worker: Any) -> None:
        http = getattr(worker.cycle, "http", None)
        if http is None or "upstream" not in http.main:
            return
        for ub in http.main["upstream"].upstreams.blocks:
            if ub.pool is not None:
                ub.pool.close_all()


class UpstreamZoneModule(Module):
    name = "upstream_zone"
    nginx_name = "ngx_http_upstream_zone_module"
    is_http = True
    directives = [dir("zone", U, (1, 2), _zone, "none")]


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
