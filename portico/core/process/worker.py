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
import ctypes
import fcntl
import gc
import itertools
import heapq
import os
import select
import signal
import socket
import termios
import time
from typing import Any

from .. import deferred
from .. import log as logmod

_TICK = 0.25
#: seconds of keep-alive idleness after which a connection is parked
PARK_AFTER = 0.5


class Parked:
    """What a parked connection needs to come back as it was."""
    __slots__ = ("fd", "family", "spec", "deadline", "conn_id", "requests", "start_time",
                 "start_mono", "client_addr", "client_port", "server_addr", "server_port", "closing")

    def __init__(self, fd: int, conn: Any) -> None:
        self.fd = fd
        self.family = conn.family
        self.spec = conn.spec
        self.deadline = conn.deadline
        self.conn_id = conn.id
        self.requests = conn.requests
        self.start_time = conn.start_time
        self.start_mono = conn.start_mono
        self.client_addr = conn.client_addr
        self.client_port = conn.client_port
        self.server_addr = conn.server_addr
        self.server_port = conn.server_port
        self.closing = False


_seq = itertools.count()


def _malloc_trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

# indexes of the stub_status counters in a worker's slot
ACTIVE, ACCEPTS, HANDLED, REQUESTS, READING, WRITING, WAITING = range(7)
STAT_FIELDS = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")
GAUGES = ("active", "reading", "writing", "waiting")
_S_WAITING = 3  # a connection's ``state`` while idle between keep-alive requests

#: signals the master handles, blocked in it and (until the loop is ready) in a new worker
WORKER_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
                  signal.SIGCHLD, signal.SIGUSR2, signal.SIGWINCH)


def _fd_unread(fd: int) -> int:
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
        return buf[0]
    except OSError:
        return 0


def _fd_error(fd: int) -> int:
    try:
        s = socket.socket(fileno=fd)
        try:
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        finally:
            s.detach()
    except OSError:
        return 0


def _unread_bytes(conn: Any) -> int:
    """Bytes waiting in the kernel for ``conn`` (FIONREAD), 0 if unknown."""
    try:
        sock = conn.transport.get_extra_info("socket")
        fd = sock.fileno() if sock is not None else -1
    except (AttributeError, ValueError):
        return 0
    return _fd_unread(fd) if fd >= 0 else 0


class LocalStats:
    """Counters when there is no shared zone (tests, master_process off)."""

    def __init__(self) -> None:
        self.cells = [0] * 7

    def add(self, i: int, n: int) -> None:
        self.cells[i] += n

    def flush(self) -> None:
        pass


