"""A DNS stub resolver for run-time name resolution (nginx's ngx_resolver.c):
``resolver ADDRESS ... [valid=TIME] [ipv4=on|off] [ipv6=on|off]
[status_zone=NAME]`` and ``resolver_timeout``, used by ``proxy_pass`` with
variables and by ``server ... resolve`` in a zoned upstream{}.

Invariants:
- A ``Resolver`` is built once per ``resolver`` directive at configuration
  time (its server addresses are parsed, names among them resolved through
  getaddrinfo as nginx does); it holds no socket and no task until first
  used, so a forked worker starts with a clean one.  Every process has its
  own cache and its own sockets.
- ``resolve(name, timeout)`` asks the servers in turn (round robin, a resend
  every second, to the next server) with one UDP socket per query, A and,
  with ``ipv6=on`` (nginx's default), AAAA; it answers ``Answer(addrs, ttl)``
  or raises ``ResolveError(code)`` with nginx's codes and texts (1..5 from
  the DNS rcode, 3 "Host not found" also for an empty answer, 110
  "Operation timed out").  An IP literal answers at once.
- Answers are cached per lower-cased name until their TTL (or ``valid=``
  when given) runs out; errors for ``valid`` or 10 s, like nginx's negative
  caching.  Concurrent look-ups of one name share a single query
  (``_inflight``).  ``cached(name)`` is the synchronous fast path.
- The wire format is hand-encoded (RFC 1035): one question, recursion
  desired; answers are read with name compression; CNAME records are
  followed only as far as the A/AAAA records of the same message.
"""
from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from ..conf.parser import Node
from . import values

__all__ = ["Resolver", "Answer", "ResolveError", "parse_resolver", "resolver_setter", "STRERROR"]

#: ngx_resolver_strerror
STRERROR = {1: "Format error", 2: "Server failure", 3: "Host not found", 4: "Unimplemented",
            5: "Operation refused", 110: "Operation timed out"}
T_A, T_AAAA, T_CNAME = 1, 28, 5
NEGATIVE_TTL = 10.0
RESEND = 1.0


class ResolveError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"({code}: {STRERROR.get(code, 'Unknown error')})")
        self.code = code

    @property
    def text(self) -> str:
        return STRERROR.get(self.code, "Unknown error")


@dataclass(frozen=True)
class Answer:
    addrs: tuple[tuple[int, str], ...]  # (family, address text), in answer order
    ttl: float  # seconds the answer stays valid (after valid= applies)


@dataclass
class Resolver:
    servers: list[tuple[int, Any]]  # (family, sockaddr)
    valid: float | None = None
    ipv4: bool = True
    ipv6: bool = True
    text: str = ""
    _cache: dict[str, tuple[float, Answer | int]] = field(default_factory=dict, repr=False)
    _inflight: dict[str, Any] = field(default_factory=dict, repr=False)
    _next: int = 0

    # --- the cache ---------------------------------------------------------------------
    def cached(self, name: str) -> Answer | ResolveError | None:
        """A still-valid answer (or cached error) for ``name``, else None."""
        lit = _literal(name)
        if lit is not None:
            return Answer((lit,), 0.0)
        e = self._cache.get(name.lower())
        if e is None:
            return None
        if e[0] <= time.monotonic():
            del self._cache[name.lower()]
            return None
        v = e[1]
        return ResolveError(v) if isinstance(v, int) else v

    async def resolve(self, name: str, timeout: float) -> Answer:
        """The addresses of ``name`` (raises ResolveError)."""
        hit = self.cached(name)
        if isinstance(hit, Answer):
            return hit
        if isinstance(hit, ResolveError):
            raise hit
        key = name.lower()
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(self._lookup(key, timeout))
            self._inflight[key] = fut
            fut.add_done_callback(lambda f, k=key: self._inflight.pop(k, None))
        return await asyncio.shield(fut)

    async def _lookup(self, name: str, timeout: float) -> Answer:
        now = time.monotonic()
        types = ([T_A] if self.ipv4 else []) + ([T_AAAA] if self.ipv6 else [])
        results = await asyncio.gather(*(self._query(name, t, timeout) for t in types),
                                       return_exceptions=True)
        addrs: list[tuple[int, str]] = []
        ttl: float | None = None
        err: int | None = None
        for res in results:
            if isinstance(res, ResolveError):
                err = res.code if err is None or err == 3 else err
                continue
            if isinstance(res, BaseException):
                err = 2
                continue
            got, t = res
            addrs.extend(got)
            if got:
                ttl = t if ttl is None else min(ttl, t)
        if not addrs:
            code = err if err is not None else 3
            if code != 110:
                self._cache[name] = (now + (self.valid or NEGATIVE_TTL), code)
            raise ResolveError(code)
        life = self.valid if self.valid is not None else float(ttl or 0)
        ans = Answer(tuple(addrs), life)
        if life > 0:
            self._cache[name] = (now + life, ans)
        return ans

    async def _query(self, name: str, qtype: int, timeout: float) -> tuple[list[tuple[int, str]], float]:
        if not self.servers:
            raise ResolveError(2)
        loop = asyncio.get_running_loop()
        qid = int.from_bytes(os.urandom(2), "big")
        packet = encode_query(qid, name, qtype)
        deadline = loop.time() + timeout
        fut: asyncio.Future[bytes] = loop.create_future()
        transports: list[Any] = []
        try:
            while True:
                fam, sa = self.servers[self._next % len(self.servers)]
                self._next += 1
                try:
                    tr, _ = await loop.create_datagram_endpoint(
                        lambda: _DnsProtocol(qid, fut), remote_addr=sa, family=fam)
                    transports.append(tr)
                    tr.sendto(packet)
                except OSError:
                    pass
                left = deadline - loop.time()
                if left <= 0:
                    raise ResolveError(110)
                try:
                    data = await asyncio.wait_for(asyncio.shield(fut), min(RESEND, left))
                    break
                except asyncio.TimeoutError:
                    if loop.time() >= deadline:
                        raise ResolveError(110) from None
        finally:
            for tr in transports:
                tr.close()
        return decode_answer(data, qtype)


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, qid: int, fut: "asyncio.Future[bytes]") -> None:
        self.qid = qid
        self.fut = fut

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and int.from_bytes(data[:2], "big") == self.qid and not self.fut.done():
            self.fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass


