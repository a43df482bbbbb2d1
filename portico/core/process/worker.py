"""A worker process: one uvloop event loop serving the inherited sockets.

Invariants:
- A worker never binds: it serves the sockets the master opened, so reloads
  and respawns never drop the listen queue.
- The master forks a worker with ``WORKER_SIGNALS`` blocked; ``_main``
  unblocks them only after its loop has handlers for them and its servers
  exist, so an early QUIT (a quick second reload) is a graceful stop, never
  the default action (core dump).  SIGUSR2/SIGWINCH/SIGHUP are ignored.
- QUIT: stop accepting; close keep-alive connections that are idle (waiting
  state, no request being served or queued, no unread byte in the socket)
  with a lingering close (FIN, then drain until the client closes: a plain
  close with input arriving would make the kernel send RST); every other
  connection finishes its request (responses then say ``Connection:
  close``; one that went back to keep-alive anyway is closed by the next
  sweep); exit when no connection is left or worker_shutdown_timeout
  expires.  TERM/INT: exit now.
- All timeouts are deadlines on connections, checked by one sweep per
  ``_TICK`` seconds; the sweep also notices a dead master and exits.
- Counters for stub_status live in the shared zone slot given by the master:
  gauges (active, reading, writing, waiting) and cumulative counts, indexed
  by position in ``STAT_FIELDS``.
- USR1 reopens, in this process, the error logs (main and http-level) and
  every module's files (access logs).
"""
from __future__ import annotations

import array
import asyncio
import fcntl
import os
import signal
import socket
import termios
import time
from typing import Any

from .. import log as logmod

_TICK = 0.25

# indexes of the stub_status counters in a worker's slot
ACTIVE, ACCEPTS, HANDLED, REQUESTS, READING, WRITING, WAITING = range(7)
STAT_FIELDS = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
GAUGES = ("active", "reading", "writing", "waiting")
_STATE_FIELD = {1: READING, 2: WRITING, 3: WAITING}
_S_WAITING = 3  # a connection's ``state`` while idle between keep-alive requests

#: signals the master handles, blocked in it and (until the loop is ready) in a new worker
WORKER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                  signal.SIGCHLD, signal.SIGUSR2, signal.SIGWINCH)


def _unread_bytes(conn: Any) -> int:
    """Bytes waiting in the kernel for ``conn`` (FIONREAD), 0 if unknown."""
    try:
        sock = conn.transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
        if fd < 0:
            return 0
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
        return buf[0]
    except (OSError, AttributeError, ValueError):
        return 0


class LocalStats:
    """Counters when there is no shared zone (tests, master_process off)."""

    def __init__(self) -> None:
        self.v = [0] * 7

    def add(self, i: int, n: int) -> None:
        self.v[i] += n

    def flush(self) -> None:
        pass


