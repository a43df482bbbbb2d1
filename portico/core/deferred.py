"""Writes held back until the event loop has handled a poll's read events.

A worker's loop wakes with many readable sockets at once.  Handling each
and writing its answer at once makes every write wake its peer (a client,
an upstream) separately; on Linux the wake-up of a sleeping task is most
of the kernel's cost of a small write.  Writing all answers after the reads
are handled wakes each peer while the others' writes are still coming, and
the throughput of small responses rises by about half (bench/static.py).

Invariants:
- ``flush_soon(obj)`` makes sure ``obj.flush_deferred()`` runs once the
  current callbacks are done (one ``call_soon`` per batch, not per
  object); objects queued with ``first=True`` (access logs) run before the
  others (connections), so a client that has its response finds its log
  line written; a connection that writes at once instead (a close, a
  sendfile: H1Writer._flush) calls ``flush_first`` before.  An object may be queued more than once; its
  ``flush_deferred`` must be cheap when nothing is pending.
- Without a loop (``loop`` is None: not in a worker) ``flush_soon`` returns
  False and the caller writes at once.
- Whoever holds bytes back writes them before anything that must follow
  them goes to the transport directly (sendfile, close, write_eof, a
  tunnel): the queue only changes when bytes leave, never their order.
- One event loop per process (a worker sets ``loop``), so the queues are
  module state.
"""
from __future__ import annotations

from typing import Any

from . import log as logmod

#: the worker's event loop (None outside a worker: no deferring)
loop: Any = None
#: the error log for a flush that fails (set by the worker; None: silent)
error_log: Any = None
_first: list[Any] = []
_queue: list[Any] = []


def flush_soon(obj: Any, first: bool = False) -> bool:
    """Queue ``obj.flush_deferred()``; False when there is no loop."""
    if loop is None:
        return False
    if not _queue and not _first:
        loop.call_soon(_run)
    (_first if first else _queue).append(obj)
    return True


def flush_first() -> None:
    """Write what the access logs hold back now: a connection about to
    write directly calls this, so that no response leaves before its log
    line."""
    global _first
    if _first:
        q, _first = _first, []
        _flush_all(q)


def _run() -> None:
    global _queue, _first
    # taken out first: what is queued while these run gets its own call_soon
    batches = (_first, _queue)
    _first, _queue = [], []
    for q in batches:
        _flush_all(q)


def _flush_all(q: list[Any]) -> None:
    for obj in q:
        try:
            obj.flush_deferred()
        except Exception as e:  # one failure must not hold the others' output
            if error_log is not None:
                error_log.log(logmod.ALERT, f"deferred write failed: {e!r}")
