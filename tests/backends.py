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
  as fast as possible), reset (read the request, then RST).
"""
from __future__ import annotations

import socket
import struct
import threading
import time

class Backend:
    def __init__(self, mode: str = "echo", name: str = "b", status: int = 200,
                 headers: list[tuple[str, str]] | None = None, body: bytes = b"ok\n",
                 delay: float = 0.0, size: int = 0, keepalive: bool = True, version: str = "1.1") -> None:
        self.mode = mode
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


_REASON = {200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


def request_line(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].decode("latin-1")


def header_lines(head: bytes) -> list[str]:
    return [ln.decode("latin-1") for ln in head.split(b"\r\n")[1:] if ln]

