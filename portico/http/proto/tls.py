"""TLS on accepted connections: a memory-BIO layer between uvloop's raw
transport and the HTTP protocol object (h1, or h2 after ALPN).

``TLSLayer`` is two things at once: the ``asyncio.Protocol`` of the raw TCP
transport, and the transport the HTTP protocol writes to.  The HTTP
protocols therefore never know whether bytes are encrypted; they only see
``ssl``/``ssl_object`` on themselves once the handshake is done.

Invariants:
- The HTTP/1 protocol object exists from the accept on (it owns the
  connection's id, counters, stub_status state and the header timeout, which
  is also the handshake timeout, as in nginx: client_header_timeout).
- The first byte decides: a TLS handshake record (0x16) starts TLS; anything
  else is plain HTTP on an https port, passed through unencrypted with
  ``plain_on_ssl`` set on the protocol, which answers 497 (``request_check``).
  A table without ``ssl_ctx`` (an address of a wildcard ssl socket whose own
  ``listen`` has no ``ssl``) is plain HTTP, as nginx's per-address ssl flag.
- The SSLObject is made from the context of the connection's server table
  (``table.ssl_ctx``, built in the master so every worker shares its ticket
  keys) and carries ``portico_table`` for the SNI callback (portico/tls).
- After the handshake, ALPN "h2" hands the connection to HTTP/2
  (``h2.takeover``); the protocol's ``ssl``/``ssl_object`` are set before it
  sees any application byte.
- Decrypted bytes are never delivered while the protocol paused reading;
  they stay in the SSLObject and are drained on ``resume_reading``.
- Every write is encrypted and handed to the raw transport at once; the raw
  transport's pause/resume_writing are the protocol's back-pressure signals.
  Records are at most ``ssl_buffer_size`` bytes of the server SNI chose.
"""
from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, Any

from ...core import log as logmod

if TYPE_CHECKING:
    from ...core.process.worker import Worker
    from ..request import Request

_READ = 65536
_MAX_RECORD = 16384  # OpenSSL's record size: larger writes are split by OpenSSL itself
# modes
_FIRST, _HANDSHAKE, _OPEN, _PLAIN, _CLOSED = range(5)


