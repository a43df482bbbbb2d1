"""``zone NAME [SIZE]`` of upstream{}: peer state in a shared zone, seen by
every worker (ngx_http_upstream_zone_module).

Invariants:
- Layout.  The zone (tag ``upstream``; several upstreams may name the same
  zone) is one ``KeyedTable`` of ``CELLS`` int64 cells per record, keyed by
  text: ``u\\0UPSTREAM`` (the upstream: its Cycle token, peer-list version,
  health-check due times), ``p\\0UPSTREAM\\0SERVER\\0PEER\\0N`` (one peer: the
  round-robin weights, conns, fails, accessed/checked times and the
  health-check state) and ``r\\0UPSTREAM\\0SERVER\\0N`` (a ``resolve``
  server: its current addresses).  Records never move, so a process binds a
  ``SharedPeer`` to its record once (``attach``) and then reads and writes
  the cells directly: ``peer.fails += 1`` is a store into shared memory.
- Locking.  Every balancer ``get`` / ``free`` of a zoned upstream runs under
  ``zone.lock`` (``ZonedBalancer``: nginx's peers wlock), and so do the
  health-check and resolve updates; a reader outside the lock (logging,
  ``down`` in a test) may see a value one update old, never a torn one.
- Life.  The records survive a reload with the zone (same name and size).
  The first process of a new Cycle to attach (its random ``token`` differs
  from the upstream record's) resets what nginx starts afresh: weights,
  fails and times, and the health state: healthy, or "checking" for a
  ``mandatory`` check, unless ``persistent`` and the peer was up.  ``conns``
  is kept: workers of the old Cycle still hold and release those slots.
  Workers of one Cycle (a respawned one too) never reset anything.
- ``down`` of a ``SharedPeer`` is the configured ``down`` or any health
  check's unhealthy / checking bit, so every balancing method skips such a
  peer without knowing about health checks.
- Without ``zone`` none of this exists: peers are plain ``Peer`` objects
  and the balancer is called directly (no lock, no indirection).
"""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from ..core import log as logmod
from ..core.shm.keyed import KeyedTable
from ..core.shm.zone import SharedZone
from .peers import Peer, PeerGroup, PeerState

TAG = "upstream"
CELLS = 32
VALUE_FMT = f"={CELLS}q"
MAX_CHECKS = 8  # health checks per upstream (each has two counters per peer)
MAX_ADDRS = 9  # addresses kept per ``resolve`` server

# peer record cells (q: int64, d: float64 over the same bytes)
P_CW, P_EW, P_CONNS, P_FAILS, P_ACCESSED, P_CHECKED, P_BAD, P_CHECKING = range(8)
P_HC = 16  # + 2*i: consecutive failures of check i, + 2*i + 1: consecutive passes
# upstream record cells
U_TOKEN, U_VERSION = 0, 1
U_HC_DUE = 8  # + i (d): when check i is next due (a lease while it runs)
# resolve record cells
R_VERSION, R_COUNT, R_DUE = 0, 1, 2  # R_DUE is a float
R_ADDRS = 4  # + 3*i: family, address bytes 0..7, 8..15

_private: dict[str, KeyedTable] = {}  # master_process off: this process's zones


def _cell(i: int) -> property:
    def get(self: "SharedPeer") -> int:
        return self._q[i]  # type: ignore[no-any-return]

    def put(self: "SharedPeer", v: int) -> None:
        self._q[i] = v
    return property(get, put)


def _fcell(i: int) -> property:
    def get(self: "SharedPeer") -> float:
        return self._d[i]  # type: ignore[no-any-return]

    def put(self: "SharedPeer", v: float) -> None:
        self._d[i] = v
    return property(get, put)


def _views(mv: memoryview) -> tuple[memoryview, memoryview]:
    return mv.cast("q"), mv.cast("d")


