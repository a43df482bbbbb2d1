"""Active health checks (nginx Plus's ngx_http_upstream_hc_module):
``health_check`` parameters, ``match`` blocks and the checks themselves.

Invariants:
- A ``HealthCheck`` is one ``health_check`` directive, bound at
  postconfiguration to the zoned upstream its location proxies to (index
  ``i`` in ``ub.health_checks``); a ``Match`` is one ``match`` block, its
  regexes compiled once.  Without ``match=`` a response passes when its
  status is 2xx or 3xx.
- A check runs once per interval for the whole server: each worker's tick
  asks the zone (``ZonedState.claim_check``) and only the worker that finds
  it due runs the round, under a lease (interval plus both timeouts) so a
  dead worker's round is taken over.  The round checks every peer that is
  not configured ``down`` at once, each on its own connection (never the
  keepalive pool), bounded by the location's proxy_connect_timeout and
  proxy_read_timeout, and reads at most 256k of body.  When it ends the
  next one is due ``interval`` (+ up to ``jitter``) later.
- Results go to the peer's zone record under the lock (``record``):
  ``fails`` consecutive failures set the check's unhealthy bit, ``passes``
  consecutive successes clear it; a ``mandatory`` check's "checking" bit
  clears with the first result (a failure then makes the peer unhealthy).
  Every worker's balancer sees the bits through ``SharedPeer.down``.
- Log lines are nginx Plus's: ``[error] <cause> while <action>, health
  check "<match>" of peer <addr> in upstream "<name>"`` for a failed check,
  then ``[warn] peer is unhealthy while ...`` / ``[notice] peer is healthy
  while ...`` on each transition (``, port N`` appended with ``port=``).
"""
from __future__ import annotations

import asyncio
import errno as errno_mod
import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httptools

from ..conf.parser import Node
from ..core import log as logmod
from ..core import pcre, values
from .zone import CELLS, MAX_CHECKS, P_BAD, P_CHECKING, P_FAILS, P_HC

BODY_LIMIT = 256 * 1024
CHECKING_STATUS = "checking status code"
CHECKING_HEADERS = "checking headers"
CHECKING_BODY = "checking body"
CHECKING_VARS = "checking variables"


# --- match { } --------------------------------------------------------------------------

@dataclass
class Match:
    name: str
    status: list[tuple[bool, list[tuple[int, int]]]] = field(default_factory=list)
    headers: list[tuple[str, str, Any]] = field(default_factory=list)  # (op, lower name, value|regex)
    body: list[tuple[bool, Any]] = field(default_factory=list)  # (negated, regex)
    require: list[Any] = field(default_factory=list)  # ComplexValue

    def test(self, status: int, headers: list[tuple[str, str]], body: bytes) -> tuple[bool, str]:
        """(passed, the action reached: what the log line says)."""
        for neg, ranges in self.status:
            hit = any(lo <= status <= hi for lo, hi in ranges)
            if hit == neg:
                return False, CHECKING_STATUS
        action = CHECKING_STATUS
        if self.headers:
            action = CHECKING_HEADERS
            for op, name, want in self.headers:
                vals = [v for k, v in headers if k.lower() == name]
                if not _header_ok(op, vals, want):
                    return False, action
        if self.body:
            action = CHECKING_BODY
            text = body[:BODY_LIMIT].decode("utf-8", "surrogateescape")
            for neg, rx in self.body:
                if (rx.search(text) is not None) == neg:
                    return False, action
        if self.require:
            action = CHECKING_VARS
            fake = _CheckRequest(status, headers)
            for cv in self.require:
                try:
                    v = cv.eval(fake)
                except Exception:  # a variable that needs a real request: empty
                    v = ""
                if not v or v == "0":
                    return False, action
        return True, action


def _header_ok(op: str, vals: list[str], want: Any) -> bool:
    if op == "present":
        return bool(vals)
    if op == "absent":
        return not vals
    if not vals:
        return False
    v = vals[0]
    if op == "=":
        return v == want
    if op == "!=":
        return v != want
    if op == "~":
        return want.search(v) is not None
    return want.search(v) is None  # "!~"


