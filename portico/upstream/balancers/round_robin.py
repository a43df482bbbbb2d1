"""Smooth weighted round robin: nginx's ngx_http_upstream_round_robin.c.

Invariants (as nginx 1.29):
- Each pick adds every eligible peer's ``effective_weight`` to its
  ``current_weight``, chooses the largest (first on ties, in configuration
  order) and subtracts the total from it: weights 5,1,1 give
  a a b a c a a, every 7 picks.
- A peer is eligible when not tried by this request, not ``down``, below
  ``max_conns`` and not failed: ``fails >= max_fails`` within
  ``fail_timeout`` of the last check.  When ``fail_timeout`` has passed
  since ``checked``, choosing it moves ``checked`` to now: one request
  probes it; its success (``accessed < checked``) clears ``fails``.
- A failure lowers ``effective_weight`` by ``weight / max_fails``; every
  pick raises it by one back towards ``weight`` (slow recovery).
- A group of exactly one primary and no backup is nginx's ``single``: no
  failure accounting, and the request gets no second try.
- Backups are used only once no primary is eligible; from then on this
  request stays on the backups (nginx's ``rrp->peers = peers->next``).
"""
from __future__ import annotations

from typing import Any

from ..peers import Peer, PeerGroup, PeerState, now


class RoundRobin:
    __slots__ = ("group", "single")

    def __init__(self, group: PeerGroup) -> None:
        self.group = group
        self.single = len(group.peers) == 1 and not group.backup

    def get(self, state: PeerState, r: Any) -> Peer | None:
        group = self.group
        if self.single:
            p = group.peers[0]
            if p.down or (p.max_conns and p.conns >= p.max_conns):
                return None
            p.conns += 1
            state.current = p
            return p
        if not state.backup_phase:
            p = _pick(group.peers, state)
            if p is not None:
                return p
            if not group.backup:
                return None
            state.backup_phase = True
        return _pick(group.backup, state)

    def free(self, state: PeerState, peer: Peer, ok: bool) -> None:
        if self.single:
            peer.conns -= 1
            state.tries = 0
            return
        if not ok:
            t = now()
            peer.fails += 1
            peer.accessed = t
            peer.checked = t
            if peer.max_fails:
                peer.effective_weight -= peer.weight // peer.max_fails
            if peer.effective_weight < 0:
                peer.effective_weight = 0
        elif peer.accessed < peer.checked:
            peer.fails = 0
        peer.conns -= 1
        if state.tries:
            state.tries -= 1

    def failed_upstream_disabled(self, peer: Peer) -> bool:
        """True when the last failure reached max_fails (nginx then warns
        "upstream server temporarily disabled")."""
        return not self.single and bool(peer.max_fails) and peer.fails >= peer.max_fails


def _pick(peers: list[Peer], state: PeerState) -> Peer | None:
    t = now()
    best: Peer | None = None
    total = 0
    tried = state.tried
    for p in peers:
        if tried and id(p) in tried:
            continue
        if p.down:
            continue
        if p.max_fails and p.fails >= p.max_fails and t - p.checked <= p.fail_timeout:
            continue
        if p.max_conns and p.conns >= p.max_conns:
            continue
        p.current_weight += p.effective_weight
        total += p.effective_weight
        if p.effective_weight < p.weight:
            p.effective_weight += 1
        if best is None or p.current_weight > best.current_weight:
            best = p
    if best is None:
        return None
    tried.add(id(best))
    best.current_weight -= total
    if t - best.checked > best.fail_timeout:
        best.checked = t
    best.conns += 1
    state.current = best
    return best
