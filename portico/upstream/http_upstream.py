"""One proxied request: peer choice, connect, send, parse the response, pass
it to the client, retry (ngx_http_upstream.c + the proxy module's
create_request / process_header).

Invariants:
- ``UpstreamRequest.finished`` becomes True exactly once, by ``_complete``
  (response fully read), ``_fail`` (an error answer or a closed client
  connection) or ``_cleanup`` (the client request ended first); after it no
  upstream event touches the request, and the upstream connection is
  either parked in the keepalive pool or closed.
- The connection is detached (``conn.owner = None``) before it is closed,
  pooled or replaced, so a late event of an old connection is ignored.
- The upstream connection goes back to the pool as soon as the response is
  complete, before the last buffer is handed to the client (buffering on);
  bytes the client cannot take yet wait in the client writer: in memory up
  to proxy_buffers, then as regions of an unlinked temp file
  (``FileBuf``), so a slow client holds no upstream connection.  With
  buffering off, reading the upstream pauses while the client socket is
  full (``r.write_event`` resumes it).
- Error-log lines are nginx's: the message, `` while <action>``, and the
  request context with ``upstream: "http://peer/uri"`` (``r.upstream_log``).
- The content handler and the choice of what to proxy to (an upstream, a
  literal address, a name through the resolver) are in ``target.py``.
- proxy_fast.py answers the common case without this class and hands
  anything else over to it (``adopt``); this class stays the reference:
  the fast path only replays headers it processed (``learn``).
"""
from __future__ import annotations

import errno as errno_mod
import os
import socket
from typing import TYPE_CHECKING, Any

import httptools

from ..core import log as logmod
from ..http.modules import proxy as px
from ..http.modules.upstream import UpState
from ..http.request import Request
from .connection import UpstreamConn, connect
from . import ssl_client
from .body_stream import StreamBody, StreamSink
from .downstream import ToClient
from .keepalive import Pool
from .peers import Peer, PeerState
from .resp_headers import process_headers, x_accel_redirect
from .tunnel import Tunnel

if TYPE_CHECKING:
    from .target import Target

CONNECTING = "connecting to upstream"
SENDING = "sending request to upstream"
READING_HEADER = "reading response header from upstream"
READING = "reading upstream"
_NON_IDEMPOTENT = frozenset({"POST", "LOCK", "PATCH"})
_STATUS_FOR = {px.FT_TIMEOUT: 504, px.FT_HTTP_504: 504, px.FT_HTTP_500: 500, px.FT_HTTP_503: 503,
               px.FT_HTTP_403: 403, px.FT_HTTP_404: 404, px.FT_HTTP_429: 429}


def tries_for(target_tries: int, conf: px.ProxyLocConf) -> int:
    """A request's tries: the target's, at most proxy_next_upstream_tries."""
    if conf.next_upstream_tries and target_tries > conf.next_upstream_tries:
        return conf.next_upstream_tries
    return target_tries