DEFAULT_MATCH = Match("", status=[(False, [(200, 399)])])


class _CheckRequest:
    """What ``require`` variables see: the check's response as the last
    upstream response, nothing of a client."""

    def __init__(self, status: int, headers: list[tuple[str, str]]) -> None:
        from ..http.modules.upstream import UpState
        st = UpState("")
        st.status = status
        self.ctx: dict[str, Any] = {"upstream_states": [st], "upstream_headers": headers}
        self.vars: dict[str, str] = {}
        self.headers: list[tuple[str, str]] = []
        self.hin: dict[str, str] = {}


def _status_range(node: Node, text: str) -> tuple[int, int]:
    lo, dash, hi = text.partition("-")
    try:
        a = int(lo)
        b = int(hi) if dash else a
    except ValueError:
        raise node.error(f'invalid status "{text}"') from None
    if not (100 <= a <= 599 and 100 <= b <= 599) or a > b:
        raise node.error(f'invalid status "{text}"')
    return a, b


def _regex(node: Node, text: str) -> Any:
    try:
        return pcre.compile(text)
    except pcre.PcreError as e:
        raise node.error(e.message) from None


def parse_match(node: Node, variables: Any) -> Match:
    """A ``match NAME { ... }`` block (status, header, body, require)."""
    m = Match(node.args[0])
    for d in node.block or []:
        a = d.args
        if d.block is not None:
            raise node.error(f'directive "{d.name}" is not terminated by ";"')
        if d.name == "status":
            neg = bool(a) and a[0] == "!"
            codes = a[1:] if neg else a
            if not codes:
                raise d.error('invalid number of arguments in "status" directive')
            m.status.append((neg, [_status_range(d, c) for c in codes]))
        elif d.name == "header":
            if len(a) == 1:
                m.headers.append(("present", a[0].lower(), None))
            elif len(a) == 2 and a[0] == "!":
                m.headers.append(("absent", a[1].lower(), None))
            elif len(a) == 3 and a[1] in ("=", "!="):
                m.headers.append((a[1], a[0].lower(), a[2]))
            elif len(a) == 3 and a[1] in ("~", "!~"):
                m.headers.append((a[1], a[0].lower(), _regex(d, a[2])))
            else:
                raise d.error('invalid number of arguments in "header" directive' if len(a) not in (1, 2, 3)
                              else f'invalid parameter "{a[1] if len(a) > 1 else a[0]}"')
        elif d.name == "body":
            if len(a) != 2 or a[0] not in ("~", "!~"):
                raise d.error('invalid number of arguments in "body" directive' if len(a) != 2
                              else f'invalid parameter "{a[0]}"')
            m.body.append((a[0] == "!~", _regex(d, a[1])))
        elif d.name == "require":
            if not a:
                raise d.error('invalid number of arguments in "require" directive')
            for v in a:
                m.require.append(variables.compile(v, d.file, d.line))
        else:
            raise d.error(f'unknown directive "{d.name}"')
    return m


# --- health_check ------------------------------------------------------------------------

@dataclass
class HealthCheck:
    node: Node
    interval: float = 5.0
    jitter: float = 0.0
    fails: int = 1
    passes: int = 1
    uri: str = "/"
    port: int = 0
    match_name: str = ""
    mandatory: bool = False
    persistent: bool = False
    keepalive_time: float = 0.0  # accepted; every check uses a new connection
    match: Match = field(default_factory=lambda: DEFAULT_MATCH)
    ub: Any = None
    proxy: Any = None  # the location's ProxyLocConf (timeouts, headers)
    index: int = 0
    request: bytes = b""
    running: bool = False

    @property
    def timeout(self) -> float:
        p = self.proxy
        return (p.connect_timeout + p.read_timeout) if p is not None else 120.0


