"""The master process: binds sockets, forks workers, handles signals.

Signals (as nginx): HUP reload, QUIT graceful stop, TERM/INT fast stop,
USR1 reopen logs, CHLD reap (and respawn a worker that died unasked).

Invariants:
- The master never accepts connections and never runs an event loop; it
  waits for signals with ``sigtimedwait``.  Every signal it handles is
  blocked from the moment the listen sockets are bound; a forked worker
  keeps them blocked until its event loop has installed its handlers and
  created its servers (``Worker._main``), so a QUIT sent to a worker that is
  still starting is handled gracefully, never by the default action.
- Listening sockets are keyed by ``ListenOpt.key`` and kept across reloads;
  a socket is closed only when no cycle uses it any more.  Workers get them
  by fork and never bind, so the listen queue survives reloads and respawns.
- The pid file is written after every listen socket is bound and every
  shared zone exists; with ``daemon on`` the command returns only once the
  daemon has written it (exit 0) or failed (exit 1).
- Start-up errors go to stderr (``portico: [emerg] ...``) and to the error
  log, never as a Python traceback.  Once running, fd 2 points at the error
  log (``ErrorLog.redirect_stderr``) as in nginx.
- Shared zones live in ``cycle.shm`` (a ``ZoneRegistry``): the stub_status
  counters (``STATUS_ZONE``) and every zone a module declared in
  ``cycle.zones`` (name -> (size, tag)).  A reload builds the new registry
  with ``previous=`` the old one, so a zone with the same name, size and tag
  keeps its content (counters never go back down); the owner's handle is in
  ``zone.data``.  After reaping a worker the master calls
  ``zone.force_unlock(pid)`` on each zone of that worker's cycle.
- A counter slot is written only by its worker (``_SlotStats``); the master
  hands slots out before fork, and on reap zeroes the dead worker's gauges
  and frees the slot; cumulative counts stay.
- A reload first builds and validates the new Cycle completely, binds its
  new sockets and opens its logs; any error is logged as ``[emerg]`` and the
  old workers keep serving.  Otherwise new workers are forked *before* the
  old ones get QUIT, so some worker always accepts.
- A worker that dies without being asked (signal, or exit code other than
  0 and 2) is replaced with the same number, unless the master is stopping
  or the worker belongs to an older generation; exit code 2 is fatal and not
  respawned (nginx's ``exited with fatal code 2 and cannot be respawned``).
"""
from __future__ import annotations

import os
import platform
import resource
import select
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from ...conf.errors import ConfError
from .. import log as logmod
from ..cycle import Cycle
from ..core_module import worker_process_init
from .worker import GAUGES, STAT_FIELDS, WORKER_SIGNALS, Worker

_SIGNALS = WORKER_SIGNALS
_SIG_NAMES = {signal.SIGHUP: "SIGHUP", signal.SIGQUIT: "SIGQUIT", signal.SIGTERM: "SIGTERM",
              signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1", signal.SIGCHLD: "SIGCHLD",
              signal.SIGUSR2: "SIGUSR2", signal.SIGWINCH: "SIGWINCH"}

MAX_SLOTS = 256
#: the stub_status zone; a name no ``zone=`` argument can clash with
STATUS_ZONE = "\0stub_status"
STATUS_ZONE_SIZE = 64 * 4096
STATUS_TAG = "stub_status"

#: TERM/INT: workers still alive after this many seconds get SIGKILL (nginx
#: doubles a 50 ms delay and kills past one second)
FAST_STOP_GRACE = 1.5

LogFn = Callable[[int, str], None]


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
    try:
        s.listen(opt.backlog)
    except OSError as e:
        s.close()
        raise ConfError(f"listen() to {opt.text}, backlog {opt.backlog} failed "
                        f"({e.errno}: {e.strerror})") from None
    s.setblocking(False)
    s.set_inheritable(True)
    return s


