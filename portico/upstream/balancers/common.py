"""What every balancing method shares: nginx's passive-health rule, its
smooth weighted round robin (the fallback of every method) and its ``free``.

Invariants:
- ``usable(peer, now)`` is the one test of "may this peer take a request
  now", exactly the condition nginx repeats in every ``get`` function
  (ngx_http_upstream_round_robin.c and the four balancer modules): not
  ``down``; not ``max_fails`` failures since the last check while inside
  ``fail_timeout`` of that check; not at ``max_conns``.  Once fail_timeout
  has passed the peer is usable again; ``chosen`` then moves ``checked`` to
  now, so exactly that one request probes it: a failure re-arms the
  timeout, a success (``free`` with ok, ``accessed < checked``) clears
  ``fails``.
- ``Peers`` is built once per upstream{} per Cycle: the primary and backup
  lists in file order with their total weights and nginx's ``single`` flag
  (one primary and no backup).  No per-request work recomputes them.
- Per request, nginx keeps which peers were tried (a bitmap by index); here
  ``PeerState.tried`` holds ``id()`` of the tried Peer objects, and
  ``PeerState.backup_phase`` is nginx's ``rrp->peers = peers->next``: once
  set, the request only picks among the backups.
- ``rr_get`` / ``rr_free`` are ngx_http_upstream_get_round_robin_peer /
  ngx_http_upstream_free_round_robin_peer of nginx 1.22 (the Debian build
  the differential tests run), operating on the weights stored in the Peer
  objects, so a method that falls back to round robin continues the same
  smooth sequence the round-robin method would produce.
- Times are ``peers.now()`` (monotonic seconds, float); nginx uses whole
  seconds, so a peer comes back up to one second earlier than in nginx.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..peers import Peer, PeerGroup, PeerState, now

__all__ = ["Peers", "BalancerBase", "usable", "chosen", "rr_get", "rr_free", "new_state",
           "smooth_pick", "request_data", "disabled_now", "now", "SERVER_PARAMS_ALL"]

# the ``server`` parameters an upstream{} accepts, by nginx's flag names;
# each method's DIRECTIVE lists the subset it allows (uscf->flags), and a
# ``server`` line after the method's directive with another parameter is
# nginx's ``balancing method does not support parameter "backup"``.
SERVER_PARAMS_ALL = frozenset({"weight", "max_conns", "max_fails", "fail_timeout", "down", "backup"})


@dataclass(frozen=True)
class Peers:
    """The peer lists of one upstream as the balancers walk them."""
    name: str
    primary: tuple[Peer, ...]
    backup: tuple[Peer, ...]
    primary_weight: int
    backup_weight: int
    single: bool  # nginx's peers->single: one primary peer and no backups

    @classmethod
    def of(cls, group: PeerGroup) -> "Peers":
        primary = tuple(group.peers)
        backup = tuple(group.backup)
        return cls(group.name, primary, backup,
                   sum(p.weight for p in primary), sum(p.weight for p in backup),
                   len(primary) == 1 and not backup)

    def current(self, state: PeerState) -> tuple[Peer, ...]:
        return self.backup if state.backup_phase else self.primary

    def total_weight(self, state: PeerState) -> int:
        return self.backup_weight if state.backup_phase else self.primary_weight

    def is_single(self, state: PeerState) -> bool:
        # the backup list never counts as single (nginx sets backup->single = 0)
        return self.single and not state.backup_phase

    @property
    def tries(self) -> int:
        """ngx_http_upstream_tries(): peers not marked ``down``, both lists."""
        return sum(1 for p in self.primary if not p.down) + sum(1 for p in self.backup if not p.down)


def new_state(peers: Peers) -> PeerState:
    """A fresh per-request state (ngx_http_upstream_init_round_robin_peer)."""
    return PeerState(tries=peers.tries)


def usable(peer: Peer, t: float) -> bool:
    """nginx's test, in the order nginx writes it, of a peer that is a
    candidate right now (the tried bitmap is the caller's business)."""
    if peer.down:
        return False
    if peer.max_fails and peer.fails >= peer.max_fails and t - peer.checked <= peer.fail_timeout:
        return False
    if peer.max_conns and peer.conns >= peer.max_conns:
        return False
    return True


def chosen(state: PeerState, peer: Peer, t: float) -> Peer:
    """Book ``peer`` for this request: what every nginx get does on success.
    Moving ``checked`` after fail_timeout is what makes this request the
    one probe of a peer that had failed."""
    state.current = peer
    state.tried.add(id(peer))
    peer.conns += 1
    if t - peer.checked > peer.fail_timeout:
        peer.checked = t
    return peer


def smooth_pick(candidates: list[Peer]) -> Peer | None:
    """The smooth weighted round robin step over ``candidates`` (already
    filtered): each gains its effective weight, the highest current weight
    wins (the first on ties) and pays back the total."""
    best: Peer | None = None
    total = 0
    for peer in candidates:
        peer.current_weight += peer.effective_weight
        total += peer.effective_weight
        if peer.effective_weight < peer.weight:
            peer.effective_weight += 1
        if best is None or peer.current_weight > best.current_weight:
            best = peer
    if best is not None:
        best.current_weight -= total
    return best


def rr_get(peers: Peers, state: PeerState) -> Peer | None:
    """ngx_http_upstream_get_round_robin_peer (with ngx_http_upstream_get_peer)."""
    t = now()
    if peers.is_single(state):
        peer = peers.primary[0]
        # a single peer ignores max_fails: there is nothing else to try
        if not peer.down and not (peer.max_conns and peer.conns >= peer.max_conns):
            state.current = peer
            peer.conns += 1
            return peer
    else:
        tried = state.tried
        best = smooth_pick([p for p in peers.current(state) if id(p) not in tried and usable(p, t)])
        if best is not None:
            return chosen(state, best, t)
    if not state.backup_phase and peers.backup:
        state.backup_phase = True
        return rr_get(peers, state)
    return None


def rr_free(peers: Peers, state: PeerState, peer: Peer, ok: bool) -> None:
    """ngx_http_upstream_free_round_robin_peer: count a failure (and lower
    the effective weight, restored one step per pick), or clear the failures
    of a peer whose probe succeeded; give the connection slot back."""
    if peers.is_single(state):
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


def disabled_now(peer: Peer, ok: bool) -> bool:
    """True when this ``free`` just took the peer out of rotation: nginx then
    logs ``upstream server temporarily disabled`` at [warn]."""
    return not ok and bool(peer.max_fails) and peer.fails >= peer.max_fails


class BalancerBase:
    """What the four methods share: the peer lists and nginx's round-robin
    ``free`` (every nginx method keeps ngx_http_upstream_free_round_robin_peer)."""

    def __init__(self, group: PeerGroup) -> None:
        self.group = group
        self.peers = Peers.of(group)

    def new_state(self) -> PeerState:
        return new_state(self.peers)

    def free(self, state: PeerState, peer: Peer, ok: bool) -> None:
        rr_free(self.peers, state, peer, ok)

    def failed_upstream_disabled(self, peer: Peer) -> bool:
        """True when the failure just counted reached max_fails (nginx then
        warns "upstream server temporarily disabled"); a single peer is never
        disabled."""
        return not self.peers.single and disabled_now(peer, False)


T = TypeVar("T")


def request_data(state: PeerState, key: str, make: Callable[[], T]) -> T:
    """Per-request data of a balancer (nginx's hp/iphp/rp structures),
    created on the first ``get`` of the request and kept on the state."""
    d: dict[str, Any] = vars(state)
    v = d.get(key)
    if v is None:
        v = make()
        d[key] = v
    return v  # type: ignore[no-any-return]


def block_server_texts(ub: Any) -> tuple[list[str] | None, list[str] | None]:
    """The ``server`` text as written of each primary and backup peer of an
    upstream{} (nginx's ``peer->server``), recovered from its server lines:
    a line gives as many peers as its address resolves to, in order.  When
    the Peer objects carry ``server`` already, or the counts do not add up
    (a name resolving differently twice), (None, None): callers then use
    ``server`` / the peer name."""
    group = ub.group
    if all(getattr(p, "server", None) for p in (*group.peers, *group.backup)):
        return None, None
    from ..block import resolve_url
    prim: list[str] = []
    back: list[str] = []
    for s in ub.servers:
        n = len(resolve_url(s.url, 80, s.node, f'in upstream "{s.url}"'))
        (back if s.backup else prim).extend([s.url] * n)
    if len(prim) != len(group.peers) or len(back) != len(group.backup):
        return None, None
    return prim, back


def register(name: str, factory: Callable[[Any, Any, Any], Any], server_params: frozenset[str]) -> None:
    """Plug a method into portico.upstream.block's registry."""
    from ..block import register_method
    register_method(name, factory, allowed=server_params)
