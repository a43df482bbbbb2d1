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

from ..peers import Peer, PeerState
from .common import BalancerBase, rr_get


class RoundRobin(BalancerBase):
    """The default method; the algorithm itself is ``common.rr_get`` /
    ``rr_free``, which every other method falls back on too."""

    def get(self, state: PeerState, r: Any) -> Peer | None:
        return rr_get(self.peers, state)
