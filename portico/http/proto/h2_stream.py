"""One HTTP/2 stream: what a Request uses as ``r.conn`` (the Stream interface
of request.py), and the output half of HTTP/2 (nginx's
ngx_http_v2_filter_module).

Invariants:
- A stream answers for one request.  Its connection facts (``id``,
  addresses, ``ssl``...) are copies taken when the stream opens, so that
  realip may change them for this request only (nginx's fake connection).
- Response headers leave as one HEADERS frame in nginx's order (``:status``,
  server, date, content-type, content-length, last-modified, location, then
  the header list); names are lower-case, hop-by-hop headers are never sent
  and there is no chunked framing (``r.chunked`` stays False).
- Body output waits in ``outq`` (bytes, ``FileBuf`` regions, then ``_END``)
  and leaves only as the peer's flow-control windows and the transport
  allow: a file region is read with ``os.pread`` just before its DATA frames
  are made, and at most ``_BURST`` bytes are encoded before the transport is
  written, so nothing is buffered beyond the windows.  ``paused`` is True
  while output waits; ``r.write_event`` is called when it drained.
- The last DATA frame carries END_STREAM, or the trailers do (a HEADERS
  frame); ``_END`` reaching the head of ``outq`` ends the request (log).
- ``limit_rate`` paces DATA as ngx_http_write_filter does over HTTP/1
  (h1_write): while ``rate_timer`` runs nothing of this stream is sent.
- Output after a reset is dropped; a stream never raises into its caller.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ...core import log as logmod
from ..request import FileBuf, Request
from ..response import STATUS_LINE_OVERRIDE, date_str, http_date, product
from .common import log_internal_error

if TYPE_CHECKING:
    from .h2 import H2Connection

#: bytes encoded into frames before the transport is written (and may pause us)
_BURST = 65536
#: response headers nginx's HTTP/2 filter never sends (connection-specific)
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
# error codes (RFC 9113 section 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
STREAM_CLOSED, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 5, 7, 8, 11


class _End:
    """The end of a response in ``outq``."""
    __slots__ = ()


_END = _End()
_STATUS: dict[int, bytes] = {}
_SERVER: dict[str, bytes] = {}


class H2Stream:
    __slots__ = ("h2c", "sid", "r", "worker", "id", "client_addr", "client_port", "server_addr",
                 "server_port", "family", "ssl", "ssl_object", "start_time", "start_mono", "spec",
                 "transport", "requests", "outq", "paused", "closing", "deadline", "timeout_kind",
                 "in_closed", "out_closed", "reset", "received", "unacked", "skip_data", "cookies",
                 "hblock", "proxy_protocol", "rate_timer")

    def __init__(self, h2c: "H2Connection", sid: int) -> None:
        self.h2c = h2c
        self.sid = sid
        self.r: Request | None = None
        self.worker = h2c.worker
        self.id = h2c.id
        self.client_addr, self.client_port = h2c.client_addr, h2c.client_port
        self.server_addr, self.server_port = h2c.server_addr, h2c.server_port
        self.family = h2c.family
        self.ssl = h2c.ssl
        self.ssl_object = h2c.ssl_object
        self.start_time = h2c.start_time
        self.start_mono = h2c.start_mono
        self.spec = h2c.spec
        self.transport = h2c.transport
        self.requests = h2c.requests
        self.proxy_protocol = None
        self.outq: list[Any] = []
        self.paused = False
        self.closing = False
        self.deadline = 0.0
        self.timeout_kind = ""
        self.in_closed = False  # the client ended its side (END_STREAM or reset)
        self.out_closed = False  # we sent END_STREAM (or reset)
        self.reset = False  # RST_STREAM sent or received
        self.received = 0  # request body bytes
        self.unacked = 0  # body bytes not yet given back to the client's window
        self.skip_data = False
        self.rate_timer: Any = None  # limit_rate: the pause before the next DATA

    # --- the Stream interface -----------------------------------------------------------
    def send_head(self, r: Request) -> None:
        if self.reset or self.out_closed:
            return
        h = r.hout
        status = h.status
        core = r.loc.core
        no_body = status < 200 or status == 204 or status == 304
        r.chunked = False
        st = _STATUS.get(status)
        if st is None:
            # 494-497 go out as 400, as over HTTP/1 (nginx's err_status)
            st = _STATUS[status] = str(STATUS_LINE_OVERRIDE.get(status, status)).encode()
        srv = _SERVER.get(core.server_tokens)
        if srv is None:
            srv = _SERVER[core.server_tokens] = product(core.server_tokens).encode()
        out: list[tuple[bytes, bytes]] = [(b":status", st), (b"server", srv), (b"date", date_str().encode())]
        enc = _enc
        if h.content_type and status != 304 and status != 204:  # ngx_http_header_filter drops it for 204
            ct = f"{h.content_type}; charset={h.charset}" if h.charset else h.content_type
            out.append((b"content-type", enc(ct)))
        if h.content_length is not None and not no_body:
            out.append((b"content-length", str(h.content_length).encode()))
        if h.last_modified is not None and (status == 200 or status == 206 or status == 304):
            out.append((b"last-modified", http_date(h.last_modified).encode()))
        if h.location is not None:
            loc = h.location
            if loc.startswith("/") and core.absolute_redirect:
                loc = r.redirect_url(loc)
            out.append((b"location", enc(loc)))
        if h.etag is not None:
            out.append((b"etag", enc(h.etag)))
        for k, v in h.headers:
            low = k.lower()
            if low in _HOP:
                continue
            out.append((enc(low), enc(v)))
        if h.content_encoding:
            out.append((b"content-encoding", enc(h.content_encoding)))
        if h.accept_ranges:
            out.append((b"accept-ranges", b"bytes"))
        if no_body:
            r.header_only = True
        r.init_rate()
        end = r.header_only
        h2c = self.h2c
        codec = h2c.h2
        before = len(codec._data_to_send)
        try:
            codec.send_headers(self.sid, out, end_stream=end)
        except Exception as e:  # the stream went away under us (e.g. reset in flight)
            self._lost(e)
            return
        r.bytes_sent += len(codec._data_to_send) - before
        if end:
            self.out_closed = True
        h2c.flush_soon()

    def send_body(self, r: Request, bufs: list[Any], last: bool) -> None:
        if r.done:
            return
        if not r.header_only and not self.reset:
            q = self.outq
            for b in bufs:
                if isinstance(b, FileBuf):
                    if b.size > 0:
                        r.body_bytes_sent += b.size
                        q.append(FileBuf(b.fd, b.offset, b.size))  # ours to consume
                elif len(b):
                    r.body_bytes_sent += len(b)
                    q.append(b)
        if last:
            self.outq.append(_END)
        self.pump()
        if not self.h2c._in_batch:
            self.h2c.flush()

    def request_done(self, r: Request) -> None:
        self._finish(r)

    def expect_continue(self, r: Request) -> None:
        """The body is read from now on: give the client its window back
        (there is no 100-continue over HTTP/2: the preread window replaces it)."""
        if self.unacked:
            self.h2c.ack(self, self.unacked)
            self.unacked = 0

    def body_waiting(self, waiting: bool, r: Request) -> None:
        if waiting:
            self.set_deadline(self.worker.now + r.loc.core.client_body_timeout, "body")
        elif self.timeout_kind == "body":
            self.deadline = 0.0
            self.timeout_kind = ""

    def request_terminated(self, r: Request) -> None:
        """Close without (more) response: reset the stream unless the client did."""
        r.done = True
        self._cancel_rate()
        self.h2c.log_request(r)
        if not self.reset:
            self.h2c.reset_stream(self, PROTOCOL_ERROR if r.status == 408 else INTERNAL_ERROR)
        self.h2c.stream_closed(self)

    def internal_error(self, r: Request, e: BaseException) -> None:
        """A bug in a handler: one log line with where, 500 if nothing was
        sent yet, else the stream is reset.  Never a hung stream."""
        log_internal_error(r, e)
        if r.done:
            return
        if r.header_sent:
            r.terminate()
            return
        try:
            r.special_response(500)
        except Exception:
            r.terminate()

    def set_deadline(self, when: float, kind: str) -> None:
        self.deadline = when
        self.timeout_kind = kind
        h2c = self.h2c
        if not h2c.deadline or when < h2c.deadline:
            h2c.deadline = when

    # --- output -----------------------------------------------------------------------------
    def pump(self) -> None:
        """Turn ``outq`` into frames while the windows and the transport allow."""
        q = self.outq
        h2c = self.h2c
        codec = h2c.h2
        sid = self.sid
        r = self.r
        progressed = False
        if self.rate_timer is not None:
            return  # limit_rate: output resumes when the timer fires
        while q and not h2c.tpaused and not h2c.closing and not self.reset:
            item = q[0]
            if item is _END:
                q.pop(0)
                if not self.out_closed:
                    trailers = r.hout.trailers if r is not None and not r.header_only else None
                    try:
                        if trailers:
                            codec.send_headers(sid, [(_enc(k.lower()), _enc(v)) for k, v in trailers],
                                               end_stream=True)
                        else:
                            codec.send_data(sid, b"", end_stream=True)
                    except Exception as e:
                        self._lost(e)
                        return
                    self.out_closed = True
                if r is not None:
                    self._finish(r)
                return
            window = codec.local_flow_control_window(sid)
            if window <= 0:
                break
            rate = r.limit_rate if r is not None else 0
            if rate:
                # ngx_http_write_filter's limit: what the rate allows since
                # the request began, past limit_rate_after (as h1_write)
                assert r is not None
                allowed = rate * (int(time.time()) - int(r.start_time) + 1) - (r.rate_sent - r.limit_rate_after)
                if allowed <= 0:
                    self._rate_wait((-allowed * 1000 // rate + 1) / 1000)
                    break
                window = min(window, allowed)
            frame = h2c.frame_size(r)
            if isinstance(item, FileBuf):
                n = min(item.size, window, _BURST)
                try:
                    data = os.pread(item.fd, n, item.offset)
                except OSError as e:
                    self._file_error(e)
                    return
                if not data:
                    self._file_error(None)
                    return
                item.offset += len(data)
                item.size -= len(data)
                done = item.size <= 0
            else:
                n = len(item)
                if n > window or n > _BURST:
                    n = min(window, _BURST)
                    data = item[:n]
                    q[0] = item[n:]
                    done = False
                else:
                    data = item
                    done = True
            if done:
                q.pop(0)
            # END_STREAM rides on the last DATA frame unless trailers follow
            fin = done and bool(q) and q[0] is _END and not (r is not None and r.hout.trailers)
            if not self._frames(data, frame, fin):
                return
            progressed = True
            if r is not None:
                r.bytes_sent += len(data) + 9 * ((len(data) + frame - 1) // frame)
                if rate:
                    sent, after = r.rate_sent, r.limit_rate_after
                    r.rate_sent = sent + len(data)
                    # the pause those bytes are worth past limit_rate_after
                    delay = (max(0, sent + len(data) - after) - max(0, sent - after)) * 1000 // rate
                    if delay > 0 and not fin:
                        self._rate_wait(delay / 1000)
                        h2c.flush()
                        break
            if fin:
                q.pop(0)
                self.out_closed = True
                if r is not None:
                    self._finish(r)
                return
            if len(codec._data_to_send) >= _BURST:
                h2c.flush()  # may pause writing: the loop then stops
        self.paused = bool(q) and not self.reset
        if self.paused:
            if progressed or not self.timeout_kind:
                if r is not None and not r.done:
                    self.set_deadline(self.worker.now + r.loc.core.send_timeout, "send")
        elif self.timeout_kind == "send":
            self.deadline = 0.0
            self.timeout_kind = ""
        if not self.paused and r is not None and r.write_event is not None and not r.done:
            r.write_event()  # e.g. proxy: read the upstream again

    def _cancel_rate(self) -> None:
        if self.rate_timer is not None:
            self.rate_timer.cancel()
            self.rate_timer = None

    def _rate_wait(self, seconds: float) -> None:
        self.rate_timer = self.worker.loop.call_later(seconds, self._rate_resume)

    def _rate_resume(self) -> None:
        self.rate_timer = None
        if not self.reset and not self.h2c.closing:
            self.pump()
            self.h2c.flush()

    def _frames(self, data: Any, frame: int, fin: bool) -> bool:
        codec = self.h2c.h2
        sid = self.sid
        try:
            n = len(data)
            if n <= frame:
                codec.send_data(sid, data, end_stream=fin)
            else:
                mv = memoryview(data)
                for off in range(0, n, frame):
                    codec.send_data(sid, mv[off:off + frame], end_stream=fin and off + frame >= n)
        except Exception as e:
            self._lost(e)
            return False
        return True

    def _file_error(self, e: OSError | None) -> None:
        # the file shrank or failed under us: nginx logs and ends the stream
        r = self.r
        if r is not None:
            r.log_error(logmod.ALERT if e is None else logmod.CRIT,
                        "file was truncated while sending" if e is None else f"pread() failed ({e.errno}: {e.strerror})")
        self.outq.clear()
        if r is not None and not r.done:
            r.terminate()

    def _lost(self, e: BaseException) -> None:
        """The codec refused our output: the stream was reset meanwhile."""
        self.reset = True
        self.outq.clear()
        self._cancel_rate()
        r = self.r
        if r is not None and not r.done:
            r.done = True
            if not r.log_status:
                r.log_status = 499 if not r.header_sent else r.status
            self.h2c.log_request(r)
        self.h2c.stream_closed(self)

    def _finish(self, r: Request) -> None:
        """The response is out: log, and close our side of the stream."""
        if r.done:
            return
        r.done = True
        r.completed = True
        self._cancel_rate()
        self.deadline = 0.0
        self.timeout_kind = ""
        self.h2c.log_request(r)
        if not self.in_closed and not self.reset:
            # nginx: the response is complete, the rest of the body is not wanted
            self.h2c.reset_stream(self, NO_ERROR)
        self.h2c.stream_closed(self)


def _enc(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape")
