"""ngx_http_limit_req_module: leaky-bucket request rate limiting.

Directives ``limit_req_zone``, ``limit_req``, ``limit_req_status``,
``limit_req_log_level``, ``limit_req_dry_run``; variable
``$limit_req_status``.

Invariants:
- The arithmetic is nginx's, in integers: a zone's ``rate`` is requests
  per 1000 seconds (``1r/s`` -> 1000, ``1r/m`` -> 16), a node's ``excess``
  is in 1/1000 requests, time is monotonic milliseconds (the same clock in
  every worker, like ``ngx_current_msec``), ``burst``/``delay`` are scaled
  by 1000, and ``nodelay`` is ``delay = NGX_MAX_INT_T_VALUE / 1000``.
- Per-key state (excess, last, count) lives in the zone's ``KeyedTable``
  (portico.core.shm.keyed), shared by every worker; each lookup, account
  and expiry runs under the zone lock.  Several limits are checked in
  order; every limit but the last only holds its node (``count``), the
  last one accounts; then ``account`` charges the held nodes and picks the
  longest delay (nginx's "account only the last one" logic).  ``count``
  keeps a held node from being expired by another worker meanwhile.
- Expiry is nginx's: before a new node, look at the one or two least
  recently used nodes and drop those idle for a minute whose excess has
  drained; when the zone is full, drop the oldest by force and retry once,
  else "could not allocate node" and the request is limited.
- A request is judged once (``r.ctx["limit_req"]`` holds the status, as
  nginx's ``r->main->limit_req_status``): internal redirects and the
  re-entry after a delay decline.
- A delay suspends the request (the handler returns AGAIN, the phase index
  unchanged); a loop timer resumes the phase engine at the same handler,
  which then declines, as nginx's ``ngx_http_limit_req_delay`` re-running
  the phases.  The timer never resumes a finished request (``r.done``: the
  client went away and the connection logged it) or a closing connection;
  a client that half-closes meanwhile (``r.eof_event``) gets nginx's 499
  and "client prematurely closed connection" at once.
- Handlers are registered only when some level has ``limit_req``.
- The zone, reference, status, log-level, dry-run, variable and reload
  plumbing is ``limit_common``'s, shared with limit_conn; this file keeps
  the leaky bucket.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import TAKE3, TAKE123
from ...core.shm.declare import shared_memory_add
from ...core.shm.keyed import KeyedTable
from ...core.values import parse_number
from ..request import AGAIN, DECLINED, Request
from .limit_common import (Limit, LimitLocConf, LimitMainConf, LimitModule, LimitZone,
                           add_limit, add_zone, check_duplicate, limit_directives, main_conf, zone_param)

TAG = "limit_req"
#: ``nodelay``: nginx's delay = NGX_MAX_INT_T_VALUE / 1000, scaled by 1000
NODELAY = (2 ** 63 - 1) // 1000 * 1000

# $limit_req_status values (nginx's NGX_HTTP_LIMIT_REQ_*)
PASSED, DELAYED, REJECTED, DELAYED_DRY_RUN, REJECTED_DRY_RUN = 1, 2, 3, 4, 5
_STATUS_TEXT = {PASSED: "PASSED", DELAYED: "DELAYED", REJECTED: "REJECTED",
                DELAYED_DRY_RUN: "DELAYED_DRY_RUN", REJECTED_DRY_RUN: "REJECTED_DRY_RUN"}

# lookup results (nginx's NGX_OK, NGX_AGAIN, NGX_BUSY, NGX_ERROR)
_OK, _AGAIN, _BUSY, _ERROR = 0, 1, 2, 3


class LimitReqZone(LimitZone):
    """One ``limit_req_zone`` (nginx's ngx_http_limit_req_ctx_t)."""

    __slots__ = ("rate",)
    tag = TAG
    #: node value: excess (1/1000 requests), last (ms), count (held by requests)
    node_fmt = "=qqq"

    def __init__(self, name: str, size: int, key: Any, key_text: str, rate: int) -> None:
        super().__init__(name, size, key, key_text)
        self.rate = rate  # requests per 1000 s


class ReqLimit(Limit):
    """One ``limit_req``: ``burst`` and ``delay`` in 1/1000 requests."""

    __slots__ = ("burst", "delay")

    def __init__(self, zone_name: str, burst: int, delay: int) -> None:
        super().__init__(zone_name)
        self.zone: LimitReqZone = None  # type: ignore[assignment]
        self.burst = burst
        self.delay = delay


class LimitReqMainConf(LimitMainConf):
    pass


class LimitReqLocConf(LimitLocConf):
    def merge(self, parent: "LimitLocConf | None") -> None:  # type: ignore[override]
        super().merge(parent)
        # nginx: delays are logged one level lower (info stays info)
        lvl = self.log_level
        self.delay_log_level = logmod.INFO if lvl == logmod.INFO else lvl + 1


# --- directives ------------------------------------------------------------------------

def _limit_req_zone(cf: Any, node: Node, conf: Any) -> None:
    http = cf.extra["http"]
    mc = main_conf(cf, TAG)
    key_text = node.args[0]
    key = http.variables.compile(key_text, node.file, node.line)
    size = 0
    rate, scale = 1, 1
    name = ""
    for v in node.args[1:]:
        if v.startswith("zone="):
            name, size = zone_param(node, v)
            continue
        if v.startswith("rate="):
            digits = v[5:]
            if v.endswith("r/s"):
                scale, digits = 1, v[5:-3]
            elif v.endswith("r/m"):
                scale, digits = 60, v[5:-3]
            n = parse_number(digits)
            if not n:
                raise node.error(f'invalid rate "{v}"')
            rate = n
            continue
        raise node.error(f'invalid parameter "{v}"')
    add_zone(cf, node, mc, LimitReqZone(name, size, key, key_text, rate * 1000 // scale))


def _limit_req(cf: Any, node: Node, conf: LimitReqLocConf) -> None:
    mc = main_conf(cf, TAG)
    zone_name: str | None = None
    burst = delay = 0
    for v in node.args:
        if v.startswith("zone="):
            zone_name = v[5:]
            shared_memory_add(cf.cycle, node, zone_name, 0, TAG)
            continue
        if v.startswith(("burst=", "delay=")):
            n = parse_number(v[6:])
            if not n:
                raise node.error(f'invalid {v[:5]} value "{v}"')
            if v[0] == "b":
                burst = n
            else:
                delay = n
            continue
        if v == "nodelay":
            delay = NODELAY // 1000
            continue
        raise node.error(f'invalid parameter "{v}"')
    if zone_name is None:
        raise node.error(f'"{node.name}" must have "zone" parameter')
    check_duplicate(node, conf, zone_name)
    add_limit(conf, mc, ReqLimit(zone_name, burst * 1000, delay * 1000))


# --- the PREACCESS handler -------------------------------------------------------------

def _expire(zone: LimitReqZone, t: KeyedTable, now: int, n: int) -> None:
    """ngx_http_limit_req_expire: n == 1 drops one or two drained entries,
    n == 0 drops the oldest by force, then one or two drained ones."""
    while n < 3:
        idx = t.lru_tail()
        if idx < 0:
            return
        excess, last, count = t.get(idx)
        if count:
            # nodes are bumped on lookup: the ones before are busier still
            return
        first = n == 0
        n += 1
        if not first:
            ms = abs(now - last)
            if ms < 60000:
                return
            if excess - zone.rate * ms // 1000 > 0:
                return
        t.remove(idx)


def _leak(rate: int, old: int, last: int, now: int) -> tuple[int, int]:
    """The bucket of a node as nginx's lookup and account both compute it:
    ``old`` excess drained at ``rate`` since ``last``, plus this request
    (1000), never below 0; and the milliseconds elapsed (a clock that went
    back a little counts as 0, more than a minute as 1)."""
    ms = now - last
    if ms < -60000:
        ms = 1
    elif ms < 0:
        ms = 0
    excess = old - rate * ms // 1000 + 1000
    return (excess if excess > 0 else 0), ms


def _lookup(r: Request, limit: ReqLimit, t: KeyedTable, key: bytes, now: int,
            account: bool) -> tuple[int, int, int]:
    """ngx_http_limit_req_lookup, under the zone lock: (rc, excess, node)."""
    zone = limit.zone
    idx = t.find(key)
    if idx >= 0:
        t.touch(idx)
        old, last, count = t.get(idx)
        excess, ms = _leak(zone.rate, old, last, now)
        if excess > limit.burst:
            return _BUSY, excess, idx
        if account:
            t.put(idx, (excess, now if ms else last, count))
            return _OK, excess, idx
        t.put(idx, (old, last, count + 1))
        return _AGAIN, excess, idx
    _expire(zone, t, now, 1)
    idx = t.insert(key, (0, 0, 0))
    if idx < 0:
        _expire(zone, t, now, 0)
        idx = t.insert(key, (0, 0, 0))
        if idx < 0:
            r.http.cycle.log.log(logmod.ALERT, f'could not allocate node in limit_req zone "{zone.name}"')
            return _ERROR, 0, -1
    if account:
        t.put(idx, (0, now, 0))
        return _OK, 0, idx
    t.put(idx, (0, 0, 1))
    return _AGAIN, 0, idx


def _unlock(held: list[tuple[ReqLimit, KeyedTable, int]]) -> None:
    """ngx_http_limit_req_unlock: give back the nodes held so far."""
    for _, t, idx in reversed(held):
        with t.zone.lock:
            excess, last, count = t.get(idx)
            t.put(idx, (excess, last, count - 1))


def _account(held: list[tuple[ReqLimit, KeyedTable, int]], excess: int, limit: ReqLimit,
             now: int) -> tuple[int, int, ReqLimit]:
    """ngx_http_limit_req_account: charge the held nodes; the longest delay
    (ms), with the excess and limit that caused it."""
    if excess <= limit.delay:
        max_delay = 0
    else:
        max_delay = (excess - limit.delay) * 1000 // limit.zone.rate
    for lim, t, idx in reversed(held):
        with t.zone.lock:
            old, last, count = t.get(idx)
            ex, ms = _leak(lim.zone.rate, old, last, now)
            t.put(idx, (ex, now if ms else last, count - 1))
        if ex <= lim.delay:
            continue
        delay = (ex - lim.delay) * 1000 // lim.zone.rate
        if delay > max_delay:
            max_delay, excess, limit = delay, ex, lim
    return max_delay, excess, limit


def limit_req_handler(r: Request) -> int:
    if "limit_req" in r.ctx:
        return DECLINED
    conf: LimitReqLocConf = r.loc.limit_req
    limits = conf.limits
    if not limits:
        return DECLINED
    now = int(time.monotonic() * 1000)
    last_i = len(limits) - 1
    rc = -1  # nginx's NGX_DECLINED: no key was accounted
    excess = 0
    held: list[tuple[ReqLimit, KeyedTable, int]] = []
    limit = limits[0]
    for i, limit in enumerate(limits):
        zone = limit.zone
        key = zone.key.eval(r)
        if not key:
            continue
        kb = key.encode("utf-8", "surrogateescape")
        if len(kb) > 65535:
            r.log_error(logmod.ERROR, f'the value of the "{zone.key_text}" key '
                                      f'is more than 65535 bytes: "{key}"')
            continue
        t = zone.table or zone.attach(r.http.cycle)
        with t.zone.lock:
            rc, excess, idx = _lookup(r, limit, t, kb, now, i == last_i)
        if rc != _AGAIN:
            break
        held.append((limit, t, idx))
    if rc == -1:
        return DECLINED
    if rc == _BUSY or rc == _ERROR:
        if rc == _BUSY:
            r.log_error(conf.log_level,
                        f"limiting requests{', dry run' if conf.dry_run else ''}, "
                        f"excess: {excess // 1000}.{excess % 1000:03d} by zone \"{limit.zone.name}\"")
        _unlock(held)
        if conf.dry_run:
            r.ctx["limit_req"] = REJECTED_DRY_RUN
            return DECLINED
        r.ctx["limit_req"] = REJECTED
        return conf.status_code
    if rc == _AGAIN:
        excess = 0
    delay, excess, limit = _account(held, excess, limit, now)
    if not delay:
        r.ctx["limit_req"] = PASSED
        return DECLINED
    r.log_error(conf.delay_log_level,
                f"delaying request{', dry run' if conf.dry_run else ''}, "
                f"excess: {excess // 1000}.{excess % 1000:03d}, by zone \"{limit.zone.name}\"")
    if conf.dry_run:
        r.ctx["limit_req"] = DELAYED_DRY_RUN
        return DECLINED
    r.ctx["limit_req"] = DELAYED
    timer = asyncio.get_running_loop().call_later(delay / 1000.0, _resume, r)

    def client_gone() -> None:
        # nginx's ngx_http_test_reading watches a delayed request: a client
        # that closes its side ends it at once with 499
        timer.cancel()
        r.eof_event = None
        r.log_error(logmod.INFO, "client prematurely closed connection")
        r.status = r.log_status = 499
        r.terminate()
    r.eof_event = client_gone
    return AGAIN


def _resume(r: Request) -> None:
    """The delay is over: run the phases again from this handler (which now
    declines), unless the request ended meanwhile."""
    r.eof_event = None
    if r.done or getattr(r.conn, "closing", False):
        return
    try:
        r.http.engine.run(r)
    except Exception as e:  # a bug downstream must end this request, not the loop
        handler = getattr(r.conn, "internal_error", None)
        if handler is None:
            raise
        handler(r, e)


class LimitReqModule(LimitModule):
    name = TAG
    nginx_name = "ngx_http_limit_req_module"
    main_conf = LimitReqMainConf
    loc_conf = LimitReqLocConf
    directives = limit_directives(TAG, TAKE3, _limit_req_zone, TAKE123, _limit_req)
    handler = staticmethod(limit_req_handler)
    status_text = _STATUS_TEXT
    reload_what = "limit_req"
