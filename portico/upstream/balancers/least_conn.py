"""``least_conn``: the peer with the fewest active connections relative to
its weight, as ngx_http_upstream_least_conn_module (nginx 1.22).

Invariants:
- Candidates are the untried, ``usable`` peers of the current list
  (primaries, or backups once the request switched to them).
- Peer A beats the best so far B iff ``A.conns * B.weight < B.conns * A.weight``
  (integer cross-multiplication, no division); the first such peer in file
  order is the best.  When another candidate ties with it, the smooth
  weighted round robin runs over the tied candidates from the best onward
  (peers before it cannot tie: they lost to it or were skipped), which
  moves their ``current_weight`` exactly as nginx does.
- No candidate among primaries: switch to the backups (tried reset) and
  run the same rule there; none there either: None (nginx's NGX_BUSY).
- One primary and no backup: plain round robin (nginx's ``single``).
"""
from __future__ import annotations

from typing import Any

from ...conf.errors import ConfError
from ..peers import Peer, PeerGroup, PeerState
from . import common
from .common import SERVER_PARAMS_ALL, BalancerBase, chosen, now, rr_get, usable

DIRECTIVE: dict[str, Any] = {
    "name": "least_conn",
    "context": "upstream",
    "min_args": 0,
    "max_args": 0,  # NGX_CONF_NOARGS: 'invalid number of arguments in "least_conn" directive'
    "server_params": SERVER_PARAMS_ALL,
    "errors": {},
}


class LeastConn(BalancerBase):
    def get(self, state: PeerState, r: Any) -> Peer | None:
        if self.peers.is_single(state):
            return rr_get(self.peers, state)
        t = now()
        tried = state.tried
        best: Peer | None = None
        best_i = 0
        many = False
        cands = self.peers.current(state)
        for i, peer in enumerate(cands):
            if id(peer) in tried or not usable(peer, t):
                continue
            if best is None or peer.conns * best.weight < best.conns * peer.weight:
                best, best_i, many = peer, i, False
            elif peer.conns * best.weight == best.conns * peer.weight:
                many = True
        if best is None:
            if not state.backup_phase and self.peers.backup:
                state.backup_phase = True
                return self.get(state, r)
            return None
        if many:
            # the round-robin step among the tied peers, from the best on;
            # ``first`` is the best itself (nginx compares against it, and
            # it ties with itself, so it enters the sum like the others)
            first = best
            total = 0
            for peer in cands[best_i:]:
                if id(peer) in tried or not usable(peer, t):
                    continue
                if peer.conns * first.weight != first.conns * peer.weight:
                    continue
                peer.current_weight += peer.effective_weight
                total += peer.effective_weight
                if peer.effective_weight < peer.weight:
                    peer.effective_weight += 1
                if peer.current_weight > best.current_weight:
                    best = peer
            best.current_weight -= total
        return chosen(state, best, t)


def parse(args: list[str], variables: Any = None, file: str | None = None, line: int | None = None) -> None:
    if args:
        raise ConfError('invalid number of arguments in "least_conn" directive', file, line)


def make(group: PeerGroup, args: list[str], variables: Any = None,
         file: str | None = None, line: int | None = None) -> LeastConn:
    parse(args, variables, file, line)
    return LeastConn(group)


def block_factory(ub: Any, node: Any, cf: Any) -> LeastConn:
    """The ``MethodFactory`` of portico.upstream.block's registry."""
    return make(ub.group, list(node.args), None, node.file, node.line)


def register() -> None:
    """Make ``least_conn`` a method of upstream{} (block.register_method)."""
    common.register(DIRECTIVE["name"], block_factory, DIRECTIVE["server_params"])
