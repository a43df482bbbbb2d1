"""Request bodies: buffered in memory up to client_body_buffer_size, then a
temporary file, with client_max_body_size enforced while reading.

Invariants:
- Data is accepted in arrival order; ``complete`` becomes True exactly once.
- Once ``discard()`` is called, data is counted and dropped, not stored.
- A body over client_max_body_size ends the request with 413 (as nginx for
  chunked bodies; a too-large Content-Length is refused at find-config).
"""
from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable

from ...core import log as logmod

if TYPE_CHECKING:
    from ..request import Request


class RequestBody:
    __slots__ = ("r", "conn", "chunks", "size", "file", "complete", "discarding", "waiters",
                 "error", "requested", "path")

    def __init__(self, r: "Request", conn: Any) -> None:
        self.r = r
        self.conn = conn
        self.chunks: list[bytes] = []
        self.size = 0
        self.file: Any = None
        self.complete = False
        self.discarding = False
        self.waiters: list[Callable[["RequestBody"], None]] = []
        self.error: str | None = None
        self.requested = False
        self.path: str | None = None  # the temp file's name, when the body is in one

    def on_data(self, data: bytes) -> None:
        self.size += len(data)
        if self.discarding:
            return
        r = self.r
        if self.requested:  # limits apply while a handler reads the body
            core = r.loc.core
            limit = core.client_max_body_size
            if limit and self.size > limit and r.content_length is None:
                r.log_error(logmod.ERROR, f"client intended to send too large chunked body: {self.size} bytes")
                self.discarding = True
                self.chunks = []
                r.keepalive = False
                if not r.header_sent and not r.done:
                    r.finalize(413)
                return
            if self.file is None and self.size > core.client_body_buffer_size:
                self._spill(core)
        if self.file is not None:
            self.file.write(data)
        else:
            self.chunks.append(data)
        if self.requested:
            self.conn.body_waiting(True, r)

    def _spill(self, core: Any, warn: bool = True) -> None:
        d = self.r.http.cycle.full_path(core.client_body_temp_path)
        os.makedirs(d, exist_ok=True)
        fd, self.path = tempfile.mkstemp(dir=d, prefix="00")
        self.file = os.fdopen(fd, "w+b")
        self.r.cleanup.append(self._remove)
        if warn:
            self.r.log_error(logmod.WARN, f"a client request body is buffered to a temporary file {self.path}")
        for c in self.chunks:
            self.file.write(c)
        self.chunks = []

    def _remove(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        if self.path is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def detach_file(self) -> str | None:
        """Hand the temp file over (e.g. PUT renames it); it is no longer removed."""
        path, self.path = self.path, None
        if self.file is not None:
            self.file.flush()
        return path

    def on_complete(self) -> None:
        self.complete = True
        if self.requested:
            self.conn.body_waiting(False, self.r)
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w(self)

    def on_error(self, what: str) -> None:
        self.error = what
        waiters, self.waiters = self.waiters, []
        for w in waiters:
            w(self)

    def read(self, callback: Callable[["RequestBody"], None], in_file: bool = False) -> None:
        """Call ``callback(body)`` once the whole body is here (or failed).

        With ``in_file`` the body is kept in a named temporary file in
        client_body_temp_path (nginx's request_body_in_file_only)."""
        r = self.r
        core = r.loc.core
        if in_file and self.file is None:
            try:
                self._spill(core, warn=False)
            except OSError as e:
                r.log_error(logmod.CRIT, f"failed to create temporary file for the request body ({e.errno}: {e.strerror})")
                self.error = "tempfile"
                callback(self)
                return
        limit = core.client_max_body_size
        if limit and self.size > limit:
            r.log_error(logmod.ERROR, f"client intended to send too large chunked body: {self.size} bytes")
            self.discarding = True
            self.error = "too large"
            r.keepalive = False
            r.finalize(413)
            return
        if not self.requested:
            self.requested = True
            self.conn.expect_continue(self.r)
        if self.complete or self.error:
            callback(self)
            return
        self.waiters.append(callback)
        self.conn.body_waiting(True, self.r)

    def discard(self) -> None:
        self.discarding = True
        self.chunks = []

    def in_memory(self) -> bytes | None:
        if self.file is not None:
            return None
        return b"".join(self.chunks)

    def data(self) -> bytes:
        if self.file is not None:
            self.file.seek(0)
            return self.file.read()
        return b"".join(self.chunks)