def upstream_log(schema: str, name: str, unix: bool, uri: str) -> str:
    """The ``upstream: "..."`` part of error-log lines (``r.upstream_log``)."""
    sep = ":" if unix else ""
    return f', upstream: "{schema}{name}{sep}{uri}"'


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing this response."""


class UpstreamRequest(ToClient, StreamSink):
    __slots__ = ("stream", "body_paused", "switching", "raw_body", "htail", "xa_redirect", "r", "conf", "target", "vars", "dynamic", "loop", "state", "conn", "peer", "cached",
                 "request_sent", "action", "st", "states", "t0", "t_start", "head", "body", "finished",
                 "timer", "deadline", "tkind", "parser", "status", "reason", "headers", "hbytes",
                 "header_done", "resp_cl", "chunked_resp", "length", "buffering", "tmp_fd", "tmp_size",
                 "up_paused", "mem_limit", "pool", "uri", "method", "tail", "learn")

    def __init__(self, r: Request, conf: px.ProxyLocConf, target: "Target", vars_: px.ProxyVars,
                 dynamic: bool) -> None:
        self.r = r
        self.conf = conf
        self.target = target
        self.vars = vars_
        self.dynamic = dynamic
        self.loop = r.conn.worker.loop
        self.state = PeerState(tries_for(target.tries, conf))
        self.conn: UpstreamConn | None = None
        self.peer: Peer | None = None
        self.cached = False
        self.request_sent = False
        self.action = CONNECTING
        self.st: UpState | None = None
        # one list per request: after an internal redirect the attempts of
        # the new location follow a None (nginx's zeroed state: " : ")
        prev = r.ctx.get("upstream_states")
        if prev:
            prev.append(None)
            self.states: list[UpState | None] = prev
        else:
            self.states = []
            r.ctx["upstream_states"] = self.states
        self.t0 = 0.0
        self.t_start = self.loop.time()
        self.head = b""
        self.body: Any = None
        self.finished = False
        self.timer: Any = None
        self.deadline = 0.0
        self.tkind = ""
        self.parser: Any = None
        self.buffering = conf.buffering
        self.tmp_fd = -1
        self.tmp_size = 0
        self.up_paused = False
        self.mem_limit = conf.buffers[0] * conf.buffers[1]
        ub = target.ub
        self.pool: Pool | None = None
        if ub is not None and ub.keepalive is not None:
            if ub.pool is None:
                ub.pool = Pool(ub.keepalive, self.loop)
            self.pool = ub.pool
        self.uri = ""
        self.method = r.method
        self.stream: StreamBody | None = None
        self.body_paused = False
        self.learn: Any = None  # (ProxyPlan, first bytes): see adopt
        self._reset_response()
        r.cleanup.append(self._cleanup)
        if not conf.ignore_client_abort:
            r.eof_event = self._client_eof

    def _reset_response(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[str, str]] = []
        self.hbytes = 0
        self.header_done = False
        self.resp_cl: int | None = None
        self.tail: bytes | None = None  # see on_body
        self.chunked_resp = False
        self.length = 0
        self.switching = 0  # 1: 101 with the client's Upgrade (tunnel), 2: 101 without it
        self.raw_body = False  # the body after a 101 without Upgrade: bytes until close
        self.htail = b""
        self.xa_redirect: str | None = None

    # --- start ------------------------------------------------------------------------
    def body_read(self, body: Any) -> None:
        r = self.r
        if r.done:
            return
        if body.error:
            if body.error == "eof":
                r.log_error(logmod.INFO, "client prematurely closed connection")
                self.finished = True
                r.log_status = 400
                r.terminate()
            return
        self.start_with(body)

    def start(self, body: Any) -> None:
        self.start_with(body)

    def start_with(self, body: Any, peer: Peer | None = None) -> None:
        """Build the request and connect (to ``peer`` when the fast path
        chose it already, with ``self.state``)."""
        r = self.r
        conf = self.conf
        if conf.body is not None:
            data = conf.body.eval(r).encode("utf-8", "surrogateescape")
            r.ctx["proxy_body_length"] = len(data)
            self.body = data
        else:
            if body is not None:
                r.ctx["proxy_body_length"] = body.size
            else:
                r.ctx["proxy_body_length"] = r.content_length if r.content_length is not None else -1
            if body is not None and conf.pass_request_body:
                self.body = body.in_memory()
                if self.body is None:
                    self.body = body  # in a temp file: read when sending
        self.uri = px.upstream_uri(r, conf, self.vars, self.dynamic)
        self.head = self._create_request()
        if peer is None:
            self._connect()
        else:
            self.connect_to(peer)

    def start_streaming(self) -> None:
        """proxy_request_buffering off: connect now, send the body as it comes."""
        r = self.r
        chunked = r.content_length is None
        self.stream = StreamBody.install(r, self, chunked)
        r.ctx["proxy_body_length"] = -1 if chunked else r.content_length
        if chunked:
            r.ctx["proxy_chunked"] = True
        self.uri = px.upstream_uri(r, self.conf, self.vars, self.dynamic)
        self.head = self._create_request()
        self._connect()

    def _create_request(self) -> bytes:
        r = self.r
        conf = self.conf
        method = self.method = conf.method.eval(r) if conf.method is not None else r.method
        return (f"{method} {self.uri} HTTP/{conf.http_version}\r\n"
                + px.request_headers(r, conf)).encode("utf-8", "surrogateescape")

    # --- connecting -------------------------------------------------------------------
    def _log(self, level: int, msg: str) -> None:
        self.r.log_error(level, f"{msg} while {self.action}")

    def _set_upstream_log(self, name: str, unix: bool) -> None:
        self.r.upstream_log = upstream_log(self.vars.schema, name, unix, self.uri)

    def _connect(self) -> None:
        r = self.r
        self.action = CONNECTING
        self._reset_response()
        peer = self.target.balancer.get(self.state, r)
        if peer is None:
            st = UpState(self.target.name)
            self.states.append(st)
            self.st = st
            st.response_time = 0.0
            self._set_upstream_log(self.target.name, False)
            self._log(logmod.ERROR, "no live upstreams")
            self._next(px.FT_NOLIVE)
            return
        self.connect_to(peer)

    def connect_to(self, peer: Peer) -> None:
        """Use ``peer`` (chosen by the balancer for ``self.state``): a
        keepalive connection to it, else a new one."""
        self.peer = peer
        st = self.st = UpState(peer.name)
        self.states.append(st)
        self.t0 = self.loop.time()
        self._set_upstream_log(peer.name, peer.family == socket.AF_UNIX)
        if self.pool is not None:
            tls = self.vars.schema == "https://"
            c = self.pool.get(("tls:" + peer.name) if tls else peer.name)
            if c is not None:
                self.cached = True
                c.owner = self
                self.conn = c
                self.up_connected(c)
                return
        self.cached = False
        conf = self.conf
        if self.vars.schema == "https://" and conf.ssl_ctx is not None:
            self.conn = connect(self.loop, peer, self, conf.connect_timeout, conf.ssl_ctx,
                                ssl_client.server_name(self.r, conf, self.vars))
        else:
            self.conn = connect(self.loop, peer, self, conf.connect_timeout)

    def adopt(self, state: PeerState, peer: Peer, conn: UpstreamConn, cached: bool, connect_time: float | None,
              t0: float, uri: str, head: bytes, learn: tuple[Any, bytes] | None) -> None:
        """Take over an exchange proxy_fast.py began at ``t0``: ``peer``
        chosen for ``state``, ``conn`` to it from the pool (``cached``) or
        connecting; once connected (``connect_time`` known) ``head`` was
        written on it.  ``learn``: (plan, the response's first bytes); the
        plan is shown the processed header (``plan.learn``) so that it can
        replay the same header bytes itself next time."""
        self.state = state
        self.peer = peer
        st = self.st = UpState(peer.name)
        self.states.append(st)
        self.t0 = self.t_start = t0
        self.uri = uri
        self.head = head
        self._set_upstream_log(peer.name, peer.family == socket.AF_UNIX)
        self.cached = cached
        self.conn = conn
        conn.owner = self
        if connect_time is None:
            return  # up_connected sends the request
        st.connect_time = connect_time
        self.learn = learn
        self.action = SENDING
        self.parser = httptools.HttpResponseParser(self)
        self._sent(len(head), True)

    def up_connected(self, conn: UpstreamConn) -> None:
        if self.finished:
            conn.close()
            return
        st = self.st
        if st is not None:
            st.connect_time = self.loop.time() - self.t0
        self.conn = conn
        conn.requests += 1
        self._send()

    def up_connect_failed(self, en: int, text: str, immediate: bool) -> None:
        if self.finished:
            return
        self.conn = None
        if immediate and self.peer is not None:
            self._log(logmod.ERROR, f"connect() to {self.peer.name} failed ({en}: {text})")
        else:
            self._log(logmod.ERROR, f"connect() failed ({en}: {text})")
        self._next(px.FT_ERROR)

    def up_ssl_failed(self, exc: BaseException) -> None:
        """The TLS handshake failed (ngx_ssl_handshake / ngx_ssl_verify errors)."""
        if self.finished:
            return
        self.conn = None
        self.action = ssl_client.HANDSHAKING
        name = ssl_client.server_name(self.r, self.conf, self.vars)
        self._log(logmod.ERROR, ssl_client.handshake_error(exc, name))
        self._next(px.FT_ERROR)

    def up_connect_timeout(self) -> None:
        if self.finished:
            return
        self.conn = None
        self._log(logmod.ERROR, "upstream timed out (110: Connection timed out)")
        self._next(px.FT_TIMEOUT)

    # --- sending ----------------------------------------------------------------------
    def _send(self) -> None:
        conn = self.conn
        assert conn is not None
        self.action = SENDING
        self.parser = httptools.HttpResponseParser(self)
        body = self.body
        whole = True
        try:
            if self.stream is not None:
                rest, whole = self.stream_first()
                conn.write(self.head + rest)
                sent = len(self.head) + len(rest)
            elif body is None:
                conn.write(self.head)
                sent = len(self.head)
            elif isinstance(body, (bytes, bytearray)):
                conn.write(self.head + body if len(body) < 65536 else self.head)
                if len(body) >= 65536:
                    conn.write(body)
                sent = len(self.head) + len(body)
            else:
                conn.write(self.head)
                sent = len(self.head) + self._send_file_body(conn, body)
        except OSError as e:
            self._io_error(e)
            return
        self._sent(sent, whole)

    def _sent(self, sent: int, whole: bool) -> None:
        """The request (or its first part, ``whole`` False) is written."""
        conn = self.conn
        assert conn is not None
        if self.st is not None:
            self.st.bytes_sent = sent
        self.request_sent = True
        if conn.paused:
            self._arm("send", self.conf.send_timeout)
        elif not whole:
            pass  # the rest of the body streams in (client_body_timeout runs meanwhile)
        else:
            self.action = READING_HEADER
            self._arm("read", self.conf.read_timeout)

    def _send_file_body(self, conn: UpstreamConn, body: Any) -> int:
        f = body.file
        f.flush()
        fd = f.fileno()
        off = 0
        while True:
            chunk = os.pread(fd, 65536, off)
            if not chunk:
                return off
            conn.write(chunk)
            off += len(chunk)

    def up_writable(self) -> None:
        if self.finished:
            return
        if self.body_paused:
            self.body_writable()
            if self.stream is not None and not self.stream.complete:
                self.tkind = ""
                return
        if self.action == SENDING:
            self.action = READING_HEADER
            self._arm("read", self.conf.read_timeout)

    # --- timers -----------------------------------------------------------------------
    def _stop_timer(self) -> None:
        # a pending timer would keep this request (and its whole graph) alive
        # until it fires: cancel it the moment the request is finished
        self.tkind = ""
        t, self.timer = self.timer, None
        if t is not None:
            t.cancel()

    def _arm(self, kind: str, seconds: float) -> None:
        self.tkind = kind
        self.deadline = self.loop.time() + seconds
        if self.timer is None:
            self.timer = self.loop.call_later(seconds, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.finished or not self.tkind:
            return
        left = self.deadline - self.loop.time()
        if left > 0.0005:
            self.timer = self.loop.call_later(left, self._on_timer)
            return
        self._log(logmod.ERROR, "upstream timed out (110: Connection timed out)")
        if not self.header_done:
            self._drop_conn()
            self._next(px.FT_TIMEOUT)
        else:
            self._fail(504)

    def expire(self) -> None:
        """The deadline of an adopted exchange passed (proxy_fast's sweep)."""
        t, self.timer = self.timer, None
        if t is not None:
            t.cancel()
        self.deadline = self.loop.time()
        self._on_timer()

    # --- receiving ---------------------------------------------------------------------
    def up_data(self, data: bytes) -> None:
        if self.finished:
            return
        if self.tkind == "read":
            self.deadline = self.loop.time() + self.conf.read_timeout
        st = self.st
        if st is not None:
            st.bytes_received += len(data)
        if self.raw_body:
            self.length += len(data)
            self._to_client(data)
            return
        if self.action == SENDING:
            self.action = READING_HEADER
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__ or e.__cause__
            if isinstance(cause, _Stop):
                if self.switching:
                    self._switched(data)
                return
            raise
        except httptools.HttpParserError as e:
            if self.finished:
                return
            self._invalid(e)
            return
        if not self.header_done:
            self.htail = data[-3:]

    def _invalid(self, e: Exception) -> None:
        if self.header_done:
            self._log(logmod.ERROR, "upstream sent invalid chunked response")
            self._fail(502)
            return
        if not self.status:
            self._log(logmod.ERROR, "upstream sent no valid HTTP/1.0 header")
        else:
            self._log(logmod.ERROR, "upstream sent invalid header")
        self._drop_conn()
        self._next(px.FT_INVALID_HEADER)

    # httptools callbacks
    def on_status(self, reason: bytes) -> None:
        self.reason += reason
        self.status = 1

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.header_done:  # a trailer of a chunked response
            self.r.ctx.setdefault("upstream_trailers", []).append(
                (name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))
            return
        self.hbytes += len(name) + len(value) + 4
        if self.hbytes > self.conf.buffer_size:
            self._log(logmod.ERROR, "upstream sent too big header")
            self._drop_conn()
            self._next(px.FT_INVALID_HEADER)
            raise _Stop()
        self.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.status = status
        self.header_done = True
        st = self.st
        if st is not None:
            st.status = status
            st.header_time = self.loop.time() - self.t0
        conf = self.conf
        flag = px.NEXT_ERRORS.get(status)
        if flag is not None:
            mask = flag
            if self.request_sent and self.r.method in _NON_IDEMPOTENT:
                mask |= px.FT_NON_IDEMPOTENT
            timeout = conf.next_upstream_timeout
            if (self.state.tries > 1 and (conf.next_upstream & mask) == mask and self.stream is None
                    and not (timeout and self.loop.time() - self.t_start >= timeout)):
                self._drop_conn()
                self._next(flag)
                raise _Stop()
        r = self.r
        if conf.intercept_errors and status >= 300 and status in r.loc.core.error_pages:
            self._drop_conn()
            self._free_peer(True)
            self._finish_state()
            self.finished = True
            self._stop_timer()
            self.r.ctx["upstream_headers"] = self.headers
            r.finalize(status)
            raise _Stop()
        if status == 101:
            self._switch()
            raise _Stop()
        process_headers(self, status)
        if self.xa_redirect is not None:
            self._x_accel_redirect()
            raise _Stop()
        if r.done:
            self._abandon()
            raise _Stop()
        if self.learn is not None:
            plan, first = self.learn
            self.learn = None
            plan.learn(self, first)
        r.send_header()
        self.action = READING
        if self.method == "HEAD":
            # a response to HEAD has no body whatever its headers say
            self._complete(self.parser.should_keep_alive())
            raise _Stop()

    def _x_accel_redirect(self) -> None:
        """ngx_http_upstream_finalize_request(NGX_DECLINED), then the redirect."""
        # only an empty body leaves the connection reusable at this point
        self._release(self.resp_cl == 0 and not self.chunked_resp and self.parser.should_keep_alive())
        r = self.r
        r.write_event = None
        r.eof_event = None
        if not r.done:
            x_accel_redirect(self)

    def _switch(self) -> None:
        """A 101: tunnel when the client asked for an Upgrade (nginx's
        u->upgrade), else a response whose body lasts until the upstream closes."""
        r = self.r
        process_headers(self, 101)
        self.switching = 1 if "upgrade" in r.hin and r.version.startswith("HTTP/1") else 2
        if self.switching == 1:
            r.keepalive = False
            r.limit_rate = 0
            r.limit_rate_set = True
        r.send_header()
        if self.switching == 2:
            r.header_only = r.method == "HEAD"  # the writer takes a 1xx for bodiless

    def _switched(self, data: bytes) -> None:
        """After the parser stopped at a 101: hand what followed its header on."""
        buf = self.htail + data
        i = buf.find(b"\r\n\r\n")
        j = buf.find(b"\n\n")
        end = i + 4 if i >= 0 and (j < 0 or i <= j) else (j + 2 if j >= 0 else len(buf))
        rest = buf[end:]
        r = self.r
        self.action = READING
        if self.switching == 2 or r.done:
            self.raw_body = True
            self.resp_cl = None
            self.chunked_resp = False
            if rest:
                self.length += len(rest)
                self._to_client(rest)
            return
        # the 101 header must be on the client's socket before the tunnel starts
        r.send([], False)
        self.finished = True
        self._stop_timer()
        conn, self.conn = self.conn, None
        r.write_event = None
        r.eof_event = None
        if conn is None or r.done:
            return
        Tunnel(r, self, conn).start(rest)

    def on_body(self, data: bytes) -> None:
        self.length += len(data)
        if self.length == self.resp_cl and self.tmp_fd < 0 and not self.r.conn.paused:
            # The last bytes of a Content-Length body, which _to_client
            # would pass straight on: they go with the end of the response
            # (on_message_complete follows at once), one pass through the
            # body filters instead of two.  (Whatever else _to_client comes
            # to do with bytes, e.g. a cache writer, must see these too.)
            self.tail = data
            return
        self._to_client(data)

    def on_message_complete(self) -> None:
        if self.finished:
            raise _Stop()
        self._complete(self.parser.should_keep_alive())
        raise _Stop()

    # --- the upstream connection ends -----------------------------------------------------
    def up_eof(self) -> None:
        if self.finished:
            return
        if not self.header_done:
            self._log(logmod.ERROR, "upstream prematurely closed connection")
            self._drop_conn()
            self._next(px.FT_ERROR)
            return
        if self.resp_cl is None and not self.chunked_resp:
            self._complete(False)  # the body ends with the connection
            return
        self._log(logmod.ERROR, "upstream prematurely closed connection")
        self._fail(502)

    def up_lost(self, exc: Exception | None) -> None:
        if self.finished:
            return
        self.conn = None
        if exc is None:
            self.up_eof()
            return
        self._io_error(exc)

    def _io_error(self, exc: BaseException) -> None:
        en = getattr(exc, "errno", None) or errno_mod.ECONNRESET
        call = "writev()" if self.action == SENDING else "recv()"
        self._log(logmod.ERROR, f"{call} failed ({en}: {os.strerror(en)})")
        self._drop_conn()
        if not self.header_done:
            self._next(px.FT_ERROR)
        else:
            self._fail(502)

    # --- outcomes --------------------------------------------------------------------------
    def _drop_conn(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort() if self.header_done else conn.close()

    def _free_peer(self, ok: bool) -> None:
        peer, self.peer = self.peer, None
        if peer is not None:
            bal = self.target.balancer
            bal.free(self.state, peer, ok)
            if not ok and bal.failed_upstream_disabled(peer):
                self._log(logmod.WARN, "upstream server temporarily disabled")

    def _finish_state(self) -> None:
        st = self.st
        if st is not None:
            st.response_time = self.loop.time() - self.t0
            st.length = self.length

    def _next(self, ft: int) -> None:
        """ngx_http_upstream_next."""
        r = self.r
        if self.peer is not None:
            self._free_peer(ft in (px.FT_HTTP_403, px.FT_HTTP_404))
        if self.cached and ft == px.FT_ERROR:
            self.state.tries += 1  # a stale keepalive connection does not count
        status = _STATUS_FOR.get(ft, 502)
        self._finish_state()
        st = self.st
        if st is not None:
            st.status = status
        if r.done:
            self._fail(499)
            return
        if self.request_sent and r.method in _NON_IDEMPOTENT:
            ft |= px.FT_NON_IDEMPOTENT
        timeout = self.conf.next_upstream_timeout
        if (self.state.tries == 0 or (self.conf.next_upstream & ft) != ft
                or (self.request_sent and self.stream is not None)
                or (timeout and self.loop.time() - self.t_start >= timeout)):
            self._fail(status)
            return
        self._drop_conn()
        self.request_sent = False
        self._connect()

    def _fail(self, status: int) -> None:
        """ngx_http_upstream_finalize_request with an error status."""
        if self.finished:
            return
        self.finished = True
        self._stop_timer()
        self._drop_conn()
        self._free_peer(True)
        if self.st is not None and self.st.response_time < 0:
            self._finish_state()
        r = self.r
        if r.done:
            return
        r.write_event = None
        if r.header_sent:
            r.keepalive = False
            r.terminate()
        else:
            r.finalize(status)

    def _release(self, keepalive: bool) -> None:
        """The upstream is done with: timer, state and peer settled, the
        connection parked in the keepalive pool when ``keepalive`` allows
        and the pool takes it, else closed."""
        self.finished = True
        self._stop_timer()
        self._finish_state()
        self._free_peer(True)
        conn, self.conn = self.conn, None
        if conn is not None:
            if not (keepalive and self.pool is not None and not conn.closed and self.pool.put(conn)):
                conn.close()

    def _complete(self, keepalive: bool) -> None:
        """The whole response was read: release the upstream, end the response."""
        if self.finished:
            return
        self._release(keepalive)
        r = self.r
        if r.done:
            return
        r.write_event = None
        tail = self.tail
        if tail is not None:
            self.tail = None
            r.send([tail], True)
        else:
            r.send(None, True)

    def _abandon(self) -> None:
        self.finished = True
        self._stop_timer()
        self._drop_conn()
        self._free_peer(True)

    def _client_eof(self) -> None:
        """The client closed its side before the response was complete:
        nginx (proxy_ignore_client_abort off) ends the request with 499."""
        r = self.r
        r.eof_event = None
        if self.finished or r.done:
            return
        self._log(logmod.INFO, "client prematurely closed connection, so upstream connection is closed too")
        self._abandon()
        self._finish_state()
        r.log_status = 499
        r.keepalive = False
        r.terminate()

    def _cleanup(self) -> None:
        """The client request ended (sent, or the client went away)."""
        if self.finished:
            return
        self.r.log_error(logmod.INFO, "client closed prematurely connection, so upstream connection is closed too")
        self.finished = True
        self._stop_timer()
        self._finish_state()
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()
        self._free_peer(True)
