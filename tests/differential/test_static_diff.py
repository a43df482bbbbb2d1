"""Differential suite: Debian's nginx and Portico, same config, same bytes.

Invariants:
- One nginx and one Portico per module (module-scoped fixture), started
  from the same ``CONF`` and ``FILES``; only ``%PREFIX%`` and the two ports
  differ.  Every file's mtime is pinned so ETag / Last-Modified agree.
- Each case writes its raw bytes on a fresh connection, reads exactly
  ``responses`` answers (framed by Content-Length, chunked, or close), then
  probes the connection with one more request: an answer means the server
  kept the connection, EOF / reset means it closed it.  No timing guesses.
- Compared: status, Content-Type, Content-Length (presence and value),
  Location (ports replaced), ETag presence, Last-Modified, Accept-Ranges,
  Content-Range, Expires presence (value within 2 s), Cache-Control, Connection,
  Keep-Alive, X-* headers, the body (nginx's product token and multipart
  boundaries normalised), and whether the connection was closed.
- The header order is compared for a plain 200 and a 304.
"""
from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server, free_port, have_nginx  # noqa: E402

from .corpus_static import CASES, CONF, FILES, MTIME, UNREADABLE, Case, req  # noqa: E402

if not have_nginx():
    pytest.skip("Debian's nginx is not installed", allow_module_level=True)

NGINX_TOKEN = b"nginx/1.22.1"
PORTICO_TOKEN = b"portico/0.1.0"
PROBE = b"GET /empty.txt HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def get(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]


@dataclass
class Exchange:
    responses: list[Response] = field(default_factory=list)
    closed: bool = False


@dataclass
class Pair:
    nginx: Server
    portico: Server
    ports: dict[str, dict[str, int]]  # kind -> {"p1": port, "p2": port}


def _conf(ports: dict[str, int]) -> str:
    return CONF.replace("%PORT1%", str(ports["p1"])).replace("%PORT2%", str(ports["p2"]))


def _prepare(s: Server) -> None:
    """Readable by nginx's "nobody" workers whatever the umask; pinned mtimes."""
    for rel in FILES:
        d = os.path.dirname(s.path(rel))
        while d.startswith(s.prefix) and d != s.prefix:
            os.chmod(d, 0o755)
            d = os.path.dirname(d)
        os.chmod(s.path(rel), 0o644)
        os.utime(s.path(rel), (MTIME, MTIME))
    for rel in UNREADABLE:
        os.chmod(s.path(rel), 0)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    servers: list[Server] = []
    ports: dict[str, dict[str, int]] = {}
    try:
        for kind in ("nginx", "portico"):
            p = {"p1": free_port(), "p2": free_port()}
            ports[kind] = p
            s = Server(_conf(p), kind, dict(FILES))
            servers.append(s)
            _prepare(s)
            s.start()
        yield Pair(servers[0], servers[1], ports)
    finally:
        for s in servers:
            s.cleanup()


# --- a minimal, exact HTTP/1.x reader -------------------------------------------------

class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            b = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def until(self, sep: bytes) -> bytes | None:
        while sep not in self.buf:
            if not self.fill():
                return None
        head, _, self.buf = self.buf.partition(sep)
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self.fill():
                break
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self) -> bytes:
        while self.fill():
            pass
        out, self.buf = self.buf, b""
        return out


def _read_response(rd: _Reader, head_only: bool) -> Response | None:
    while len(rd.buf) < 5 and rd.fill():
        pass
    if rd.buf and not rd.buf.startswith(b"HTTP/"):
        return Response(0, "HTTP/0.9", [], rd.rest())  # a bare body: HTTP/0.9
    head = rd.until(b"\r\n\r\n")
    if head is None:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    r = Response(status, reason, headers, b"")
    if head_only or status in (204, 304) or status < 200:
        return r
    cl = r.get("content-length")
    te = r.get("transfer-encoding")
    if te is not None and te.lower() == "chunked":
        body = b""
        while True:
            size_line = rd.until(b"\r\n")
            if size_line is None:
                break
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                rd.until(b"\r\n")
                break
            body += rd.exactly(size)
            rd.exactly(2)
        r.body = body
    elif cl is not None:
        r.body = rd.exactly(int(cl))
    else:
        r.body = rd.rest()
    return r


def _methods(raw: bytes, n: int) -> list[str]:
    """The methods of the pipelined requests in ``raw`` (good enough for HEAD detection)."""
    out = []
    for block in raw.split(b"\r\n\r\n"):
        first = block.split(b"\r\n", 1)[0]
        if first:
            out.append(first.split(b" ", 1)[0].decode("latin-1"))
    return (out + ["GET"] * n)[:n]


def exchange(port: int, case: Case) -> Exchange:
    ex = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=case.timeout) as s:
        s.sendall(case.raw)
        rd = _Reader(s)
        for method in _methods(case.raw, case.responses):
            r = _read_response(rd, method == "HEAD")
            if r is None:
                break
            ex.responses.append(r)
        if rd.eof:
            ex.closed = True
        else:
            try:
                s.sendall(PROBE)
            except (BrokenPipeError, ConnectionResetError):
                ex.closed = True
            else:
                probe = _read_response(rd, False)
                ex.closed = probe is None
    return ex