class Listeners:
    """Sockets by key, reused across cycles."""

    def __init__(self) -> None:
        self.socks: dict[Any, socket.socket] = {}

    def open_for(self, cycle: Cycle, log: LogFn) -> dict[Any, socket.socket]:
        opened: dict[Any, socket.socket] = {}
        try:
            for spec in cycle.listens:
                s = self.socks.get(spec.key)
                if s is None:
                    s = opened.get(spec.key)
                if s is None:
                    s = _bind_with_retry(spec.opt, log)
                    opened[spec.key] = s
        except ConfError:
            for s in opened.values():
                _close_listener(s)
            raise
        self.socks.update(opened)
        return {spec.key: self.socks[spec.key] for spec in cycle.listens}

    def close_unused(self, cycle: Cycle) -> None:
        used = {spec.key for spec in cycle.listens}
        for key in list(self.socks):
            if key not in used:
                _close_listener(self.socks.pop(key))

    def close_all(self) -> None:
        for s in self.socks.values():
            _close_listener(s)
        self.socks.clear()


def _close_listener(s: socket.socket) -> None:
    if s.family == socket.AF_UNIX:
        try:
            os.unlink(s.getsockname())
        except OSError:
            pass
    s.close()


def _bind_with_retry(opt: Any, log: LogFn) -> socket.socket:
    # nginx tries bind() five times, 500 ms apart, while EADDRINUSE, logging
    # each failure, then gives up with "still could not bind()".
    for attempt in range(5):
        try:
            return open_listen_socket(opt)
        except ConfError as e:
            if "(98:" not in e.message:
                raise
            log(logmod.EMERG, e.message)
            if attempt < 4:
                time.sleep(0.5)
    raise ConfError("still could not bind()")


@dataclass
class WorkerProc:
    """What the master knows of one worker."""

    pid: int
    generation: int
    cycle: Cycle
    slot: int
    number: int
    exiting: bool = False


class _DaemonPipe:
    """Lets the parent of ``_daemonize`` exit only once the daemon is up."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def parent_wait(self) -> None:
        """In the foreground process: wait for the daemon's verdict, exit."""
        os.close(self.w)
        ok = b""
        try:
            while True:
                ready, _, _ = select.select([self.r], [], [], 30.0)
                if not ready:
                    break
                b = os.read(self.r, 1)
                if not b:
                    break
                ok = b
                break
        except OSError:
            pass
        os._exit(0 if ok == b"1" else 1)

    def child_done(self, ok: bool) -> None:
        if self.w < 0:
            return
        try:
            os.write(self.w, b"1" if ok else b"0")
        except OSError:
            pass
        os.close(self.w)
        self.w = -1

    def child_close_read(self) -> None:
        os.close(self.r)


def _daemonize() -> _DaemonPipe:
    """nginx's ``ngx_daemon``: fork, setsid, stdin/stdout to /dev/null.

    stderr stays until ``redirect_stderr`` so that start-up errors are seen.
    """
    pipe = _DaemonPipe()
    pid = os.fork()
    if pid > 0:
        pipe.parent_wait()  # never returns
    pipe.child_close_read()
    os.setsid()
    fd = os.open(os.devnull, os.O_RDWR)
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    if fd > 2:
        os.close(fd)
    return pipe


def write_pid_file(path: str, log: logmod.ErrorLog) -> bool:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        log.log(logmod.EMERG, f'open() "{path}" failed ({e.errno}: {e.strerror})')
        return False
    return True


def remove_pid_file(path: str) -> None:
    """Unlink the pid file if it still names this process."""
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass


def prepare_paths(cycle: Cycle, log: Callable[[int, str], None]) -> None:
    """ngx_create_paths: temp directories exist and belong to the worker user;
    log files too, so that workers (no longer root) can reopen them."""
    user = cycle.confs["core"].user
    for path in getattr(cycle, "temp_paths", ()):
        try:
            os.makedirs(path, 0o700, exist_ok=True)
            if user and os.geteuid() == 0:
                os.chown(path, user[0], -1)
        except OSError as e:
            log(logmod.EMERG, f'mkdir() "{path}" failed ({e.errno}: {e.strerror})')
    _chown_logs(cycle)


