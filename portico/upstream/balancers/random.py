"""``random [two [least_conn]]``, as ngx_http_upstream_random_module
(nginx 1.22).

Invariants:
- The ranges table is built once per Cycle: peer i owns the integers
  ``[start_i, start_i + weight_i)`` of ``[0, total_weight)``.  A draw is
  ``x = rand(total_weight)`` (uniform), located by binary search, so a peer
  is drawn with probability weight / total weight.
- ``random``: draw until an untried, usable peer comes up; a miss counts
  one try, and after 20 tries in this request (tries are per request and
  never reset) the request goes to round robin.
- ``random two``: draw two different untried, usable peers (a draw that
  repeats the first, or misses, counts one try); of the two, take the
  second unless the first has strictly fewer connections relative to its
  weight (``second.conns * first.weight > first.conns * second.weight``);
  so on a tie the second draw wins.  ``least_conn`` is the only (and the
  default) method for ``two``: ``random two`` behaves the same.
- A single peer (nginx's ``single``) and the backup phase use round robin;
  (random allows no ``backup`` server, so the latter only happens when a
  ``backup`` line precedes the ``random`` directive).
- The generator is Python's (nginx's ``random()`` is seeded per worker, so
  no run can reproduce its exact draws; the distribution is the contract).
"""
from __future__ import annotations

import random as _random
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Callable

from ...conf.errors import ConfError
from ..peers import Peer, PeerGroup, PeerState
from . import common
from .common import SERVER_PARAMS_ALL, BalancerBase, chosen, now, request_data, rr_get, usable

DIRECTIVE: dict[str, Any] = {
    "name": "random",
    "context": "upstream",
    "min_args": 0,
    "max_args": 2,  # NGX_CONF_NOARGS|NGX_CONF_TAKE12
    "server_params": SERVER_PARAMS_ALL - {"backup"},
    "errors": {"parameter": 'invalid parameter "{0}"'},
}

Rand = Callable[[int], int]  # n -> uniform integer in [0, n)


@dataclass
class _Data:
    tries: int = 0


class Random(BalancerBase):
    def __init__(self, group: PeerGroup, two: bool, rand: Rand | None = None) -> None:
        super().__init__(group)
        self.two = two
        self.rand: Rand = rand or _random.randrange
        starts: list[int] = []
        total = 0
        for p in self.peers.primary:
            starts.append(total)
            total += p.weight
        self.starts = starts
        self.total = total

    def peek(self) -> int:
        """ngx_http_upstream_peek_random_peer: the index owning a draw."""
        return bisect_right(self.starts, self.rand(self.total)) - 1

    def get(self, state: PeerState, r: Any) -> Peer | None:
        d = request_data(state, "random", _Data)
        peers = self.peers
        if d.tries > 20 or peers.is_single(state) or state.backup_phase:
            return rr_get(peers, state)
        return self._get2(state, d) if self.two else self._get1(state, d)

    def _get1(self, state: PeerState, d: _Data) -> Peer | None:
        t = now()
        cands = self.peers.primary
        tried = state.tried
        while True:
            peer = cands[self.peek()]
            if id(peer) not in tried and usable(peer, t):
                return chosen(state, peer, t)
            d.tries += 1
            if d.tries > 20:
                return rr_get(self.peers, state)

    def _get2(self, state: PeerState, d: _Data) -> Peer | None:
        t = now()
        cands = self.peers.primary
        tried = state.tried
        prev: Peer | None = None
        while True:
            peer = cands[self.peek()]
            if peer is not prev and id(peer) not in tried and usable(peer, t):
                if prev is not None:
                    if peer.conns * prev.weight > prev.conns * peer.weight:
                        peer = prev
                    return chosen(state, peer, t)
                prev = peer
            d.tries += 1
            if d.tries > 20:
                return rr_get(self.peers, state)


@dataclass(frozen=True)
class Conf:
    two: bool


def parse(args: list[str], variables: Any = None, file: str | None = None, line: int | None = None) -> Conf:
    if len(args) > 2:
        raise ConfError('invalid number of arguments in "random" directive', file, line)
    if not args:
        return Conf(False)
    if args[0] != "two":
        raise ConfError(f'invalid parameter "{args[0]}"', file, line)
    if len(args) == 2 and args[1] != "least_conn":
        raise ConfError(f'invalid parameter "{args[1]}"', file, line)
    return Conf(True)


def make(group: PeerGroup, args: list[str], variables: Any = None,
         file: str | None = None, line: int | None = None, rand: Rand | None = None) -> Random:
    return Random(group, parse(args, variables, file, line).two, rand)


def block_factory(ub: Any, node: Any, cf: Any) -> Random:
    """The ``MethodFactory`` of portico.upstream.block's registry."""
    return make(ub.group, list(node.args), None, node.file, node.line)


def register() -> None:
    """Make ``random`` a method of upstream{} (block.register_method)."""
    common.register(DIRECTIVE["name"], block_factory, DIRECTIVE["server_params"])