def _literal(name: str) -> tuple[int, str] | None:
    h = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return None
    return (socket.AF_INET if ip.version == 4 else socket.AF_INET6, str(ip))


# --- wire format -------------------------------------------------------------------------

def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if label else b""
        if not raw or len(raw) > 63:
            raise ResolveError(1)
        out += bytes([len(raw)]) + raw
    return bytes(out) + b"\0"


def encode_query(qid: int, name: str, qtype: int) -> bytes:
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, off: int) -> int:
    while True:
        if off >= len(data):
            raise ResolveError(1)
        n = data[off]
        if n & 0xC0 == 0xC0:
            return off + 2
        if n == 0:
            return off + 1
        off += 1 + n


def decode_answer(data: bytes, qtype: int) -> tuple[list[tuple[int, str]], float]:
    """(addresses of type ``qtype``, the smallest TTL among them) of a response."""
    if len(data) < 12:
        raise ResolveError(1)
    _qid, flags, qd, an, _ns, _ar = struct.unpack_from("!HHHHHH", data)
    rcode = flags & 0x0F
    if rcode:
        raise ResolveError(rcode)
    off = 12
    for _ in range(qd):
        off = _skip_name(data, off) + 4
    addrs: list[tuple[int, str]] = []
    ttl = 0.0
    for _ in range(an):
        off = _skip_name(data, off)
        if off + 10 > len(data):
            raise ResolveError(1)
        rtype, _cls, rttl, rdlen = struct.unpack_from("!HHIH", data, off)
        off += 10
        rdata = data[off:off + rdlen]
        off += rdlen
        if rtype != qtype:
            continue
        if rtype == T_A and rdlen == 4:
            addrs.append((socket.AF_INET, socket.inet_ntop(socket.AF_INET, rdata)))
        elif rtype == T_AAAA and rdlen == 16:
            addrs.append((socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, rdata)))
        else:
            continue
        ttl = float(rttl) if len(addrs) == 1 else min(ttl, float(rttl))
    return addrs, ttl


# --- configuration ---------------------------------------------------------------------

def parse_resolver(node: Node) -> Resolver:
    """ngx_resolver_create's argument checks, with nginx's messages."""
    r = Resolver([], text=" ".join(node.args))
    for a in node.args:
        if a.startswith("valid="):
            t = values.parse_time(a[6:], default_unit_ms=False)
            if t is None:
                raise node.error(f"invalid parameter: {a}")
            r.valid = float(t)
            continue
        if a.startswith("ipv4=") or a.startswith("ipv6="):
            v = a[5:]
            if v not in ("on", "off"):
                raise node.error(f"invalid parameter: {a}")
            setattr(r, a[:4], v == "on")
            continue
        if a.startswith("status_zone="):
            continue  # nginx Plus statistics: accepted, not collected
        r.servers.extend(_server_addrs(node, a))
    if not r.ipv4 and not r.ipv6:
        raise node.error('"ipv4" and "ipv6" cannot both be "off"')
    return r


def _server_addrs(node: Node, text: str) -> list[tuple[int, Any]]:
    from ..upstream.block import literal_address, split_host_port
    host, port, _no_port, err = split_host_port(text, 53)
    if err:
        raise node.error(f'{err} in resolver "{text}"')
    lit = literal_address(host, port)
    if lit is not None:
        return [lit]
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError):
        raise node.error(f'host not found in resolver "{text}"') from None
    out: list[tuple[int, Any]] = []
    for fam, _t, _p, _c, sa in infos:
        if (fam, sa) not in out:
            out.append((fam, sa))
    return out


def resolver_setter(cf: Any, node: Node, conf: Any) -> None:
    """The ``resolver`` directive (http, server, location; upstream{} keeps
    its own through the upstream module): ``conf.resolver``."""
    cur = getattr(conf, "resolver", None)
    if cur is not None and not _unset(cur):
        raise node.error('"resolver" directive is duplicate')
    conf.resolver = parse_resolver(node)


def _unset(v: Any) -> bool:
    from .module import UNSET
    return v is UNSET
