"""The proxy content handler and what a request is proxied to
(ngx_http_proxy_handler, ngx_http_proxy_eval and the upstream search and
resolution of ngx_http_upstream_init_request).

Invariants:
- A static ``proxy_pass`` uses its upstream{} (explicit or implicit) as
  built at configuration time: no per-request work beyond the ``Target``.
- ``proxy_pass`` with variables: an upstream{} of that name (and port) if
  there is one; else an IP literal or unix socket; else a name, looked up
  through the location's ``resolver`` (a cached answer synchronously, else
  the handler returns DONE and the request resumes when the answer comes;
  a request that ended meanwhile is left alone).  Every address becomes a
  peer of a per-request round robin, tries = number of addresses.  No
  resolver: nginx's "no resolver defined to resolve NAME" and 502; a failed
  look-up: "NAME could not be resolved (3: Host not found)" and 502.
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any

from ..core import log as logmod
from ..core.resolver import Answer, ResolveError
from ..http.modules import proxy as px
from ..http.request import DONE, Request
from .balancers.round_robin import RoundRobin
from .block import UpstreamBlock, literal_address, peer_name
from .http_upstream import UpstreamRequest
from .peers import Peer, PeerGroup


class Target:
    """What a request is proxied to: a configured upstream or a set of addresses."""
    __slots__ = ("name", "balancer", "tries", "ub")

    def __init__(self, name: str, balancer: Any, tries: int, ub: UpstreamBlock | None) -> None:
        self.name = name
        self.balancer = balancer
        self.tries = tries
        self.ub = ub


class _Lookup:
    """A name the resolver has to look up before the request can go on."""
    __slots__ = ("host", "port", "vars")

    def __init__(self, host: str, port: int, vars_: px.ProxyVars) -> None:
        self.host = host
        self.port = port
        self.vars = vars_


def proxy_handler(r: Request) -> int:
    conf: px.ProxyLocConf = r.loc.proxy
    if conf.url is not None:
        res = _dynamic_target(r, conf)
        if isinstance(res, int):
            return res
        if isinstance(res, _Lookup):
            return _resolve(r, conf, res)
        target, vars_ = res
        dynamic = True
    else:
        ub = conf.upstream
        target = Target(ub.host, ub.balancer, ub.tries, ub)
        vars_ = conf.vars
        dynamic = False
    start(r, conf, target, vars_, dynamic)
    return DONE


def start(r: Request, conf: px.ProxyLocConf, target: Target, vars_: px.ProxyVars, dynamic: bool) -> None:
    r.ctx["proxy_vars"] = vars_
    u = UpstreamRequest(r, conf, target, vars_, dynamic)
    body = r.body
    if body is not None:
        if conf.stream_body and (r.content_length is not None or conf.http_version == "1.1") and not body.error:
            u.start_streaming()
        else:
            body.read(u.body_read)
    else:
        u.start(None)


def _dynamic_target(r: Request, conf: px.ProxyLocConf) -> tuple[Target, px.ProxyVars] | _Lookup | int:
    text = conf.url.eval(r)
    u = px.parse_url(text)
    if isinstance(u, str):
        if u == "invalid URL prefix":
            r.log_error(logmod.ERROR, f'invalid URL prefix in "{text}"')
        else:
            r.log_error(logmod.ERROR, f'{u} in upstream "{text.split("://", 1)[-1]}"')
        return 500
    schema, host, port, no_port, uri = u
    hostport = host if host.startswith("unix:") else text[len(schema):].split("/", 1)[0].split("?", 1)[0]
    vars_ = px.make_vars(schema, host, port, no_port, hostport, uri)
    ub = r.http.main["upstream"].upstreams.find(host, port, no_port)
    if ub is not None:
        return Target(ub.host, ub.balancer, ub.tries, ub), vars_
    if host.startswith("unix:"):
        lit: tuple[int, Any] | None = (socket.AF_UNIX, host[5:])
    else:
        lit = literal_address(host, port)
    if lit is None:
        if r.loc.core.resolver is None:
            r.log_error(logmod.ERROR, f"no resolver defined to resolve {host}")
            return 502
        return _Lookup(host, port, vars_)
    fam, addr = lit
    group = PeerGroup(host, [Peer(peer_name(fam, addr), fam, addr)])
    return Target(host, RoundRobin(group), 1, None), vars_


def _resolved_target(host: str, port: int, ans: Answer) -> Target:
    peers = []
    for fam, ip in ans.addrs:
        addr: Any = (ip, port) if fam == socket.AF_INET else (ip, port, 0, 0)
        peers.append(Peer(peer_name(fam, addr), fam, addr))
    return Target(host, RoundRobin(PeerGroup(host, peers)), len(peers), None)


def _failed(r: Request, host: str, e: ResolveError) -> int:
    r.log_error(logmod.ERROR, f"{host} could not be resolved ({e.code}: {e.text})")
    return 502


def _resolve(r: Request, conf: px.ProxyLocConf, look: _Lookup) -> int:
    core = r.loc.core
    hit = core.resolver.cached(look.host)
    if isinstance(hit, ResolveError):
        return _failed(r, look.host, hit)
    if isinstance(hit, Answer):
        start(r, conf, _resolved_target(look.host, look.port, hit), look.vars, True)
        return DONE
    loop = r.conn.worker.loop
    task = loop.create_task(core.resolver.resolve(look.host, core.resolver_timeout))

    def done(t: "asyncio.Task[Answer]") -> None:
        if r.done:
            return
        try:
            ans = t.result()
        except ResolveError as e:
            r.finalize(_failed(r, look.host, e))
            return
        except Exception as e:  # a malformed answer: nginx's "Format error"
            r.log_error(logmod.ERROR, f"{look.host} could not be resolved ({e!r})")
            r.finalize(502)
            return
        start(r, conf, _resolved_target(look.host, look.port, ans), look.vars, True)
    task.add_done_callback(done)
    return DONE
