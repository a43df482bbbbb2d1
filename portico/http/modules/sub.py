"""ngx_http_sub_module: ``sub_filter`` replaces strings in response bodies.

Also home of what the charset filter shares: ``BodyFeed`` (a filter's
input as byte chunks, files read piecewise) and ``feed_body_filter`` (a
body filter that hands its input to a ``BodyFeed``).  ``sub_filter_types``
is ``portico.http.types``'s.

Invariants:
- Matching is nginx's (ngx_http_sub_parse, 1.9.4+): search strings are
  lower-cased when read, the body is compared lower-cased (ASCII only, as
  ``ngx_tolower``); the leftmost position where some string matches wins,
  and at one position the first string in configuration order.  A string
  that is only partly there when the data runs out holds the output until
  more comes; at the end of the body such a held tail goes out unchanged
  (even if a later, shorter string would have matched inside it), as in
  nginx.
- Streaming: between calls only the tail that could still start a match is
  kept (at most the longest search string minus one byte); file regions are
  read in 32 KB pieces (nginx's ``output_buffers``), never whole.
- ``sub_filter_once on`` applies each string at most once; once all have
  been applied the rest of the body (file regions included) passes through
  untouched.  A replacement is evaluated once per request, on first use.
- Search strings with variables are evaluated per request in the header
  filter; empty ones are dropped, and when none is left the filter is off
  for that response (headers untouched), as in nginx.
- The header filter clears Content-Length, and unless
  ``sub_filter_last_modified on`` also Last-Modified and ETag; with it on,
  the ETag is made weak.  Only for the main request.  There is no check of
  Content-Encoding or of the status: nginx has none (a 304 of a listed type
  loses its validators too).
"""
from __future__ import annotations

import asyncio
import os
import re
from collections import deque
from typing import Any, Callable

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import HSL, MORE1, TAKE2, Conf, Module, UNSET, dir, set_flag
from ..request import FileBuf, Request
from ..types import HTML_TYPES, type_listed, types_setter
from .static import weak_etag

# --- shared helpers -------------------------------------------------------------------

_CHUNK = 32768  # nginx reads files for in-memory filters in output_buffers (2 32k)
_BURST = 32  # chunks read in one go before other connections get a turn

def _backed_up(r: Request) -> bool:
    # h1 pauses writing exactly when the kernel refused data (write-buffer
    # limits 0/0); other protocols have no such flag and just take turns.
    return bool(getattr(r.conn, "paused", False))


class BodyFeed:
    """A body filter's input as byte chunks, handed to ``consume(r, data, last)``.

    bytes pass as they are; FileBuf regions are read 32 KB at a time, and
    when the client's socket is full the reading waits until the protocol
    says it drained (``r.write_event``), so a large file never sits in memory.  ``last`` is true
    on exactly one call, the final one.  When the consumer sets ``raw``, the
    rest of the input (file regions as FileBuf) goes to ``forward`` as is.
    """

    __slots__ = ("r", "consume", "forward", "items", "last", "busy", "finished", "raw")

    def __init__(self, r: Request, consume: Callable[[Request, bytes, bool], None],
                 forward: Callable[[Request, list[Any], bool], None]) -> None:
        self.r = r
        self.consume = consume
        self.forward = forward
        self.items: deque[Any] = deque()  # bytes, or [fd, offset, size] lists
        self.last = False
        self.busy = False  # a deferred run is scheduled
        self.finished = False
        self.raw = False

    def push(self, bufs: list[Any], last: bool) -> None:
        if self.raw and not self.items and not self.busy:
            self.forward(self.r, bufs, last)
            return
        for b in bufs:
            if isinstance(b, FileBuf):
                if b.size > 0:
                    self.items.append([b.fd, b.offset, b.size])
            elif b:
                self.items.append(bytes(b))
        if last:
            self.last = True
        if not self.busy:
            self._run()

    def _run(self) -> None:
        r = self.r
        items = self.items
        done = 0
        while items:
            if r.done:  # the connection is gone; its cleanup closed the fds
                items.clear()
                return
            if self.raw:
                self._forward_rest()
                return
            it = items[0]
            if isinstance(it, bytes):
                items.popleft()
                data = it
            else:
                if _backed_up(r):
                    # wait for the protocol to say the socket drained
                    self.busy = True
                    r.write_event = self._drained
                    return
                if done >= _BURST:
                    self._defer()
                    return
                fd, off, size = it
                try:
                    data = os.pread(fd, min(size, _CHUNK), off)
                except OSError as e:
                    r.log_error(logmod.CRIT, f"pread() failed ({e.errno}: {e.strerror})")
                    items.clear()
                    r.terminate()
                    return
                if not data:
                    r.log_error(logmod.ALERT, f"pread() read only 0 of {min(size, _CHUNK)}")
                    items.clear()
                    r.terminate()
                    return
                it[1] += len(data)
                it[2] -= len(data)
                if it[2] <= 0:
                    items.popleft()
                done += 1
            final = self.last and not items
            if final:
                self.finished = True
            self.consume(r, data, final)
        if self.last and not self.finished and not r.done:
            self.finished = True
            if self.raw:
                self.forward(r, [], True)
            else:
                self.consume(r, b"", True)

    def _forward_rest(self) -> None:
        out: list[Any] = []
        for it in self.items:
            out.append(it if isinstance(it, bytes) else FileBuf(it[0], it[1], it[2]))
        self.items.clear()
        if self.finished:
            return
        self.finished = self.last
        self.forward(self.r, out, self.last)

    def _defer(self) -> None:
        """Let other connections run before reading on (a long file)."""
        self.busy = True
        asyncio.get_running_loop().call_soon(self._resume)

    def _drained(self) -> None:
        self.r.write_event = None
        self._resume()

    def _resume(self) -> None:
        self.busy = False
        r = self.r
        try:
            self._run()
        except Exception as e:  # out of the connection's own guard: never hang
            r.log_error(logmod.ALERT, f"internal error in a body filter: {e!r}")
            r.terminate()


