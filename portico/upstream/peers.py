"""Upstream peers and the interface every balancing method implements.

Invariants:
- A ``Peer`` is one resolved address of a ``server`` line of an upstream{}
  block (a name resolving to several addresses gives several peers with the
  same ``name``), with its configuration (weight, max_fails, fail_timeout,
  max_conns, backup, down) and its passive-health state (fails, accessed,
  checked) and load (conns), all per worker unless a ``zone`` shares them.
- ``PeerGroup`` holds the primary peers and, separately, the backup ones
  (``backup``); a balancer picks from the primaries and falls back to the
  backups only when no primary can be used (nginx's round robin does this
  for every method built on it).
- A balancer is created once per upstream{} per Cycle (``Balancer.init``)
  and per request asked ``get(state)`` for a peer; ``state`` is a
  ``PeerState`` for that request (which peers were tried, how many tries
  remain).  ``free(state, peer, ok)`` reports the outcome: not ok counts
  a failure for passive health (max_fails within fail_timeout marks the
  peer down until fail_timeout has passed; then one request probes it).
- ``get`` returns None when no peer can be used; the caller answers 502
  with nginx's "no live upstreams while connecting to upstream" log line.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Peer:
    name: str  # as written: "127.0.0.1:8080", "backend.local:80", "unix:/tmp/s"
    family: int  # socket.AF_INET / AF_INET6 / AF_UNIX
    address: Any  # (host, port) or a unix path: what socket.connect() takes
    weight: int = 1
    max_fails: int = 1
    fail_timeout: float = 10.0
    max_conns: int = 0
    backup: bool = False
    down: bool = False
    server: str = ""  # nginx's peer->server: the ``server`` address as written
    # state (nginx's ngx_http_upstream_rr_peer_t)
    current_weight: int = 0
    effective_weight: int = 1
    conns: int = 0
    fails: int = 0
    accessed: float = 0.0
    checked: float = 0.0

    def __post_init__(self) -> None:
        self.effective_weight = self.weight

    @property
    def config_down(self) -> bool:
        """``down`` as configured (a zone's peer adds health-check states)."""
        return self.down


@dataclass
class PeerGroup:
    name: str  # the upstream's name, or the proxy_pass host for an implicit one
    peers: list[Peer] = field(default_factory=list)
    backup: list[Peer] = field(default_factory=list)

    @property
    def total_weight(self) -> int:
        return sum(p.weight for p in self.peers)


@dataclass
class PeerState:
    """Per request: what has been tried (nginx's ``pc->tries`` and tried bitmap)."""
    tries: int
    tried: set[int] = field(default_factory=set)  # id() of peers already used by this request
    current: Peer | None = None
    backup_phase: bool = False


class Balancer(Protocol):
    def get(self, state: PeerState, r: Any) -> Peer | None: ...

    def free(self, state: PeerState, peer: Peer, ok: bool) -> None: ...

    def failed_upstream_disabled(self, peer: Peer) -> bool: ...


def now() -> float:
    return time.monotonic()