def parse_health_check(node: Node) -> HealthCheck:
    hc = HealthCheck(node)
    for a in node.args:
        key, eq, val = a.partition("=")
        if eq and key in ("interval", "jitter", "keepalive_time"):
            t = values.parse_time(val, default_unit_ms=False)
            if t is None or (key == "interval" and t <= 0):
                raise node.error(f'invalid parameter "{a}"')
            setattr(hc, key, float(t))
        elif eq and key in ("fails", "passes", "port"):
            n = values.parse_number(val)
            if n is None or n == 0 or (key == "port" and n > 65535):
                raise node.error(f'invalid parameter "{a}"')
            setattr(hc, key, n)
        elif eq and key == "uri":
            if not val:
                raise node.error(f'invalid parameter "{a}"')
            hc.uri = val
        elif eq and key == "match":
            hc.match_name = val
        elif eq and key == "type":
            if val != "http":
                raise node.error(f'invalid parameter "{a}"')  # type=grpc is not supported
        elif a == "mandatory":
            hc.mandatory = True
        elif a == "persistent":
            hc.persistent = True
        else:
            raise node.error(f'invalid parameter "{a}"')
    if hc.persistent and not hc.mandatory:
        raise node.error('"persistent" requires "mandatory"')
    return hc


def bind(hc: HealthCheck, ub: Any, proxy: Any, matches: dict[str, Match]) -> None:
    """Attach a health check to its upstream (postconfiguration)."""
    node = hc.node
    if not ub.zone:
        raise node.error(f'health check requires upstream "{ub.host}" in {ub.file}:{ub.line} '
                         f'to be in shared memory')
    if hc.match_name:
        m = matches.get(hc.match_name)
        if m is None:
            raise node.error(f'match "{hc.match_name}" not found')
        hc.match = m
    if len(ub.health_checks) >= MAX_CHECKS:
        raise node.error(f'too many health checks for upstream "{ub.host}" (at most {MAX_CHECKS})')
    hc.ub = ub
    hc.proxy = proxy
    hc.index = len(ub.health_checks)
    ub.health_checks.append(hc)


# --- running checks ---------------------------------------------------------------------

def _request(hc: HealthCheck) -> bytes:
    """GET uri with the location's constant proxy headers (its variables
    are empty in a check, so headers made of them are left out)."""
    p = hc.proxy
    version = p.http_version if p is not None else "1.0"
    lines = [f"GET {hc.uri} HTTP/{version}\r\n"]
    comp = getattr(p, "compiled", None)
    text = "".join(part for part in (comp.parts if comp is not None else ()) if isinstance(part, str))
    if "\nhost:" not in "\n" + text.lower():
        lines.append(f"Host: {hc.ub.host}\r\n")
    if "\nconnection:" not in "\n" + text.lower():
        lines.append("Connection: close\r\n")
    lines.append(text)
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class _Failed(Exception):
    def __init__(self, action: str, text: str) -> None:
        super().__init__(text)
        self.action = action
        self.text = text


class _Response:
    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body = bytearray()
        self.header_done = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self.header_done = True

    def on_body(self, data: bytes) -> None:
        if len(self.body) < BODY_LIMIT:
            self.body += data[:BODY_LIMIT - len(self.body)]

    def on_message_complete(self) -> None:
        self.complete = True


