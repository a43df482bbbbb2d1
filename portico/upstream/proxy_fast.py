"""The proxy fast path: a plain GET or HEAD proxied over a keepalive
connection, answered without the generic upstream machinery when the
response is one whose header was seen before.

Most requests a reverse proxy sees repeat: the same client headers go to
the same upstream, which answers with the same header (its Date changes
once a second) and a Content-Length body.  For a location where nothing
but proxy_pass acts, a ``ProxyPlan`` is built once per configuration.
``serve`` picks the peer with the upstream's balancer, takes a pooled
connection (or connects) and writes the request; ``FastUp.up_data``
looks the response's header bytes up in the plan's table and, when they
are known and the whole body is there, replays what the generic path did
for them: the same client header bytes, log variables and upstream
release.

Invariants:
- The generic path (``http_upstream.UpstreamRequest``) is the reference:
  the request bytes are ``proxy.request_headers``' (cached per client
  header set only when no set header has a variable), and the table is
  filled by the generic path itself (``learn``, called by
  ``UpstreamRequest`` after processing a header it got from here).  Only
  a 200 with a Content-Length and none of Location, Refresh, X-Accel-*
  or (with cookie rewriting) Set-Cookie is learnt: those are the headers
  whose processing depends on the request.  A header is looked up by its
  exact bytes, and the body must be exactly the rest of the data, so the
  key is always the whole header.
- Anything else (a failed connect, an unknown header, a partial
  response, an upstream error, EOF, the client leaving, the deadline)
  hands the exchange to a new ``UpstreamRequest`` (``_promote``), which
  continues as if it had begun it (``UpstreamRequest.adopt``); nothing
  of the response has been consumed at that point.
- ``serve`` returns False, having changed nothing, where the generic path
  must run from the start: not ``plain_get``, internal requests, a set
  limit rate or output headers, no peer.
- The read deadline of an exchange in flight is checked by the worker's
  tick (``sweep``, every quarter second) instead of a timer per request;
  a connect keeps connection.py's own timer.
- A finished exchange leaves no reference cycle: the connection's owner,
  the request's ``eof_event`` and the in-flight entry are cleared, and
  h1 drops the cleanup list after running it.
"""
from __future__ import annotations

import socket
import time
from typing import Any

from ..core import log as logmod
from ..http.modules import proxy as px
from ..http.modules.upstream import UpState
from ..http.proto.h1_write import _status_line, head_tail, server_line
from ..http.response import date_bytes
from ..http.static_fast import nothing_else_acts
from .connection import connect
from .http_upstream import UpstreamRequest, tries_for, upstream_log
from .keepalive import Pool
from .peers import PeerState
from .target import Target, proxy_handler

#: phases whose handlers could act after FIND_CONFIG (proxy_pass is the
#: location's own content handler, so the content phase's do not run)
_BEFORE_CONTENT = ("rewrite", "preaccess", "access", "precontent")
#: headers whose processing depends on the request: never replayed
_UNLEARNT = frozenset({"location", "refresh", "x-accel-redirect", "x-accel-limit-rate", "x-accel-buffering",
                       "x-accel-charset", "x-accel-expires"})
#: the set headers whose value is empty for a request without a body
_BODYLESS_EMPTY = frozenset({"$proxy_internal_body_length", "$proxy_internal_chunked"})
_time = time.time
_NEVER = float("inf")
_AF_UNIX = socket.AF_UNIX

#: exchanges in flight in this worker, by id(): their deadlines are swept
_INFLIGHT: dict[int, "FastUp"] = {}


class _Resp:
    """A learnt upstream header: what processing it gave, and the client's
    header bytes after the Date value (keep-alive and close), with the
    whole header of the last second each was used in."""

    __slots__ = ("uheaders", "cl", "ct", "etag", "cenc", "hlist", "keepalive", "tails", "sec", "whole")

    def __init__(self, u: UpstreamRequest, keepalive: bool) -> None:
        h = u.r.hout
        self.uheaders = u.headers  # $upstream_http_*: read only
        self.cl: int = u.resp_cl  # type: ignore[assignment]
        self.ct = h.content_type
        self.etag = h.etag
        self.cenc = h.content_encoding
        self.hlist = tuple(h.headers)
        self.keepalive = keepalive
        self.tails: list[bytes] = [b"", b""]  # [close, keep-alive]
        self.sec = [-1, -1]
        self.whole = [b"", b""]


