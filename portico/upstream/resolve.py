"""``server NAME resolve`` in a zoned upstream{}: the name is looked up again
whenever its answer expires and the peer list follows (nginx 1.27.3+'s
ngx_http_upstream_zone_resolve_timer / _resolve_handler).

Invariants:
- One look-up per name for the whole server: each worker's tick asks the
  zone (``ZonedState.claim_resolve``) and only the worker that finds the
  name due resolves it, under a lease of ``resolver_timeout`` + 1 s.
- The answer's addresses (port from the ``server`` line) replace the
  server's list in the zone; a change bumps the upstream's version, so
  every worker rebuilds its peer list and balancer on its next pick
  (``ZonedBalancer.get``).  The next look-up is due when the answer
  expires: TTL (or ``valid=``) + 1 s, as nginx's timer.
- "Host not found" (NXDOMAIN or no address) empties the list, any other
  error keeps it and retries after max(resolver_timeout, 1 s); both log
  nginx's ``[error] NAME could not be resolved (3: Host not found)``.
"""
from __future__ import annotations

import time
from typing import Any

from ..core import log as logmod
from ..core.resolver import NEGATIVE_TTL, ResolveError
from .block import split_host_port

_running: set[tuple[int, int]] = set()  # (id(ZonedState), server index) resolving in this process


def resolve_servers(zs: Any) -> list[int]:
    """The indexes of the ``resolve`` server lines of a zoned upstream."""
    return [k for k, s in enumerate(zs.ub.servers) if s.resolve]


def tick(zoned: list[tuple[Any, list[int]]], loop: Any, log: Any) -> None:
    now = time.monotonic()
    for zs, ks in zoned:
        lease = (zs.ub.resolver_timeout or 30.0) + 1.0
        for k in ks:
            key = (id(zs), k)
            if key in _running:
                continue
            if zs.claim_resolve(k, now, lease):
                _running.add(key)
                loop.create_task(_resolve(zs, k, log))


async def _resolve(zs: Any, k: int, log: Any) -> None:
    ub = zs.ub
    s = ub.servers[k]
    host = split_host_port(s.url, 80)[0]
    res = ub.resolver
    timeout = ub.resolver_timeout or 30.0
    addrs: list[tuple[int, str]] | None = None
    try:
        try:
            ans = await res.resolve(host, timeout)
            addrs = list(ans.addrs)
            wait = max(ans.ttl, 0.0) + 1.0
        except ResolveError as e:
            log.log(logmod.ERROR, f"{host} could not be resolved ({e.code}: {e.text})")
            if e.code == 3:
                addrs = []
                wait = (res.valid or NEGATIVE_TTL) + 1.0
            else:
                wait = max(timeout, 1.0)
        except Exception as e:  # never let a bad answer stop the timer
            log.log(logmod.ERROR, f"{host} could not be resolved ({e!r})")
            wait = max(timeout, 1.0)
        zs.store_addresses(k, addrs, time.monotonic() + wait)
    finally:
        _running.discard((id(zs), k))
