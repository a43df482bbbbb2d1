"""The output half of an HTTP/1.x connection: status line and headers in
nginx's order, body framing, write coalescing, files by sendfile.

Invariants:
- Output leaves in order through ``outq`` (bytes, ``FileBuf`` regions and
  ``_DONE`` markers); ``_wbuf`` coalesces bytes so that a small response is
  one send(); it is flushed before any sendfile, direct transport write and
  close, and otherwise once the loop iteration's reads are handled
  (``_flush_soon``, core/deferred.py): peers are then woken by back-to-back
  writes.
- A file region is sent with ``os.sendfile`` only when the transport's own
  buffer is empty (write-buffer limits 0/0 make pause/resume_writing an exact
  "drained" signal); when the socket is full we wait on a dup of its fd,
  because uvloop refuses add_writer on a transport's own fd.
- ``_DONE`` reaching the head of ``outq`` means the response was handed to
  the kernel: the connection's ``_finish`` logs it and moves on.
- ``limit_rate`` (ngx_http_write_filter): a rate-limited response goes
  through ``outq`` only; each pass may send ``rate * (whole seconds since
  the request began + 1) - (sent - limit_rate_after)`` bytes, then waits the
  time those bytes are worth at the rate (``_rate_timer``, which also holds
  ``_sending`` so nothing else writes meanwhile).

``H1Writer`` is a mixin of ``H1Connection``: it uses the connection's state
(``transport``, ``outq``, ``_wbuf``, ``paused``, ``current``...) and declares
no state of its own.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

from ...core import log as logmod
from ...core.deferred import flush_first, flush_soon
from ..request import FileBuf, Request
from ..response import STATUS_LINE_OVERRIDE, date_str, http_date, product, status_line

SMALL_FILE = 32768  # below this a file is read and written with the headers


class H1Writer:
    __slots__ = ()
    # attributes provided by H1Connection
    transport: Any
    outq: list[Any]
    _wbuf: list[Any]
    _deferred: bool
    _sending: bool
    paused: bool
    closing: bool
    current: Any
    worker: Any
    ssl: bool
    family: int
    requests: int
    queue: list[Any]
    start_mono: float
    deadline: float
    timeout_kind: str
    _dupfd: int
    _sock_fd: int
    _rate_timer: Any

    # --- output ------------------------------------------------------------------------------
    def send_head(self, r: Request) -> None:
        h = r.hout
        status = h.status
        core = r.loc.core
        no_body = status < 200 or status == 204 or status == 304
        if r.version == "HTTP/0.9":
            r.keepalive = r.chunked = False  # a 0.9 response is the body alone
            return
        if r.header_only or no_body:
            r.chunked = False
        elif r.expect_trailers and r.version == "HTTP/1.1" and core.chunked_transfer_encoding:
            h.content_length = None  # ngx_http_chunked_header_filter: trailers need chunks
            r.chunked = True
        elif h.content_length is None:
            if r.version == "HTTP/1.1" and core.chunked_transfer_encoding:
                r.chunked = True
            else:
                r.keepalive = False
        if r.keepalive and not self.keepalive_allowed(core):
            r.keepalive = False
        # One str, encoded once: the order is nginx's (header filter, then
        # the ETag the static handler set, the header list, filter additions).
        out = [_status_line(status), server_line(core.server_tokens), "Date: ", date_str(),
               head_tail(r, h, status, core, no_body, r.keepalive, r.chunked)]
        data = "".join(out).encode("utf-8", "surrogateescape")
        r.bytes_sent += len(data)
        if no_body:
            r.header_only = True
        r.init_rate()
        if r.limit_rate:
            self.outq.append(data)  # the header counts against the rate too
        else:
            self._write(data)

    def send_body(self, r: Request, bufs: list[Any], last: bool) -> None:
        if r.done:
            return
        if not r.header_only:
            chunked = r.chunked
            for b in bufs:
                if isinstance(b, FileBuf):
                    if b.size <= 0:
                        continue
                    r.body_bytes_sent += b.size
                    r.bytes_sent += b.size
                    if chunked:
                        self._write(f"{b.size:x}\r\n".encode())
                        self.outq.append(b)
                        self._write(b"\r\n")
                    else:
                        self.outq.append(b)
                else:
                    n = len(b)
                    if not n:
                        continue
                    r.body_bytes_sent += n
                    r.bytes_sent += n
                    if chunked:
                        self._write(b"%x\r\n" % n + bytes(b) + b"\r\n")
                    else:
                        self._write(b)
            if last and chunked:
                if h_trailers := r.hout.trailers:
                    self._write(("0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h_trailers) + "\r\n")
                                .encode("utf-8", "surrogateescape"))
                else:
                    self._write(b"0\r\n\r\n")
        if last:
            self.outq.append(_DONE(r))
        self._pump()

    def keepalive_allowed(self, core: Any) -> bool:
        """Whether the connection may stay open after the current response
        (keepalive_requests, keepalive_timeout 0, keepalive_time, shutdown).
        Requests parsed ahead (pipelined, in ``queue``) do not count yet:
        nginx creates a request only when the one before it is done."""
        return not (self.requests - len(self.queue) >= core.keepalive_requests
                    or core.keepalive_timeout <= 0
                    or self.worker.shutting_down
                    or self.worker.now - self.start_mono > core.keepalive_time)

    def write_static(self, r: Request, data: bytes) -> None:
        """A whole response already in bytes (static_fast.py): queued like
        any output, then the request is done in order."""
        if self.outq or self._sending:
            self._write(data)
            self.outq.append(_DONE(r))
            self._pump()
        else:
            # nothing queued before it: straight to the coalescing buffer,
            # and the request is done (what _pump would do, without the marker)
            self._wbuf.append(data)
            self._finish(r)
            if self._wbuf and not self.closing:
                self._flush_soon()

    def _write(self, data: Any) -> None:
        # Coalesce: bytes wait in _wbuf until _flush (end of the request's
        # synchronous work, before a sendfile, before closing), so a small
        # response is a single send().
        if self.outq or self._sending or (self.current is not None and self.current.limit_rate):
            self.outq.append(data)
        else:
            self._wbuf.append(data)

    def _flush_soon(self) -> None:
        """Hand ``_wbuf`` to the transport once this loop iteration's reads
        are handled (core/deferred.py): still one write per connection.
        Anything that writes to the transport directly (sendfile, 100
        Continue, a tunnel, write_eof, close) calls ``_flush`` first."""
        if not self._deferred:
            if flush_soon(self):
                self._deferred = True
            else:
                self._flush()

    def _flush(self) -> None:
        """Write ``_wbuf`` now, outside the deferred batch: the access-log
        lines held back (for responses in it) go first (core/deferred.py)."""
        flush_first()
        self._write_wbuf()

    def _write_wbuf(self) -> None:
        wbuf = self._wbuf
        if len(wbuf) == 1:
            self.transport.write(wbuf[0])
        else:
            self.transport.write(b"".join(wbuf))
        self._wbuf = []

    def _pump(self) -> None:
        """Drain outq in order; returns when waiting for the socket."""
        q = self.outq
        while q and not self._sending and not self.closing:
            item = q[0]
            if isinstance(item, _DONE):
                q.pop(0)
                self._finish(item.r)
                continue
            r = self.current
            if r is not None and r.limit_rate:
                if not self._send_limited(r, item):
                    break
                continue
            if isinstance(item, FileBuf):
                if not self._send_file(item):
                    break
                q.pop(0)
                continue
            q.pop(0)
            self._wbuf.append(item)
        if self._wbuf and not self.closing:
            self._flush_soon()

    def _send_limited(self, r: Request, item: Any) -> bool:
        """One ngx_http_write_filter pass under limit_rate: send what the rate
        allows of the head of ``outq``; False when waiting (timer or socket)."""
        rate = r.limit_rate
        after = r.limit_rate_after
        sent = r.rate_sent
        limit = rate * (int(time.time()) - int(r.start_time) + 1) - (sent - after)
        if limit <= 0:
            self._rate_wait((-limit * 1000 // rate + 1) / 1000)
            return False
        core = r.loc.core
        if core.sendfile_max_chunk and core.sendfile_max_chunk < limit:
            limit = core.sendfile_max_chunk
        if isinstance(item, FileBuf):
            if item.size > limit:
                part = FileBuf(item.fd, item.offset, limit)
                item.offset += limit
                item.size -= limit
            else:
                part = item
                self.outq.pop(0)
            n = part.size
            if not self._send_file(part):
                # the socket is full: put the rest back at the head
                if part is not item:
                    item.offset -= part.size
                    item.size += part.size
                else:
                    self.outq.insert(0, part)
                n -= part.size
                r.rate_sent += n
                return False
        else:
            if len(item) > limit:
                self.outq[0] = item[limit:]
                item = item[:limit]
            else:
                self.outq.pop(0)
            n = len(item)
            self._wbuf.append(item)
            self._flush()
        r.rate_sent = sent + n
        # the pause those bytes are worth, counting only what lies past
        # limit_rate_after
        delay = (max(0, sent + n - after) - max(0, sent - after)) * 1000 // rate
        if delay > 0:
            self._rate_wait(delay / 1000)
            return False
        return True

    def _rate_wait(self, seconds: float) -> None:
        self._sending = True
        self._rate_timer = self.worker.loop.call_later(seconds, self._rate_resume)

    def _rate_resume(self) -> None:
        self._rate_timer = None
        self._sending = False
        self._pump()

    def _send_file(self, fb: FileBuf) -> bool:
        """Send what the socket takes; True when the region is done."""
        core = self.current.loc.core if self.current is not None else None
        use_sendfile = core is not None and core.sendfile and not self.ssl
        if fb.size <= SMALL_FILE or not use_sendfile:
            # small files: one pread joined to the headers in one send
            while fb.size > 0:
                if self.paused:
                    return False
                n = min(fb.size, 65536)  # never past the region, which may end before EOF
                data = os.pread(fb.fd, n, fb.offset)
                if not data:
                    self._file_error(fb)
                    return True
                fb.offset += len(data)
                fb.size -= len(data)
                self._wbuf.append(data)
                if fb.size > 0:
                    self._flush()
            return True
        cork = core.tcp_nopush and self.family != socket.AF_UNIX
        if cork and not self._sending:
            # tcp_nopush: headers and the file's first bytes leave in full
            # packets (nginx uses TCP_CORK on Linux)
            self._set_cork(1)
        if self._wbuf:
            self._flush()
        if self.paused:
            return False  # transport still holds data; resume_writing calls us
        chunk = core.sendfile_max_chunk or fb.size
        while fb.size > 0:
            try:
                sent = os.sendfile(self._sock_fd, fb.fd, fb.offset, min(fb.size, chunk))
            except BlockingIOError:
                self._wait_writable()
                return False
            except OSError:
                self.abort()
                return False
            if sent == 0:
                self._file_error(fb)
                return True
            fb.offset += sent
            fb.size -= sent
        if cork:
            self._set_cork(0)
        return True

    def _set_cork(self, on: int) -> None:
        try:
            self.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, on)
        except OSError:
            pass

    def _file_error(self, fb: FileBuf) -> None:
        # the file shrank under us: nginx logs and closes the connection
        if self.current is not None:
            self.current.log_error(logmod.ALERT, "file was truncated while sending")
            self.current.keepalive = False
        fb.size = 0
        self.abort()

    def _wait_writable(self) -> None:
        loop = self.worker.loop
        if self._dupfd < 0:
            self._dupfd = os.dup(self._sock_fd)
        self._sending = True
        if self.current is not None and self.timeout_kind != "send":
            self.deadline = self.worker.now + self.current.loc.core.send_timeout
            self.timeout_kind = "send"
        loop.add_writer(self._dupfd, self._on_writable)

    def _on_writable(self) -> None:
        self.worker.loop.remove_writer(self._dupfd)
        self._sending = False
        self._writable_again()

    def _drop_dup(self) -> None:
        if self._dupfd >= 0:
            try:
                self.worker.loop.remove_writer(self._dupfd)
            except Exception:
                pass
            os.close(self._dupfd)
            self._dupfd = -1
            self._sending = False

    def _cleanup_out(self) -> None:
        self.outq.clear()
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None


_STATUS_LINES: dict[int, str] = {}
_SERVER_LINES: dict[str, str] = {}


def head_tail(r: Request, h: Any, status: int, core: Any, no_body: bool, keepalive: bool, chunked: bool) -> str:
    """The response header after the Date value, as ``send_head`` writes it
    (``r`` is only read for a relative Location; proxy_fast.py keeps the
    result per upstream header)."""
    out = ["\r\n"]
    if h.content_type and status != 304 and status != 204:  # ngx_http_header_filter drops it for 204
        if h.charset:
            out.append(f"Content-Type: {h.content_type}; charset={h.charset}\r\n")
        else:
            out.append(f"Content-Type: {h.content_type}\r\n")
    if h.content_length is not None and not no_body:
        out.append(f"Content-Length: {h.content_length}\r\n")
    if h.last_modified is not None and (status == 200 or status == 206 or status == 304):
        out.append(f"Last-Modified: {http_date(h.last_modified)}\r\n")
    if h.location is not None:
        loc = h.location
        if loc.startswith("/") and core.absolute_redirect:
            loc = r.redirect_url(loc)
        out.append(f"Location: {loc}\r\n")
    if chunked:
        out.append("Transfer-Encoding: chunked\r\n")
    if status == 101:
        pass  # a protocol switch carries its own Connection: upgrade
    elif keepalive:
        out.append("Connection: keep-alive\r\n")
        if core.keepalive_header:
            out.append(f"Keep-Alive: timeout={int(core.keepalive_header)}\r\n")
    else:
        out.append("Connection: close\r\n")
    if h.etag is not None:
        out.append(f"ETag: {h.etag}\r\n")
    for k, v in h.headers:
        out.append(f"{k}: {v}\r\n")
    if h.content_encoding:
        out.append(f"Content-Encoding: {h.content_encoding}\r\n")
    if h.accept_ranges:
        out.append("Accept-Ranges: bytes\r\n")
    out.append("\r\n")
    return "".join(out)


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = status_line(STATUS_LINE_OVERRIDE.get(status, status)).decode("latin-1")
    return line


def server_line(tokens: str) -> str:
    line = _SERVER_LINES.get(tokens)
    if line is None:
        line = _SERVER_LINES[tokens] = f"Server: {product(tokens)}\r\n"
    return line


class _DONE:
    __slots__ = ("r",)

    def __init__(self, r: Request) -> None:
        self.r = r
