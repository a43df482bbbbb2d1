"""upstream{} blocks (ngx_http_upstream_srv_conf_t), their ``server`` lines,
implicit upstreams made by ``proxy_pass http://host:port``, and the
registry of load-balancing methods.

Invariants:
- One ``UpstreamBlock`` per distinct upstream name (case-insensitive) and,
  for implicit ones, per host:port, in configuration order
  (``Upstreams.blocks``), as nginx's ``umcf->upstreams``; ``add`` gives
  nginx's "duplicate upstream" / "may not have port" errors.
- ``finish`` runs once at the end of http{}: it resolves every server (a
  literal address, ``unix:``, or a name through getaddrinfo as nginx does
  at configuration time), builds the ``PeerGroup``, and creates the balancer
  (round robin unless a method directive chose another).  After it a block
  is read-only configuration; per-worker peer state lives in the ``Peer``
  objects (copied into each worker by fork).

How another balancing method hooks in (least_conn, ip_hash, hash, random)::

    from portico.upstream.block import register_method, method_setter

    def make(ub: UpstreamBlock, node: Node, cf: ConfCtx) -> Balancer:
        ...  # node is the method directive (its args); ub.group is final
        return LeastConn(ub.group)

    register_method("least_conn", make, allowed=ALL_PARAMS)
    # in the module's directive table (context UPSTREAM, level "none"):
    dir("least_conn", frozenset({UPSTREAM}), NOARGS, method_setter("least_conn"), "none")

``method_setter`` records the method on the enclosing upstream{} (nginx's
"load balancing method redefined" warning when one was set already);
``make`` is called once when the upstream{} block closes, with ``ub.group``
holding the resolved peers.  ``allowed`` lists the ``server`` parameters
the method supports (``weight``, ``max_conns``, ``max_fails``,
``fail_timeout``, ``down``, ``backup``): a ``server`` line after the
method directive using another one is nginx's
``balancing method does not support parameter "backup"``.
The balancer object must implement ``peers.Balancer`` (``get(state, r)``
and ``free(state, peer, ok)``); ``PeerState(tries=ub.tries)`` is what the
proxy creates per request.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

from ..conf.errors import ConfError
from ..conf.parser import Node
from ..core import values
from .peers import Balancer, Peer, PeerGroup

ALL_PARAMS = frozenset({"weight", "max_conns", "max_fails", "fail_timeout", "down", "backup"})

MethodFactory = Callable[["UpstreamBlock", Node, Any], Balancer]


@dataclass
class _Method:
    factory: MethodFactory
    allowed: frozenset[str]


_METHODS: dict[str, _Method] = {}


def register_method(name: str, factory: MethodFactory, allowed: frozenset[str] = ALL_PARAMS) -> None:
    """Make ``name`` a balancing method usable inside upstream{} (see module doc)."""
    _METHODS[name] = _Method(factory, allowed)


def method_setter(name: str) -> Callable[[Any, Node, Any], None]:
    """The directive setter of a balancing method directive."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        ub: UpstreamBlock = cf.extra["upstream"]
        if ub.method is not None:
            cf.cycle.warn("load balancing method redefined", node)
        m = _METHODS.get(name)
        if m is None:
            raise node.error(f'balancing method "{name}" is not registered')
        ub.method = (name, node)
        ub.allowed = m.allowed
    return setter


@dataclass
class ServerLine:
    url: str
    weight: int = 1
    max_fails: int = 1
    fail_timeout: float = 10.0
    max_conns: int = 0
    backup: bool = False
    down: bool = False
    resolve: bool = False  # a name re-resolved at run time (needs a zone)
    node: Node | None = None


@dataclass
class KeepaliveConf:
    max_cached: int
    requests: int = 1000
    timeout: float = 60.0
    time: float = 3600.0


@dataclass
class UpstreamBlock:
    host: str  # the name as written (upstream NAME, or the proxy_pass host)
    port: int = 0  # implicit: the port given (0: none given)
    default_port: int = 80
    explicit: bool = False  # an upstream{} block (nginx's NGX_HTTP_UPSTREAM_CREATE)
    file: str = ""
    line: int = 0
    servers: list[ServerLine] = field(default_factory=list)
    method: tuple[str, Node] | None = None
    allowed: frozenset[str] = ALL_PARAMS
    keepalive: KeepaliveConf | None = None
    # keepalive_requests/timeout/time may precede "keepalive N"
    ka_requests: int | None = None
    ka_timeout: float | None = None
    ka_time: float | None = None
    group: PeerGroup | None = None
    balancer: Any = None
    tries: int = 1
    pool: Any = None  # keepalive.Pool, per worker (made lazily after fork)
    zone: str = ""  # ``zone NAME [SIZE]``: peer state shared by the workers
    zone_size: int = 0
    resolver: Any = None  # core.resolver.Resolver of upstream{} (else http{}'s)
    resolver_timeout: float | None = None
    health_checks: list[Any] = field(default_factory=list)  # health.HealthCheck
    cf: Any = None  # the upstream{} ConfCtx: rebuilding the balancer needs it
    shared: Any = None  # zone.ZonedState once the zone is declared

    @property
    def name(self) -> str:
        return self.host