def _chown_logs(cycle: Cycle) -> None:
    user = cycle.confs["core"].user
    if not user or os.geteuid() != 0:
        return
    fds = [t.fd for t in cycle.log.targets]
    for el in getattr(cycle, "extra_logs", []):
        fds.extend(t.fd for t in el.targets)
    fds.extend(lf.fd for lf in getattr(cycle, "log_files", []))
    for fd in fds:
        if fd > 2:
            try:
                os.fchown(fd, user[0], -1)
            except OSError:
                pass


def reopen_files(cycle: Cycle) -> None:
    """USR1 in one process: error logs, http error logs, access logs."""
    cycle.log.reopen()
    for el in getattr(cycle, "extra_logs", []):
        el.reopen()
    for lf in getattr(cycle, "log_files", []):
        lf.reopen()
    if not getattr(cycle, "is_worker", False):
        _chown_logs(cycle)  # the master reopens first; workers then can too


def _startup_notices(log: logmod.ErrorLog) -> None:
    import portico
    log.log(logmod.NOTICE, 'using the "epoll" event method')
    log.log(logmod.NOTICE, f"portico/{portico.__version__} (nginx/{portico.NGINX_VERSION})")
    log.log(logmod.NOTICE, f"OS: {platform.system()} {platform.release()}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    log.log(logmod.NOTICE, f"getrlimit(RLIMIT_NOFILE): {soft}:{hard}")


def _preload() -> None:
    """Import what every worker needs before forking: a worker then starts
    in milliseconds (shared copy-on-write pages) instead of importing."""
    try:
        import uvloop  # noqa: F401

        from ...http.proto import h1  # noqa: F401
    except ImportError:
        pass


class Master:
    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.listeners = Listeners()
        self.workers: dict[int, WorkerProc] = {}
        self.generation = 0
        self.stopping = False
        self.pid = os.getpid()

    def _log(self, level: int, msg: str) -> None:
        self.cycle.log.log(level, msg)

    # --- set-up ---------------------------------------------------------------------
    def start(self) -> int:
        """Run the master; returns the exit code.  Raises ConfError for a
        start-up failure before the pid file exists (the caller prints it)."""
        cycle = self.cycle
        socks = self.listeners.open_for(cycle, self._log)
        try:
            init_zones(cycle, None)
        except ConfError:
            self.listeners.close_all()
            raise
        core = cycle.confs["core"]
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        daemon: _DaemonPipe | None = None
        if core.daemon:
            daemon = _daemonize()
            self.pid = os.getpid()
        cycle.log.set_pid()
        if not write_pid_file(core.pid, cycle.log):
            if daemon is not None:
                daemon.child_done(False)
            self.listeners.close_all()
            return 1
        try:
            _go_live(cycle, daemon)
            self._log(logmod.NOTICE, "start worker processes")
            _preload()
            self._spawn_all(cycle, socks)
            return self._loop()
        finally:
            remove_pid_file(self.cycle.confs["core"].pid)

    def _spawn_all(self, cycle: Cycle, socks: dict[Any, socket.socket]) -> None:
        prepare_paths(cycle, self._log)
        n = cycle.confs["core"].worker_processes
        for i in range(n):
            self._spawn(cycle, socks, self.generation, i)

    def _spawn(self, cycle: Cycle, socks: dict[Any, socket.socket], gen: int, number: int) -> None:
        counters = cycle.status_counters
        slot = counters.acquire_slot() if counters is not None else -1
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                # Signals stay blocked until the worker's loop handles them.
                for s in _SIGNALS:
                    signal.signal(s, signal.SIG_DFL)
                cycle.log.set_pid()
                mine = {id(s) for s in socks.values()}
                for s in self.listeners.socks.values():
                    if id(s) not in mine:
                        s.close()
                stats = _SlotStats(counters.slot(slot)) if counters is not None else None
                worker_process_init(cycle)
                w = Worker(cycle, socks, stats, number + 1, self.pid)
                w.run()
                cycle.log.log(logmod.NOTICE, "exiting")
                cycle.log.log(logmod.NOTICE, "exit")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0
            except BaseException as e:  # never a traceback on the terminal
                cycle.log.log(logmod.ALERT, f"worker process failed: {e!r}")
                code = 2
            finally:
                os._exit(code)
        self.workers[pid] = WorkerProc(pid, gen, cycle, slot, number)
        self._log(logmod.NOTICE, f"start worker process {pid}")

    # --- the signal loop ------------------------------------------------------------------
    def _loop(self) -> int:
        while True:
            info = signal.sigtimedwait(_SIGNALS, 1.0)
            if info is None:
                self._reap()
            else:
                sig = info.si_signo
                msg = f"signal {sig} ({_SIG_NAMES.get(sig, sig)}) received from {info.si_pid}"
                action = _action(sig)
                self._log(logmod.NOTICE, f"{msg}, {action}" if action else msg)
                if sig == signal.SIGCHLD:
                    self._reap()
                elif sig == signal.SIGHUP:
                    if not self.stopping:
                        self.reload()
                elif sig == signal.SIGQUIT:
                    self.stopping = True
                    self._signal_workers(signal.SIGQUIT)
                    self.listeners.close_all()
                elif sig in (signal.SIGTERM, signal.SIGINT):
                    self.stopping = True
                    self._fast_stop()
                elif sig == signal.SIGUSR1:
                    reopen_files(self.cycle)
                    self.cycle.log.redirect_stderr()
                    self._signal_workers(signal.SIGUSR1)
            if self.stopping and not self.workers:
                self.listeners.close_all()
                self._log(logmod.NOTICE, "exit")
                return 0

    def _fast_stop(self) -> None:
        self._signal_workers(signal.SIGTERM)
        deadline = time.monotonic() + FAST_STOP_GRACE
        while self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._reap()
            if self.workers:
                signal.sigtimedwait((signal.SIGCHLD,), min(left, 0.05))
        if self.workers:
            self._signal_workers(signal.SIGKILL)
            while self.workers:
                signal.sigtimedwait((signal.SIGCHLD,), 0.05)
                self._reap()
        self.listeners.close_all()

    def _signal_workers(self, sig: int, gen: int | None = None) -> None:
        for w in list(self.workers.values()):
            if gen is None or w.generation == gen:
                if sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
                    w.exiting = True
                try:
                    os.kill(w.pid, sig)
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
            w = self.workers.pop(pid, None)
            if w is None:
                continue
            shm = getattr(w.cycle, "shm", None)
            if shm is not None:
                for zone in shm:
                    if zone.force_unlock(pid):
                        self._log(logmod.ALERT, f'shared memory zone "{zone.name.lstrip(chr(0))}" '
                                  f"was locked by {pid}")
            counters = w.cycle.status_counters
            if counters is not None and w.slot >= 0:
                counters.reset_gauges(w.slot, GAUGES)
                counters.release_slot(w.slot)
            respawn = False
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                core = " (core dumped)" if os.WCOREDUMP(status) else ""
                self._log(logmod.ALERT, f"worker process {pid} exited on signal {sig}{core}")
                respawn = True
            else:
                code = os.WEXITSTATUS(status)
                if code == 2:
                    self._log(logmod.ALERT, f"worker process {pid} exited with fatal code 2 "
                              "and cannot be respawned")
                else:
                    level = logmod.NOTICE if code == 0 else logmod.ALERT
                    self._log(level, f"worker process {pid} exited with code {code}")
                    respawn = code != 0 or not w.exiting
            if respawn and not w.exiting and not self.stopping and w.generation == self.generation:
                try:
                    socks = self.listeners.open_for(self.cycle, self._log)
                except ConfError as e:
                    self._log(logmod.EMERG, e.line_text())
                    continue
                self._spawn(self.cycle, socks, w.generation, w.number)

    # --- reload ----------------------------------------------------------------------------
    def reload(self) -> None:
        old = self.cycle
        try:
            new = Cycle(old.conf_file, old.prefix, old.conf_prefix, old.globals, old.error_log_path)
            new.load()
        except ConfError as e:
            self._log(logmod.EMERG, e.line_text())
            return
        except Exception as e:  # a bug in a module must not take the master down
            self._log(logmod.ALERT, f"reload failed: {e!r}")
            return
        try:
            socks = self.listeners.open_for(new, self._log)
            new.open_logs()
            init_zones(new, old)
        except (ConfError, OSError) as e:
            if isinstance(e, ConfError):
                msg = e.line_text()
            elif e.filename is not None:
                msg = f'open() "{e.filename}" failed ({e.errno}: {e.strerror})'
            else:
                msg = str(e)
            self._log(logmod.EMERG, msg)
            new.close()
            self.listeners.close_unused(old)
            return
        for w in new.warnings:
            new.log.log(logmod.WARN, w)
        old_pid, new_pid = old.confs["core"].pid, new.confs["core"].pid
        self.cycle = new
        self.generation += 1
        new.log.set_pid()
        if new_pid != old_pid:
            write_pid_file(new_pid, new.log)
            try:
                os.unlink(old_pid)
            except OSError:
                pass
        new.log.redirect_stderr()
        self._spawn_all(new, socks)
        for g in range(self.generation):
            self._signal_workers(signal.SIGQUIT, g)
        self.listeners.close_unused(new)
        if old.log is not new.log:
            # old workers keep their copies; the master's are no longer needed
            old.close()


def init_zones(cycle: Cycle, previous: Cycle | None) -> None:
    """Create ``cycle.shm`` and ``cycle.status_counters`` (master, before fork)."""
    from ..shm import WorkerCounters, ZoneRegistry
    prev = getattr(previous, "shm", None) if previous is not None else None
    reg = ZoneRegistry(previous=prev)
    try:
        zone = reg.get_or_create(STATUS_ZONE, STATUS_ZONE_SIZE, STATUS_TAG)
        if not isinstance(zone.data, WorkerCounters):
            zone.data = WorkerCounters(zone, STAT_FIELDS, MAX_SLOTS)
        for name, spec in getattr(cycle, "zones", {}).items():
            size, tag = (spec[0], spec[1]) if isinstance(spec, tuple) else (spec, None)
            reg.get_or_create(name, size, tag)
    except (ValueError, MemoryError) as e:  # ZoneTooSmall, ZoneSizeMismatch, ZoneFull...
        raise ConfError(str(e)) from None
    reg.forget_previous()
    cycle.shm = reg
    cycle.status_counters = zone.data


class _SlotStats:
    """The worker's ``add(index, n)`` onto its shared counter slot.

    ``index`` is a position in ``STAT_FIELDS``, which is also the cell order
    of the slot (``WorkerCounters`` is built with ``STAT_FIELDS``), so an add
    is one int64 load + store in shared memory, no name lookup, no lock.
    """

    __slots__ = ("cells",)

    def __init__(self, slot: Any) -> None:
        self.cells: memoryview = slot.cells

    def add(self, i: int, n: int) -> None:
        self.cells[i] += n

    def flush(self) -> None:
        pass


def _go_live(cycle: Cycle, daemon: "_DaemonPipe | None") -> None:
    """Start-up succeeded: log nginx's notices, send stderr to the error log,
    and let a daemonizing parent exit with success."""
    _startup_notices(cycle.log)
    cycle.log.redirect_stderr()
    cycle.log.echo_stderr = False
    if daemon is not None:
        daemon.child_done(True)


def _action(sig: int) -> str:
    return {signal.SIGHUP: "reconfiguring", signal.SIGQUIT: "shutting down",
            signal.SIGTERM: "exiting", signal.SIGINT: "exiting",
            signal.SIGUSR1: "reopening logs", signal.SIGCHLD: ""}.get(sig, "ignoring")


def run_single(cycle: Cycle) -> int:
    """master_process off: serve in this process (nginx's single-process mode)."""
    from .worker import LocalStats
    listeners = Listeners()
    socks = listeners.open_for(cycle, lambda level, msg: cycle.log.log(level, msg))
    core = cycle.confs["core"]
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    daemon = _daemonize() if core.daemon else None
    cycle.log.set_pid()
    if not write_pid_file(core.pid, cycle.log):
        if daemon is not None:
            daemon.child_done(False)
        return 1
    stats = LocalStats()
    cycle.status_counters = stats
    try:
        _go_live(cycle, daemon)
        w = Worker(cycle, socks, stats, 0, None)
        w.run()
    finally:
        remove_pid_file(core.pid)
        listeners.close_all()
    return 0
