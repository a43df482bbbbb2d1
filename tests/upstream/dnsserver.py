"""A tiny authoritative DNS server for resolver tests: UDP on 127.0.0.1.

Invariants:
- ``DnsServer()`` binds a free loopback port at construction and answers
  until ``close()``, from a thread.  ``records`` maps a lower-case name to
  its IPv4 addresses (change it at any time); A questions get those (TTL
  ``ttl``), AAAA questions an empty NOERROR answer, unknown names NXDOMAIN.
- ``queries`` counts the questions received per (name, type).
- The wire format is hand-encoded (RFC 1035), answers point back at the
  question's name with compression.
"""
from __future__ import annotations

import socket
import struct
import threading


class DnsServer:
    def __init__(self, records: dict[str, list[str]] | None = None, ttl: int = 1) -> None:
        self.records = dict(records or {})
        self.ttl = ttl
        self.queries: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    def count(self, name: str, qtype: int = 1) -> int:
        with self.lock:
            return self.queries.get((name, qtype), 0)

    def close(self) -> None:
        self._closed = True
        self.sock.close()

    def _serve(self) -> None:
        while not self._closed:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                return
            try:
                reply = self.answer(data)
            except (ValueError, IndexError, struct.error):
                continue
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                return

    def answer(self, data: bytes) -> bytes:
        qid, flags, qd = struct.unpack_from("!HHH", data)
        off = 12
        labels = []
        while data[off]:
            n = data[off]
            labels.append(data[off + 1:off + 1 + n].decode())
            off += 1 + n
        off += 1
        qtype, qclass = struct.unpack_from("!HH", data, off)
        question = data[12:off + 4]
        name = ".".join(labels).lower()
        with self.lock:
            self.queries[(name, qtype)] = self.queries.get((name, qtype), 0) + 1
            addrs = list(self.records.get(name, [])) if name in self.records else None
        rflags = 0x8180  # response, recursion desired + available
        if addrs is None:
            return struct.pack("!HHHHHH", qid, rflags | 3, 1, 0, 0, 0) + question
        answers = b""
        n = 0
        if qtype == 1:
            for ip in addrs:
                answers += struct.pack("!HHHIH", 0xC00C, 1, 1, self.ttl, 4) + socket.inet_aton(ip)
                n += 1
        return struct.pack("!HHHHHH", qid, rflags, 1, n, 0, 0) + question + answers