class ProxyPlan:
    """What a location's fast proxying needs, computed once per Cycle."""

    __slots__ = ("conf", "core", "ub", "vars", "nphases", "const_headers", "hblocks", "heads", "prefix",
                 "version_tail", "error_log")

    def __init__(self, lc: Any, nphases: int) -> None:
        conf = lc.proxy
        self.conf = conf
        self.core = lc.core
        self.ub = conf.upstream
        self.vars = conf.vars
        self.nphases = nphases
        # the header lines depend on the client's headers alone when every
        # set header is a constant or empty for a bodiless request
        self.const_headers = all(p.__class__ is str or p[1].text in _BODYLESS_EMPTY
                                 for p in conf.compiled.parts)
        self.hblocks: dict[int, tuple[Any, bytes]] = {}
        self.heads: dict[bytes, _Resp] = {}
        self.prefix = (_status_line(200) + server_line(self.core.server_tokens) + "Date: ").encode()
        self.version_tail = f" HTTP/{conf.http_version}\r\n"
        self.error_log: Any = None  # the location's, known once a request ran

    # --- the request ------------------------------------------------------------------
    def serve(self, r: Any) -> bool:
        """Start proxying ``r`` and return True, or return False untouched."""
        if not r.plain_get or r.internal or r.limit_rate_set or r.hout.headers or r.discard_output:
            return False
        ub = self.ub
        conf = self.conf
        state = PeerState(tries_for(ub.tries, conf))
        balancer = ub.balancer
        peer = balancer.get(state, r)
        if peer is None:
            return False  # the generic path asks again and logs "no live upstreams"
        ctx = r.ctx
        ctx["proxy_vars"] = self.vars
        ctx["proxy_body_length"] = -1
        r.phase_index = self.nphases  # the content phase is running
        uri = r.raw_uri if not self.vars.uri else px.upstream_uri(r, conf, self.vars, False)
        head = self._request(r, uri)
        loop = r.conn.worker.loop
        pool = ub.pool
        if pool is None:
            pool = ub.pool = Pool(ub.keepalive, loop)
        conn = pool.get(peer.name)
        f = FastUp(self, r, peer, state, balancer, uri, head, loop.time())
        r.cleanup.append(f.cleanup)
        if not conf.ignore_client_abort:
            r.eof_event = f.client_eof
        _INFLIGHT[id(f)] = f
        if conn is None:
            f.cached = False
            f.conn = connect(loop, peer, f, conf.connect_timeout)  # (its own timer: not swept)
        else:
            f.up_connected(conn)
        return True

    def _request(self, r: Any, uri: str) -> bytes:
        line = (r.method + " " + uri + self.version_tail).encode("utf-8", "surrogateescape")
        if not self.const_headers:
            return line + px.request_headers(r, self.conf).encode("utf-8", "surrogateescape")
        hs = r.headers  # shared by the requests with the same header lines (h1)
        ent = self.hblocks.get(id(hs))
        if ent is None or ent[0] is not hs:
            if len(self.hblocks) >= 256:
                self.hblocks.clear()
            # the list is kept with its bytes, so its id() is not reused meanwhile
            ent = self.hblocks[id(hs)] = (hs, px.request_headers(r, self.conf).encode("utf-8", "surrogateescape"))
        return line + ent[1]

    # --- what the generic path teaches ---------------------------------------------------
    def learn(self, u: UpstreamRequest, first: bytes) -> None:
        """Called by ``u`` with its processed header (before the header
        filters): keep it if it can be replayed byte for byte."""
        r = u.r
        h = r.hout
        if (u.status != 200 or u.resp_cl is None or u.chunked_resp or h.location is not None
                or h.charset or r.limit_rate_set or u.buffering != self.conf.buffering):
            return
        cookies = self.conf.rewrite_cookies
        for k, _ in u.headers:
            low = k.lower()
            if low in _UNLEARNT or (cookies and low == "set-cookie"):
                return
        end = first.find(b"\r\n\r\n") + 4
        if end < 4 or len(first) - end != (0 if r.header_only else u.resp_cl):
            return  # not the whole response in these bytes: the key may not be the header
        if len(self.heads) >= 256:
            self.heads.clear()
        ent = _Resp(u, u.parser.should_keep_alive())
        core = self.core
        for ka in (0, 1):
            ent.tails[ka] = head_tail(r, h, 200, core, False, bool(ka), False).encode("utf-8", "surrogateescape")
        self.heads[first[:end]] = ent


