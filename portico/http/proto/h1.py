"""HTTP/1.x connections: an ``asyncio.Protocol`` over httptools.

Invariants:
- Requests on one connection are answered strictly in order.  The parser
  may run ahead (pipelining): later requests wait in ``self.queue`` with
  their headers and bodies buffered; reading pauses while more than
  ``_MAX_QUEUED`` wait.
- Output is the H1Writer mixin's (h1_write.py): one ordered queue, write
  coalescing, sendfile.
- An idle keep-alive connection keeps its parser but no last request
  (``_shed``), and is parked by the worker (its transport and parser
  released, the fd kept) after a short idle time; ``_resumed`` brings it
  back unchanged.  A kept parser is replaced at a message boundary when the
  next method is one llhttp does not know (see data_received).
- A packet that llhttp parsed into exactly one whole bodiless GET or HEAD,
  with nothing after it, is kept with what on_headers_complete made of it
  (``_WHOLE``, checked against the server conf): the same bytes at a
  message boundary later make the same request without the parser (the
  parser, at a boundary, is in the same state either way).  Refused
  requests, pipelined packets and bodies are never kept.
- Timeouts are deadlines checked by the worker's sweep (``on_tick``), so
  the hot path only stores a float.
- A connection never raises out of a callback: every error becomes a status
  and a log line, or a close.
"""
from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import httptools

from ...core import log as logmod
from ..core_module import browser_of
from ..request import Request
from ..uri import BadRequest, normalise_host, parse_target
from .body import RequestBody
from .common import (S_READING, S_WAITING, S_WRITING, abandon, duplicate_header, log_internal_error,
                     run_cleanups, set_state)
from .h1_write import H1Writer

if TYPE_CHECKING:
    from ...core.process.worker import Worker

