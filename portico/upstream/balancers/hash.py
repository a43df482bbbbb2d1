"""``hash KEY`` and ``hash KEY consistent``, as ngx_http_upstream_hash_module
(nginx 1.22).

Invariants:
- The key is a complex value evaluated once per request (on its first
  ``get``), and hashed as the bytes nginx would see (Portico carries wire
  bytes >= 0x80 as surrogates, so it encodes with surrogateescape).
- An empty key, a single peer, or more than 20 misses in this request:
  round robin (``rr_get``) for the rest of the request.
- ``hash KEY`` (Cache::Memcached compatible): round n hashes
  ``crc32(str(n) + KEY)`` (just ``crc32(KEY)`` for n = 0), adds
  ``(crc >> 16) & 0x7fff`` to a running sum, and walks ``sum % total_weight``
  through the peers in file order by weight.  A tried or unusable peer
  costs one round; the sum and n persist across retries of the request.
- ``hash KEY consistent`` (Cache::Memcached::Fast / ketama compatible):
  the point table is built once per Cycle: each peer (by its ``server`` text
  as written: "host:port", "host", or "unix:path" whose host is the path)
  contributes ``weight * 160`` points ``crc32(host \\0 port prev)``, where
  ``prev`` is the previous point of that peer as 4 little-endian bytes
  (zero for the first).  Points are sorted by value (a stable sort, like
  glibc's merge-sort qsort), equal values keep the first.  A request
  starts at the first point >= crc32(KEY) (wrapping to 0 past the end);
  among the untried, usable peers whose server text equals that point's,
  the smooth weighted round robin picks one; none: the next point, at
  most 20 times, then round robin.
"""
from __future__ import annotations

import zlib
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from ...conf.errors import ConfError
from ..peers import Peer, PeerGroup, PeerState
from . import common
from .common import (SERVER_PARAMS_ALL, BalancerBase, chosen, now, request_data,
                     rr_get, smooth_pick, usable)

DIRECTIVE: dict[str, Any] = {
    "name": "hash",
    "context": "upstream",
    "min_args": 1,
    "max_args": 2,  # NGX_CONF_TAKE12
    "server_params": SERVER_PARAMS_ALL - {"backup"},
    "errors": {"parameter": 'invalid parameter "{0}"'},
}


