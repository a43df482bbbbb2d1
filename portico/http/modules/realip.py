"""ngx_http_realip_module: the client address from a trusted header.

Directives ``set_real_ip_from``, ``real_ip_header``, ``real_ip_recursive``;
variables ``$realip_remote_addr`` and ``$realip_remote_port``.

Invariants:
- Trusted addresses are parsed once (``portico.core.inet``) into a
  ``CidrSet``, nginx's ngx_cidr_t array; a hostname is resolved at
  configuration time, one exact entry per address, as nginx does.  A level
  with any ``set_real_ip_from`` of its own does not inherit its parent's.
- The same handler runs in POST_READ (with the server{} level's conf: no
  location is chosen yet) and in PREACCESS (with the location's conf); once
  it has replaced the address in a request it never runs again for that
  request, internal redirects included (nginx keeps the ctx in a pool
  cleanup).
- The address is found by nginx's ngx_http_get_forwarded_addr
  (``portico.core.inet.forwarded_addr``, shared with geo): starting
  from the connection's address, while the current address is trusted take
  the right-most element of the header; with ``real_ip_recursive on`` keep
  walking left, and over several X-Forwarded-For lines from the last one.
  An element may carry a port ("1.2.3.4:80", "[::1]:80"): the port becomes
  ``$remote_port``; without one the port is 0.
- Replacing sets ``conn.client_addr``/``client_port`` (what $remote_addr,
  $remote_port and the error log's "client:" read) for the duration of the
  request; the original pair is kept in ``r.ctx["realip"]`` and put back by
  a LOG-phase handler registered after the access log's, so the access log
  sees the replaced address (as nginx, whose pool cleanup runs after the
  log phase) and the next request on a keep-alive connection the original.
- ``real_ip_header proxy_protocol`` is accepted but, as Portico does not
  read the PROXY protocol yet, never replaces the address (nginx too leaves
  it alone on a listener without ``proxy_protocol``); ``-t`` warns.
- Handlers are registered only when some level has ``set_real_ip_from``.
"""
from __future__ import annotations

import socket
from typing import Any

from ...conf.parser import Node
from ...core.inet import ALL32, ALL128, V4, V6, CidrSet, addr_key, forwarded_addr, ntop, ptocidr
from ...core.module import (HTTP, LOCATION, SERVER, TAKE1, Conf, Module, UNSET, dir, set_flag)
from ..request import DECLINED, Request

HSL = frozenset({HTTP, SERVER, LOCATION})

# real_ip_header kinds (nginx's NGX_HTTP_REALIP_*)
XREALIP, XFWD, HEADER, PROXY = 0, 1, 2, 3


class RealIpLocConf(Conf):
    trusted: Any = None  # CidrSet | None
    header: tuple = (XREALIP, "")  # (kind, lower-cased name for HEADER)
    recursive: bool = False


class RealIpMainConf(Conf):
    used: bool = False  # some level has set_real_ip_from: register the handlers


def _set_real_ip_from(cf: Any, node: Node, conf: RealIpLocConf) -> None:
    value = node.args[0]
    t = conf.trusted
    if t is UNSET or t is None:
        t = conf.trusted = CidrSet()
    cf.main["realip"].used = True
    if value == "unix:":
        t.unix = True
        return
    c = ptocidr(value)
    if c is not None:
        if c.low_bits:
            cf.cycle.warn(f"low address bits of {value} are meaningless", node)
        t.add(c.family, c.addr, c.mask)
        return
    # not an address: nginx resolves it as a host name (1.13.1), every
    # address found being trusted exactly, IPv4 ones first
    try:
        infos = socket.getaddrinfo(value.encode("utf-8", "surrogateescape"), None, socket.AF_UNSPEC,
                                   socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)
    except (OSError, UnicodeError, ValueError):
        infos = []
    v4 = [i[4][0] for i in infos if i[0] == socket.AF_INET]
    v6 = [i[4][0] for i in infos if i[0] == socket.AF_INET6]
    if not v4 and not v6:
        raise node.error(f'host not found in set_real_ip_from "{value}"')
    for a in v4:
        t.add(V4, int.from_bytes(socket.inet_pton(socket.AF_INET, a), "big"), ALL32)
    for a in v6:
        t.add(V6, int.from_bytes(socket.inet_pton(socket.AF_INET6, a.partition("%")[0]), "big"), ALL128)


