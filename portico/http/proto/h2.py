"""HTTP/2 connections (nginx's ngx_http_v2_module) over the ``h2`` package.

An ``H2Connection`` is the ``asyncio.Protocol`` of one connection: it feeds
bytes to an ``h2`` codec, turns each request into the protocol-neutral
``Request`` (with an ``H2Stream``, h2_stream.py, as its ``r.conn``) and runs
it through the same phases, filters and log as HTTP/1.

Invariants:
- A connection arrives by ``takeover`` from an H1Connection: on a plain
  listener whose default server has ``http2 on`` (or ``listen ... http2``)
  when the first bytes are the preface, or from TLS when ALPN chose "h2".
  The id, addresses, start time, stub_status state and the worker's
  registration move over unchanged (no new accept is counted).
- Admission is nginx's, not the codec's: past ``http2_max_concurrent_streams``
  requests in progress a new stream gets RST_STREAM REFUSED_STREAM (the
  HPACK block is still decoded, so the connection stays in sync); after our
  GOAWAY new streams are ignored; a client's GOAWAY is ignored (nginx).
- Windows: the connection's receive window is opened to 2^31-1 at once (as
  nginx); a stream's is ``http2_body_preread_size`` and is given back only
  as the request body is consumed (read or discarded), so an unread body
  never takes more than that.  Output honours the client's windows (h2_stream).
- Header limits are nginx's: a field longer than a
  ``large_client_header_buffers`` buffer, or a header list longer than all
  of them, is a connection error ENHANCE_YOUR_CALM; invalid names, values,
  pseudo-headers or connection-specific headers answer 400 on that stream.
- Protocol errors become GOAWAY with the codec's error code and a lingering
  close; they never raise out of a callback and never touch other connections.
- Timeouts are deadlines checked by the worker's sweep (``on_tick``):
  keepalive_timeout while no stream is open (then GOAWAY NO_ERROR),
  client_header_timeout while a frame is incomplete, and per stream
  client_body_timeout and send_timeout.  ``deadline`` is the earliest.
- ``graceful_close`` (worker QUIT, on every sweep while stopping) sends one
  GOAWAY with the last stream id, lets open streams finish, then closes.
"""
from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.stream import StreamClosedBy
from hyperframe.frame import GoAwayFrame, RstStreamFrame

from ...core import log as logmod
from ..modules.http2 import MAX_FRAME_SIZE, MAX_WINDOW
from ..request import Request
from .common import S_WAITING, S_WRITING, abandon, run_cleanups, set_state
from .h2_request import ConnError, make_request
from .h2_stream import (ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, NO_ERROR, PROTOCOL_ERROR,
                        REFUSED_STREAM, H2Stream)

if TYPE_CHECKING:
    from ...core.process.worker import Worker
    from .h1 import H1Connection

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                    validate_inbound_headers=False, normalize_inbound_headers=False,
                                    validate_outbound_headers=False, normalize_outbound_headers=False,
                                    split_outbound_cookies=False)
_ERR_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
              6: "FRAME_SIZE_ERROR", 9: "COMPRESSION_ERROR", 11: "ENHANCE_YOUR_CALM"}


