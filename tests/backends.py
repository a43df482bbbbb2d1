"""Small real HTTP backends for proxy tests: threads on 127.0.0.1 sockets.

Invariants:
- ``Backend(mode, ...)`` listens on a free loopback port at construction
  and serves until ``close()``; each connection has its own thread, so a
  slow or silent mode never blocks the others.
- Every request head the backend received is kept verbatim
  (``heads``, bytes, in arrival order) with its body (``bodies``);
  ``events`` records (time, kind, conn_no) for "open", "request" and
  "close" so tests can tell when a connection was reused or closed.
- Modes: echo (200, body = request head + body), fixed (status/headers/
  body given), slow (sleep ``delay`` before the response), close_mid
  (headers say 1000 bytes, 10 are sent, then close), invalid (garbage
  status line), never (accept, read, never answer), big (``size`` bytes
  as fast as possible), reset (read the request, then RST), websocket (a
  real RFC 6455 server: 101 with Sec-WebSocket-Accept, then every text or
  binary frame is echoed, ping answered with pong, close answered with
  close; ``delay`` > 0 makes it send nothing for that long after the
  handshake first, for timeout tests), switch (101 with
  ``Upgrade: foo`` whatever was asked, then ``body`` and close).
- With ``ssl_ctx`` (a server-side ssl.SSLContext) every connection is TLS;
  ``tls_names`` / ``tls_peers`` record each one's SNI and client certificate.
- ``ws_frame`` / ``ws_read_frame`` are the frame codec the tests' client
  uses too (client frames masked, server frames not).
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import threading
import time
from typing import Any

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def ws_frame(opcode: int, payload: bytes, mask: bool) -> bytes:
    """One final frame (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _recv_exact(c: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        d = c.recv(65536)
        if not d:
            raise ConnectionError("closed in a frame")
        buf += d
    out = bytes(buf[:n])
    del buf[:n]
    return out


def ws_read_frame(c: socket.socket, buf: bytearray) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of the next frame; ``buf`` keeps extra bytes."""
    b0, b1 = _recv_exact(c, 2, buf)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _recv_exact(c, 2, buf))[0]
    elif n == 127:
        n = struct.unpack("!Q", _recv_exact(c, 8, buf))[0]
    key = _recv_exact(c, 4, buf) if b1 & 0x80 else b""
    data = _recv_exact(c, n, buf)
    if key:
        data = bytes(b ^ key[i % 4] for i, b in enumerate(data))
    return b0 & 0x0F, data

class Backend:
    def __init__(self, mode: str = "echo", name: str = "b", status: int = 200,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"ok\n",
                 delay: float = 0.0, size: int = 0, keepalive: bool = True, version: str = "1.1",
                 ssl_ctx: Any = None) -> None:
        self.mode = mode
        self.ssl_ctx = ssl_ctx  # a server-side ssl.SSLContext: every connection is TLS
        self.tls_names: list[str | None] = []  # SNI of each TLS connection
        self.tls_peers: list[Any] = []  # the client certificate of each (None without one)
        self.name = name
        self.status = status
        self.headers = headers or []
        self.body = body
        self.delay = delay
        self.size = size
        self.keepalive = keepalive
        self.version = version
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.events: list[tuple[float, str, int]] = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._conns = 0
        self._closed = False
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    # --- bookkeeping --------------------------------------------------------------
    def _event(self, kind: str, n: int) -> None:
        with self.lock:
            self.events.append((time.monotonic(), kind, n))

    def count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e[1] == kind)

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        for s in list(self._open):
            try:
                s.close()
            except OSError:
                pass

    # --- serving ---------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self._conns += 1
            self._open.append(c)
            threading.Thread(target=self._serve, args=(c, self._conns), daemon=True).start()

    def _read_request(self, c: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes] | None:
        while b"\r\n\r\n" not in buf:
            d = c.recv(65536)
            if not d:
                return None
            buf += d
        head, _, rest = buf.partition(b"\r\n\r\n")
        head += b"\r\n\r\n"
        low = head.lower()
        body = b""
        if b"\r\ncontent-length:" in low:
            n = int(low.split(b"\r\ncontent-length:")[1].split(b"\r\n")[0])
            while len(rest) < n:
                d = c.recv(65536)
                if not d:
                    break
                rest += d
            body, rest = rest[:n], rest[n:]
        elif b"\r\ntransfer-encoding: chunked" in low:
            while b"0\r\n\r\n" not in rest:
                d = c.recv(65536)
                if not d:
                    break
                rest += d
            raw, _, rest = rest.partition(b"0\r\n\r\n")
            while raw:
                size_line, _, raw = raw.partition(b"\r\n")
                n = int(size_line, 16)
                body += raw[:n]
                raw = raw[n + 2:]
        return head, body, rest

    def _serve(self, c: socket.socket, n: int) -> None:
        self._event("open", n)
        buf = b""
        if self.ssl_ctx is not None:
            names: list[str | None] = []
            self.ssl_ctx.sni_callback = lambda so, name, ctx: names.append(name)
            try:
                c.settimeout(10)
                c = self.ssl_ctx.wrap_socket(c, server_side=True)
                c.settimeout(None)
            except (OSError, ValueError):
                self._event("tls_failed", n)
                self._event("close", n)
                c.close()
                return
            with self.lock:
                self.tls_names.append(names[-1] if names else None)
                self.tls_peers.append(c.getpeercert())
        try:
            while True:
                got = self._read_request(c, buf)
                if got is None:
                    break
                head, body, buf = got
                with self.lock:
                    self.heads.append(head)
                    self.bodies.append(body)
                self._event("request", n)
                if not self._respond(c, head, body):
                    break
        except OSError:
            pass
        finally:
            self._event("close", n)
            try:
                c.close()
            except OSError:
                pass

    def _websocket(self, c: socket.socket, head: bytes, body: bytes) -> bool:
        key = _ws_key(head)
        if key is None or b"\r\nupgrade: websocket" not in head.lower():
            c.sendall(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return False
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + ws_accept(key).encode() + b"\r\n\r\n")
        if self.delay:
            time.sleep(self.delay)
        buf = bytearray(body)
        while True:
            try:
                op, data = ws_read_frame(c, buf)
            except (ConnectionError, OSError):
                return False
            self._event("frame", 0)
            if op == 0x8:
                c.sendall(ws_frame(0x8, data[:2], False))
                return False
            if op == 0x9:
                c.sendall(ws_frame(0xA, data, False))
            elif op in (0x1, 0x2):
                c.sendall(ws_frame(op, data, False))

    def _respond(self, c: socket.socket, head: bytes, body: bytes) -> bool:
        """Answer one request; False closes the connection."""
        mode = self.mode
        req_close = b"\r\nconnection: close" in head.lower() or head.split(b"\r\n")[0].endswith(b"HTTP/1.0")
        keep = self.keepalive and not req_close
        is_head = head.startswith(b"HEAD ")
        if mode == "never":
            while c.recv(65536):
                pass
            return False
        if mode == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if mode == "invalid":
            c.sendall(b"BOGUS\r\n\r\n")
            return False
        if mode == "websocket":
            return self._websocket(c, head, body)
        if mode == "switch":
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n"
                      b"X-Backend: " + self.name.encode() + b"\r\n\r\n" + self.body)
            time.sleep(0.2)
            return False
        if mode == "slow":
            time.sleep(self.delay)
        status, headers, payload = self.status, list(self.headers), self.body
        if mode == "echo":
            payload = head + body
            headers = [("Content-Type", "text/plain"), ("X-Backend", self.name)] + headers
        elif mode == "big":
            payload = b"x" * self.size
        out = [f"HTTP/{self.version} {status} {_REASON.get(status, 'X')}\r\n".encode(),
               b"Server: pybackend\r\nDate: Thu, 01 Jan 2015 00:00:00 GMT\r\n"]
        for k, v in headers:
            out.append(f"{k}: {v}\r\n".encode())
        if mode == "close_mid":
            out.append(b"Content-Length: 1000\r\nConnection: close\r\n\r\n0123456789")
            c.sendall(b"".join(out))
            time.sleep(0.05)
            return False
        if not any(k.lower() == "content-length" for k, _ in headers) and mode != "no_length":
            out.append(f"Content-Length: {len(payload)}\r\n".encode())
        if not keep or mode == "no_length":
            out.append(b"Connection: close\r\n")
            keep = False
        out.append(b"\r\n")
        data = b"".join(out) + (b"" if is_head else payload)
        c.sendall(data)
        return keep


def _ws_key(head: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"sec-websocket-key":
            return v.strip().decode()
    return None


_REASON = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def request_line(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def header_lines(head: bytes) -> list[str]:
    return [ln.decode("latin-1") for ln in head.split(b"\r\n")[1:] if ln]