class Worker:
    def __init__(self, cycle: Any, sockets: dict[Any, socket.socket], stats: Any, number: int = 0,
                 master_pid: int | None = None) -> None:
        self.cycle = cycle
        self.sockets = sockets
        self.stats = stats if stats is not None else LocalStats()
        #: the counter cells themselves (STAT_FIELDS order): connections
        #: update them inline on the hot path, no method call
        self.cells = self.stats.cells
        self.number = number
        self.master_pid = master_pid
        self.conns: set[Any] = set()
        self.parked: dict[int, Parked] = {}
        self._ep: Any = None
        self._parked_since_trim = 0
        self._park_heap: list[tuple[float, int, int, Parked]] = []
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
        if len(self.conns) + len(self.parked) >= self.max_conns:  # parked ones count too
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
        self._maybe_stopped()

    def _maybe_stopped(self) -> None:
        if (self.shutting_down and not self.conns and not self.parked and self._stop is not None
                and not self._stop.done()):
            self._stop.set_result(None)

    # --- parked idle connections ---------------------------------------------------
    # A keep-alive connection idle for PARK_AFTER seconds gives up its uvloop
    # transport and protocol (~2 KB) and waits as a bare fd in one epoll set;
    # the first readiness event brings it back as a new transport.  It stays
    # counted as active and waiting in stub_status all along.

    def park(self, conn: Any) -> bool:
        fd = os.dup(conn._sock_fd)
        p = Parked(fd, conn)
        if self._ep is None:
            self._ep = select.epoll()
            self.loop.add_reader(self._ep.fileno(), self._parked_ready)
        self._ep.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        self.parked[fd] = p
        heapq.heappush(self._park_heap, (p.deadline, next(_seq), fd, p))
        self.conns.discard(conn)
        self._parked_since_trim += 1
        return True

    def _parked_ready(self) -> None:
        assert self._ep is not None
        for fd, ev in self._ep.poll(0):
            p = self.parked.pop(fd, None)
            if p is None:
                continue
            self._ep.unregister(fd)
            if p.closing:
                self._drain_parked(p)
                continue
            if ev & (select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR) and not _fd_unread(fd):
                # the client went away: close here, without a transport
                err = _fd_error(fd)
                why = f" ({err}: {os.strerror(err)})" if err else ""
                self.cycle.log.log(logmod.INFO, f"client {p.client_addr} closed keepalive connection{why}",
                                   p.conn_id)
                self._close_parked(p)
                continue
            self._unpark(p)

    def _unpark(self, p: "Parked") -> None:
        from ...http.proto.h1 import H1Connection
        try:
            sock = socket.socket(p.family, socket.SOCK_STREAM, 0, p.fd)
            sock.setblocking(False)
        except OSError:
            self._close_parked(p)
            return
        self.loop.create_task(self._resume(sock, p, H1Connection))

    async def _resume(self, sock: socket.socket, p: "Parked", cls: Any) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: cls(self, p.spec, resume=p), sock)
        except OSError:
            self._close_parked(p, close_fd=False)
            sock.close()

    def resumed(self, conn: Any) -> None:
        self.conns.add(conn)

    def _close_parked(self, p: "Parked", close_fd: bool = True) -> None:
        if close_fd:
            try:
                os.close(p.fd)
            except OSError:
                pass
        st = self.stats
        st.add(ACTIVE, -1)
        st.add(WAITING, -1)
        self._maybe_stopped()

    def _drain_parked(self, p: "Parked") -> None:
        # lingering close of a parked connection: drop what comes until EOF
        try:
            while True:
                data = os.read(p.fd, 65536)
                if not data:
                    break
        except BlockingIOError:
            assert self._ep is not None
            self._ep.register(p.fd, select.EPOLLIN | select.EPOLLRDHUP)
            self.parked[p.fd] = p
            heapq.heappush(self._park_heap, (p.deadline, next(_seq), p.fd, p))
            return
        except OSError:
            pass
        self._close_parked(p)

    def _tick_parked(self, now: float) -> None:
        # deadlines sit in a heap (lazy deletion): a tick costs O(expired)
        heap = self._park_heap
        while heap and heap[0][0] <= now:
            _, _, fd, p = heapq.heappop(heap)
            if self.parked.get(fd) is not p or now < p.deadline:
                continue
            del self.parked[fd]
            if self._ep is not None:
                self._ep.unregister(fd)
            self._close_parked(p)

    def _shutdown_parked(self) -> None:
        """QUIT: half-close every parked connection (FIN), drain, then close."""
        for p in list(self.parked.values()):
            if p.closing:
                continue
            p.closing = True
            p.deadline = time.monotonic() + 5.0
            heapq.heappush(self._park_heap, (p.deadline, next(_seq), p.fd, p))
            try:
                s = socket.socket(p.family, socket.SOCK_STREAM, 0, p.fd)
                try:
                    s.shutdown(socket.SHUT_WR)
                finally:
                    s.detach()
            except OSError:
                pass


    # --- running --------------------------------------------------------------------
    def run(self) -> None:
        import uvloop
        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        deferred.loop = loop
        deferred.error_log = self.cycle.log
        try:
            loop.run_until_complete(self._main())
        finally:
            try:
                loop.close()
            except Exception:
                pass

    async def _main(self) -> None:
        from ...http.proto.h1 import H1Connection
        from ...http.proto.tls import TLSLayer
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

            if spec.opt.ssl:
                def factory(spec: Any = spec) -> Any:
                    return TLSLayer(self, spec)
            else:
                def factory(spec: Any = spec) -> Any:
                    return H1Connection(self, spec)
            srv = await loop.create_server(factory, sock=sock, backlog=spec.opt.backlog)
            self.servers.append(srv)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)
        # The configuration lives as long as the worker: keep the cyclic
        # collector from scanning it again and again (full collections walk
        # every tracked object; under load they cost several per cent).
        gc.collect()
        gc.freeze()
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
            try:
                self._tick_once()
            except Exception as e:  # the sweep must survive anything
                self.cycle.log.log(logmod.ALERT, f"timer sweep failed: {e!r}")

    def _tick_once(self) -> None:
        now = self.now = time.monotonic()
        park_before = now - PARK_AFTER
        for c in list(self.conns):
            d = c.deadline
            if d and now >= d:
                try:
                    c.on_tick(now)
                except Exception as e:
                    self.cycle.log.log(logmod.ALERT, f"timer handler failed: {e!r}")
                    c.abort()
            elif c.idle_since and c.idle_since < park_before and not self.shutting_down:
                c.park()
        if self.parked:
            self._tick_parked(now)
        if self._parked_since_trim >= 256:
            # give the freed transports' memory back to the system
            self._parked_since_trim = 0
            _malloc_trim()
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
            self.fast_stop()

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
        self._shutdown_parked()
        if not self.conns and not self.parked:
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
            hook = getattr(c, "graceful_close", None)
            if hook is not None:
                hook()  # e.g. HTTP/2: GOAWAY once, close when its streams are done
                continue
            if (getattr(c, "state", _S_WAITING) == _S_WAITING and c.current is None and not c.queue
                    and not c.closing and not getattr(c, "_lingering", False) and not _unread_bytes(c)):
                _linger_close(c)

    def fast_stop(self) -> None:
        self.shutting_down = True
        for srv in self.servers:
            srv.close()
        for c in list(self.conns):
            c.abort()
        for p in list(self.parked.values()):
            try:
                os.close(p.fd)
            except OSError:
                pass
        self.parked.clear()
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


def _linger_close(c: Any) -> None:
    """Half-close ``c`` and drain it (the protocol's ``close_idle()``), or
    close it plainly when its protocol has no such thing."""
    hook = getattr(c, "close_idle", None)
    if hook is not None:
        hook()
    else:
        c.close()