class _Codec(h2.connection.H2Connection):
    """h2's connection state machine with nginx's stream admission and
    flow-control error scope."""

    owner: "H2Connection"

    @property  # type: ignore[override]
    def open_inbound_streams(self) -> int:
        # the owner admits streams (nginx counts requests in progress); the
        # parent's accessor still runs for its cleanup of closed streams
        h2.connection.H2Connection.open_inbound_streams.fget(self)  # type: ignore[attr-defined]
        return 0

    def _receive_headers_frame(self, frame: Any) -> Any:
        sid = frame.stream_id
        if sid not in self.streams and sid % 2 == 1 and sid > self.highest_inbound_stream_id:
            code = self.owner.admit(sid, "END_STREAM" in frame.flags)
            if code is not None:
                h2.connection._decode_headers(self.decoder, frame.data)  # keep HPACK in sync
                self.highest_inbound_stream_id = sid
                self._closed_streams[sid] = StreamClosedBy.SEND_RST_STREAM
                if code < 0:
                    return [], []  # after GOAWAY: ignored, as nginx skips it
                f = RstStreamFrame(sid)
                f.error_code = code
                return [f], []
            self.owner.hblock = len(frame.data)
        return super()._receive_headers_frame(frame)

    def _receive_data_frame(self, frame: Any) -> Any:
        st = self.streams.get(frame.stream_id)
        n = frame.flow_controlled_length
        if st is not None and not st.closed and n > st._inbound_window_manager.current_window_size:
            # nginx: "client violated flow control for stream": that stream
            # is reset, the connection lives on
            window = st._inbound_window_manager.current_window_size
            self._inbound_flow_control_window_manager.window_consumed(n)
            self.owner.stream_flow_error(frame.stream_id, n, window)
            frames = st.reset_stream(FLOW_CONTROL_ERROR)
            inc = self._inbound_flow_control_window_manager.process_bytes(n)
            if inc:
                from hyperframe.frame import WindowUpdateFrame
                wu = WindowUpdateFrame(0)
                wu.window_increment = inc
                frames.append(wu)
            return frames, []
        return super()._receive_data_frame(frame)

    def _receive_frame(self, frame: Any) -> Any:
        # h2's own version formats repr(frame) for a trace log on every
        # frame (about 5% of a small request's time); same logic without it
        try:
            frames, events = self._frame_dispatch_table[frame.__class__](frame)
        except h2.exceptions.StreamClosedError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = e.error_code
                self._prepare_for_sending([f])
                return e._events
            raise
        except h2.exceptions.StreamIDTooLowError as e:
            if self._stream_is_closed_by_reset(e.stream_id):
                f = RstStreamFrame(e.stream_id)
                f.error_code = 5  # STREAM_CLOSED
                self._prepare_for_sending([f])
                return []
            if self._stream_is_closed_by_end(e.stream_id):
                raise h2.exceptions.StreamClosedError(e.stream_id) from e
            raise
        self._prepare_for_sending(frames)
        return events

    def _receive_goaway_frame(self, frame: Any) -> Any:
        # nginx ignores a client's GOAWAY: streams in progress complete
        return [], []


