"""Idle upstream connections kept for reuse (ngx_http_upstream_keepalive_module).

Invariants:
- One ``Pool`` per upstream{} with ``keepalive N`` per worker, created on
  first use (after fork, so no connection is ever shared by two workers).
- At most ``max_cached`` idle connections; putting one more closes the
  least recently used (nginx's cache queue).  ``get(peer)`` returns the
  most recently parked connection to that peer's address, or None.
- A connection is parked only when its response was complete and the
  upstream allowed keep-alive, fewer than ``keepalive_requests`` requests
  went over it and it is younger than ``keepalive_time``; an idle one is
  closed after ``keepalive_timeout`` (``sweep``, run by the worker's tick,
  so within a quarter second) or as soon as the upstream sends
  anything or closes (``UpstreamConn.park`` handles those events).
"""
from __future__ import annotations

from typing import Any

from .block import KeepaliveConf


class Pool:
    __slots__ = ("conf", "idle", "loop")

    def __init__(self, conf: KeepaliveConf, loop: Any) -> None:
        self.conf = conf
        self.loop = loop
        self.idle: list[Any] = []  # UpstreamConn, least recently used first

    def get(self, name: str) -> Any:
        idle = self.idle
        for i in range(len(idle) - 1, -1, -1):
            c = idle[i]
            if c.peer_name == name:
                del idle[i]
                c.unpark()
                return c
        return None

    def put(self, conn: Any) -> bool:
        """Park ``conn`` if it may be reused; False means the caller closes it."""
        conf = self.conf
        if conn.requests >= conf.requests or self.loop.time() - conn.created > conf.time:
            return False
        if len(self.idle) >= conf.max_cached:
            old = self.idle.pop(0)
            old.pool = None  # out of the list already: no drop() when it is lost
            old.close()
        self.idle.append(conn)
        conn.park(self, conf.timeout)
        return True

    def sweep(self, now: float) -> None:
        """Close connections idle past keepalive_timeout (the worker's tick)."""
        idle = self.idle
        if idle and any(c.idle_deadline <= now for c in idle):
            keep = []
            for c in idle:
                if c.idle_deadline <= now:
                    c.pool = None
                    c.close()
                else:
                    keep.append(c)
            self.idle = keep

    def drop(self, conn: Any) -> None:
        try:
            self.idle.remove(conn)
        except ValueError:
            pass

    def close_all(self) -> None:
        idle, self.idle = self.idle, []
        for c in idle:
            c.close()
