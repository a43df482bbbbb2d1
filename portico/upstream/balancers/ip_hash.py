"""``ip_hash``: the client address picks the peer, as
ngx_http_upstream_ip_hash_module (nginx 1.22).

Invariants:
- The hashed bytes are the first three octets of an IPv4 client address,
  the 16 bytes of an IPv6 one (IPv4-mapped included: nginx looks at the
  socket family), and three zero bytes for anything else (unix sockets).
  The address is the connection's as the request sees it (after realip).
- Per request the hash starts at 89; each round folds the bytes in with
  ``hash = (hash * 113 + byte) % 6271``, then ``hash % total_weight`` is
  walked through the peers in file order, each taking ``weight`` slots.
  A tried or unusable peer costs one round (the hash keeps evolving from
  where it is); after 20 such misses, and for a single peer, the request
  goes to round robin for good (nginx keeps ``tries`` per request).
- The hash reached at a successful pick is kept, so a retry of the same
  request continues the sequence, as nginx does.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from ...conf.errors import ConfError
from ..peers import Peer, PeerGroup, PeerState
from . import common
from .common import SERVER_PARAMS_ALL, BalancerBase, chosen, now, request_data, rr_get, usable

DIRECTIVE: dict[str, Any] = {
    "name": "ip_hash",
    "context": "upstream",
    "min_args": 0,
    "max_args": 0,  # NGX_CONF_NOARGS: 'invalid number of arguments in "ip_hash" directive'
    "server_params": SERVER_PARAMS_ALL - {"backup"},
    "errors": {},
}

_PSEUDO = b"\0\0\0"


def addr_bytes(addr: str) -> bytes:
    """The bytes nginx hashes for a client address given as text."""
    if ":" in addr and not addr.startswith("unix:"):
        try:
            return socket.inet_pton(socket.AF_INET6, addr)
        except OSError:
            return _PSEUDO
    try:
        return socket.inet_pton(socket.AF_INET, addr)[:3]
    except OSError:
        return _PSEUDO


def client_addr(r: Any) -> str:
    return r.conn.client_addr  # type: ignore[no-any-return]


@dataclass
class _Data:
    """nginx's ngx_http_upstream_ip_hash_peer_data_t (beyond the rr part)."""
    addr: bytes
    hash: int = 89
    tries: int = 0


class IpHash(BalancerBase):
    def _data(self, state: PeerState, r: Any) -> _Data:
        return request_data(state, "ip_hash", lambda: _Data(addr_bytes(client_addr(r))))

    def get(self, state: PeerState, r: Any) -> Peer | None:
        d = self._data(state, r)
        peers = self.peers
        if d.tries > 20 or peers.is_single(state):
            return rr_get(peers, state)
        t = now()
        cands = peers.current(state)
        total = peers.total_weight(state)
        tried = state.tried
        h = d.hash
        while True:
            for b in d.addr:
                h = (h * 113 + b) % 6271
            w = h % total
            i = 0
            while w >= cands[i].weight:
                w -= cands[i].weight
                i += 1
            peer = cands[i]
            if id(peer) not in tried and usable(peer, t):
                break
            d.tries += 1
            if d.tries > 20:
                return rr_get(peers, state)
        d.hash = h
        return chosen(state, peer, t)


def parse(args: list[str], variables: Any = None, file: str | None = None, line: int | None = None) -> None:
    if args:
        raise ConfError('invalid number of arguments in "ip_hash" directive', file, line)


def make(group: PeerGroup, args: list[str], variables: Any = None,
         file: str | None = None, line: int | None = None) -> IpHash:
    parse(args, variables, file, line)
    return IpHash(group)


def block_factory(ub: Any, node: Any, cf: Any) -> IpHash:
    """The ``MethodFactory`` of portico.upstream.block's registry."""
    return make(ub.group, list(node.args), None, node.file, node.line)


def register() -> None:
    """Make ``ip_hash`` a method of upstream{} (block.register_method)."""
    common.register(DIRECTIVE["name"], block_factory, DIRECTIVE["server_params"])