class FastUp:
    """One exchange of the fast path; the owner of its upstream connection
    (the ``up_*`` events of connection.py) until it ends or is promoted."""

    __slots__ = ("plan", "r", "conn", "peer", "state", "balancer", "uri", "head", "t0", "deadline", "finished",
                 "cached", "connect_time")

    def __init__(self, plan: ProxyPlan, r: Any, peer: Any, state: PeerState, balancer: Any,
                 uri: str, head: bytes, t0: float) -> None:
        self.plan = plan
        self.r = r
        self.conn: Any = None
        self.peer = peer
        self.state = state
        self.balancer = balancer
        self.uri = uri
        self.head = head
        self.t0 = t0
        self.deadline = _NEVER  # while connecting, connect()'s own timer runs
        self.finished = False
        self.cached = True  # the connection came from the pool
        self.connect_time: float | None = None  # known once connected

    def up_connected(self, conn: Any) -> None:
        """A pooled connection, or a new one (connect's callback): send."""
        if self.finished:
            conn.close()
            return
        self.conn = conn
        now = conn.loop.time()
        self.connect_time = 0.0 if self.cached else now - self.t0
        self.deadline = now + self.plan.conf.read_timeout
        conn.owner = self
        conn.requests += 1
        try:
            conn.write(self.head)
        except OSError as e:
            self._promote(None)._io_error(e)

    def up_connect_failed(self, en: int, text: str, immediate: bool) -> None:
        self._promote(None).up_connect_failed(en, text, immediate)

    def up_connect_timeout(self) -> None:
        self._promote(None).up_connect_timeout()

    def up_data(self, data: bytes) -> None:
        plan = self.plan
        end = data.find(b"\r\n\r\n") + 4
        if end >= 4:
            ent = plan.heads.get(data[:end])
            if ent is not None:
                r = self.r
                n = len(data) - end
                # (a client socket that is full already: the generic path
                # may have to buffer to a temp file)
                if n == (0 if r.header_only else ent.cl) and not r.done and not r.conn.paused:
                    self._respond(ent, data, end, n)
                    return
        self._promote(data).up_data(data)

    def _respond(self, ent: _Resp, data: bytes, end: int, n: int) -> None:
        """The generic path's _complete for a known header and a whole body."""
        self.finished = True
        del _INFLIGHT[id(self)]
        r = self.r
        conn = self.conn
        peer = self.peer
        plan = self.plan
        took = conn.loop.time() - self.t0
        st = UpState(peer.name)
        st.status = 200
        st.connect_time = self.connect_time  # type: ignore[assignment]
        st.header_time = st.response_time = took
        st.bytes_received = len(data)
        st.bytes_sent = len(self.head)
        st.length = n
        ctx = r.ctx
        ctx["upstream_states"] = [st]
        ctx["upstream_headers"] = ent.uheaders
        self.balancer.free(self.state, peer, True)
        conn.owner = None
        pool = plan.ub.pool
        if not (ent.keepalive and pool is not None and not conn.closed and pool.put(conn)):
            conn.close()
        r.eof_event = None
        r.upstream_log = upstream_log(plan.vars.schema, peer.name, peer.family == _AF_UNIX, self.uri)
        h = r.hout
        h.status = 200
        h.content_length = ent.cl
        h.content_type = ent.ct
        h.etag = ent.etag
        h.content_encoding = ent.cenc
        h.headers = list(ent.hlist)
        c = r.conn
        keepalive = r.keepalive
        if keepalive and not c.keepalive_allowed(plan.core):
            keepalive = r.keepalive = False
        ka = 1 if keepalive else 0
        sec = int(_time())
        if ent.sec[ka] != sec:
            ent.sec[ka] = sec
            ent.whole[ka] = plan.prefix + date_bytes(sec) + ent.tails[ka]
        head = ent.whole[ka]
        r.status = 200
        r.header_sent = True
        r.body_bytes_sent = n
        r.bytes_sent = len(head) + n
        el = plan.error_log
        if el is None:
            el = plan.error_log = r.error_log()
        if el.max_level >= logmod.DEBUG:
            r.log_error(logmod.DEBUG, "upstream header replayed by the fast path")
        c.write_static(r, head + data[end:] if n else head)

    # --- everything else: the generic path takes over ---------------------------------------
    def _promote(self, first: bytes | None, in_cleanup: bool = False) -> UpstreamRequest:
        """A new UpstreamRequest continues this exchange (``first``: the
        response bytes it is about to be given, to learn from)."""
        self.finished = True
        _INFLIGHT.pop(id(self), None)
        r = self.r
        plan = self.plan
        ub = plan.ub
        if not in_cleanup and self.cleanup in r.cleanup:
            r.cleanup.remove(self.cleanup)
        if r.eof_event == self.client_eof:
            r.eof_event = None
        u = UpstreamRequest(r, plan.conf, Target(ub.host, self.balancer, ub.tries, ub), plan.vars, False)
        if in_cleanup:
            r.cleanup.remove(u._cleanup)  # the caller runs it: not twice
        u.adopt(self.state, self.peer, self.conn, self.cached, self.connect_time, self.t0, self.uri, self.head,
                (plan, first) if first is not None else None)
        return u

    def up_eof(self) -> None:
        self._promote(None).up_eof()

    def up_lost(self, exc: Exception | None) -> None:
        self._promote(None).up_lost(exc)

    def up_writable(self) -> None:
        self._promote(None).up_writable()

    def client_eof(self) -> None:
        if not self.finished:
            self._promote(None)._client_eof()

    def cleanup(self) -> None:
        if not self.finished:
            self._promote(None, True)._cleanup()

    def expire(self) -> None:
        self._promote(None).expire()


def sweep(now: float) -> None:
    """The worker's tick: exchanges past their read deadline time out."""
    if _INFLIGHT:
        for f in [f for f in _INFLIGHT.values() if f.deadline <= now]:
            if not f.finished:
                f.expire()


def build_plan(http: Any, lc: Any, nphases: int) -> ProxyPlan | None:
    """The location's plan, or None where only the generic path may run."""
    core = lc.core
    if core.handler is not proxy_handler or core.limit_rate or core.internal:
        return None
    conf = lc.proxy
    if (conf.upstream is None or conf.url is not None or conf.tls or conf.method is not None
            or conf.body is not None or conf.upstream.keepalive is None):
        return None
    if not nothing_else_acts(http, lc, _BEFORE_CONTENT):
        return None
    return ProxyPlan(lc, nphases)