def _real_ip_header(cf: Any, node: Node, conf: RealIpLocConf) -> None:
    if conf.header is not UNSET:
        raise node.error('"real_ip_header" directive is duplicate')
    value = node.args[0]
    # nginx compares the three keywords case-sensitively; anything else
    # (even "x-real-ip") is a header name, matched case-insensitively
    if value == "X-Real-IP":
        conf.header = (XREALIP, "")
    elif value == "X-Forwarded-For":
        conf.header = (XFWD, "")
    elif value == "proxy_protocol":
        conf.header = (PROXY, "")
        cf.cycle.warn('"real_ip_header proxy_protocol" never replaces the client address: '
                      "portico does not read the PROXY protocol yet", node)
    else:
        conf.header = (HEADER, value.lower())


# --- phase handlers ----------------------------------------------------------------------

def realip_handler(r: Request) -> int:
    conf = r.loc.realip
    trusted = conf.trusted
    if trusted is None or "realip" in r.ctx:
        return DECLINED
    kind, name = conf.header
    if kind == XREALIP:
        v = r.hin.get("x-real-ip")
        if v is None:
            return DECLINED
        values = [v]
    elif kind == XFWD:
        if "x-forwarded-for" not in r.hin:
            return DECLINED
        values = [v for k, v in r.headers if k.lower() == "x-forwarded-for"]
    elif kind == HEADER:
        v = r.hin.get(name)
        if v is None:
            return DECLINED
        values = [v]
    else:  # PROXY: no PROXY protocol header is ever read (see the docstring)
        return DECLINED
    conn = r.conn
    fam, a = addr_key(conn.client_addr)
    new = forwarded_addr((fam, a, conn.client_port), values, trusted, conf.recursive)
    if new is None:
        return DECLINED
    saved = (conn.client_addr, conn.client_port)
    r.ctx["realip"] = saved
    conn.client_addr = ntop(new[0], new[1])
    conn.client_port = new[2]

    def restore() -> None:
        # after the access log (a pool cleanup): the log sees the new address
        conn.client_addr, conn.client_port = saved
    r.add_pool_cleanup(restore)
    return DECLINED


def _remote_addr(r: Request) -> str:
    saved = r.ctx.get("realip")
    return saved[0] if saved is not None else r.conn.client_addr


def _remote_port(r: Request) -> str:
    saved = r.ctx.get("realip")
    port = saved[1] if saved is not None else r.conn.client_port
    return str(port) if 0 < port < 65536 else ""


class RealIpModule(Module):
    name = "realip"
    nginx_name = "ngx_http_realip_module"
    is_http = True
    main_conf = RealIpMainConf
    loc_conf = RealIpLocConf
    directives = [
        dir("set_real_ip_from", HSL, TAKE1, _set_real_ip_from),
        dir("real_ip_header", HSL, TAKE1, _real_ip_header, status="partial"),
        dir("real_ip_recursive", HSL, TAKE1, set_flag("recursive")),
    ]

    def preconfiguration(self, http: Any) -> None:
        http.variables.add("realip_remote_addr", _remote_addr)
        http.variables.add("realip_remote_port", _remote_port)

    def postconfiguration(self, http: Any) -> None:
        if not http.main["realip"].used:
            return
        http.add_phase_handler("post_read", realip_handler)
        http.add_phase_handler("preaccess", realip_handler, lambda lc: lc.realip.trusted is not None)