class SharedPeer(Peer):
    """A ``Peer`` whose state lives in a zone record (private memory until
    ``bind``, so it works before the worker attaches too)."""

    def __init__(self, name: str, family: int, address: Any, weight: int = 1, max_fails: int = 1,
                 fail_timeout: float = 10.0, max_conns: int = 0, backup: bool = False, down: bool = False,
                 server: str = "") -> None:
        d = self.__dict__
        d["_q"], d["_d"] = _views(memoryview(bytearray(CELLS * 8)))
        d.update(name=name, family=family, address=address, weight=weight, max_fails=max_fails,
                 fail_timeout=fail_timeout, max_conns=max_conns, backup=backup, server=server,
                 _down=down, record=-1)
        self.effective_weight = weight

    def bind(self, mv: memoryview) -> None:
        self.__dict__["_q"], self.__dict__["_d"] = _views(mv)

    current_weight = _cell(P_CW)
    effective_weight = _cell(P_EW)
    conns = _cell(P_CONNS)
    fails = _cell(P_FAILS)
    accessed = _fcell(P_ACCESSED)
    checked = _fcell(P_CHECKED)

    @property  # type: ignore[override]
    def down(self) -> bool:
        q = self._q
        return self._down or bool(q[P_BAD]) or bool(q[P_CHECKING])

    @down.setter
    def down(self, v: bool) -> None:
        self.__dict__["_down"] = v

    @property
    def config_down(self) -> bool:
        return self._down  # type: ignore[no-any-return]

    @property
    def healthy(self) -> bool:
        """No health check holds it out of rotation."""
        return not (self._q[P_BAD] or self._q[P_CHECKING])

    def reset(self) -> None:
        """What a new Cycle starts from (``conns`` is kept)."""
        q, d = self._q, self._d
        q[P_CW] = 0
        q[P_EW] = self.weight
        q[P_FAILS] = 0
        d[P_ACCESSED] = 0.0
        d[P_CHECKED] = 0.0
        q[P_BAD] = 0
        q[P_CHECKING] = 0
        for i in range(P_HC, CELLS):
            q[i] = 0


def _key(*parts: str) -> bytes:
    return "\0".join(parts).encode("utf-8", "surrogateescape")


def _addr_cells(family: int, ip: str) -> tuple[int, int, int]:
    raw = socket.inet_pton(family, ip).ljust(16, b"\0")
    return family, int.from_bytes(raw[:8], "little", signed=True), int.from_bytes(raw[8:], "little", signed=True)


def _cells_addr(family: int, a: int, b: int) -> tuple[int, str]:
    raw = a.to_bytes(8, "little", signed=True) + b.to_bytes(8, "little", signed=True)
    return family, socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)