def key_bytes(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


def split_server(server: str) -> tuple[bytes, bytes]:
    """(host, port) of a ``server`` text as ngx_http_upstream_init_chash
    splits it: "unix:" prefix (any case) -> the path and no port; else the
    digits after the last ':' when only digits follow it; else no port."""
    raw = key_bytes(server)
    if len(raw) >= 5 and raw[:5].lower() == b"unix:":
        return raw[5:], b""
    j = len(raw) - 1
    while j >= 0:
        c = raw[j]
        if c == 0x3A:  # ':'
            return raw[:j], raw[j + 1:]
        if not 0x30 <= c <= 0x39:
            break
        j -= 1
    return raw, b""


def server_text(peer: Peer) -> str:
    """nginx's ``peer->server``: the ``server`` address as written in the
    config ("backend:8080", "10.0.0.1" without a port), which is what the
    ketama points hash; the resolved ``name`` stands in when the block did
    not record it (the same text for a literal "ip:port")."""
    return getattr(peer, "server", None) or peer.name


def chash_points(peers: tuple[Peer, ...] | list[Peer],
                 servers: list[str] | None = None) -> tuple[list[int], list[str]]:
    """The sorted, de-duplicated point values and the server text of each;
    ``servers`` gives each peer's server text (default ``server_text``)."""
    texts = servers if servers is not None else [server_text(p) for p in peers]
    pts: list[tuple[int, str]] = []
    for peer, text in zip(peers, texts):
        host, port = split_server(text)
        base = zlib.crc32(host + b"\0" + port)
        prev = 0
        for _ in range(peer.weight * 160):
            h = zlib.crc32(prev.to_bytes(4, "little"), base)
            pts.append((h, text))
            prev = h
    pts.sort(key=lambda p: p[0])  # stable: equal hashes keep file order
    values: list[int] = []
    owners: list[str] = []
    for h, s in pts:
        if not values or values[-1] != h:
            values.append(h)
            owners.append(s)
    return values, owners


def _by_server(peers: tuple[Peer, ...], texts: list[str]) -> dict[str, tuple[Peer, ...]]:
    out: dict[str, list[Peer]] = {}
    for p, text in zip(peers, texts):
        out.setdefault(text, []).append(p)
    return {k: tuple(v) for k, v in out.items()}


@dataclass
class _Data:
    """nginx's ngx_http_upstream_hash_peer_data_t (beyond the rr part)."""
    key: bytes
    tries: int = 0
    rehash: int = 0
    hash: int = 0


class Hash(BalancerBase):
    def __init__(self, group: PeerGroup, key: Any) -> None:
        super().__init__(group)
        self.key = key

    def _data(self, state: PeerState, r: Any) -> _Data:
        return request_data(state, "hash", lambda: _Data(key_bytes(self.key.eval(r))))

    def get(self, state: PeerState, r: Any) -> Peer | None:
        d = self._data(state, r)
        peers = self.peers
        if d.tries > 20 or peers.is_single(state) or not d.key:
            return rr_get(peers, state)
        t = now()
        cands = peers.current(state)
        total = peers.total_weight(state)
        tried = state.tried
        key = d.key
        while True:
            if d.rehash > 0:
                crc = zlib.crc32(key, zlib.crc32(str(d.rehash).encode()))
            else:
                crc = zlib.crc32(key)
            # nginx's sum is a uint32_t
            d.hash = (d.hash + ((crc >> 16) & 0x7FFF)) & 0xFFFFFFFF
            d.rehash += 1
            w = d.hash % total
            i = 0
            while w >= cands[i].weight:
                w -= cands[i].weight
                i += 1
            peer = cands[i]
            if id(peer) not in tried and usable(peer, t):
                return chosen(state, peer, t)
            d.tries += 1
            if d.tries > 20:
                return rr_get(peers, state)


class ConsistentHash(BalancerBase):
    def __init__(self, group: PeerGroup, key: Any, servers: list[str] | None = None,
                 backup_servers: list[str] | None = None) -> None:
        super().__init__(group)
        self.key = key
        texts = servers if servers is not None else [server_text(p) for p in self.peers.primary]
        btexts = backup_servers if backup_servers is not None else [server_text(p) for p in self.peers.backup]
        # built once per Cycle; nginx builds it from the primary peers
        self.points, self.servers = chash_points(self.peers.primary, texts)
        # the peers of each server text, in file order (a name resolving to
        # several addresses gives several), so a point finds its peers
        # without scanning; backups get their own map for the backup phase
        self.by_server = _by_server(self.peers.primary, texts)
        self.by_server_backup = _by_server(self.peers.backup, btexts)

    def _data(self, state: PeerState, r: Any) -> _Data:
        def first() -> _Data:
            key = key_bytes(self.key.eval(r))
            d = _Data(key)
            if self.points:
                # first point >= crc32(key); may be len(points): wraps below
                d.hash = bisect_left(self.points, zlib.crc32(key))
            return d
        return request_data(state, "chash", first)

    def point_of(self, key: str) -> str:
        """The server text of the point a key starts at (for tests, tools)."""
        i = bisect_left(self.points, zlib.crc32(key_bytes(key)))
        return self.servers[i % len(self.servers)]

    def get(self, state: PeerState, r: Any) -> Peer | None:
        d = self._data(state, r)
        peers = self.peers
        if d.tries > 20 or peers.is_single(state) or not d.key:
            return rr_get(peers, state)
        t = now()
        by_server = self.by_server_backup if state.backup_phase else self.by_server
        tried = state.tried
        n = len(self.servers)
        while True:
            server = self.servers[d.hash % n]
            best = smooth_pick([p for p in by_server.get(server, ())
                                if id(p) not in tried and usable(p, t)])
            if best is not None:
                return chosen(state, best, t)
            d.hash += 1
            d.tries += 1
            if d.tries > 20:
                return rr_get(peers, state)


@dataclass(frozen=True)
class Conf:
    key: Any
    consistent: bool


def parse(args: list[str], variables: Any, file: str | None = None, line: int | None = None) -> Conf:
    if not 1 <= len(args) <= 2:
        raise ConfError('invalid number of arguments in "hash" directive', file, line)
    key = variables.compile(args[0], file, line)
    if len(args) == 2 and args[1] != "consistent":
        raise ConfError(f'invalid parameter "{args[1]}"', file, line)
    return Conf(key, len(args) == 2)


def make(group: PeerGroup, args: list[str], variables: Any,
         file: str | None = None, line: int | None = None,
         servers: list[str] | None = None, backup_servers: list[str] | None = None) -> Hash | ConsistentHash:
    """``servers`` / ``backup_servers``: the server text of each primary /
    backup peer, parallel to the group's lists (see ``server_text``)."""
    conf = parse(args, variables, file, line)
    if conf.consistent:
        return ConsistentHash(group, conf.key, servers, backup_servers)
    return Hash(group, conf.key)


def block_factory(ub: Any, node: Any, cf: Any) -> Hash | ConsistentHash:
    """The ``MethodFactory`` of portico.upstream.block's registry."""
    from .common import block_server_texts
    servers, backup = block_server_texts(ub)
    return make(ub.group, list(node.args), cf.extra["http"].variables, node.file, node.line,
                servers, backup)


def register() -> None:
    """Make ``hash`` a method of upstream{} (block.register_method)."""
    common.register(DIRECTIVE["name"], block_factory, DIRECTIVE["server_params"])
