"""The master process: binds sockets, forks workers, handles signals.

Signals (as nginx): HUP reload, QUIT graceful stop, TERM/INT fast stop,
USR1 reopen logs, CHLD reap (and respawn a worker that died unasked).

Invariants:
- The master never accepts connections and never runs an event loop; it
  waits for signals with ``sigtimedwait`` (signals are blocked in the master
  and unblocked in each worker right after fork).
- Listening sockets are keyed by ``ListenOpt.key`` and kept across reloads;
  a socket is closed only when no cycle uses it any more.
- The pid file is written after every listen socket is bound.
- A reload first builds and validates the new Cycle completely; any error is
  logged as ``[emerg]`` and the old workers keep serving.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
from typing import Any

from ...conf.errors import ConfError
from .. import log as logmod
from ..cycle import Cycle
from .worker import GAUGES, STAT_FIELDS, Worker

_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1,
            signal.SIGCHLD, signal.SIGUSR2, signal.SIGWINCH)
_SIG_NAMES = {signal.SIGHUP: "SIGHUP", signal.SIGQUIT: "SIGQUIT", signal.SIGTERM: "SIGTERM",
              signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1", signal.SIGCHLD: "SIGCHLD",
              signal.SIGUSR2: "SIGUSR2", signal.SIGWINCH: "SIGWINCH"}

MAX_SLOTS = 256


def open_listen_socket(opt: Any) -> socket.socket:
    if opt.family == socket.AF_UNIX:
        try:
            os.unlink(opt.host)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        s = socket.socket(opt.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if opt.family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if opt.ipv6only else 0)
        if opt.reuseport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if opt.rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opt.rcvbuf)
        if opt.sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, opt.sndbuf)
        if opt.deferred and hasattr(socket, "TCP_DEFER_ACCEPT"):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    try:
        s.bind(opt.sockaddr)
    except OSError as e:
        s.close()
        raise ConfError(f"bind() to {opt.text} failed ({e.errno}: {e.strerror})") from None
    s.listen(opt.backlog)
    s.setblocking(False)
    s.set_inheritable(True)
    return s


class Listeners:
    """Sockets by key, reused across cycles."""

    def __init__(self) -> None:
        self.socks: dict[Any, socket.socket] = {}

    def open_for(self, cycle: Cycle) -> dict[Any, socket.socket]:
        opened: dict[Any, socket.socket] = {}
        try:
            for spec in cycle.listens:
                s = self.socks.get(spec.key)
                if s is None:
                    s = opened.get(spec.key)
                if s is None:
                    s = _bind_with_retry(spec.opt)
                    opened[spec.key] = s
        except ConfError:
            for s in opened.values():
                s.close()
            raise
        self.socks.update(opened)
        return {spec.key: self.socks[spec.key] for spec in cycle.listens}

    def close_unused(self, cycle: Cycle) -> None:
        used = {spec.key for spec in cycle.listens}
        for key in list(self.socks):
            if key not in used:
                s = self.socks.pop(key)
                if s.family == socket.AF_UNIX:
                    try:
                        os.unlink(s.getsockname())
                    except OSError:
                        pass
                s.close()


def _bind_with_retry(opt: Any) -> socket.socket:
    # nginx retries bind() five times, 500 ms apart, on EADDRINUSE.
    last: ConfError | None = None
    for attempt in range(5):
        try:
            return open_listen_socket(opt)
        except ConfError as e:
            last = e
            if "(98:" not in e.message:
                raise
            logmod.stderr_line("emerg", e.message)
            time.sleep(0.5)
    assert last is not None
    raise ConfError("still could not bind()")


class Master:
    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.listeners = Listeners()
        self.workers: dict[int, tuple[int, Cycle, int]] = {}  # pid -> (generation, cycle, slot)
        self.generation = 0
        self.stopping = False
        self.counters: Any = None
        self.pid = os.getpid()

    # --- set-up ---------------------------------------------------------------------
    def start(self) -> int:
        cycle = self.cycle
        socks = self.listeners.open_for(cycle)
        self._make_counters()
        core = cycle.confs["core"]
        if core.daemon:
            _daemonize()
            self.pid = os.getpid()
        cycle.log.set_pid()
        self._write_pid(core.pid)
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        self._spawn_all(cycle, socks)
        try:
            return self._loop()
        finally:
            self._remove_pid(cycle.confs["core"].pid)

    def _make_counters(self) -> None:
        try:
            from ..shm import SharedZone, WorkerCounters
        except ImportError:
            self.counters = None
            return
        zone = SharedZone("portico_status", 64 * 4096)
        self.counters = WorkerCounters(zone, STAT_FIELDS, MAX_SLOTS)
        self.cycle.status_counters = self.counters

    def _write_pid(self, path: str) -> None:
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            with open(tmp, "w") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(tmp, path)
        except OSError as e:
            self.cycle.log.log(logmod.EMERG, f'open() "{path}" failed ({e.errno}: {e.strerror})')
            raise SystemExit(1)

    def _remove_pid(self, path: str) -> None:
        try:
            with open(path) as f:
                if f.read().strip() == str(os.getpid()):
                    os.unlink(path)
        except OSError:
            pass

    def _spawn_all(self, cycle: Cycle, socks: dict[Any, socket.socket]) -> None:
        n = cycle.confs["core"].worker_processes
        for i in range(n):
            self._spawn(cycle, socks, self.generation, i)

    def _spawn(self, cycle: Cycle, socks: dict[Any, socket.socket], gen: int, number: int) -> None:
        slot = self.counters.acquire_slot() if self.counters is not None else 0
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
                for s in _SIGNALS:
                    signal.signal(s, signal.SIG_DFL)
                cycle.log.set_pid()
                for s in self.listeners.socks.values():
                    if s not in socks.values():
                        s.close()
                stats = self.counters.slot(slot) if self.counters is not None else None
                w = Worker(cycle, socks, _SlotStats(stats) if stats is not None else None, number + 1,
                           self.pid)
                w.run()
                cycle.log.log(logmod.NOTICE, "exiting")
            except BaseException as e:  # never a traceback on the terminal
                if not isinstance(e, SystemExit):
                    cycle.log.log(logmod.ALERT, f"worker process failed: {e!r}")
                    code = 2
            finally:
                os._exit(code)
        self.workers[pid] = (gen, cycle, slot)
        self.cycle.log.log(logmod.NOTICE, f"start worker process {pid}")

    # --- the signal loop ------------------------------------------------------------------
    def _loop(self) -> int:
        while True:
            info = signal.sigtimedwait(_SIGNALS, 1.0)
            if info is None:
                self._reap()
                if self.stopping and not self.workers:
                    return 0
                continue
            sig = info.si_signo
            if sig != signal.SIGCHLD:
                self.cycle.log.log(logmod.NOTICE, f"signal {sig} ({_SIG_NAMES.get(sig, sig)}) received"
                                   f" from {info.si_pid}, " + _action(sig))
            if sig == signal.SIGCHLD:
                self._reap()
            elif sig == signal.SIGHUP:
                if not self.stopping:
                    self.reload()
            elif sig == signal.SIGQUIT:
                self.stopping = True
                self._signal_workers(signal.SIGQUIT)
                self.listeners_close()
            elif sig in (signal.SIGTERM, signal.SIGINT):
                self.stopping = True
                self._signal_workers(signal.SIGTERM)
                deadline = time.monotonic() + 5
                while self.workers and time.monotonic() < deadline:
                    self._reap()
                    time.sleep(0.02)
                for pid in list(self.workers):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._reap()
                self.listeners_close()
                self.cycle.log.log(logmod.NOTICE, "exit")
                return 0
            elif sig == signal.SIGUSR1:
                self.cycle.log.reopen()
                self._signal_workers(signal.SIGUSR1)
            if self.stopping and not self.workers:
                self.cycle.log.log(logmod.NOTICE, "exit")
                return 0

    def listeners_close(self) -> None:
        for s in self.listeners.socks.values():
            if s.family == socket.AF_UNIX:
                try:
                    os.unlink(s.getsockname())
                except OSError:
                    pass
            s.close()
        self.listeners.socks.clear()

    def _signal_workers(self, sig: int, gen: int | None = None) -> None:
        for pid, (g, _, _) in list(self.workers.items()):
            if gen is None or g == gen:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.workers.pop(pid, None)
            if entry is None:
                continue
            gen, cycle, slot = entry
            if self.counters is not None:
                self.counters.reset_gauges(slot, GAUGES)
                self.counters.release_slot(slot)
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                self.cycle.log.log(logmod.ALERT, f"worker process {pid} exited on signal {sig}")
                unexpected = True
            else:
                code = os.WEXITSTATUS(status)
                level = logmod.NOTICE if code == 0 else logmod.ALERT
                self.cycle.log.log(level, f"worker process {pid} exited with code {code}")
                unexpected = code != 0
            if unexpected and not self.stopping and gen == self.generation:
                socks = self.listeners.open_for(self.cycle)
                self._spawn(self.cycle, socks, gen, 0)

    # --- reload ----------------------------------------------------------------------------
    def reload(self) -> None:
        old = self.cycle
        log = old.log
        try:
            new = Cycle(old.conf_file, old.prefix, old.conf_prefix, old.globals, old.error_log_path)
            new.load()
            socks = self.listeners.open_for(new)
            new.open_logs()
        except ConfError as e:
            log.log(logmod.EMERG, e.line_text())
            return
        except OSError as e:
            log.log(logmod.EMERG, str(e))
            return
        for w in new.warnings:
            new.log.log(logmod.WARN, w)
        new.status_counters = self.counters
        self.cycle = new
        self.generation += 1
        new.log.set_pid()
        self._spawn_all(new, socks)
        self._signal_workers(signal.SIGQUIT, self.generation - 1)
        for g in range(self.generation - 1):
            self._signal_workers(signal.SIGQUIT, g)
        self.listeners.close_unused(new)
        if old.log is not new.log:
            # old workers keep their copies; the master's copy is no longer needed
            old.close()


class _SlotStats:
    """Adapter from the worker's ``add(index, n)`` to a shared counter slot."""

    __slots__ = ("slot", "names")

    def __init__(self, slot: Any) -> None:
        self.slot = slot
        self.names = STAT_FIELDS

    def add(self, i: int, n: int) -> None:
        self.slot.incr(self.names[i], n)


def _action(sig: int) -> str:
    return {signal.SIGHUP: "reconfiguring", signal.SIGQUIT: "shutting down",
            signal.SIGTERM: "exiting", signal.SIGINT: "exiting",
            signal.SIGUSR1: "reopening logs"}.get(sig, "ignoring")


def _daemonize() -> None:
    pid = os.fork()
    if pid > 0:
        os._exit(0)
    os.setsid()
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    if fd > 2:
        os.close(fd)


def run_single(cycle: Cycle) -> int:
    """master_process off: serve in this process (nginx's single-process mode)."""
    from .worker import LocalStats
    listeners = Listeners()
    socks = listeners.open_for(cycle)
    core = cycle.confs["core"]
    if core.daemon:
        _daemonize()
    cycle.log.set_pid()
    try:
        with open(core.pid, "w") as f:
            f.write(f"{os.getpid()}\n")
    except OSError as e:
        cycle.log.log(logmod.EMERG, f'open() "{core.pid}" failed ({e.errno}: {e.strerror})')
        return 1
    stats = LocalStats()
    cycle.status_counters = stats
    w = Worker(cycle, socks, stats, 0, None)
    try:
        w.run()
    finally:
        try:
            os.unlink(core.pid)
        except OSError:
            pass
    return 0