class H2Connection(asyncio.Protocol):
    __slots__ = ("worker", "spec", "http", "transport", "h2", "id", "client_addr", "client_port",
                 "server_addr", "server_port", "family", "ssl", "ssl_object", "start_time",
                 "start_mono", "requests", "table", "srvconf", "srvloc", "h2conf", "streams",
                 "processing", "tpaused", "closing", "deadline", "timeout_kind", "state",
                 "idle_since", "goaway", "last_sid", "settings_ack", "hblock", "_lingering",
                 "_flush_pending", "_in_batch", "_conn_deadline", "listen_h2", "paused")

    def __init__(self, worker: "Worker", spec: Any) -> None:
        self.worker = worker
        self.spec = spec
        self.http = worker.cycle.http
        self.streams: dict[int, H2Stream] = {}
        self.processing = 0
        self.tpaused = False
        self.paused = False
        self.closing = False
        self.deadline = 0.0
        self.timeout_kind = ""
        self._conn_deadline = 0.0
        self.state = 0
        self.idle_since = 0.0
        self.goaway = False
        self.last_sid = 0
        self.settings_ack = False
        self.hblock = 0
        self._lingering = False
        self._flush_pending = False
        self._in_batch = False
        self.requests = 0
        self.ssl = False
        self.ssl_object: Any = None
        self.listen_h2 = bool(spec.opt.http2)

    # --- setting up ----------------------------------------------------------------------
    def _start(self) -> None:
        srv = self.table.default
        self.srvloc = srv.root.conf.core
        c = self.h2conf = srv.root.conf.http2
        codec = self.h2 = _Codec(_CONFIG)
        codec.owner = self
        s = h2.settings.SettingCodes
        codec.local_settings = h2.settings.Settings(client=False, initial_values={
            s.MAX_CONCURRENT_STREAMS: c.concurrent_streams,
            s.INITIAL_WINDOW_SIZE: c.preread_size,
            s.MAX_FRAME_SIZE: MAX_FRAME_SIZE,
            s.ENABLE_PUSH: 0,
        })
        codec.max_inbound_frame_size = MAX_FRAME_SIZE
        num, size = self.srvconf.large_client_header_buffers
        # a memory guard only: the exact nginx limits are checked after decoding
        codec.decoder.max_header_list_size = 2 * num * size + 65536
        codec.initiate_connection()
        codec.increment_flow_control_window(MAX_WINDOW - 65535)
        # writes are queued up to 64 KB before the transport says "pause"
        self.transport.set_write_buffer_limits(high=65536, low=16384)

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:  # pragma: no cover - takeover only
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self._lingering:
            return  # lingering close: read and drop
        self.worker.now = time.monotonic()
        self._in_batch = True
        try:
            try:
                events = self.h2.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                self._protocol_error(e)
                return
            for ev in events:
                if self.closing:
                    return
                handler = _DISPATCH.get(ev.__class__)
                if handler is not None:
                    handler(self, ev)
            if not self.closing:
                self._check_pending()
        except Exception as e:  # a bug: one alert line, the connection goes, never a traceback
            self.worker.cycle.log.log(logmod.ALERT, f"http2 internal error: {e!r}", self.id, self._ctx())
            self.abort()
            return
        finally:
            self._in_batch = False
        if not self.closing:
            self.flush()
            self._set_idle()

    def eof_received(self) -> bool | None:
        if self.processing and not self._lingering:
            self._log(logmod.INFO, "client prematurely closed connection")
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        for st in list(self.streams.values()):
            st.closing = True
            abandon(st.r, self.log_request)
        self.streams.clear()
        self.processing = 0
        self._set_state(0)
        self.worker.conn_closed(self)

    def pause_writing(self) -> None:
        self.tpaused = True

    def resume_writing(self) -> None:
        self.tpaused = False
        self._pump_all()

    # --- output ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Hand what the codec encoded to the transport."""
        self._flush_pending = False
        if self.closing:
            return
        data = self.h2.data_to_send()
        if data:
            self.transport.write(data)

    def flush_soon(self) -> None:
        if not self._in_batch and not self._flush_pending:
            self._flush_pending = True
            self.worker.loop.call_soon(self.flush)

    def _pump_all(self) -> None:
        for st in list(self.streams.values()):
            if self.tpaused or self.closing:
                break
            if st.outq:
                st.pump()
        if not self.closing:
            self.flush()

    def frame_size(self, r: Request | None) -> int:
        """DATA frame size: http2_chunk_size, within the client's maximum."""
        chunk = r.loc.http2.chunk_size if r is not None and r.loc is not None else 8192
        mx = self.h2.max_outbound_frame_size
        return chunk if chunk < mx else mx

    def ack(self, st: H2Stream, n: int) -> None:
        """Give ``n`` consumed body bytes back to the client's windows."""
        try:
            self.h2.acknowledge_received_data(n, st.sid)
        except Exception:
            pass  # the stream is gone: the codec keeps the connection window right
        self.flush_soon()

    def reset_stream(self, st: H2Stream, code: int) -> None:
        st.reset = True
        st.outq.clear()
        try:
            self.h2.reset_stream(st.sid, code)
        except Exception:
            pass  # already closed in the codec
        self.flush_soon()

    def send_goaway(self, code: int) -> None:
        """GOAWAY that leaves the codec usable (streams in progress finish):
        the frame is encoded here, after what the codec queued."""
        if self.goaway:
            return
        self.goaway = True
        f = GoAwayFrame(0)
        f.last_stream_id = self.last_sid
        f.error_code = code
        self.h2._data_to_send += f.serialize()
        self.flush_soon()

    # --- streams ----------------------------------------------------------------------------
    def admit(self, sid: int, end_stream: bool) -> int | None:
        """ngx_http_v2_state_headers: None to open ``sid``, an RST_STREAM
        code to refuse it, -1 to ignore it (after our GOAWAY)."""
        if self.goaway:
            return -1
        self.last_sid = sid
        if self.processing >= self.h2conf.concurrent_streams:
            self._log(logmod.INFO, f"concurrent streams exceeded {self.processing}")
            return REFUSED_STREAM
        if not self.settings_ack and not end_stream and self.h2conf.preread_size < 65535:
            self._log(logmod.INFO, "client sent stream with data before settings were acknowledged")
            return REFUSED_STREAM
        return None

    def stream_flow_error(self, sid: int, n: int, window: int) -> None:
        self._log(logmod.INFO, f"client violated flow control for stream {sid}: "
                               f"received DATA frame length {n}, available window {window}")
        st = self.streams.get(sid)
        if st is not None:
            st.reset = True
            st.skip_data = True
            self._client_gone(st)

    def stream_closed(self, st: H2Stream) -> None:
        """A stream's request is over (logged): forget it."""
        if self.streams.pop(st.sid, None) is None:
            return
        st.closing = True
        st.outq.clear()
        self.processing -= 1
        if self.processing == 0:
            self._set_state(S_WAITING)
            if self.goaway or self.worker.shutting_down:
                self.flush()
                self._linger()
                return
            self._set_idle()

    def log_request(self, r: Request) -> None:
        run_cleanups(r, r.cleanup)
        r.cleanup = []
        if r.log_status:
            # what the log says ($status reads hout first): a reset stream's
            # 499 even if a handler answered into it afterwards
            r.status = r.hout.status = r.log_status
        self.http.engine.log(r)
        run_cleanups(r, r.pool_cleanup)

    def _client_gone(self, st: H2Stream) -> None:
        """The client reset the stream (or broke its flow control): the
        request ends, logged 499 unless its response was already out."""
        st.in_closed = True
        st.outq.clear()
        r = st.r
        if r is None or r.done:
            self.stream_closed(st)
            return
        if r.eof_event is not None:
            r.eof_event()  # proxy: "client prematurely closed connection", 499
            if r.done:
                if st.sid in self.streams:
                    self.stream_closed(st)
                return
        if not r.log_status:
            r.log_status = 499  # whatever a body reader answers to the error below
        if r.body is not None and not r.body.complete:
            r.body.on_error("reset")
        if not r.done:
            r.done = True
            self.log_request(r)
        self.stream_closed(st)

    # --- events -------------------------------------------------------------------------------
    def _on_request(self, ev: h2.events.RequestReceived) -> None:
        sid = ev.stream_id
        self.requests += 1
        self.worker.cells[3] += 1  # requests
        st = H2Stream(self, sid)
        st.hblock = self.hblock
        self.streams[sid] = st
        self.processing += 1
        self._set_state(S_WRITING)
        self._conn_deadline = 0.0
        st.in_closed = ev.stream_ended is not None
        core = self.srvloc
        if (core.keepalive_timeout <= 0 or self.requests >= core.keepalive_requests
                or self.worker.now - self.start_mono > core.keepalive_time):
            self.send_goaway(NO_ERROR)
        try:
            r = make_request(self, st, ev.headers)
        except ConnError:
            return
        if r is None:
            return
        try:
            r.http.engine.start(r)
        except Exception as e:
            st.internal_error(r, e)

    def _on_data(self, ev: h2.events.DataReceived) -> None:
        st = self.streams.get(ev.stream_id)
        n = ev.flow_controlled_length
        r = st.r if st is not None else None
        if r is None or st.skip_data or r.body is None:
            if n:
                self.ack_conn(ev.stream_id, n)
            return
        data = ev.data
        body = r.body
        st.received += len(data)
        cl = r.content_length
        if cl is not None and st.received > cl:
            st.skip_data = True
            self.ack_conn(ev.stream_id, n)
            r.log_error(logmod.INFO, "client intended to send body data larger than declared")
            self._stream_bad(st, r, 400)
            return
        r.request_length += len(data)
        if data:
            body.on_data(data)
        if body.requested or body.discarding or r.done:
            if n:
                self.ack(st, n)
        else:
            st.unacked += n

    def ack_conn(self, sid: int, n: int) -> None:
        try:
            self.h2.acknowledge_received_data(n, sid)
        except Exception:
            pass

    def _on_end(self, ev: h2.events.StreamEnded) -> None:
        st = self.streams.get(ev.stream_id)
        if st is None:
            return
        st.in_closed = True
        r = st.r
        if r is None or r.body is None or st.skip_data or r.body.complete:
            return
        cl = r.content_length
        if cl is not None and st.received != cl:
            st.skip_data = True
            r.log_error(logmod.INFO, f"client prematurely closed stream: only {st.received} out of "
                                     f"{cl} bytes of request body received")
            self._stream_bad(st, r, 400)
            return
        if cl is None:
            r.content_length = st.received  # nginx: content_length_n = rb->rest
        r.body.on_complete()

    def _stream_bad(self, st: H2Stream, r: Request, status: int) -> None:
        if r.body is not None and not r.body.complete:
            r.body.on_error("bad")
        if r.done:
            return
        if r.header_sent:
            r.terminate()
        else:
            r.finalize(status)

    def _on_reset(self, ev: h2.events.StreamReset) -> None:
        st = self.streams.get(ev.stream_id)
        if st is None:
            return
        code = int(ev.error_code)
        sid = ev.stream_id
        if code == 8:
            msg = f"client canceled stream {sid}"
        elif code == REFUSED_STREAM:
            msg = f"client refused stream {sid}"
        elif code == 2:
            msg = f"client terminated stream {sid} due to internal error"
        else:
            msg = f"client terminated stream {sid} with status {code}"
        if st.r is not None:
            st.r.log_error(logmod.INFO, msg)
        else:
            self._log(logmod.INFO, msg)
        st.reset = True
        self._client_gone(st)

    def _on_window(self, ev: h2.events.WindowUpdated) -> None:
        if ev.stream_id == 0:
            self._pump_all()
            return
        st = self.streams.get(ev.stream_id)
        if st is not None and st.outq:
            st.pump()

    def _on_settings(self, ev: h2.events.RemoteSettingsChanged) -> None:
        if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
            self._pump_all()

    def _on_settings_ack(self, ev: Any) -> None:
        self.settings_ack = True

    # --- the request ----------------------------------------------------------------------------
    # --- errors, closing, timeouts -------------------------------------------------------------
    def _protocol_error(self, e: h2.exceptions.ProtocolError) -> None:
        code = int(getattr(e, "error_code", PROTOCOL_ERROR) or PROTOCOL_ERROR)
        self._log(logmod.INFO, f"client sent invalid HTTP/2 data ({e}), closing with "
                               f"{_ERR_NAMES.get(code, code)}")
        self._finalize_connection()

    def conn_error(self, code: int, reason: str) -> None:
        """ngx_http_v2_connection_error: GOAWAY with ``code``, then close."""
        self._log(logmod.INFO, reason)
        f = GoAwayFrame(0)
        f.last_stream_id = self.last_sid
        f.error_code = code
        self.goaway = True
        self.h2._data_to_send += f.serialize()
        self._finalize_connection()

    def _finalize_connection(self) -> None:
        # every stream ends (logged 499 as the client is gone), then a
        # lingering close lets the client read the GOAWAY
        for st in list(self.streams.values()):
            st.reset = True
            abandon(st.r, self.log_request)
            self.stream_closed(st)
        self.flush()
        self._linger()

    def _linger(self) -> None:
        if self.closing or self._lingering:
            return
        self._lingering = True
        core = self.srvloc
        try:
            if self.ssl or not hasattr(self.transport, "write_eof"):
                raise OSError
            self.transport.write_eof()
        except Exception:
            self.close()
            return
        self._conn_deadline = self.worker.now + core.lingering_timeout
        self.timeout_kind = "linger"
        self._recompute_deadline()

    def graceful_close(self) -> None:
        """Worker shutdown: GOAWAY once, close when no stream is left."""
        if self.closing:
            return
        if not self.goaway:
            self.send_goaway(NO_ERROR)
            self.flush()
        if not self.processing:
            self._linger()

    def close_idle(self) -> None:
        self.graceful_close()

    def park(self) -> None:
        self.idle_since = 0.0  # an HTTP/2 connection keeps its transport

    def close(self) -> None:
        if not self.closing:
            try:
                self.flush()
            except Exception:
                pass
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.abort()

    def _set_state(self, st: int) -> None:
        set_state(self, st)

    def _set_idle(self) -> None:
        """Arm the connection's own timer: idle or incomplete frame."""
        if self._lingering or self.closing:
            return
        if self.processing:
            self._conn_deadline = 0.0
        else:
            pending = len(self.h2.incoming_buffer._data) or self.h2.incoming_buffer._headers_buffer
            if pending:
                if self.timeout_kind != "header":
                    self._conn_deadline = self.worker.now + self.srvconf.client_header_timeout
                    self.timeout_kind = "header"
            else:
                self._conn_deadline = self.worker.now + self.srvloc.keepalive_timeout
                self.timeout_kind = "keepalive"
        self._recompute_deadline()

    def _recompute_deadline(self) -> None:
        d = self._conn_deadline
        for st in self.streams.values():
            if st.deadline and (not d or st.deadline < d):
                d = st.deadline
        self.deadline = d

    def on_tick(self, now: float) -> None:
        if self._conn_deadline and now >= self._conn_deadline:
            kind = self.timeout_kind
            self._conn_deadline = 0.0
            if kind == "keepalive":
                self.send_goaway(NO_ERROR)
                self.flush()
                self._linger()
            elif kind == "header":
                self._log(logmod.INFO, "client timed out (110: Connection timed out)")
                self._timeout_close()
            else:
                self.close()
        for st in list(self.streams.values()):
            if st.deadline and now >= st.deadline:
                kind, st.deadline, st.timeout_kind = st.timeout_kind, 0.0, ""
                r = st.r
                if r is None or r.done:
                    continue
                if kind == "body":
                    r.log_error(logmod.INFO, "client timed out (110: Connection timed out) while reading client request body")
                    r.status = 408
                    r.log_status = 408
                    r.terminate()
                elif kind == "send":
                    r.log_error(logmod.INFO, "client timed out (110: Connection timed out) while sending response to client")
                    self.reset_stream(st, PROTOCOL_ERROR)
                    r.done = True
                    self.log_request(r)
                    self.stream_closed(st)
        if not self.closing:
            self.flush()
            self._recompute_deadline()

    def _timeout_close(self) -> None:
        f = GoAwayFrame(0)
        f.last_stream_id = self.last_sid
        f.error_code = PROTOCOL_ERROR
        self.goaway = True
        self.h2._data_to_send += f.serialize()
        self._finalize_connection()

    def _check_pending(self) -> None:
        """Bound what the codec may buffer for one incomplete frame: a header
        block past nginx's limit is refused before it is all here."""
        ib = self.h2.incoming_buffer
        n = len(ib._data)
        hb = ib._headers_buffer
        if hb:
            n += sum(len(f.data) for f in hb)
        elif n < 65536 + 9:
            return
        num, size = self.srvconf.large_client_header_buffers
        if hb or (n >= 9 and ib._data[3] in (1, 5, 9)):  # HEADERS, PUSH_PROMISE, CONTINUATION
            if n > num * size + 65536:
                self.conn_error(ENHANCE_YOUR_CALM, "client sent too large header")
            return
        if n >= 9 and ib._data[3] == 0:  # DATA: at most the stream's window
            length = int.from_bytes(ib._data[0:3], "big")
            sid = int.from_bytes(ib._data[5:9], "big") & 0x7FFFFFFF
            st = self.h2.streams.get(sid)
            window = st._inbound_window_manager.current_window_size if st is not None else 0
            if length > max(window, self.h2conf.preread_size) + 256:
                self.conn_error(FLOW_CONTROL_ERROR, f"client violated flow control for stream {sid}: "
                                 f"received DATA frame length {length}, available window {window}")
            return
        if n > self.h2conf.recv_buffer_size + 65536:
            self.conn_error(ENHANCE_YOUR_CALM, "client sent too large frame")

    # --- logging ------------------------------------------------------------------------------------
    def _ctx(self) -> str:
        return f", client: {self.client_addr}, server: {self.spec.opt.text}"

    def _log(self, level: int, msg: str) -> None:
        log = self.worker.cycle.log
        if level <= log.max_level:
            log.log(level, f"{msg} while processing HTTP/2 connection", self.id, self._ctx())

    def stream_info(self, st: H2Stream, msg: str) -> None:
        self._log(logmod.INFO, msg)