_MAX_QUEUED = 8
_METHOD_RE = re.compile(rb"[A-Z_-]+")
_METHOD_STR = {m: m.decode() for m in (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH")}
_VERSION_STR = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_LLHTTP_METHODS = frozenset(m.encode() for m in (
    "GET HEAD POST PUT DELETE OPTIONS TRACE PATCH COPY LOCK MKCOL MOVE PROPFIND PROPPATCH SEARCH "
    "UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE "
    "UNSUBSCRIBE PURGE MKCALENDAR LINK UNLINK SOURCE QUERY "
    "CONNECT").split())
#: above this many live connections in a worker, idle ones park immediately
PARK_NOW_ABOVE = 1000
_monotonic = time.monotonic


class _HeaderSet(NamedTuple):
    """One set of request header lines, decoded and checked once
    (``_headers_in``); shared read-only by the requests that send it."""
    sc: Any  # the server conf whose limits and rules applied
    headers: list[tuple[str, str]]
    hin: dict[str, str]
    total: int  # bytes of the header lines, as nginx counts them
    exact: bool  # Request.hin_exact
    te: str | None  # Transfer-Encoding
    cl: Any  # Content-Length: an int, or the text when it is not digits
    host: Any  # the normalised Host, the BadRequest it gave, or None
    plain: bool  # no conditional or Range header (Request.plain_get)
    browser: int  # Request.browser: keepalive_disable's flags of the User-Agent


#: raw header lines -> their _HeaderSet (see on_headers_complete)
_HEADERS: dict[tuple[tuple[bytes, bytes], ...], _HeaderSet] = {}


class _Whole(NamedTuple):
    """What parsing one whole bodiless request gave: the arguments of
    ``H1Connection._enqueue`` (after ``sc``), all a function of the bytes
    and the server conf."""
    sc: Any
    method: str
    version: str
    ver: str
    raw: bytes
    target: Any
    hs: _HeaderSet
    host: Any
    hdr_bytes: int
    keepalive: bool


#: the bytes of a packet that held exactly one whole bodiless GET or HEAD
#: (keep-alive clients repeat theirs) -> what llhttp and on_headers_complete
#: made of them; such a packet is answered without feeding the parser
_WHOLE: dict[bytes, _Whole] = {}
_WHOLE_MAX = 2048  # longer packets are not kept


class _TooLarge(Exception):
    """A request nginx refuses (status + error-log reason).  Raised inside
    parser callbacks, where httptools wraps it in HttpParserCallbackError;
    data_received unwraps it from the exception's context."""

    def __init__(self, status: int, reason: str) -> None:
        self.status = status
        self.reason = reason


class H1Connection(H1Writer, asyncio.Protocol):
    __slots__ = ("worker", "spec", "http", "transport", "parser", "id", "client_addr", "client_port",
                 "server_addr", "server_port", "family", "ssl", "start_time", "requests", "queue",
                 "current", "outq", "paused", "closing", "deadline", "timeout_kind", "state",
                 "table", "srvconf", "_url", "_req", "_dupfd",
                 "_sending", "_sock_fd", "_lingering", "_wbuf", "_line_max", "_head_max",
                 "start_mono", "_raw", "_in_headers", "_pending", "_feeding", "idle_since",
                 "_resume", "_parked", "_method", "_rate_timer", "ssl_object", "plain_on_ssl",
                 "_preface", "_deferred", "_srv_for", "_keepable", "_whole", "_begun")

    def __init__(self, worker: "Worker", spec: Any, resume: Any = None) -> None:
        self._resume = resume  # a worker.Parked when this is a parked connection coming back
        self._method: str | None = None  # the real method when llhttp saw GET instead
        self._keepable = False  # the packet being parsed may go to _WHOLE
        self._whole: _Whole | None = None  # what its one request gave
        self._begun = 0  # messages begun in the packet being parsed
        self._parked = False
        self.idle_since = 0.0
        self.worker = worker
        self.spec = spec
        self.http = worker.cycle.http
        self.ssl = False  # True (and ssl_object set) once a TLS handshake is done (tls.py)
        self.ssl_object: Any = None
        self.plain_on_ssl = False  # plain HTTP arrived on an https port: 497 (tls.py)
        self._preface = b""  # the start of an HTTP/2 preface split across packets
        # lists, not deques: an idle connection keeps 56 bytes, not 760
        self.queue: list[Request] = []
        self.current: Request | None = None
        self.outq: list[Any] = []
        self.paused = False
        self.closing = False
        self.deadline = 0.0
        self.timeout_kind = ""
        self.state = 0
        self.requests = 0
        self._url: list[bytes] = []
        self._req: Request | None = None
        self._dupfd = -1
        self._sending = False
        self._rate_timer: Any = None
        self._sock_fd = -1
        self._lingering = False
        self._wbuf: list[Any] = []
        self._deferred = False  # queued by _flush_soon (core/deferred.py)
        # (Host value, table.find's answer) of the last request: keep-alive
        # clients repeat it, and a cached header set gives the same object
        self._srv_for: tuple[Any, Any] = (None, None)
        self._raw: list[tuple[bytes, bytes]] = []
        self._in_headers = False
        self._pending = 0
        self._feeding = False

    # --- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        w = self.worker
        sock = transport.get_extra_info("socket")
        self.family = sock.family
        self._sock_fd = sock.fileno()
        p = self._resume
        if p is not None:
            self._resume = None
            self._resumed(transport, p)
            return
        self.id = w.next_conn_id()
        self.start_time = time.time()
        self.start_mono = w.now
        if self.family == socket.AF_UNIX:
            self.client_addr, self.client_port = "unix:", 0
            self.server_addr, self.server_port = self.spec.opt.host, 0
        else:
            peer = transport.get_extra_info("peername")
            self.client_addr, self.client_port = peer[0], peer[1]
            if len(self.spec.tables) > 1 or self.spec.opt.wildcard:
                local = transport.get_extra_info("sockname")
                self.server_addr, self.server_port = local[0], local[1]
            else:
                self.server_addr, self.server_port = self.spec.opt.host, self.spec.opt.port
        self._bind_table(transport)
        self.parser = None  # made on first data (see data_received)
        w.conn_opened(self)
        self._set_state(S_READING)
        self.deadline = self.worker.now + self.srvconf.client_header_timeout
        self.timeout_kind = "header"

    def _bind_table(self, transport: Any) -> None:
        """The server table of our local address, and socket options."""
        tables = self.spec.tables
        self.table = tables.get(self.server_addr) if len(tables) > 1 else None
        if self.table is None:
            self.table = tables[""]
        self.srvconf = sc = self.table.default.core  # type: ignore[union-attr]
        # large_client_header_buffers: a line's and a whole head's limits
        num, size = sc.large_client_header_buffers
        self._line_max, self._head_max = size, num * size
        if not self.table.default.root.conf.core.tcp_nodelay and self.family != socket.AF_UNIX:
            # uvloop turns TCP_NODELAY on for every TCP connection
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        # 0/0: pause/resume_writing then say exactly "buffer drained"
        transport.set_write_buffer_limits(0, 0)

    def _resumed(self, transport: Any, p: Any) -> None:
        """A parked connection is back (data or EOF is waiting): restore it.
        Counters were never released, so it is not counted as a new accept."""
        w = self.worker
        self.id, self.requests = p.conn_id, p.requests
        self.start_time, self.start_mono = p.start_time, p.start_mono
        self.client_addr, self.client_port = p.client_addr, p.client_port
        self.server_addr, self.server_port = p.server_addr, p.server_port
        self._bind_table(transport)
        self.parser = None
        self._raw = self._url = _NOTHING  # type: ignore[assignment]
        self.state = S_WAITING  # as counted while parked
        self.deadline = p.deadline
        self.timeout_kind = "keepalive"
        self.idle_since = w.now
        w.resumed(self)
        if w.shutting_down:
            self.close_idle()

    def park(self) -> None:
        """Give this idle keep-alive connection's transport back (see Worker.park)."""
        if (self.state != S_WAITING or self._in_headers or self.outq or self._wbuf or self.closing
                or self.worker.shutting_down
                or self._lingering or self._dupfd >= 0 or self.ssl or self.queue or self.current):
            self.idle_since = 0.0
            return
        if self.worker.park(self):
            self._parked = True
            self.closing = True
            self.transport.abort()

    def _new_parser(self) -> Any:
        # A parser costs ~0.2 us to make and ~0.7 KB to keep, so an idle
        # keep-alive connection drops it and makes a new one on next data.
        p = httptools.HttpRequestParser(self)
        # nginx accepts any byte but NUL, CR and LF in header values, and
        # bare LF line ends; llhttp needs these leniencies for that (NUL is
        # refused in _headers_in).
        p.set_dangerous_leniencies(lenient_headers=True, lenient_optional_cr_before_lf=True,
                                   lenient_version=True)
        return p

    def connection_lost(self, exc: Exception | None) -> None:
        self.parser = None  # breaks the parser <-> protocol cycle at once
        self.closing = True
        if self._parked:
            self.transport = None  # no cycle: freed now, not at the next GC
            return  # the connection lives on as a parked fd
        self._drop_dup()
        for r in ([self.current] if self.current else []) + list(self.queue):
            r.keepalive = False
            abandon(r, self._log)
        self.current = None
        self.queue.clear()
        self._cleanup_out()
        self._set_state(0)
        self.worker.conn_closed(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.worker.now = _monotonic()
        if self._lingering:
            return  # lingering close: read and drop
        parser = self.parser
        at_boundary = not self._in_headers and self._req is None
        if (parser is not None and at_boundary and len(data) <= _WHOLE_MAX
                and data[-4:] == b"\r\n\r\n" and (data[:4] == b"GET " or data[:5] == b"HEAD ")):
            whole = _WHOLE.get(data)
            if whole is not None and whole.sc is self.srvconf:
                # llhttp parsed these very bytes into one request before:
                # the same request, without the parser and its callbacks
                self.idle_since = 0.0
                self.requests += 1
                self._enqueue(*whole[1:])
                self._req = None  # (on_message_complete)
                self._after_feed()
                return
            self._keepable = True  # on_headers_complete may describe it
            self._begun = 0
        if parser is None or (data[:4] != b"GET " and at_boundary):
            # not a GET on a kept parser: see what this message needs first
            fed = self._at_boundary(data)
            if fed is None:
                self._keepable = False
                return
            parser, data = fed
        self._feeding = True
        try:
            parser.feed_data(data)
            whole = self._whole
            if whole is not None and self._begun == 1 and self._req is None:
                # one request, whole, and nothing after it: keep what it gave
                if len(_WHOLE) >= 256:
                    _WHOLE.clear()
                _WHOLE[data] = whole
        except _TooLarge as e:
            self._early_error(e.status, e.reason)
            return
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__ or e.__cause__
            if isinstance(cause, _TooLarge):
                self._early_error(cause.status, cause.reason)
            elif self.current is not None and cause is not None:
                self.internal_error(self.current, cause)  # e.g. a body reader's callback
            else:
                self._early_error(500, f"internal error in request parser: {cause!r}")
            return
        except httptools.HttpParserUpgrade as e:
            # Upgrade requests are handled as ordinary requests until a
            # module (proxy) takes the tunnel over.  llhttp stops after such a
            # request: what follows it is either the tunnel's first bytes or,
            # if the answer is not 101, the next request, so it is kept on the
            # request (the tunnel forwards it, _finish parses it) and the next
            # data gets a fresh parser.
            self.parser = None
            last = self.queue[-1] if self.queue else self.current
            rest = data[e.args[0]:] if e.args and isinstance(e.args[0], int) else b""
            if last is not None and rest:
                last.ctx["upgrade_preread"] = rest
        except httptools.HttpParserError as e:
            if "Data after `Connection: close`" not in str(e):
                self._parse_error(e)
                return
            # nginx ignores what follows a request that closes the connection
        finally:
            self._feeding = False
            self._keepable = False
            self._whole = None
        self._after_feed(data)

    def _after_feed(self, data: bytes = b"") -> None:
        """What follows the parsing of a packet (``data``: its length
        counts while a header block is incomplete)."""
        if self._in_headers:
            # A header block still incomplete after this packet.  An idle
            # connection is now reading (a request that arrives whole goes
            # from waiting to writing directly: no gauge moves for nothing).
            if self.state == S_WAITING:
                self._set_state(S_READING)
                self.deadline = self.worker.now + self.srvconf.client_header_timeout
                self.timeout_kind = "header"
            # Bound the memory the parser may buffer for it (exact 414/494
            # checks are done when the block completes).
            self._pending += len(data)
            if self._pending > self._head_max + 65536:
                if self._raw:
                    self._early_error(494, "client sent too long header line")
                else:
                    self._early_error(414, "client sent too long URI")
                return
        if self.current is None and self.queue:
            self._next_request()
        if self._wbuf and not self._deferred:
            self._flush_soon()
        if self.state == S_WAITING and self._raw is not _NOTHING:
            # idle, and _finish did not shed (it was called while feeding)
            self._shed()
            if len(self.worker.conns) > PARK_NOW_ABOVE and not self.transport.get_write_buffer_size():
                self.park()
        if len(self.queue) > _MAX_QUEUED and not self.closing:
            self.transport.pause_reading()

    def _at_boundary(self, data: bytes) -> tuple[Any, bytes] | None:
        """The parser for a message that does not start with ``GET `` on a
        kept parser, and the bytes to feed it; None when the data went
        elsewhere (prior-knowledge HTTP/2, HTTP/0.9) or waits for more."""
        parser = self.parser
        if parser is not None:
            # At a message boundary a kept parser serves any method llhttp
            # knows; for one it does not, start afresh (below).
            sp = data.find(b" ", 0, 33)
            if sp > 0 and data[:sp] not in _LLHTTP_METHODS:
                parser = self.parser = None
            else:
                return parser, data
        if self.requests == 0 and (data[:1] == b"P" or self._preface) and not self.ssl:
            # prior-knowledge HTTP/2 (ngx_http_wait_request_handler); a
            # preface split across packets is held until it is whole
            from . import h2
            if self._preface:
                data, self._preface = self._preface + data, b""
            if h2.PREFACE.startswith(data[:24]) and h2.h2c_enabled(self):
                if len(data) < 24:
                    self._preface = data
                    return None
                h2.takeover(self, data)
                return None
        parser = self.parser = self._new_parser()
        # A fresh parser starts at a message boundary: a method llhttp does
        # not know (nginx takes any [A-Z_-]+) is parsed as GET and restored
        # in on_headers_complete.
        sp = data.find(b" ", 0, 33)
        if sp > 0 and data[:sp] not in _LLHTTP_METHODS and _METHOD_RE.fullmatch(data[:sp]):
            self._method = data[:sp].decode()
            data = b"GET" + data[sp:]
        if data.startswith(b"GET ") and self.requests == 0:
            eol = data.find(b"\n")
            if eol > 0 and b" " not in data[4:eol].rstrip(b"\r"):
                self._http09(data[4:eol].rstrip(b"\r"))
                return None
        return parser, data

    def eof_received(self) -> bool | None:
        if self.current is None and not self.queue:
            self.close()
            return None
        # half-close: finish the responses, then close
        cur = self.current
        if cur is not None and cur.eof_event is not None:
            cur.eof_event()  # e.g. proxy: nginx's "client closed prematurely connection"
            return True
        if cur is not None and cur.body is not None and not cur.body.complete:
            cur.body.on_error("eof")
        return True

    def pause_writing(self) -> None:
        self.paused = True
        if self.current is not None and self.timeout_kind != "send":
            self.deadline = self.worker.now + self.current.loc.core.send_timeout
            self.timeout_kind = "send"

    def resume_writing(self) -> None:
        self.paused = False
        self._writable_again()

    def _writable_again(self) -> None:
        if self.timeout_kind == "send":
            self.deadline = 0.0
            self.timeout_kind = ""
        self._pump()
        r = self.current
        if r is not None and r.write_event is not None and not self.paused:
            r.write_event()  # e.g. proxy: resume reading the upstream

    # --- httptools callbacks ---------------------------------------------------------
    def on_message_begin(self) -> None:
        self._begun += 1
        self.idle_since = 0.0
        self._url = []
        self._raw = []
        self._in_headers = True
        self._pending = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def _headers_in(self, raw: tuple[tuple[bytes, bytes], ...]) -> _HeaderSet:
        """Decode the raw header lines once, with nginx's per-line limits and
        checks.  The total limit includes the URI and is checked by the
        caller."""
        sc = self.srvconf
        size = sc.large_client_header_buffers[1]
        total = 0
        headers: list[tuple[str, str]] = []
        hin: dict[str, str] = {}
        exact = True
        drop_underscores = not sc.underscores_in_headers and sc.ignore_invalid_headers
        for name, value in raw:
            n = len(name) + len(value) + 4
            total += n
            if n > size:
                raise _TooLarge(494, "client sent too long header line")
            if drop_underscores and b"_" in name:
                continue
            if b"\x00" in value:
                raise _TooLarge(400, "client sent invalid header line")
            # One decoding for every byte string from the wire (utf-8 with
            # surrogateescape): any byte round-trips to logs, files, headers.
            # Header names repeat across requests: decode each spelling once.
            kl = _NAMES.get(name)
            if kl is None:
                k = name.decode("utf-8", "surrogateescape")
                low = k.lower()
                kl = (k, low, "_" in low)
                if len(_NAMES) < 1024:
                    _NAMES[name] = kl
            k, low, underscore = kl
            v = value.decode("utf-8", "surrogateescape")
            headers.append((k, v))
            if underscore:
                exact = False
            if low not in hin:
                hin[low] = v
            elif low == "host" or low == "content-length":
                raise _TooLarge(400, duplicate_header(headers, k, v, low))
            else:
                exact = False
        # what on_headers_complete checks, decided once per header set;
        # errors are raised there, in nginx's order
        host: Any = hin.get("host")
        if host is not None:
            try:
                host = normalise_host(host.encode("utf-8", "surrogateescape"))
            except BadRequest as e:
                host = e.with_traceback(None)  # kept in the cache: no frames with it
        cl: Any = hin.get("content-length")
        if cl is not None and cl.isascii() and cl.isdigit():  # int() takes other digits too
            cl = int(cl)
        plain = not ("range" in hin or "if-modified-since" in hin or "if-none-match" in hin
                     or "if-match" in hin or "if-unmodified-since" in hin)
        return _HeaderSet(sc, headers, hin, total, exact, hin.get("transfer-encoding"), cl, host, plain,
                          browser_of(hin.get("user-agent")))

    def _http09(self, raw: bytes) -> None:
        """``GET /uri`` with no version: HTTP/0.9 as nginx serves it (the
        body only, no status line or headers, then close)."""
        self.parser = None
        self.requests += 1
        try:
            target = parse_target(raw, self.srvconf.merge_slashes)
        except BadRequest as e:
            self._early_error(e.status, e.reason)
            return
        r = Request(self, self.http, "GET", target.raw_uri, target.uri, target.args, "HTTP/0.9",
                    [], {}, "")
        r.request_line = f"GET {target.raw_uri}"
        r.request_length = len(raw) + 5
        r.server = self.table.default
        r.keepalive = False
        self.queue.append(r)
        self.transport.pause_reading()
        self._next_request()
        if self._wbuf:
            self._flush()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        p = self.parser
        mb = p.get_method()
        method = _METHOD_STR.get(mb) or mb.decode("latin-1")
        if self._method is not None:
            method, self._method = self._method, None
        elif method == "CONNECT":
            raise _TooLarge(405, "client sent CONNECT method")  # nginx: 405, then close
        ver = p.get_http_version()
        version = _VERSION_STR.get(ver) or "HTTP/" + ver
        if ver[0] != "1" and ver != "0.9":
            if ver[0] == "0":
                raise _TooLarge(400, "client sent invalid request")
            raise _TooLarge(505, "client sent unsupported HTTP version")
        url = self._url
        raw = url[0] if len(url) == 1 else b"".join(url)
        self.requests += 1
        sc = self.srvconf
        if len(raw) > self._line_max:
            raise _TooLarge(414, "client sent too long URI")
        # Keep-alive clients send the same header lines request after
        # request: their decoding is looked up by the raw lines.
        raw_h = tuple(self._raw)
        ent = _HEADERS.get(raw_h)
        if ent is None or ent.sc is not sc:
            ent = self._headers_in(raw_h)
            if len(_HEADERS) >= 256:
                _HEADERS.clear()
            _HEADERS[raw_h] = ent
        hdr_bytes = ent.total + len(raw)
        if hdr_bytes > self._head_max:
            raise _TooLarge(494, "client sent too long header line")
        # shared by every request with these lines: read-only (Request.hin)
        te, cl, host = ent.te, ent.cl, ent.host
        try:
            target = parse_target(raw, sc.merge_slashes)
        except BadRequest as e:
            raise _TooLarge(e.status, e.reason) from None
        if host.__class__ is BadRequest:
            # nginx checks the Host line as it reads it, whatever the request line says
            raise _TooLarge(400, host.reason)
        if target.host is not None:
            host = target.host  # absolute-form: the line's host wins (RFC 9112)
        elif host is None and ver == "1.1":
            raise _TooLarge(400, 'client sent HTTP/1.1 request without "Host" header')
        if te is not None and te.strip().lower() != "chunked":
            raise _TooLarge(501, f'client sent unknown "Transfer-Encoding": "{te}"')
        keepalive = p.should_keep_alive()
        if cl is not None and cl.__class__ is not int:
            raise _TooLarge(400, f'client sent invalid "Content-Length" header: "Content-Length: {cl}"')
        if self._keepable and cl is None and te is None and self._begun == 1:
            self._whole = _Whole(sc, method, version, ver, raw, target, ent, host, hdr_bytes, keepalive)
        self._enqueue(method, version, ver, raw, target, ent, host, hdr_bytes, keepalive)

    def _enqueue(self, method: str, version: str, ver: str, raw: bytes, target: Any, hs: _HeaderSet, host: Any,
                 hdr_bytes: int, keepalive: bool) -> None:
        """The request a checked header block makes, queued (from
        on_headers_complete, or from _WHOLE for a packet seen before)."""
        if host:
            if host is self._srv_for[0]:
                srv, m = self._srv_for[1]  # the same Host value as the last request
            else:
                srv, m = found = self.table.find(host)
                self._srv_for = (host, found)
        else:
            srv, m = self.table.default, None
        r = Request(self, self.http, method, target.raw_uri, target.uri, target.args, version,
                    hs.headers, hs.hin, host or "")
        # $request is the line as sent: an absolute-form target keeps its authority
        line_target = target.raw_uri if target.host is None else raw.decode("utf-8", "surrogateescape")
        r.request_line = f"{method} {line_target} {version}"
        r.request_length = hdr_bytes + len(method) + 14
        r.hin_exact = hs.exact
        if hs.browser:
            r.browser = hs.browser
        r.server = srv
        if m is not None:
            r.captures = m
            r.named = {k: (v or "") for k, v in m.groupdict().items()}
        r.keepalive = keepalive
        cl = hs.cl
        r.content_length = cl
        if hs.te is not None or (cl or 0) > 0:
            r.body = RequestBody(r, self)
        elif hs.plain and (method == "GET" or method == "HEAD") and ver != "0.9":
            r.plain_get = True  # write_static takes its answer
        if self.queue or self.current is not None:
            r.pipelined = True
        self.queue.append(r)
        self._req = r

    def on_body(self, body: bytes) -> None:
        r = self._req
        if r is not None and r.body is not None:
            r.body.on_data(body)

    def on_message_complete(self) -> None:
        r = self._req
        if r is not None and r.body is not None:
            r.body.on_complete()
        self._req = None

    # --- request sequencing ----------------------------------------------------------
    def _next_request(self) -> None:
        if self.closing or self.paused:
            return
        r = self.queue.pop(0)
        self.current = r
        cells = self.worker.cells
        old = self.state
        if old != S_WRITING:  # set_state(S_WRITING), inline (once per request)
            if old:
                cells[old + 3] -= 1
            cells[S_WRITING + 3] += 1
            self.state = S_WRITING
        self.deadline = 0.0
        self.timeout_kind = ""
        cells[3] += 1  # requests
        try:
            r.http.engine.start(r)
        except Exception as e:
            self.internal_error(r, e)

    def internal_error(self, r: Request, e: BaseException) -> None:
        """A bug in a handler: log it (one line, with where), answer 500 if
        nothing was sent yet, else close.  Never a hung request."""
        log_internal_error(r, e)
        if r.done:
            return
        if r.header_sent:
            r.keepalive = False
            r.terminate()
            return
        try:
            r.keepalive = False
            r.special_response(500)
        except Exception:
            r.terminate()

    def _finish(self, r: Request) -> None:
        """Response fully handed to the transport: log, then keep-alive or close."""
        r.done = True
        r.completed = True
        self._log(r)
        self.current = None
        if self.closing:
            return
        if not r.keepalive or r.close_after:
            self._close_after(r)
            return
        w = self.worker
        if w.shutting_down and not self.queue:
            self.close_idle()
            return
        if r.ctx:
            pre = r.ctx.pop("upgrade_preread", None)
            if pre is not None:
                # no tunnel was made: the bytes after the Upgrade request are
                # the next request(s)
                self.data_received(pre)
                if self.closing or self.current is not None:
                    return
        if self.queue:
            if len(self.queue) <= _MAX_QUEUED:
                self.transport.resume_reading()
            self._next_request()
            return
        core = r.loc.core
        if self._in_headers:
            # the next request has begun arriving: we are reading, not idle
            self._set_state(S_READING)
            self.deadline = w.now + self.srvconf.client_header_timeout
            self.timeout_kind = "header"
            return
        self._set_state(S_WAITING)
        now = w.now
        self.deadline = now + core.keepalive_timeout
        self.timeout_kind = "keepalive"
        self.idle_since = now
        if not self._feeding:
            self._shed()
            if len(w.conns) > PARK_NOW_ABOVE and not self.transport.get_write_buffer_size():
                # many connections: park idle ones at once, so transports
                # (~2 KB each) never pile up under a connection flood
                self.park()

    def _shed(self) -> None:
        """An idle keep-alive connection keeps only what the next request
        needs.  The parser stays (making one per request costs ~1.5 us); a
        parked connection drops it with the rest of this object."""
        if not self._in_headers:
            self._raw = self._url = _NOTHING  # type: ignore[assignment]
            self._req = None

    def _log(self, r: Request) -> None:
        if r.cleanup:
            run_cleanups(r, r.cleanup)
            r.cleanup = []
        if r.log_status:
            r.status = r.log_status
        self.http.engine.log(r)
        if r.pool_cleanup:
            run_cleanups(r, r.pool_cleanup)

    def request_terminated(self, r: Request) -> None:
        r.done = True
        self._log(r)
        self.current = None
        self.abort() if r.status == 444 or getattr(r, "reset", False) else self.close()

    def _close_after(self, r: Request) -> None:
        body = r.body
        core = r.loc.core if r.loc is not None else None
        linger = core is not None and core.lingering_close != "off" and (
            core.lingering_close == "always" or (body is not None and not body.complete) or self.queue)
        if linger and not self.closing:
            self._start_lingering(core)
        else:
            self.close()

    def _start_lingering(self, core: Any) -> None:
        # nginx: shut down our side, then read and drop for lingering_timeout,
        # at most lingering_time, so the client sees the response, not a reset.
        self._lingering = True
        self.queue.clear()
        if self._wbuf:
            self._flush()
        if not self.outq and not self.paused:
            try:
                self.transport.write_eof()
            except Exception:
                self.close()
                return
        self.deadline = self.worker.now + core.lingering_timeout
        self.timeout_kind = "linger"

    def close_idle(self) -> None:
        """Close an idle connection without a reset: FIN, then read and drop
        until the client closes or lingering_timeout passes (shutdown)."""
        if self.closing or self._lingering:
            return
        core = self.table.default.root.conf.core  # type: ignore[union-attr]
        self._start_lingering(core)

    def flush_deferred(self) -> None:
        """core/deferred.py's call: the coalesced output goes now; an idle
        connection under a connection flood is then parked (see _finish)."""
        self._deferred = False
        if self._wbuf and not self.closing:
            self._write_wbuf()  # (deferred.py ran the log lines first)
            if (self.state == S_WAITING and len(self.worker.conns) > PARK_NOW_ABOVE
                    and not self.transport.get_write_buffer_size()):
                self.park()

    def close(self) -> None:
        if not self.closing:
            if self._wbuf:
                self._flush()
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        if not self.closing:
            self._wbuf = []
            self.closing = True
            self.transport.abort()

    _set_state = set_state  # a method: set_state(self, st)

    # --- timeouts ------------------------------------------------------------------------
    def on_tick(self, now: float) -> None:
        kind = self.timeout_kind
        self.deadline = 0.0
        self.timeout_kind = ""
        if kind == "keepalive":
            self.close()
        elif kind == "header":
            r = Request(self, self.http, "GET", "", "/", "", "HTTP/1.1", [], {}, "")
            if self._raw or self._url:
                r.request_line = ""
                r.server = self.table.default
                r.loc = r.server.root.conf  # type: ignore[union-attr]
                r.log_error(logmod.INFO, "client timed out (110: Connection timed out) while reading client request headers")
                r.status = 408
                self._log(r)
            self.close()
        elif kind == "body":
            r = self.current
            if r is not None:
                r.log_error(logmod.INFO, "client timed out (110: Connection timed out) while reading client request body")
                r.status = 408
                r.log_status = 408
                r.terminate()
            else:
                self.close()
        elif kind == "send":
            r = self.current
            if r is not None:
                r.log_error(logmod.INFO, "client timed out (110: Connection timed out) while sending response to client")
            self.abort()
        elif kind == "linger":
            self.close()

    # --- errors before a request exists ------------------------------------------------------
    def _parse_error(self, e: Exception) -> None:
        msg = str(e)
        te = next((v.decode("utf-8", "surrogateescape") for k, v in self._raw
                   if k.lower() == b"transfer-encoding"), None)
        if "Transfer-Encoding" in msg and te is not None and "chunked" not in te.lower():
            self._early_error(501, f'client sent unknown "Transfer-Encoding": "{te}"')
        elif "Content-Length" in msg and "Transfer-Encoding" in msg:
            self._early_error(400, 'client sent "Content-Length" and "Transfer-Encoding" headers at the same time')
        elif "Invalid method" in msg or "Expected HTTP/" in msg or "Invalid HTTP version" in msg:
            self._early_error(400, "client sent invalid request")
        elif "Invalid header" in msg or "Invalid character in header" in msg:
            self._early_error(400, "client sent invalid header line")
        else:
            self._early_error(400, f"client sent invalid request ({msg})")

    def _early_error(self, status: int, reason: str) -> None:
        """Answer a request that could not be parsed, then close."""
        if self.current is not None and not self.current.done:
            # A pipelined request broke while another is in flight: finish it first.
            self.queue.clear()
            self.current.keepalive = False
            self.transport.pause_reading()
            return
        srv = self.table.default
        method = ""
        try:
            method = self.parser.get_method().decode("latin-1") if self.parser else ""
        except Exception:
            pass
        raw = b"".join(self._url).decode("utf-8", "surrogateescape")
        headers = [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                   for k, v in self._raw]
        hin: dict[str, str] = {}
        for k, v in headers:
            hin.setdefault(k.lower(), v)
        r = Request(self, self.http, method or "GET", raw, raw or "/", "", "HTTP/1.1", headers, hin, "")
        if method and raw:
            try:
                ver = self.parser.get_http_version()
                r.request_line = f"{method} {raw} HTTP/{ver}"
            except Exception:
                r.request_line = f"{method} {raw}"
        r.server = srv
        r.location = srv.root  # type: ignore[union-attr]
        r.loc = srv.root.conf  # type: ignore[union-attr]
        r.keepalive = False
        r.header_only = method == "HEAD"
        level = logmod.INFO
        r.log_error(level, f"{reason} while reading client request {'headers' if self._raw else 'line'}")
        self.queue.clear()
        self.current = r
        self._set_state(S_WRITING)
        self.transport.pause_reading()
        self._lingering = False
        self.deadline = 0.0
        r.special_response(status)

    def expect_continue(self, r: Request) -> None:
        if r.version == "HTTP/1.1" and r.hin.get("expect", "").lower() == "100-continue" and not r.header_sent:
            if self._wbuf:
                self._flush()  # a response before this one goes first
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def body_waiting(self, waiting: bool, r: Request) -> None:
        if waiting:
            self.deadline = self.worker.now + r.loc.core.client_body_timeout
            self.timeout_kind = "body"
        elif self.timeout_kind == "body":
            self.deadline = 0.0
            self.timeout_kind = ""


_NOTHING: tuple[Any, ...] = ()
_NAMES: dict[bytes, tuple[str, str, bool]] = {}  # raw header name -> (name, lower-case name, has "_")
