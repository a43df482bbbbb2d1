"""``listen`` parsing and the grouping of servers by listening address.

Invariants:
- ``ListenOpt.key`` identifies one bound socket: (family, host, port) or
  ("unix", path).  Options that change the socket (backlog, reuseport, ...)
  may be given on only one ``listen`` per key, as in nginx.
- On one port, a wildcard address serves the specific addresses of servers
  that did not say ``bind``; the connection's local address then picks the
  server table, as nginx does.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from ..conf.parser import Node
from ..core import values


@dataclass
class ListenOpt:
    family: int
    host: str  # "" for wildcard; path for unix
    port: int
    text: str  # as nginx prints it: 127.0.0.1:8080, [::1]:80, unix:/path, 0.0.0.0:80
    default_server: bool = False
    bind: bool = False
    reuseport: bool = False
    backlog: int = 511
    rcvbuf: int | None = None
    sndbuf: int | None = None
    ipv6only: bool = True
    ssl: bool = False
    http2: bool = False
    quic: bool = False
    proxy_protocol: bool = False
    deferred: bool = False
    so_keepalive: str | None = None
    has_socket_opts: bool = False
    file: str = ""  # where the listen directive is, for errors found later
    line: int = 0

    @property
    def key(self) -> tuple[Any, ...]:
        if self.family == socket.AF_UNIX:
            return ("unix", self.host)
        return (self.family, self.host, self.port)

    @property
    def sockaddr(self) -> Any:
        if self.family == socket.AF_UNIX:
            return self.host
        if self.family == socket.AF_INET6:
            return (self.host or "::", self.port, 0, 0)
        return (self.host or "0.0.0.0", self.port)

    @property
    def wildcard(self) -> bool:
        return self.family != socket.AF_UNIX and self.host in ("", "0.0.0.0", "::")


def _err(node: Node, msg: str) -> Exception:
    return node.error(msg)


def parse_listen(node: Node) -> ListenOpt:
    addr = node.args[0]
    if addr.startswith("unix:"):
        path = addr[5:]
        lo = ListenOpt(socket.AF_UNIX, path, 0, addr)
    else:
        host, port = _split_host_port(node, addr)
        family = socket.AF_INET
        if host.startswith("["):
            if not host.endswith("]"):
                raise _err(node, f'invalid IPv6 address in "{addr}" of the "listen" directive')
            host = host[1:-1]
            try:
                socket.inet_pton(socket.AF_INET6, host)
            except OSError:
                raise _err(node, f'invalid IPv6 address in "{addr}" of the "listen" directive') from None
            family = socket.AF_INET6
        elif host in ("", "*"):
            host = "0.0.0.0"
        else:
            try:
                socket.inet_pton(socket.AF_INET, host)
            except OSError:
                try:
                    host = socket.gethostbyname(host)
                except OSError:
                    raise _err(node, f'host not found in "{addr}" of the "listen" directive') from None
        if family == socket.AF_INET6:
            text = f"[{host}]:{port}"
        else:
            text = f"{host}:{port}"
        lo = ListenOpt(family, host, port, text)
    lo.file, lo.line = node.file, node.line
    for p in node.args[1:]:
        if p == "default_server" or p == "default":
            lo.default_server = True
        elif p == "bind":
            lo.bind = True
        elif p == "reuseport":
            lo.reuseport = lo.bind = lo.has_socket_opts = True
        elif p.startswith("backlog="):
            v = p[8:]
            if not v.lstrip("-").isdigit() or int(v) == 0:
                raise _err(node, f'invalid backlog "{v}"')
            lo.backlog = int(v)
            lo.bind = lo.has_socket_opts = True
        elif p.startswith("rcvbuf=") or p.startswith("sndbuf="):
            v = values.parse_size(p[7:])
            if v is None:
                raise _err(node, f'invalid {p[:6]} "{p[7:]}"')
            setattr(lo, p[:6], v)
            lo.bind = lo.has_socket_opts = True
        elif p.startswith("ipv6only="):
            v = p[9:]
            if v not in ("on", "off"):
                raise _err(node, f'invalid ipv6only flags "{v}"')
            lo.ipv6only = v == "on"
            lo.bind = lo.has_socket_opts = True
        elif p == "ssl":
            lo.ssl = True
        elif p == "http2":
            lo.http2 = True
        elif p == "quic":
            lo.quic = True
        elif p == "proxy_protocol":
            lo.proxy_protocol = True
        elif p == "deferred":
            lo.deferred = lo.bind = lo.has_socket_opts = True
        elif p.startswith("so_keepalive="):
            lo.so_keepalive = p[13:]
            lo.bind = lo.has_socket_opts = True
        elif p.startswith("fastopen=") or p.startswith("accept_filter=") or p.startswith("setfib="):
            lo.bind = lo.has_socket_opts = True
        else:
            raise _err(node, f'invalid parameter "{p}"')
    return lo


def _split_host_port(node: Node, addr: str) -> tuple[str, int]:
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise _err(node, f'invalid IPv6 address in "{addr}" of the "listen" directive')
        host, rest = addr[: end + 1], addr[end + 1 :]
        if rest.startswith(":"):
            return host, _port(node, addr, rest[1:])
        if rest:
            raise _err(node, f'invalid host in "{addr}" of the "listen" directive')
        return host, 80
    if ":" in addr:
        host, p = addr.rsplit(":", 1)
        return host, _port(node, addr, p)
    if addr.isdigit():
        return "", _port(node, addr, addr)
    return addr, 80


def _port(node: Node, addr: str, p: str) -> int:
    if not p.isdigit() or not (1 <= int(p) <= 65535):
        raise _err(node, f'invalid port in "{addr}" of the "listen" directive')
    return int(p)


@dataclass
class ListenSpec:
    """One socket to bind, with the server tables it serves."""
    opt: ListenOpt
    # local address text -> ServerTable; "" -> the table of the socket itself
    tables: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        return self.opt.key
