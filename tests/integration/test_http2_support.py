"""Support for the HTTP/2 tests (no tests here): a small blocking HTTP/2 client over a raw socket (the ``h2`` package), for
tests that need frame-level control: windows, resets, settings, bad input.

Invariants:
- ``pump()`` reads what the server sent and records it per stream:
  ``headers`` (list of (name, value) bytes, in wire order), ``data``,
  ``trailers``, ``ended``, ``reset`` (an error code); ``goaway`` holds the
  server's GOAWAY (error code, last stream id) and ``closed`` the EOF.
- Received DATA is acknowledged at once unless ``auto_ack`` is False
  (then the test opens windows itself, to hold a response back).
"""
from __future__ import annotations

import socket
import time
from typing import Any, Callable

import h2.config
import h2.connection
import h2.events
import h2.settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class _Conn(h2.connection.H2Connection):
    """Keeps working after the server's GOAWAY (streams below its last id
    still complete), recording it in ``goaway``."""
    goaway: tuple[int, int] | None = None

    @property  # type: ignore[override]
    def open_outbound_streams(self) -> int:
        # tests open streams past the server's limit on purpose
        h2.connection.H2Connection.open_outbound_streams.fget(self)  # type: ignore[attr-defined]
        return 0

    def _receive_goaway_frame(self, frame: Any) -> Any:
        self.goaway = (frame.error_code, frame.last_stream_id)
        return [], []


class Stream:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.data = b""
        self.trailers: list[tuple[bytes, bytes]] = []
        self.ended = False
        self.reset: int | None = None

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: str) -> str | None:
        v = dict(self.headers).get(name.encode())
        return v.decode() if v is not None else None


class Client:
    def __init__(self, port: int, window: int | None = None, auto_ack: bool = True,
                 max_frame: int | None = None, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.c = _Conn(h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False))
        self.c.initiate_connection()
        s = h2.settings.SettingCodes
        new: dict[Any, int] = {}
        if window is not None:
            new[s.INITIAL_WINDOW_SIZE] = window
        if max_frame is not None:
            new[s.MAX_FRAME_SIZE] = max_frame
        if new:
            self.c.update_settings(new)
        self.auto_ack = auto_ack
        self.streams: dict[int, Stream] = {}
        self.closed = False
        self.remote_max_streams: int | None = None
        self.flush()

    def flush(self) -> None:
        data = self.c.data_to_send()
        if data:
            self.sock.sendall(data)

    def raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
                body: bytes | None = None, end: bool = True, authority: str = "localhost",
                pseudo: list[tuple[str, str]] | None = None) -> int:
        sid = self.c.get_next_available_stream_id()
        hs = pseudo if pseudo is not None else [(":method", method), (":path", path), (":scheme", "http"),
                                                 (":authority", authority)]
        hs = hs + list(headers or [])
        enc = [(k.encode(), v.encode()) for k, v in hs]
        self.streams[sid] = Stream()
        self.c.send_headers(sid, enc, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        """Send ``body`` as the server's windows allow (pumping for updates)."""
        off = 0
        while off < len(body):
            win = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if win <= 0:
                self.pump(0.2)
                continue
            chunk = body[off:off + win]
            off += len(chunk)
            self.c.send_data(sid, chunk, end_stream=end and off >= len(body))
            self.flush()
        if end and not body:
            self.c.end_stream(sid)
        self.flush()

    def pump(self, timeout: float = 0.5) -> bool:
        """Read once (up to ``timeout``); False when the connection closed."""
        if self.closed:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            return True
        except ConnectionResetError:
            self.closed = True
            return False
        if not data:
            self.closed = True
            return False
        for ev in self.c.receive_data(data):
            self._event(ev)
        self.flush()
        return True

    def _event(self, ev: Any) -> None:
        sid = getattr(ev, "stream_id", None)
        st = self.streams.get(sid) if sid else None
        if isinstance(ev, h2.events.ResponseReceived) and st is not None:
            st.headers = list(ev.headers)
        elif isinstance(ev, h2.events.TrailersReceived) and st is not None:
            st.trailers = list(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if st is not None:
                st.data += ev.data
            if self.auto_ack and ev.flow_controlled_length:
                try:
                    self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                except Exception:
                    pass
        elif isinstance(ev, h2.events.StreamEnded) and st is not None:
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset) and st is not None:
            st.reset = int(ev.error_code)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            ms = ev.changed_settings.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS)
            if ms is not None:
                self.remote_max_streams = ms.new_value

    @property
    def goaway(self) -> tuple[int, int] | None:
        return self.c.goaway

    def wait(self, cond: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline or not self.pump(0.2):
                return cond()
        return True

    def done(self, *sids: int) -> Callable[[], bool]:
        return lambda: all(self.streams[s].ended or self.streams[s].reset is not None for s in sids)

    def get(self, path: str, **kw: Any) -> Stream:
        sid = self.request(path, **kw)
        assert self.wait(self.done(sid)), f"stream {sid} did not end"
        return self.streams[sid]

    def open_window(self, sid: int, n: int) -> None:
        self.c.increment_flow_control_window(n, sid)
        self.c.increment_flow_control_window(n)
        self.flush()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