class Upstreams:
    """nginx's ngx_http_upstream_main_conf_t: every upstream, in order."""

    def __init__(self) -> None:
        self.blocks: list[UpstreamBlock] = []

    def add(self, node: Node, host: str, port: int, no_port: bool, explicit: bool,
            default_port: int = 80) -> UpstreamBlock:
        low = host.lower()
        for ub in self.blocks:
            if ub.host.lower() != low:
                continue
            if explicit and ub.explicit:
                raise node.error(f'duplicate upstream "{host}"')
            if ub.explicit and not no_port:
                raise node.error(f'upstream "{host}" may not have port {port}')
            if explicit and ub.port:
                raise node.error(f'upstream "{host}" may not have port {ub.port} in {ub.file}:{ub.line}')
            if ub.port and port and ub.port != port:
                continue
            if explicit:
                ub.explicit = True
                ub.port = 0
                ub.file, ub.line = node.file, node.line
            return ub
        ub = UpstreamBlock(host, 0 if no_port else port, default_port, explicit, node.file, node.line)
        self.blocks.append(ub)
        return ub

    def find(self, host: str, port: int, no_port: bool) -> UpstreamBlock | None:
        """ngx_http_upstream_init_request's search for a proxy_pass with variables."""
        low = host.lower()
        for ub in self.blocks:
            if ub.host.lower() == low and ((ub.port == 0 and no_port) or ub.port == port):
                return ub
        return None


# --- server lines ---------------------------------------------------------------------

def parse_server(ub: UpstreamBlock, node: Node) -> None:
    """``server ADDRESS [weight= max_fails= fail_timeout= max_conns= backup down]``."""
    s = ServerLine(node.args[0], node=node)
    for a in node.args[1:]:
        key, eq, val = a.partition("=")
        if eq and key in ("weight", "max_fails", "max_conns", "fail_timeout"):
            if key not in ub.allowed:
                raise node.error(f'balancing method does not support parameter "{a}"')
            if key == "fail_timeout":
                t = values.parse_time(val, default_unit_ms=False)
                if t is None:
                    raise node.error(f'invalid parameter "{a}"')
                s.fail_timeout = t
                continue
            n = values.parse_number(val)
            if n is None or (key == "weight" and n == 0):
                raise node.error(f'invalid parameter "{a}"')
            setattr(s, key, n)
        elif a in ("backup", "down"):
            if a not in ub.allowed:
                raise node.error(f'balancing method does not support parameter "{a}"')
            setattr(s, a, True)
        elif a == "resolve":
            s.resolve = True
        else:
            raise node.error(f'invalid parameter "{a}"')
    # check the address now: nginx parses it while reading the line (a
    # name with ``resolve`` is looked up at run time only)
    if s.resolve and run_time_name(s.url):
        _h, _p, _n, err = split_host_port(s.url, 80)
        if err:
            raise node.error(f'{err} in upstream "{s.url}"')
    else:
        s.resolve = False
        resolve_url(s.url, 80, node, f'in upstream "{s.url}"')
    ub.servers.append(s)