class Worker:
    def __init__(self, cycle: Any, sockets: dict[Any, socket.socket], stats: Any, number: int = 0,
                 master_pid: int | None = None) -> None:
        self.cycle = cycle
        self.sockets = sockets
        self.stats = stats if stats is not None else LocalStats()
        self.number = number
        self.master_pid = master_pid
        self.conns: set[Any] = set()
        self.shutting_down = False
        self.servers: list[Any] = []
        self._conn_id = 0
        self.loop: Any = None
        #: monotonic clock, refreshed by every read event and tick: deadlines
        #: are computed from it so the hot path does not call the clock.
        self.now = time.monotonic()
        self._stop: asyncio.Future[None] | None = None
        core = cycle.confs["core"]
        self.max_conns = core.worker_connections
        self.shutdown_timeout = core.worker_shutdown_timeout

    # --- counters -----------------------------------------------------------------
    def next_conn_id(self) -> int:
        self._conn_id += 1
        # nginx's connection numbers are unique per worker; make them unique
        # across workers too by interleaving with the worker number.
        return self._conn_id * 64 + self.number if self.number else self._conn_id

    def conn_opened(self, conn: Any) -> None:
        st = self.stats
        st.add(ACCEPTS, 1)
        if len(self.conns) >= self.max_conns:
            self.cycle.log.log(logmod.ALERT, f"{self.max_conns} worker_connections are not enough")
            conn.closing = True
            conn.transport.abort()
            return
        self.conns.add(conn)
        st.add(HANDLED, 1)
        st.add(ACTIVE, 1)

    def conn_closed(self, conn: Any) -> None:
        if conn in self.conns:
            self.conns.discard(conn)
            self.stats.add(ACTIVE, -1)
        if self.shutting_down and not self.conns and self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def conn_state(self, old: int, new: int) -> None:
        st = self.stats
        if old:
            st.add(_STATE_FIELD[old], -1)
        if new:
            st.add(_STATE_FIELD[new], 1)

    def count_request(self) -> None:
        self.stats.add(REQUESTS, 1)

    # --- running --------------------------------------------------------------------
    def run(self) -> None:
        import uvloop
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.close()
            except Exception:
                pass

    async def _main(self) -> None:
        from ...http.proto.h1 import H1Connection
        loop = self.loop
        self._stop = loop.create_future()
        for sig, fn in ((signal.SIGQUIT, self.graceful), (signal.SIGTERM, self.fast_stop),
                        (signal.SIGINT, self.fast_stop), (signal.SIGUSR1, self.reopen),
                        (signal.SIGHUP, _ignore), (signal.SIGWINCH, _ignore),
                        (signal.SIGUSR2, _ignore)):
            loop.add_signal_handler(sig, fn)
        for mod in self.cycle.registry.modules:
            mod.init_worker(self)
        for spec in self.cycle.listens:
            sock = self.sockets[spec.key]

            def factory(spec: Any = spec) -> Any:
                return H1Connection(self, spec)
            srv = await loop.create_server(factory, sock=sock, backlog=spec.opt.backlog)
            self.servers.append(srv)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
        self._tick_hooks = [h for h in (getattr(m, "tick_worker", None) for m in self.cycle.registry.modules) if h]
        tick = loop.create_task(self._tick())
        try:
            await self._stop
        finally:
            tick.cancel()
            for mod in self.cycle.registry.modules:
                fn = getattr(mod, "exit_worker", None)
                if fn:
                    fn(self)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            now = self.now = time.monotonic()
            for c in list(self.conns):
                d = c.deadline
                if d and now >= d:
                    try:
                        c.on_tick(now)
                    except Exception as e:
                        self.cycle.log.log(logmod.ALERT, f"timer handler failed: {e!r}")
                        c.abort()
            for fn in self._tick_hooks:
                fn()
            if self.master_pid is not None and os.getppid() != self.master_pid:
                self.fast_stop()
                return
            if self.shutting_down:
                # a response that started before QUIT ends in keep-alive state
                self._close_idle()
            if self.shutting_down and self._deadline and now >= self._deadline:
                for c in list(self.conns):
                    c.abort()
                self._finish()

    _deadline = 0.0
    _tick_hooks: list[Any] = []

    def graceful(self) -> None:
        if self.shutting_down:
            return
        self.shutting_down = True
        self.cycle.log.log(logmod.NOTICE, "gracefully shutting down")
        for srv in self.servers:
            srv.close()
        if self.shutdown_timeout:
            self._deadline = time.monotonic() + self.shutdown_timeout
        self._close_idle()
        if not self.conns:
            self._finish()

    def _close_idle(self) -> None:
        """Shutting down: close keep-alive connections with nothing to do.

        A request may be on the wire at this very moment.  If it is already
        in the kernel the connection is left to serve it (the response says
        ``Connection: close``).  Otherwise the close is a lingering one: FIN
        first, then read and drop until the client closes, so a request that
        crosses our FIN never meets a closed socket (which would answer RST);
        the client just sees EOF before any byte of a response, which HTTP
        lets it retry (RFC 9112 section 9.3.1).
        """
        for c in list(self.conns):
            if (getattr(c, "state", _S_WAITING) == _S_WAITING and c.current is None and not c.queue
                    and not c.closing and not getattr(c, "_lingering", False) and not _unread_bytes(c)):
                _linger_close(c)

    def fast_stop(self) -> None:
        self.shutting_down = True
        for srv in self.servers:
            srv.close()
        for c in list(self.conns):
            c.abort()
        self._finish()

    def _finish(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def reopen(self) -> None:
        self.cycle.log.log(logmod.NOTICE, "reopening logs")
        self.cycle.log.reopen()
        for el in getattr(self.cycle, "extra_logs", []):
            el.reopen()
        for mod in self.cycle.registry.modules:
            fn = getattr(mod, "reopen", None)
            if fn:
                fn(self.cycle)


def _ignore() -> None:
    pass


class _ShutdownLinger:
    """Bound on a shutdown lingering close when the client never closes."""

    lingering_timeout = 5.0


def _linger_close(c: Any) -> None:
    """Half-close ``c`` and drain it: the protocol's ``close_idle()`` when it
    has one, else h1's lingering close, else a plain close."""
    hook = getattr(c, "close_idle", None)
    if hook is not None:
        hook()
        return
    start = getattr(c, "_start_lingering", None)
    if start is not None:
        start(_ShutdownLinger)
        return
    c.close()