_DISPATCH: dict[type, Any] = {
    h2.events.RequestReceived: H2Connection._on_request,
    h2.events.DataReceived: H2Connection._on_data,
    h2.events.StreamEnded: H2Connection._on_end,
    h2.events.StreamReset: H2Connection._on_reset,
    h2.events.WindowUpdated: H2Connection._on_window,
    h2.events.RemoteSettingsChanged: H2Connection._on_settings,
    h2.events.SettingsAcknowledged: H2Connection._on_settings_ack,
}


def h2c_enabled(h1: "H1Connection") -> bool:
    """ngx_http_wait_request_handler: the preface is looked for on a plain
    connection when its address's default server has ``http2 on`` or the
    listen socket has the ``http2`` parameter."""
    return bool(h1.spec.opt.http2 or h1.table.default.root.conf.http2.enable)


def takeover(h1: "H1Connection", data: bytes) -> H2Connection:
    """Turn the HTTP/1 connection ``h1`` (no request parsed yet) into HTTP/2
    and process ``data`` (bytes already read, starting with the preface)."""
    c = H2Connection(h1.worker, h1.spec)
    c.transport = h1.transport
    c.id = h1.id
    c.client_addr, c.client_port = h1.client_addr, h1.client_port
    c.server_addr, c.server_port = h1.server_addr, h1.server_port
    c.family = h1.family
    c.ssl = bool(h1.ssl)
    c.ssl_object = getattr(h1, "ssl_object", None)
    c.start_time, c.start_mono = h1.start_time, h1.start_mono
    c.table, c.srvconf = h1.table, h1.table.default.core
    # the stub_status gauge the h1 object held moves over with the connection
    c.state, h1.state = h1.state, 0
    h1.closing = True
    h1.parser = None
    h1.deadline = 0.0
    w = h1.worker
    if h1 in w.conns:
        w.conns.discard(h1)
        w.conns.add(c)
    if hasattr(c.transport, "set_protocol"):
        c.transport.set_protocol(c)
    if c.family != socket.AF_UNIX and not c.ssl:
        try:
            sock = c.transport.get_extra_info("socket")
            nodelay = 1 if c.table.default.root.conf.core.tcp_nodelay else 0
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, nodelay)
        except (OSError, AttributeError):
            pass
    c._start()
    c._set_state(S_WAITING)
    if data:
        c.data_received(data)
    else:
        c.flush()
        c._set_idle()
    return c