def split_host_port(text: str, default_port: int) -> tuple[str, int, bool, str | None]:
    """(host, port, no_port, error) of ``host[:port]`` / ``[v6][:port]`` (ngx_parse_inet_url)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return "", 0, True, "invalid host"
        host, rest = text[:end + 1], text[end + 1:]
        if rest and not rest.startswith(":"):
            return "", 0, True, "invalid host"
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = text.rpartition(":")
        if not colon:
            host, port_text = text, None
        else:
            port_text = port_text_
    if port_text is None:
        if not host:
            return "", 0, True, "no host"
        return host, default_port, True, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        return "", 0, True, "invalid port"
    if not host:
        return "", 0, True, "no host"
    return host, int(port_text), False, None


def literal_address(host: str, port: int) -> tuple[int, Any] | None:
    """(family, sockaddr) when ``host`` is an IP literal, else None."""
    h = host[1:-1] if host.startswith("[") else host
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return None
    if ip.version == 4:
        return socket.AF_INET, (str(ip), port)
    return socket.AF_INET6, (str(ip), port, 0, 0)


def peer_name(family: int, addr: Any) -> str:
    if family == socket.AF_UNIX:
        return f"unix:{addr}"
    if family == socket.AF_INET6:
        return f"[{addr[0]}]:{addr[1]}"
    return f"{addr[0]}:{addr[1]}"


def resolve_url(url: str, default_port: int, node: Node, where: str) -> list[tuple[int, Any]]:
    """Addresses of a ``server`` address or implicit upstream, as nginx
    resolves them at configuration time; ``where`` ends the error text."""
    if url.startswith("unix:"):
        path = url[5:]
        if not path:
            raise node.error(f"no path in the unix domain socket {where}")
        return [(socket.AF_UNIX, path)]
    host, port, _no_port, err = split_host_port(url, default_port)
    if err:
        raise node.error(f"{err} {where}")
    lit = literal_address(host, port)
    if lit is not None:
        return [lit]
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise node.error(f"host not found {where}") from None
    out: list[tuple[int, Any]] = []
    for fam, _t, _p, _c, sa in infos:
        if (fam, sa) not in out:
            out.append((fam, sa))
    return out


def run_time_name(url: str) -> bool:
    """True when ``server URL resolve`` names a host to look up at run time
    (not a unix socket, not an IP literal)."""
    if url.startswith("unix:"):
        return False
    host, _port, _no_port, err = split_host_port(url, 80)
    return not err and literal_address(host, 80) is None


def finish(ub: UpstreamBlock, cf: Any) -> None:
    """End of configuration: peers, balancer and tries for one upstream."""
    group = PeerGroup(ub.host)
    ub.cf = cf
    make_peer: Callable[..., Peer] = Peer
    if ub.zone:
        from .zone import SharedPeer
        make_peer = SharedPeer
    if ub.explicit:
        if not ub.servers:
            raise ConfError(f"no servers are inside upstream in {ub.file}:{ub.line}")
        for s in ub.servers:
            assert s.node is not None
            if s.resolve:
                continue  # its peers come from the zone once resolved
            for fam, addr in resolve_url(s.url, 80, s.node, f'in upstream "{s.url}"'):
                p = make_peer(peer_name(fam, addr), fam, addr, s.weight, s.max_fails, s.fail_timeout,
                              s.max_conns, s.backup, s.down, server=s.url)
                (group.backup if s.backup else group.peers).append(p)
    else:
        port = ub.port or ub.default_port
        where = Node("proxy_pass", [], ub.file, ub.line)
        for fam, addr in resolve_url(ub.host if ub.host.startswith("unix:") else f"{ub.host}:{port}",
                                     port, where, f'in upstream "{ub.host}"'):
            group.peers.append(Peer(peer_name(fam, addr), fam, addr))
    ub.group = group
    ub.tries = max(count_tries(group), 1)
    ub.balancer = make_balancer(ub)
    if ub.zone:
        from .zone import ZonedState
        ub.shared = ZonedState(ub)
        ub.balancer = ub.shared.balancer


def count_tries(group: PeerGroup) -> int:
    """ngx_http_upstream_tries(): the peers not marked ``down`` in the config."""
    return (sum(1 for p in group.peers if not p.config_down)
            + sum(1 for p in group.backup if not p.config_down))


def make_balancer(ub: UpstreamBlock) -> Balancer:
    """The method's balancer over ``ub.group`` (again after a resolve changed it)."""
    from .balancers.round_robin import RoundRobin
    if ub.method is not None:
        name, node = ub.method
        return _METHODS[name].factory(ub, node, ub.cf)
    return RoundRobin(ub.group)  # type: ignore[arg-type]


def check_resolve(ub: UpstreamBlock, http_core: Any) -> None:
    """ngx_http_upstream_init_round_robin's checks of ``resolve`` servers,
    once http{} is read (``http_core``: its merged core location conf, whose
    ``resolver`` / ``resolver_timeout`` an upstream{} without its own uses)."""
    if http_core is not None:
        if ub.resolver is None:
            ub.resolver = http_core.resolver or None
        if ub.resolver_timeout is None:
            ub.resolver_timeout = http_core.resolver_timeout
    if ub.resolver_timeout is None:
        ub.resolver_timeout = 30.0
    if not any(s.resolve for s in ub.servers):
        return
    if not ub.zone:
        raise ConfError(f'resolving names at run time requires upstream "{ub.host}" in '
                        f'{ub.file}:{ub.line} to be in shared memory')
    if ub.resolver is None or not ub.resolver.servers:
        raise ConfError(f'no resolver defined to resolve names at run time in upstream '
                        f'"{ub.host}" in {ub.file}:{ub.line}')