class TLSLayer(asyncio.Protocol):
    __slots__ = ("worker", "spec", "raw", "inner", "sslobj", "incoming", "outgoing", "mode",
                 "_reading_paused", "_drain_scheduled", "record")

    def __init__(self, worker: "Worker", spec: Any) -> None:
        self.worker = worker
        self.spec = spec
        self.raw: Any = None
        self.inner: Any = None
        self.sslobj: ssl.SSLObject | None = None
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.mode = _FIRST
        self._reading_paused = False
        self._drain_scheduled = False
        self.record = _MAX_RECORD  # ssl_buffer_size of the server SNI chose

    # --- raw side: asyncio.Protocol ------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        from .h1 import H1Connection
        self.raw = transport
        inner = self.inner = H1Connection(self.worker, self.spec)
        inner.connection_made(self)

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode == _OPEN:
            self.incoming.write(data)
            self._read_app()
            return
        if mode == _PLAIN:
            self.inner.data_received(data)
            return
        if mode == _FIRST:
            ctx = getattr(self.inner.table, "ssl_ctx", None)
            if ctx is None or data[0] != 0x16:
                # nginx peeks the first byte the same way (ngx_http_ssl_handshake).
                # No context: this address of a wildcard socket has no "ssl".
                self.mode = _PLAIN
                self.inner.plain_on_ssl = ctx is not None
                self.inner.data_received(data)
                return
            obj = ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
            obj.portico_table = self.inner.table  # type: ignore[attr-defined]
            self.sslobj = obj
            self.mode = _HANDSHAKE
        if self.mode == _HANDSHAKE:
            self.incoming.write(data)
            self._handshake()

    def eof_received(self) -> bool | None:
        if self.mode in (_OPEN, _PLAIN):
            return self.inner.eof_received()
        self.inner.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.mode = _CLOSED
        inner = self.inner
        if inner is not None:
            inner.connection_lost(exc)
        self.sslobj = None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # --- TLS -------------------------------------------------------------------------------
    def _handshake(self) -> None:
        obj = self.sslobj
        assert obj is not None
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_out()
            return
        except (ssl.SSLError, ValueError) as e:
            self._flush_out()  # the alert, if any
            self._log_failure("SSL_do_handshake()", e)
            self.mode = _CLOSED
            self.inner.closing = True
            self.raw.close()
            return
        self._flush_out()
        self.mode = _OPEN
        inner = self.inner
        inner.ssl = True
        inner.ssl_object = obj
        srv = getattr(obj, "portico_sni_server", None) or inner.table.default
        ssl_conf = getattr(srv.root.conf, "ssl", None)
        if ssl_conf is not None and ssl_conf.buffer_size < _MAX_RECORD:
            self.record = max(ssl_conf.buffer_size, 512)
        if obj.selected_alpn_protocol() == "h2":
            from .h2 import takeover
            self.inner = takeover(inner, b"")
        self._read_app()

    def _read_app(self) -> None:
        """Decrypt what is buffered and give it to the protocol."""
        if self._reading_paused:
            return
        obj = self.sslobj
        if obj is None:
            return
        chunks = []
        eof = False
        try:
            while True:
                d = obj.read(_READ)
                if not d:
                    eof = True
                    break
                chunks.append(d)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            eof = True
        except ssl.SSLError as e:
            self._log_failure("SSL_read()", e)
            self._flush_out()
            self.abort()
            return
        if self.outgoing.pending:
            self._flush_out()  # e.g. a key update answer
        if chunks:
            self.inner.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if eof and self.mode == _OPEN and not self._reading_paused:
            # close_notify from the client: an orderly end of its side
            if not self.inner.eof_received():
                self.close()

    def _flush_out(self) -> None:
        out = self.outgoing
        if out.pending and self.raw is not None and not self.raw.is_closing():
            self.raw.write(out.read())

    def _log_failure(self, what: str, e: Exception) -> None:
        """nginx logs handshake failures at info (client errors), e.g.
        ``SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong
        version number) while SSL handshaking, client: ..., server: ...``."""
        log = self.worker.cycle.log
        if logmod.INFO > log.max_level:
            return
        reason = getattr(e, "reason", None) or str(e)
        lib = getattr(e, "library", None) or "SSL"
        detail = f"SSL: error:{lib} routines::{str(reason).lower().replace('_', ' ')}"
        inner = self.inner
        during = "SSL handshaking" if self.mode == _HANDSHAKE else "processing request"
        log.log(logmod.INFO, f"{what} failed ({detail}) while {during}", inner.id,
                f", client: {inner.client_addr}, server: {self.spec.opt.text}")

    # --- transport side: what the HTTP protocol calls ----------------------------------------
    def write(self, data: Any) -> None:
        if self.mode == _OPEN:
            try:
                rec = self.record
                if rec == _MAX_RECORD or len(data) <= rec:
                    self.sslobj.write(data)  # type: ignore[union-attr]
                else:
                    # ssl_buffer_size below 16k: smaller records, so a client
                    # can start decoding sooner (nginx's reason for it)
                    view = memoryview(data)
                    for i in range(0, len(view), rec):
                        self.sslobj.write(view[i:i + rec])  # type: ignore[union-attr]
            except ssl.SSLError:
                self.abort()
                return
            self.raw.write(self.outgoing.read())
        elif self.mode == _PLAIN:
            self.raw.write(data)

    def writelines(self, items: Any) -> None:
        self.write(b"".join(items))

    def close(self) -> None:
        raw = self.raw
        if raw is None or raw.is_closing():
            return
        if self.mode == _OPEN and self.sslobj is not None:
            try:
                self.sslobj.unwrap()  # close_notify; the peer's is not waited for
            except (ssl.SSLError, ValueError):
                pass
            self._flush_out()
        self.mode = _CLOSED
        raw.close()

    def abort(self) -> None:
        self.mode = _CLOSED
        if self.raw is not None:
            self.raw.abort()

    def is_closing(self) -> bool:
        return self.raw is None or self.raw.is_closing()

    def pause_reading(self) -> None:
        self._reading_paused = True
        self.raw.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if not self.raw.is_closing():
            self.raw.resume_reading()
        if self.mode == _OPEN and not self._drain_scheduled and self.sslobj is not None and (
                self.sslobj.pending() or self.incoming.pending):
            # bytes decrypted or received while paused: deliver them outside
            # the caller's stack (it may be in the middle of finishing a request)
            self._drain_scheduled = True
            self.worker.loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._drain_scheduled = False
        if self.mode == _OPEN:
            self._read_app()

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.sslobj
        if name == "sslcontext":
            return self.sslobj.context if self.sslobj is not None else default
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: Any) -> None:
        self.inner = protocol

    def get_protocol(self) -> Any:
        return self.inner


def request_check(r: "Request") -> int:
    """Before the phases (nginx: ngx_http_process_request): plain HTTP on an
    https port is 497.  (The ssl module adds its client-certificate checks to
    the same list, ``HttpMain.request_checks``.)"""
    if getattr(r.conn, "plain_on_ssl", False):
        r.log_error(logmod.INFO, "client sent plain HTTP request to HTTPS port while reading client request headers")
        return 497
    return 0