# --- normalisation and comparison ---------------------------------------------------------

_COMPARED = ("content-type", "content-length", "location", "last-modified", "accept-ranges",
             "content-range", "cache-control", "connection", "keep-alive", "transfer-encoding",
             "content-encoding")
_BOUNDARY = re.compile(r"boundary=(\S+)")


def _norm_body(r: Response, kind: str) -> bytes:
    body = r.body
    if kind == "nginx":
        body = body.replace(NGINX_TOKEN, PORTICO_TOKEN)
    ct = r.get("content-type") or ""
    m = _BOUNDARY.search(ct)
    if m:
        body = body.replace(m.group(1).encode(), b"BOUNDARY")
    return body


def _view(r: Response, kind: str, ports: dict[str, int], tokens: int = 0) -> dict[str, object]:
    """What is compared of one response; ``tokens``: product tokens in nginx's (GET) body.

    Each compared header maps to the list of all its values, so duplicates
    (two X-Server on a 416, two Cache-Control with expires + add_header) count.
    """
    v: dict[str, object] = {"status": r.status, "reason": r.reason}
    for name in _COMPARED:
        vals = r.get_all(name)
        if name == "content-length" and kind == "nginx" and tokens:
            vals = [str(int(x) + tokens * (len(PORTICO_TOKEN) - len(NGINX_TOKEN))) for x in vals]
        elif name == "location":
            for p in ports.values():
                vals = [x.replace(f":{p}", ":PORT") for x in vals]
        elif name == "content-type":
            vals = [_BOUNDARY.sub("boundary=BOUNDARY", x) for x in vals]
        v[name] = vals
    v["etag?"] = len(r.get_all("etag"))
    v["expires?"] = len(r.get_all("expires"))
    v["server?"] = len(r.get_all("server"))
    v["x-*"] = [(k.lower(), x) for k, x in r.headers if k.lower().startswith("x-")]
    v["body"] = _norm_body(r, kind)
    return v


def _expires(r: Response) -> float | None:
    e = r.get("expires")
    return parsedate_to_datetime(e).timestamp() if e else None


def _marks(c: Case) -> list[pytest.MarkDecorator]:
    if c.xfail is None or (c.xfail_root_only and os.geteuid() != 0):
        return []
    return [pytest.mark.xfail(strict=True, reason=c.xfail)]


CASE_PARAMS = [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES]


@pytest.mark.parametrize("case", CASE_PARAMS)
def test_static_case(pair: Pair, case: Case) -> None:
    n = exchange(pair.ports["nginx"][case.port], case)
    p = exchange(pair.ports["portico"][case.port], case)
    assert len(p.responses) == len(n.responses), (n.responses, p.responses)
    methods = _methods(case.raw, len(n.responses))
    for i, (rn, rp) in enumerate(zip(n.responses, p.responses)):
        tokens = rn.body.count(NGINX_TOKEN)
        if methods[i] == "HEAD" and case.responses == 1:
            # a HEAD answer has no body: count the tokens in nginx's GET twin
            twin = exchange(pair.ports["nginx"][case.port], Case("twin", b"GET" + case.raw[4:], case.port))
            if twin.responses:
                tokens = twin.responses[0].body.count(NGINX_TOKEN)
        vn = _view(rn, "nginx", pair.ports["nginx"], tokens)
        vp = _view(rp, "portico", pair.ports["portico"])
        assert vp == vn
        en, ep = _expires(rn), _expires(rp)
        if en is not None and ep is not None:
            assert abs(en - ep) <= 2
    assert p.closed == n.closed, f"closed: nginx={n.closed} portico={p.closed}"


def _names(r: Response) -> list[str]:
    return [k for k, _ in r.headers]


@pytest.mark.parametrize("raw", [
    pytest.param(req("GET", "/small.txt"), id="order-200"),
    pytest.param(req("GET", "/small.txt", headers=("If-None-Match: *",)), id="order-304"),
    pytest.param(req("GET", "/h/both/small.txt", host="hdr.test"), id="order-200-expires-add-header"),
    pytest.param(req("GET", "/small.txt", headers=("Range: bytes=0-1",)), id="order-206"),
    pytest.param(req("GET", "/dir"), id="order-301"),
    pytest.param(req("GET", "/nope"), id="order-404"),
    pytest.param(req("GET", "/h/both/small.txt", host="hdr.test", headers=("Range: bytes=900-",)), id="order-416"),
    pytest.param(req("GET", "/h/both/small.txt", host="hdr.test", headers=('If-Match: "x"',)), id="order-412"),
    pytest.param(req("GET", "/h/both/small.txt", host="hdr.test", headers=("If-None-Match: *",)),
                 id="order-304-expires-add-header"),
])
def test_header_order(pair: Pair, raw: bytes) -> None:
    case = Case("order", raw)
    n = exchange(pair.ports["nginx"]["p1"], case)
    p = exchange(pair.ports["portico"]["p1"], case)
    assert _names(p.responses[0]) == _names(n.responses[0])
