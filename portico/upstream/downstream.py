"""The response body on its way to the client (the non-upstream half of
ngx_event_pipe and ngx_http_upstream_process_non_buffered_request).

Invariants:
- ``ToClient`` is a mixin of ``UpstreamRequest`` and declares no state of
  its own: it uses ``r``, ``conf``, ``conn``, ``buffering``, ``tmp_fd``,
  ``tmp_size``, ``up_paused`` and ``mem_limit``.
- Buffering on: bytes the client cannot take yet wait in the client
  writer, in memory up to proxy_buffers, then as regions of an unlinked
  temp file (``FileBuf``) up to proxy_max_temp_file_size; past that,
  reading the upstream pauses.  Buffering off: reading the upstream pauses
  while the client socket is full.  ``r.write_event`` resumes it.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from ..core import log as logmod
from ..http.request import FileBuf


class ToClient:
    __slots__ = ()
    r: Any
    conf: Any
    conn: Any
    buffering: bool
    tmp_fd: int
    tmp_size: int
    up_paused: bool
    tkind: str
    mem_limit: int
    finished: bool

    def _log(self, level: int, msg: str) -> None: ...

    def _arm(self, kind: str, seconds: float) -> None: ...

    def _client_pending(self) -> int:
        c = self.r.conn
        n = c.transport.get_write_buffer_size()
        for b in c.outq:
            if b.__class__ is bytes:
                n += len(b)
        return n

    def _to_client(self, data: bytes) -> None:
        r = self.r
        if r.done:
            return
        if not self.buffering:
            r.send([data], False)
            if r.conn.paused and not self.up_paused:
                self._pause_upstream()
            return
        if self.tmp_fd < 0 and not r.conn.paused:
            r.send([data], False)
            return
        if self._client_pending() <= self.mem_limit:
            r.send([data], False)
            return
        if self.conf.max_temp_file_size and self.tmp_size + len(data) <= self.conf.max_temp_file_size:
            if self.tmp_fd < 0 and not self._open_temp():
                r.send([data], False)
                return
            os.write(self.tmp_fd, data)
            # regions of at most 32 KB: H1Writer's pread path reads 64 KB at
            # once for larger ones, past the end of a region in the middle of a file
            fd, off, n = self.tmp_fd, self.tmp_size, len(data)
            r.send([FileBuf(fd, o, min(32768, off + n - o)) for o in range(off, off + n, 32768)], False)
            self.tmp_size += n
            return
        r.send([data], False)
        if not self.up_paused:
            self._pause_upstream()

    def _open_temp(self) -> bool:
        r = self.r
        d = r.http.cycle.full_path(self.conf.temp_path)
        try:
            os.makedirs(d, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=d, prefix="00")
            os.unlink(path)  # the fd keeps it: nothing to remove on any exit path
        except OSError as e:
            self._log(logmod.CRIT, f"failed to create temp file in {d} ({e.errno}: {e.strerror})")
            return False
        self.tmp_fd = fd
        r.cleanup.append(self._close_temp)
        self._log(logmod.WARN, f"an upstream response is buffered to a temporary file {path}")
        return True

    def _close_temp(self) -> None:
        if self.tmp_fd >= 0:
            os.close(self.tmp_fd)
            self.tmp_fd = -1

    def _pause_upstream(self) -> None:
        conn = self.conn
        if conn is None or conn.transport is None:
            return
        self.up_paused = True
        self.tkind = ""  # no read timeout while we hold the upstream back
        conn.transport.pause_reading()
        self.r.write_event = self._client_writable

    def _client_writable(self) -> None:
        if not self.up_paused or self.finished:
            return
        r = self.r
        if r.conn.paused or (self.buffering and self._client_pending() > self.mem_limit):
            return
        self.up_paused = False
        r.write_event = None
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()
            self._arm("read", self.conf.read_timeout)

