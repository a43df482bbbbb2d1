"""An upgraded connection (101 Switching Protocols): bytes both ways between
the client and the upstream until either side closes
(ngx_http_upstream_upgrade / ngx_http_upstream_process_upgraded).

Invariants:
- A tunnel starts only after the 101 header was handed to the client
  transport; from then on the client transport's protocol is a
  ``_ClientSide`` of this tunnel (the HTTP/1 connection no longer parses
  anything) and the upstream connection's owner is the tunnel.
- ``done`` becomes True exactly once (``_finish``): the upstream connection
  is closed (never pooled), the client transport gets its HTTP/1 protocol
  back and the request is terminated, which writes the access-log line with
  status 101 and the tunnelled bytes counted in $bytes_sent.
- Like nginx, EOF from either side ends the tunnel once what that side sent
  was handed on (no half-closed tunnels).
- Timers as nginx's: any traffic in either direction pushes the
  proxy_read_timeout deadline; while the upstream socket is full
  proxy_send_timeout runs, while the client socket is full the location's
  send_timeout runs.  One ``call_later`` timer serves all three, re-armed
  lazily (no timer work per packet).
- Back-pressure: a full client socket pauses reading the upstream and the
  reverse, so a tunnel never buffers more than one socket read per side.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..core import log as logmod

if TYPE_CHECKING:
    from ..http.request import Request
    from .connection import UpstreamConn

ACTION = "proxying upgraded connection"


class _ClientSide(asyncio.Protocol):
    """The client transport's protocol while tunnelling."""
    __slots__ = ("t",)

    def __init__(self, t: "Tunnel") -> None:
        self.t = t

    def data_received(self, data: bytes) -> None:
        self.t.from_client(data)

    def eof_received(self) -> bool | None:
        self.t.client_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.t.client_lost(exc)

    def pause_writing(self) -> None:
        self.t.client_paused = True

    def resume_writing(self) -> None:
        self.t.client_paused = False
        self.t.client_writable()


class Tunnel:
    __slots__ = ("r", "u", "up", "ct", "h1", "loop", "done", "client_paused", "read_timeout",
                 "send_timeout", "client_send_timeout", "read_deadline", "up_send_deadline",
                 "client_send_deadline", "timer", "up_bytes", "client_bytes")

    def __init__(self, r: "Request", u: Any, up: "UpstreamConn") -> None:
        self.r = r
        self.u = u  # the UpstreamRequest (finished): peer state, upstream log line
        self.up = up
        self.h1 = r.conn
        self.ct = r.conn.transport
        self.loop = u.loop
        self.done = False
        self.client_paused = False
        conf = u.conf
        self.read_timeout: float = conf.read_timeout
        self.send_timeout: float = conf.send_timeout
        self.client_send_timeout: float = r.loc.core.send_timeout
        self.read_deadline = 0.0
        self.up_send_deadline = 0.0
        self.client_send_deadline = 0.0
        self.timer: Any = None
        self.up_bytes = 0  # from the upstream to the client
        self.client_bytes = 0  # from the client to the upstream

    def start(self, leftover: bytes) -> None:
        up = self.up
        up.owner = self
        self.h1.flush_deferred()  # the 101 response leaves before tunnelled bytes
        self.ct.set_protocol(_ClientSide(self))
        self.client_paused = bool(self.ct.get_write_buffer_size())
        if up.transport is not None:
            up.transport.resume_reading()
        self._touch()
        pre = self.r.ctx.pop("upgrade_preread", None)
        if pre:
            self.from_client(pre)  # what the client sent right after its Upgrade request
        if leftover:
            self.up_data(leftover)

    # --- timers -----------------------------------------------------------------------
    def _touch(self) -> None:
        self.read_deadline = self.loop.time() + self.read_timeout
        if self.timer is None:
            self._rearm()

    def _rearm(self) -> None:
        ds = [d for d in (self.read_deadline, self.up_send_deadline, self.client_send_deadline) if d]
        if ds and not self.done:
            self.timer = self.loop.call_at(min(ds) + 0.0005, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.done:
            return
        now = self.loop.time()
        if self.client_send_deadline and now >= self.client_send_deadline:
            self._log(logmod.INFO, "client timed out (110: Connection timed out)")
            self._finish()
            return
        if (self.up_send_deadline and now >= self.up_send_deadline) or now >= self.read_deadline:
            self._log(logmod.ERROR, "upstream timed out (110: Connection timed out)")
            self._finish()
            return
        self._rearm()

    def _log(self, level: int, msg: str) -> None:
        self.r.log_error(level, f"{msg} while {ACTION}")

    # --- upstream -> client --------------------------------------------------------------
    def up_data(self, data: bytes) -> None:
        if self.done:
            return
        self.up_bytes += len(data)
        self._touch()
        try:
            self.ct.write(data)
        except Exception:
            self._finish()
            return
        if self.ct.get_write_buffer_size():
            self.client_paused = True
            up = self.up
            if up.transport is not None:
                up.transport.pause_reading()
            if not self.client_send_deadline:
                self.client_send_deadline = self.loop.time() + self.client_send_timeout

    def client_writable(self) -> None:
        if self.done:
            return
        self.client_send_deadline = 0.0
        up = self.up
        if up.transport is not None and not up.closed:
            up.transport.resume_reading()
        self._touch()

    def up_eof(self) -> None:
        self._finish()

    def up_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self.done:
            en = getattr(exc, "errno", None) or 104
            self._log(logmod.ERROR, f"recv() failed ({en}: Connection reset by peer)")
        self._finish()

    def up_writable(self) -> None:
        if self.done:
            return
        self.up_send_deadline = 0.0
        self.ct.resume_reading()
        self._touch()

    # --- client -> upstream --------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        if self.done:
            return
        self.client_bytes += len(data)
        self._touch()
        up = self.up
        try:
            up.write(data)
        except Exception:
            self._finish()
            return
        if up.paused:
            self.ct.pause_reading()
            if not self.up_send_deadline:
                self.up_send_deadline = self.loop.time() + self.send_timeout

    def client_eof(self) -> None:
        self._finish()

    def client_lost(self, exc: Exception | None) -> None:
        if self.done:
            return
        self._finish(lost=exc or True)

    # --- the end -------------------------------------------------------------------------
    def _finish(self, lost: Any = None) -> None:
        if self.done:
            return
        self.done = True
        t, self.timer = self.timer, None
        if t is not None:
            t.cancel()
        up, self.up = self.up, None  # type: ignore[assignment]
        if up is not None:
            up.close()
        u = self.u
        u._finish_state()
        u._free_peer(True)
        r = self.r
        r.bytes_sent += self.up_bytes
        r.body_bytes_sent += self.up_bytes
        r.request_length += self.client_bytes
        h1 = self.h1
        self.ct.set_protocol(h1)
        r.keepalive = False
        if not r.done:
            r.terminate()  # logs the request (status 101) and closes the client
        if lost is not None:
            # the client transport is gone: its HTTP/1 protocol never heard it
            h1.connection_lost(lost if isinstance(lost, BaseException) else None)
