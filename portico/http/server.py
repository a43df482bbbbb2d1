"""Virtual servers and their selection by Host, exactly as nginx.

Order of selection for one listening address (ngx_http_find_virtual_server):
exact name, longest leading wildcard (``*.example.com``, and ``.example.com``
which also matches ``example.com``), longest trailing wildcard
(``www.example.*``), then regexes (``~...``) in configuration order, else the
default server of that address.

Invariants: tables are built once per Cycle; ``find`` is a dict lookup for
the common exact case.
"""
from __future__ import annotations

from typing import Any


from ..conf.errors import ConfError
from ..core import pcre
from .location import Location


class Server:
    def __init__(self, srv: dict[str, Any], root: Location, file: str, line: int) -> None:
        self.srv = srv
        self.root = root
        self.file = file
        self.line = line
        self.names: list[str] = []
        self.name = ""  # first server_name, for $server_name
        self.regexes: list[Any] = []
        self.named: dict[str, Location] = {}
        self.listens: list[Any] = []
        for k, v in srv.items():
            setattr(self, k, v)  # srv confs reachable as attributes (server.core, ...)

    def add_name(self, name: str) -> list[str]:
        groups: list[str] = []
        if not self.names:
            self.name = name if not name.startswith("~") else name
        if name.startswith("~"):
            try:
                rx = pcre.compile(name[1:], caseless=True)  # nginx's server names are caseless
            except pcre.PcreError as e:
                raise ConfError(e.message) from None
            self.regexes.append(rx)
            groups = list(rx.groupindex)
        # (nginx takes a '*' elsewhere than a leading "*." or trailing ".*"
        # literally, as part of an exact name)
        self.names.append(name.lower() if not name.startswith("~") else name)
        return groups

    def __repr__(self) -> str:
        return f"<server {self.names} {self.file}:{self.line}>"


class ServerTable:
    def __init__(self, addr_text: str) -> None:
        self.addr_text = addr_text
        self.servers: list[Server] = []
        self.default: Server | None = None
        self.default_marked = False
        self.exact: dict[str, Server] = {}
        self.head: list[tuple[str, Server]] = []  # suffix ".example.com"
        self.tail: list[tuple[str, Server]] = []  # prefix "www.example."
        self.regex: list[tuple[Any, Server]] = []
        self.cache: dict[str, tuple[Server, Any]] = {}

    def add_server(self, srv: Server) -> None:
        if srv not in self.servers:
            self.servers.append(srv)

    def finalize(self, warn: Any = None) -> None:
        seen: set[str] = set()
        for srv in self.servers:
            for name in srv.names:
                if name.startswith("~"):
                    continue
                if name in seen:
                    if warn is not None:
                        warn(f'conflicting server name "{name}" on {self.addr_text}, ignored')
                    continue
                seen.add(name)
                if name.startswith("*."):
                    self.head.append((name[1:], srv))
                elif name.startswith("."):
                    self.exact.setdefault(name[1:], srv)
                    self.head.append((name, srv))
                elif name.endswith(".*"):
                    self.tail.append((name[:-1], srv))
                else:
                    self.exact.setdefault(name, srv)
            for rx in srv.regexes:
                self.regex.append((rx, srv))
        self.head.sort(key=lambda t: len(t[0]), reverse=True)
        self.tail.sort(key=lambda t: len(t[0]), reverse=True)

    def find(self, host: str) -> tuple[Server, Any]:
        """Return (server, regex match or None).  ``host`` is already lower-case."""
        srv = self.exact.get(host)
        if srv is not None:
            return srv, None
        hit = self.cache.get(host)
        if hit is not None:
            return hit
        res: tuple[Server, Any] | None = None
        for suffix, s in self.head:
            if host.endswith(suffix) and len(host) > len(suffix):
                res = (s, None)
                break
        if res is None:
            for prefix, s in self.tail:
                if host.startswith(prefix) and len(host) > len(prefix):
                    res = (s, None)
                    break
        if res is None:
            for rx, s in self.regex:
                m = rx.search(host)
                if m is not None:
                    # a regex hit carries captures: do not cache it
                    return s, m
        if res is None:
            res = (self.default, None)  # type: ignore[assignment]
        if len(self.cache) < 1024:
            self.cache[host] = res  # type: ignore[assignment]
        return res  # type: ignore[return-value]