def feed_body_filter(key: str, consume: Callable[[Request, bytes, bool], None]
                     ) -> Callable[[Request, list[Any], bool, Any], None]:
    """A body filter that hands its input, through a ``BodyFeed``, to
    ``consume``; it acts when the header filter left ``r.ctx[key]``, an
    object with ``feed`` and ``next`` slots (``next`` is where ``consume``
    sends its output)."""
    def body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
        ctx = r.ctx.get(key)
        if ctx is None:
            next(r, bufs, last)
            return
        feed = ctx.feed
        if feed is None:
            ctx.next = next
            feed = ctx.feed = BodyFeed(r, consume, next)
        feed.push(bufs, last)
    return body_filter


# --- sub_filter -----------------------------------------------------------------------

class SubLocConf(Conf):
    pairs: tuple = ()  # ((match: ComplexValue, value: ComplexValue), ...)
    types: Any = HTML_TYPES
    once: bool = True
    last_modified: bool = False
    matcher: Any = None  # the static Matcher when no search string has variables


def _sub_filter(cf: Any, node: Node, conf: SubLocConf) -> None:
    main = cf.extra["http"]
    if not node.args[0]:
        raise node.error("empty search pattern")
    cur = () if conf.pairs is UNSET else conf.pairs
    if len(cur) == 255:
        raise node.error("number of search patterns exceeds 255")
    # nginx lower-cases the argument before compiling it, so variable names
    # in it are lower-cased too (harmless: lookups ignore case)
    match = main.variables.compile(_ascii_lower(node.args[0]), node.file, node.line)
    value = main.variables.compile(node.args[1], node.file, node.line)
    conf.pairs = cur + ((match, value),)


def _ascii_lower(s: str) -> str:
    return s.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(65, 91)}


class Matcher:
    """Search strings (lower-cased bytes, configuration order) with their
    replacements, and one compiled alternation per set of strings still
    active (``once`` retires strings one by one)."""

    __slots__ = ("pats", "values", "min", "max", "_rx")

    def __init__(self, pats: list[bytes], values: list[Any]) -> None:
        self.pats = pats
        self.values = values
        self.min = min(len(p) for p in pats)
        self.max = max(len(p) for p in pats)
        self._rx: dict[int, tuple[Any, list[int]]] = {}

    def regex(self, active: int) -> tuple[Any, list[int]]:
        """The alternation of the active strings, in order, and the string
        index of each group; cached per active set."""
        rx = self._rx.get(active)
        if rx is None:
            idx = [i for i in range(len(self.pats)) if active >> i & 1]
            rx = (re.compile(b"|".join(b"(" + re.escape(self.pats[i]) + b")" for i in idx)), idx)
            if len(self._rx) < 64:
                self._rx[active] = rx
        return rx


def _matcher(pairs: tuple, r: Request | None) -> Matcher | None:
    pats: list[bytes] = []
    vals: list[Any] = []
    for match, value in pairs:
        if r is None:
            text = match.const
        else:
            text = _ascii_lower(match.eval(r))
        if not text:
            continue  # a variable that came out empty: nginx drops the pair
        pats.append(text.encode("utf-8", "surrogateescape"))
        vals.append(value)
    if not pats:
        return None
    return Matcher(pats, vals)


class SubCtx:
    """Per-response state of the sub filter."""

    __slots__ = ("m", "active", "once", "tail", "subs", "feed", "next")

    def __init__(self, m: Matcher, once: bool) -> None:
        self.m = m
        self.active = (1 << len(m.pats)) - 1
        self.once = once
        self.tail = b""
        self.subs: list[bytes | None] = [None] * len(m.pats)
        self.feed: BodyFeed | None = None
        self.next: Any = None