class ZonedBalancer:
    """The method's balancer, called under the zone lock, rebuilt when the
    peer list changed (a ``resolve`` server got other addresses)."""

    def __init__(self, zs: "ZonedState", inner: Any) -> None:
        self.zs = zs
        self.inner = inner

    def get(self, state: PeerState, r: Any) -> Peer | None:
        zs = self.zs
        with zs.lock:
            if zs.uq is not None and zs.uq[U_VERSION] != zs.version:
                zs.refresh_locked()
            return self.inner.get(state, r)  # type: ignore[no-any-return]

    def free(self, state: PeerState, peer: Peer, ok: bool) -> None:
        with self.zs.lock:
            self.inner.free(state, peer, ok)

    def failed_upstream_disabled(self, peer: Peer) -> bool:
        return self.inner.failed_upstream_disabled(peer)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ZonedState:
    """One zoned upstream in this process: its records and its balancer."""

    def __init__(self, ub: Any) -> None:
        from .block import make_balancer
        self.ub = ub
        self.token = int.from_bytes(os.urandom(7), "big") or 1
        self.lock: Any = contextlib.nullcontext()
        self.table: KeyedTable | None = None
        self.uq: memoryview | None = None  # the upstream record, int cells
        self.ud: memoryview | None = None  # the same, float cells
        self.version = 0
        self.static = (list(ub.group.peers), list(ub.group.backup))
        self.resolved: dict[tuple[int, str], SharedPeer] = {}  # (server index, name) -> peer
        self.balancer = ZonedBalancer(self, make_balancer(ub))
        self.log: Any = None
        self._full_logged = False

    # --- attaching (a worker, after fork) ------------------------------------------------
    def attach(self, cycle: Any) -> None:
        ub = self.ub
        shm = getattr(cycle, "shm", None)
        zone = shm.get(ub.zone) if shm is not None else None
        self.log = cycle.log
        if zone is None:
            table = _private.get(ub.zone)
            if table is None:
                size = max(ub.zone_size, cycle.zones.get(ub.zone, (0,))[0] if hasattr(cycle, "zones") else 0)
                table = KeyedTable.attach(SharedZone(ub.zone, size, TAG), VALUE_FMT, TAG)
                _private[ub.zone] = table
        else:
            table = KeyedTable.attach(zone, VALUE_FMT, TAG)
        self.table = table
        self.lock = table.zone.lock
        with self.lock:
            idx = self._record(_key("u", ub.host))
            if idx < 0:
                return  # the zone is full: this process keeps private state
            self.uq, self.ud = _views(self._mv(idx))
            fresh = self.uq[U_TOKEN] != self.token
            if fresh:
                self.uq[U_TOKEN] = self.token
                for i in range(MAX_CHECKS):
                    self.ud[U_HC_DUE + i] = 0.0
                self.uq[U_VERSION] += 1
            for peers in self.static:
                self._bind_all(peers, fresh)
            self.refresh_locked(fresh)

    def _mv(self, idx: int) -> memoryview:
        t = self.table
        assert t is not None
        off = t._off(idx) + t._vo
        return t.buf[off:off + CELLS * 8]

    def _record(self, key: bytes) -> int:
        """The record of ``key``, made (zeroed) when new; -1: the zone is full."""
        t = self.table
        assert t is not None
        idx = t.find(key)
        if idx < 0:
            idx = t.insert(key, (0,) * CELLS, lru=False)
            if idx < 0 and not self._full_logged:
                self._full_logged = True
                if self.log is not None:
                    self.log.log(logmod.CRIT, f'no memory in upstream zone "{self.ub.zone}"')
        return idx

    def _bind_all(self, peers: list[Peer], fresh: bool) -> None:
        seen: dict[tuple[str, str], int] = {}
        for p in peers:
            if isinstance(p, SharedPeer) and p.record < 0:
                k = (p.server, p.name)
                n = seen.get(k, 0)
                seen[k] = n + 1
                self._bind(p, _key("p", self.ub.host, p.server, p.name, str(n)), fresh)

    def _bind(self, p: SharedPeer, key: bytes, fresh: bool) -> None:
        t = self.table
        assert t is not None
        existed = t.find(key) >= 0
        idx = self._record(key)
        if idx < 0:
            return
        p.bind(self._mv(idx))
        p.__dict__["record"] = idx
        if fresh or not existed:
            was_up = existed and p.healthy
            p.reset()
            checking = 0
            for i, hc in enumerate(self.ub.health_checks[:MAX_CHECKS]):
                if hc.mandatory and not (hc.persistent and was_up):
                    checking |= 1 << i
            p._q[P_CHECKING] = checking

    # --- the peer list ---------------------------------------------------------------------
    def refresh_locked(self, fresh: bool = False) -> None:
        """Rebuild this process's peer lists and balancer from the zone (the
        addresses of ``resolve`` servers); caller holds the lock."""
        from .block import count_tries, make_balancer
        ub = self.ub
        uq = self.uq
        if uq is None:
            return
        self.version = uq[U_VERSION]
        if not any(s.resolve for s in ub.servers):
            return
        prim, back = list(self.static[0]), list(self.static[1])
        keep: dict[tuple[int, str], SharedPeer] = {}
        for k, s in enumerate(ub.servers):
            if not s.resolve:
                continue
            for fam, ip in self.addresses(k):
                _h, port, _n, _e = _split(s.url)
                addr: Any = (ip, port) if fam == socket.AF_INET else (ip, port, 0, 0)
                name = f"{ip}:{port}" if fam == socket.AF_INET else f"[{ip}]:{port}"
                p = self.resolved.get((k, name))
                if p is None:
                    p = SharedPeer(name, fam, addr, s.weight, s.max_fails, s.fail_timeout, s.max_conns,
                                   s.backup, s.down, server=s.url)
                    self._bind(p, _key("p", ub.host, s.url, name, "0"), fresh)
                keep[(k, name)] = p
                (back if s.backup else prim).append(p)
        self.resolved = keep
        group = PeerGroup(ub.host, prim, back)
        ub.group = group
        ub.tries = max(count_tries(group), 1)
        self.balancer.inner = make_balancer(ub)

    def peers(self) -> list[Peer]:
        g = self.ub.group
        return list(g.peers) + list(g.backup)

    # --- resolve records -------------------------------------------------------------------
    def _rview(self, k: int) -> tuple[memoryview, memoryview] | None:
        idx = self._record(_key("r", self.ub.host, self.ub.servers[k].url, str(k)))
        return _views(self._mv(idx)) if idx >= 0 else None

    def addresses(self, k: int) -> list[tuple[int, str]]:
        """The current addresses of server line ``k`` (caller holds the lock)."""
        v = self._rview(k)
        if v is None:
            return []
        q, _d = v
        return [_cells_addr(q[R_ADDRS + 3 * i], q[R_ADDRS + 3 * i + 1], q[R_ADDRS + 3 * i + 2])
                for i in range(min(q[R_COUNT], MAX_ADDRS))]

    def claim_resolve(self, k: int, now: float, lease: float) -> bool:
        """True (and the due time moved by ``lease``) when server ``k`` is due."""
        if self.table is None:
            return False
        with self.lock:
            v = self._rview(k)
            if v is None or v[1][R_DUE] > now:
                return False
            v[1][R_DUE] = now + lease
            return True

    def store_addresses(self, k: int, addrs: list[tuple[int, str]] | None, next_due: float) -> bool:
        """Record a resolution (None: keep the old addresses); True if changed."""
        with self.lock:
            v = self._rview(k)
            if v is None:
                return False
            q, d = v
            d[R_DUE] = next_due
            if addrs is None:
                return False
            addrs = addrs[:MAX_ADDRS]
            if addrs == self.addresses(k):
                return False
            for i, (fam, ip) in enumerate(addrs):
                q[R_ADDRS + 3 * i], q[R_ADDRS + 3 * i + 1], q[R_ADDRS + 3 * i + 2] = _addr_cells(fam, ip)
            q[R_COUNT] = len(addrs)
            q[R_VERSION] += 1
            if self.uq is not None:
                self.uq[U_VERSION] += 1
            return True

    # --- health-check scheduling -----------------------------------------------------------
    def claim_check(self, i: int, now: float, lease: float) -> bool:
        """True when check ``i`` is due; it then belongs to this process for
        ``lease`` seconds (another takes over if this one dies meanwhile)."""
        ud = self.ud
        if ud is None:
            return False
        with self.lock:
            if ud[U_HC_DUE + i] > now:
                return False
            ud[U_HC_DUE + i] = now + lease
            return True

    def check_done(self, i: int, next_due: float) -> None:
        if self.ud is not None:
            with self.lock:
                self.ud[U_HC_DUE + i] = next_due


def _split(url: str) -> tuple[str, int, bool, str | None]:
    from .block import split_host_port
    return split_host_port(url, 80)
