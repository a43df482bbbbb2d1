"""What every HTTP protocol object (h1, h2) does the same way.

Invariants:
- ``S_READING``/``S_WRITING``/``S_WAITING`` are stub_status's gauges; a
  connection object holds at most one (``state``, 0 for none) and moves it
  only through ``set_state`` (or h1's ``_next_request``, which does the
  same inline once per request), so the worker's cells always add up.
- ``run_cleanups`` and ``abandon`` are the request endings both protocols
  share: cleanups that cannot stop each other, and 499 for a vanished client.
- ``log_internal_error`` writes the one [alert] line a handler bug gets
  (exception and where it was raised); the caller decides 500 or close.
"""
from __future__ import annotations

from typing import Any, Callable

from ...core import log as logmod

S_READING, S_WRITING, S_WAITING = 1, 2, 3


def set_state(conn: Any, st: int) -> None:
    old = conn.state
    if st != old:
        # stub_status gauges: reading/writing/waiting are cells 4/5/6
        cells = conn.worker.cells
        if old:
            cells[old + 3] -= 1
        if st:
            cells[st + 3] += 1
        conn.state = st


def run_cleanups(r: Any, fns: Any) -> None:
    """Call a request's cleanup handlers; one that fails is logged at alert
    and does not stop the others (or the log line after them)."""
    for fn in fns:
        try:
            fn()
        except Exception as e:
            r.log_error(logmod.ALERT, f"request cleanup failed: {e!r}")


def abandon(r: Any, log: Callable[[Any], None]) -> None:
    """The client is gone before ``r`` ended: it ends now and is logged with
    499, or with its own status when its response had begun."""
    if r is not None and not r.done:
        r.done = True
        if not r.log_status:
            r.log_status = 499 if not r.header_sent else r.status
        log(r)


def log_internal_error(r: Any, e: BaseException) -> None:
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    r.log_error(logmod.ALERT, f"internal error: {e!r}{where}")


def duplicate_header(headers: list[tuple[str, str]], name: str, value: str, low: str) -> str:
    """nginx's error-log reason for a second Host or Content-Length line
    (ngx_http_process_host / ngx_http_process_unique_header_line); the
    first line with that name in ``headers`` is the previous value."""
    pk, pv = next(((k, v) for k, v in headers if k.lower() == low), (name, value))
    what = "host header" if low == "host" else "header line"
    return f'client sent duplicate {what}: "{name}: {value}", previous value: "{pk}: {pv}"'