def sub_header_filter(r: Request, next: Any) -> None:
    sc: SubLocConf = r.loc.sub
    h = r.hout
    if not sc.pairs or h.content_length == 0 or not type_listed(sc.types, h):
        next(r)
        return
    m = sc.matcher if sc.matcher is not None else _matcher(sc.pairs, r)
    if m is None:
        next(r)
        return
    r.ctx["sub"] = SubCtx(m, sc.once)
    if not r.internal_sub:
        h.content_length = None
        h.remove("Content-Length")
        if not sc.last_modified:
            h.last_modified = None
            h.remove("Last-Modified")
            h.etag = None
        else:
            weak_etag(h)
    next(r)


def _consume(r: Request, data: bytes, last: bool) -> None:
    ctx: SubCtx = r.ctx["sub"]
    if ctx.active == 0:  # every string applied once: the rest is raw
        ctx.next(r, [data] if data else [], last)
        return
    if ctx.tail:
        data = ctx.tail + data
        ctx.tail = b""
    out = _scan(r, ctx, data, last)
    if out or last:
        ctx.next(r, [out] if out else [], last)
    if ctx.active == 0 and ctx.feed is not None:
        ctx.feed.raw = True


def _scan(r: Request, ctx: SubCtx, data: bytes, last: bool) -> bytes:
    """Replace what can be decided in ``data``; keep in ``ctx.tail`` what
    could still be the start of a match (all of it goes out when ``last``)."""
    m = ctx.m
    pats = m.pats
    low = data.lower()  # ASCII only, as ngx_tolower
    end = len(data)
    mn = m.min
    zone_lo = end - m.max + 1  # from here a string may run past the end
    zone_hi = end - mn  # nginx looks at a position once min_match_len bytes are there
    out: list[bytes] = []
    p = 0
    while ctx.active:
        rx, idx = m.regex(ctx.active)
        found = rx.search(low, p)
        z = p if p > zone_lo else zone_lo
        if found is not None and found.start() < z:
            # every string fits before the zone: the alternation's choice
            # (leftmost, then first in order) is nginx's
            _apply(r, ctx, out, data, p, found.start(), idx[found.lastindex - 1])  # type: ignore[operator]
            p = found.end()
            continue
        hi = zone_hi if found is None or found.start() > zone_hi else found.start()
        hit = _zone(ctx, low, z, hi, end)
        if hit is None:
            # (a full match the alternation found here, _zone has seen)
            keep = zone_hi + 1 if zone_hi + 1 > p else p
            break
        s, i, full = hit
        if full:
            _apply(r, ctx, out, data, p, s, i)
            p = s + len(pats[i])
            continue
        keep = s  # a partial match holds the output from here
        break
    else:
        keep = end  # nothing left to look for
    if keep > p:
        out.append(data[p:keep])
    if keep < end:
        if last:
            out.append(data[keep:])
        else:
            ctx.tail = data[keep:]
    return b"".join(out)


def _zone(ctx: SubCtx, low: bytes, lo: int, hi: int, end: int) -> tuple[int, int, bool] | None:
    """The first position in [lo, hi] where an active string matches fully
    or runs past the end while matching, with nginx's order at a position."""
    pats = ctx.m.pats
    active = ctx.active
    order = [i for i in range(len(pats)) if active >> i & 1]
    for s in range(lo, hi + 1):
        avail = end - s
        for i in order:
            pat = pats[i]
            if len(pat) <= avail:
                if low.startswith(pat, s):
                    return s, i, True
            elif pat.startswith(low[s:end]):
                return s, i, False
    return None


def _apply(r: Request, ctx: SubCtx, out: list[bytes], data: bytes, p: int, s: int, i: int) -> None:
    if s > p:
        out.append(data[p:s])
    sub = ctx.subs[i]
    if sub is None:
        sub = ctx.subs[i] = ctx.m.values[i].eval(r).encode("utf-8", "surrogateescape")
    if sub:
        out.append(sub)
    if ctx.once:
        ctx.active &= ~(1 << i)


sub_body_filter = feed_body_filter("sub", _consume)


class SubModule(Module):
    name = "sub"
    nginx_name = "ngx_http_sub_module"
    is_http = True
    loc_conf = SubLocConf
    directives = [
        dir("sub_filter", HSL, TAKE2, _sub_filter),
        dir("sub_filter_types", HSL, MORE1, types_setter("types")),
        dir("sub_filter_once", HSL, (1, 1), set_flag("once")),
        dir("sub_filter_last_modified", HSL, (1, 1), set_flag("last_modified")),
    ]

    def postconfiguration(self, http: Any) -> None:
        # the search strings of a location without variables are prepared
        # once here (nginx: ngx_http_sub_init_tables at merge time)
        built: dict[int, Matcher | None] = {}  # locations inheriting one list share it
        for loc in http.all_locations():
            sc = loc.confs_raw.get("sub")
            if sc is not None and sc.pairs and all(mv.const is not None for mv, _ in sc.pairs):
                key = id(sc.pairs)
                if key not in built:
                    built[key] = _matcher(sc.pairs, None)
                sc.matcher = built[key]
        http.header_filters.append(("sub_filter", sub_header_filter, _applies))
        http.body_filters.append(("sub_filter", sub_body_filter, _applies))


def _applies(loc: Any) -> bool:
    return bool(loc.sub.pairs)
