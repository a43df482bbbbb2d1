"""One connection to an upstream peer: an ``asyncio.Protocol`` that forwards
its events to the request using it (its ``owner``), or, while parked in a
keepalive pool, closes itself on any event.

Invariants:
- A connection has at most one owner at a time; events arrive at the owner
  as ``up_data(data)``, ``up_eof()``, ``up_lost(exc)``, ``up_writable()``.
  ``owner`` is None while parked or after ``release``; a parked connection
  that gets data or EOF closes and leaves the pool; its idle timeout is a
  deadline the pool's sweep (``Pool.sweep``, from the worker's tick) checks.
- ``connect`` never raises: a failure or timeout is reported to the
  owner's ``up_connect_failed(errno, strerror)`` once; a connection that
  completes after its owner gave up is closed at once.
- Write-buffer limits are 0/0, so ``paused`` means exactly "the kernel
  refused more"; proxy_send_timeout runs only then.
- Small writes wait in ``_wbuf`` until the loop has handled this poll's
  events (core/deferred.py), so requests to a peer leave back to back;
  a large write and ``close`` write what waits first.
"""
from __future__ import annotations

import asyncio
import errno as errno_mod
import os
import socket
import ssl
from typing import Any

from ..core.deferred import flush_soon
from .peers import Peer

#: writes up to this size wait for the end of the loop iteration
_DEFER_MAX = 16384


class UpstreamConn(asyncio.Protocol):
    __slots__ = ("loop", "peer_name", "transport", "owner", "requests", "created", "pool",
                 "idle_deadline", "closed", "paused", "_wbuf")

    def __init__(self, loop: Any, peer_name: str) -> None:
        self.loop = loop
        self.peer_name = peer_name
        self.transport: Any = None
        self.owner: Any = None
        self.requests = 0
        self.created = loop.time()
        self.pool: Any = None
        self.idle_deadline = 0.0
        self.closed = False
        self.paused = False
        self._wbuf: list[bytes] = []

    # --- asyncio.Protocol -----------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(0, 0)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is not None:
            owner.up_data(data)
        else:
            self.close()  # a parked connection must be silent

    def eof_received(self) -> bool | None:
        owner = self.owner
        if owner is not None:
            owner.up_eof()
        else:
            self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.pool is not None:
            self.pool.drop(self)
            self.pool = None
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.up_lost(exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.owner is not None:
            self.owner.up_writable()

    # --- use ----------------------------------------------------------------------
    def write(self, data: Any) -> None:
        wbuf = self._wbuf
        if len(data) <= _DEFER_MAX and (wbuf or flush_soon(self)):
            # a copy of a caller's buffer: it may be reused before the flush
            wbuf.append(data if type(data) is bytes else bytes(data))
            return
        if wbuf:
            self.flush_deferred()
        self.transport.write(data)

    def flush_deferred(self) -> None:
        wbuf = self._wbuf
        if wbuf:
            self._wbuf = []
            if not self.closed and self.transport is not None:
                self.transport.write(wbuf[0] if len(wbuf) == 1 else b"".join(wbuf))

    def close(self) -> None:
        self.owner = None
        if not self.closed:
            self.flush_deferred()
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        self.owner = None
        self._wbuf = []
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()

    def park(self, pool: Any, timeout: float) -> None:
        """Idle in ``pool`` until ``timeout`` (a deadline the pool's sweep
        checks: no timer per request on the hot path)."""
        self.owner = None
        self.pool = pool
        self.idle_deadline = self.loop.time() + timeout
        self.transport.resume_reading()  # notice EOF / stray data while idle

    def unpark(self) -> None:
        self.pool = None


def connect(loop: Any, peer: Peer, owner: Any, timeout: float, ssl_ctx: Any = None,
            server_hostname: str | None = None) -> UpstreamConn:
    """Start connecting to ``peer``; the owner hears ``up_connected(conn)`` or
    ``up_connect_failed(errno, text, immediate)`` (``up_ssl_failed(exc)``
    when the TLS handshake fails).  A TLS connection's pool key is
    ``tls:`` + the peer's name; its handshake counts in the connect timeout
    (nginx's proxy_connect_timeout covers SSL handshaking too)."""
    conn = UpstreamConn(loop, ("tls:" + peer.name) if ssl_ctx is not None else peer.name)
    conn.owner = owner
    task = loop.create_task(_connect(loop, peer, conn, ssl_ctx, server_hostname))
    timer = loop.call_later(timeout, _connect_timeout, conn, task)
    task.add_done_callback(lambda t: timer.cancel())
    return conn


async def _connect(loop: Any, peer: Peer, conn: UpstreamConn, ssl_ctx: Any, server_hostname: str | None) -> None:
    tls: dict[str, Any] = {}
    if ssl_ctx is not None:
        tls = {"ssl": ssl_ctx, "server_hostname": server_hostname or ""}
    try:
        if peer.family == socket.AF_UNIX:
            await loop.create_unix_connection(lambda: conn, peer.address, **tls)
        else:
            # a numeric address with its family: uvloop resolves nothing,
            # and sets TCP_NODELAY (sock_connect on a socket of our own then
            # create_connection(sock=) cost four times the CPU)
            host, port = peer.address[:2]
            await loop.create_connection(lambda: conn, host, port, family=peer.family, **tls)
    except asyncio.CancelledError:
        return
    except ssl.SSLError as e:
        owner, conn.owner = conn.owner, None
        conn.closed = True
        if owner is not None:
            owner.up_ssl_failed(e)
        return
    except OSError as e:
        owner, conn.owner = conn.owner, None
        conn.closed = True
        if owner is not None:
            en = e.errno or errno_mod.ECONNREFUSED
            owner.up_connect_failed(en, os.strerror(en), peer.family == socket.AF_UNIX)
        return
    owner = conn.owner
    if owner is None:
        # the request went away while we were connecting: its close() or
        # abort() found no transport yet, so this one is closed here
        conn.closed = True
        if conn.transport is not None:
            conn.transport.close()
        return
    owner.up_connected(conn)


def _connect_timeout(conn: UpstreamConn, task: Any) -> None:
    if task.done():
        return
    owner, conn.owner = conn.owner, None
    task.cancel()
    conn.closed = True
    if owner is not None:
        owner.up_connect_timeout()