async def probe(hc: HealthCheck, peer: Any) -> tuple[bool, str, str | None]:
    """One check of one peer: (passed, action reached, error text or None)."""
    p = hc.proxy
    ct = p.connect_timeout if p is not None else 60.0
    rt = p.read_timeout if p is not None else 60.0
    action = "connecting to upstream"
    writer: Any = None
    try:
        try:
            if peer.family == socket.AF_UNIX:
                fut: Any = asyncio.open_unix_connection(peer.address)
            else:
                addr = peer.address
                port = hc.port or addr[1]
                fut = asyncio.open_connection(addr[0], port)
            reader, writer = await asyncio.wait_for(fut, ct)
        except asyncio.TimeoutError:
            raise _Failed(action, "upstream timed out (110: Connection timed out)") from None
        except OSError as e:
            en = e.errno or errno_mod.ECONNREFUSED
            raise _Failed(action, f"connect() failed ({en}: {os.strerror(en)})") from None
        action = "sending request to upstream"
        if not hc.request:
            hc.request = _request(hc)
        writer.write(hc.request)
        action = "reading response header from upstream"
        resp = _Response()
        parser = httptools.HttpResponseParser(resp)
        while not resp.complete and len(resp.body) < BODY_LIMIT:
            try:
                data = await asyncio.wait_for(reader.read(65536), rt)
            except asyncio.TimeoutError:
                raise _Failed(action, "upstream timed out (110: Connection timed out)") from None
            except OSError as e:
                en = e.errno or errno_mod.ECONNRESET
                raise _Failed(action, f"recv() failed ({en}: {os.strerror(en)})") from None
            if not data:
                if not resp.header_done:
                    raise _Failed(action, "upstream prematurely closed connection")
                break
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:
                raise _Failed(action, "upstream sent invalid header" if resp.header_done or resp.headers
                              else "upstream sent no valid HTTP/1.0 header") from None
            if resp.header_done:
                action = "reading upstream"
        ok, action = hc.match.test(parser.get_status_code(), resp.headers, bytes(resp.body))
        return ok, action, None
    except _Failed as f:
        return False, f.action, f.text
    finally:
        if writer is not None:
            writer.close()


def record(zs: Any, peer: Any, hc: HealthCheck, ok: bool) -> str | None:
    """Count one result; "up" / "down" when the peer changed state."""
    q = peer._q
    i = hc.index
    bit = 1 << i
    f = P_HC + 2 * i
    assert f + 1 < CELLS
    with zs.lock:
        if ok:
            q[f] = 0
            q[f + 1] += 1
            if q[P_CHECKING] & bit:
                q[P_CHECKING] &= ~bit
                return "up"
            if q[P_BAD] & bit and q[f + 1] >= hc.passes:
                q[P_BAD] &= ~bit
                q[P_FAILS] = 0
                return "up"
        else:
            q[f + 1] = 0
            q[f] += 1
            if q[P_CHECKING] & bit:
                q[P_CHECKING] &= ~bit
                q[P_BAD] |= bit
                return "down"
            if not q[P_BAD] & bit and q[f] >= hc.fails:
                q[P_BAD] |= bit
                return "down"
    return None


async def run_round(hc: HealthCheck, log: Any) -> None:
    """Check every peer of the upstream once, then schedule the next round."""
    zs = hc.ub.shared
    try:
        peers = [p for p in zs.peers() if not p.config_down]
        results = await asyncio.gather(*(probe(hc, p) for p in peers), return_exceptions=True)
        for peer, res in zip(peers, results):
            if isinstance(res, BaseException):
                res = (False, "connecting to upstream", f"health check failed: {res!r}")
            ok, action, err = res
            where = (f', health check "{hc.match.name}" of peer {peer.name} in upstream "{hc.ub.host}"'
                     + (f", port {hc.port}" if hc.port else ""))
            if err is not None:
                log.log(logmod.ERROR, f"{err} while {action}{where}")
            change = record(zs, peer, hc, ok)
            if change == "down":
                log.log(logmod.WARN, f"peer is unhealthy while {action}{where}")
            elif change == "up":
                log.log(logmod.NOTICE, f"peer is healthy while {action}{where}")
    finally:
        hc.running = False
        nxt = time.monotonic() + hc.interval + (random.uniform(0, hc.jitter) if hc.jitter else 0.0)
        zs.check_done(hc.index, nxt)


def tick(checks: list[HealthCheck], loop: Any, log: Any) -> None:
    """The worker's tick: start every check that is due for the whole server."""
    now = time.monotonic()
    for hc in checks:
        if hc.running:
            continue
        if hc.ub.shared.claim_check(hc.index, now, hc.interval + hc.timeout + 1.0):
            hc.running = True
            loop.create_task(run_round(hc, log))
