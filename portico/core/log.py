"""The error log, in nginx's line format.

Line format (byte-compatible with nginx)::

    YYYY/MM/DD HH:MM:SS [level] PID#TID: *CID message, client: A, server: S, request: "R", host: "H"

Invariants:
- Writes are unbuffered single ``os.write`` calls of whole lines with
  O_APPEND, so lines from several workers never interleave.
- A line is written to every log whose level admits it; ``stderr`` is fd 2.
- ``PID#TID`` is the writing process's pid (one thread per process, so TID
  equals PID as in nginx), refreshed in every forked child: an ErrorLog made
  in the master (main or http-level ``error_log``) stamps the worker's pid
  when a worker writes.
- ``reopen()`` (USR1) reopens every file by path; failures keep the old fd.
- While ``echo_stderr`` is set (start-up, before the master is running, as
  nginx's ``ngx_use_stderr``) a line at level ``warn`` or more severe is also
  printed on stderr as ``portico: [level] msg`` unless a target already is
  stderr.  Once running, ``redirect_stderr()`` points fd 2 at the first file
  log (nginx's ``ngx_log_redirect_stderr``), so stray output (a traceback, a
  C library message) lands in the error log, never on a pipe nobody reads.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

LEVELS = ["stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]
LEVEL_NUM = {name: i for i, name in enumerate(LEVELS)}
STDERR, EMERG, ALERT, CRIT, ERROR, WARN, NOTICE, INFO, DEBUG = range(9)


@dataclass
class LogTarget:
    path: str  # absolute path or "stderr"
    level: int
    fd: int = -1

    def open(self) -> None:
        if self.path == "stderr":
            self.fd = 2
        else:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def reopen(self) -> None:
        if self.path == "stderr":
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return
        old, self.fd = self.fd, fd
        if old > 2:
            os.close(old)

    def close(self) -> None:
        if self.fd > 2:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = -1


_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def timestamp() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S")


class ErrorLog:
    def __init__(self, targets: list[LogTarget] | None = None) -> None:
        self.targets: list[LogTarget] = targets or []
        self.max_level = max((t.level for t in self.targets), default=ERROR)
        self.echo_stderr = False

    @classmethod
    def to_stderr(cls, level: int = NOTICE) -> "ErrorLog":
        t = LogTarget("stderr", level, 2)
        return cls([t])

    def open(self) -> None:
        for t in self.targets:
            if t.fd < 0:
                t.open()

    @property
    def pid(self) -> int:
        return _pid

    def set_pid(self) -> None:
        """Kept for callers; the pid is refreshed at fork automatically."""
        _refresh_pid()

    def reopen(self) -> None:
        for t in self.targets:
            t.reopen()

    def file_target(self) -> LogTarget | None:
        """The most verbose open file target, or None when one target is
        stderr (nginx's ``ngx_log_get_file_log`` / ``log_use_stderr``)."""
        best: LogTarget | None = None
        for t in self.targets:
            if t.path == "stderr":
                return None
            if t.fd >= 0 and (best is None or t.level > best.level):
                best = t
        return best

    def redirect_stderr(self) -> None:
        """dup2 the file log onto fd 2 (no-op when logging to stderr)."""
        t = self.file_target()
        if t is None or t.fd == 2:
            return
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            os.dup2(t.fd, 2)
        except OSError:
            pass

    def close(self) -> None:
        for t in self.targets:
            t.close()

    def enabled(self, level: int) -> bool:
        return level <= self.max_level

    def log(self, level: int, msg: str, conn_id: int | None = None, ctx: str = "") -> None:
        if level > self.max_level:
            return
        cid = f"*{conn_id} " if conn_id is not None else ""
        line = f"{timestamp()} [{LEVELS[level]}] {_pid}#{_pid}: {cid}{msg}{ctx}\n"
        data = line.encode("utf-8", "surrogateescape")
        wrote_stderr = False
        for t in self.targets:
            if level <= t.level and t.fd >= 0:
                try:
                    os.write(t.fd, data)
                except OSError:
                    pass
                wrote_stderr = wrote_stderr or t.fd == 2
        if self.echo_stderr and level <= WARN and not wrote_stderr:
            stderr_line(LEVELS[level], f"{msg}{ctx}")

    def emerg(self, msg: str) -> None:
        self.log(EMERG, msg)

    def error(self, msg: str) -> None:
        self.log(ERROR, msg)

    def notice(self, msg: str) -> None:
        self.log(NOTICE, msg)

    def warn(self, msg: str) -> None:
        self.log(WARN, msg)

    def info(self, msg: str) -> None:
        self.log(INFO, msg)

    def alert(self, msg: str) -> None:
        self.log(ALERT, msg)


def stderr_line(level: str, msg: str) -> None:
    """``portico: [level] msg`` on stderr, as nginx prints before logs are open."""
    sys.stderr.write(f"portico: [{level}] {msg}\n")
    sys.stderr.flush()
