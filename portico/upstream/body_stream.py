"""``proxy_request_buffering off``: the request body goes to the upstream as
it arrives (nginx's request_body_no_buffering).

Invariants:
- Used only when nginx would: buffering off, no proxy_set_body,
  proxy_pass_request_body on, and either a Content-Length body or
  proxy_http_version 1.1 (a chunked body to an HTTP/1.0 upstream is
  buffered as usual).
- ``StreamBody`` replaces the request's ``RequestBody`` (same interface for
  the HTTP/1 connection: ``on_data``, ``on_complete``, ``on_error``) and
  hands every piece to its sink, the ``UpstreamRequest``; pieces that
  arrive before the upstream connection is ready wait in ``pending``
  (in memory, at most what the client sent meanwhile).
- A body of unknown length goes chunked (``Transfer-Encoding: chunked``
  via ``$proxy_internal_chunked``), ending with ``0\\r\\n\\r\\n``.
- client_max_body_size applies to chunked bodies as while buffering
  (413, nginx's log line); client_body_timeout keeps running while the
  body streams.
- Once any byte of the request went to an upstream, nginx does not try
  another one (``UpstreamRequest._next`` checks ``stream``).
"""
from __future__ import annotations

from typing import Any

from ..core import log as logmod
from ..http.proto.body import RequestBody


class StreamBody(RequestBody):
    __slots__ = ("sink", "pending", "chunked")

    def __init__(self, old: RequestBody, sink: Any, chunked: bool) -> None:
        super().__init__(old.r, old.conn)
        self.sink = sink
        self.chunked = chunked
        self.pending: list[bytes] = list(old.chunks)
        self.size = old.size
        self.complete = old.complete
        self.error = old.error
        self.requested = True

    @classmethod
    def install(cls, r: Any, sink: Any, chunked: bool) -> "StreamBody":
        old = r.body
        sb = cls(old, sink, chunked)
        r.body = sb
        sb.conn.expect_continue(r)
        if not sb.complete and not sb.error:
            sb.conn.body_waiting(True, r)
        return sb

    def take_pending(self) -> list[bytes]:
        p, self.pending = self.pending, []
        return p

    def frame(self, data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data

    def on_data(self, data: bytes) -> None:
        self.size += len(data)
        if self.discarding:
            return
        r = self.r
        limit = r.loc.core.client_max_body_size
        if limit and self.size > limit and r.content_length is None:
            r.log_error(logmod.ERROR, f"client intended to send too large chunked body: {self.size} bytes")
            self.discarding = True
            self.pending = []
            r.keepalive = False
            self.sink.body_failed(413)
            return
        self.conn.body_waiting(True, r)
        self.sink.body_data(data)

    def on_complete(self) -> None:
        self.complete = True
        self.conn.body_waiting(False, self.r)
        self.sink.body_done()

    def on_error(self, what: str) -> None:
        self.error = what
        self.sink.body_failed(0)

    def in_memory(self) -> bytes | None:
        return None

    def data(self) -> bytes:
        return b""


class StreamSink:
    """Mixin of ``UpstreamRequest``: the upstream side of a streamed body.
    Declares no state: uses ``stream``, ``body_paused``, ``conn``,
    ``request_sent``, ``finished``, ``header_done``, ``st`` and ``r``."""
    __slots__ = ()
    r: Any
    conn: Any
    stream: Any
    body_paused: bool
    request_sent: bool
    finished: bool
    header_done: bool
    st: Any
    action: str

    def _fail(self, status: int) -> None: ...

    def _abandon(self) -> None: ...

    def _arm(self, kind: str, seconds: float) -> None: ...

    def _io_error(self, exc: BaseException) -> None: ...

    conf: Any

    def stream_first(self) -> tuple[bytes, bool]:
        """What follows the request head on a new connection, and whether
        the body is complete with it."""
        sb = self.stream
        out = b"".join(sb.frame(p) for p in sb.take_pending() if p)
        if sb.complete:
            if sb.chunked:
                out += b"0\r\n\r\n"
            return out, True
        return out, False

    def body_data(self, data: bytes) -> None:
        if self.finished or not data:
            return
        conn = self.conn
        if conn is None or not self.request_sent:
            self.stream.pending.append(data)
            return
        piece = self.stream.frame(data)
        try:
            conn.write(piece)
        except OSError as e:
            self._io_error(e)
            return
        if self.st is not None:
            self.st.bytes_sent += len(piece)
        if conn.paused and not self.body_paused:
            # the upstream takes no more: stop reading the client meanwhile
            self.body_paused = True
            self.r.conn.transport.pause_reading()
            self._arm("send", self.conf.send_timeout)

    def body_writable(self) -> None:
        if self.body_paused:
            self.body_paused = False
            t = self.r.conn.transport
            if t is not None:
                t.resume_reading()

    def body_done(self) -> None:
        if self.finished:
            return
        conn = self.conn
        if conn is None or not self.request_sent:
            return  # _send sees ``complete``
        if self.stream.chunked:
            try:
                conn.write(b"0\r\n\r\n")
            except OSError as e:
                self._io_error(e)
                return
            if self.st is not None:
                self.st.bytes_sent += 5
        if not self.header_done:
            self.action = "reading response header from upstream"
            self._arm("read", self.conf.read_timeout)

    def body_failed(self, status: int) -> None:
        if self.finished:
            return
        r = self.r
        if status:
            self._fail(status)
            return
        r.log_error(logmod.INFO, "client prematurely closed connection")
        self._abandon()
        if not r.done:
            r.log_status = 400
            r.terminate()
