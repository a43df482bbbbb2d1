"""ngx_http_limit_conn_module: limits on concurrent requests per key.

Directives ``limit_conn_zone``, ``limit_conn``, ``limit_conn_status``,
``limit_conn_log_level``, ``limit_conn_dry_run``; variable
``$limit_conn_status``.

Invariants:
- The count per key lives in the zone's ``KeyedTable`` (one int64 per
  node), shared by every worker, changed only under the zone lock; a node
  exists exactly while its count is above zero (nginx frees it at zero).
- A request that passes holds one unit in every zone whose key it had; it
  gives them back in one pool cleanup, which runs after the LOG phase as
  nginx's pool cleanup does, whether the response was sent, the request
  failed, or the client went away (the connection logs and cleans up a
  request it loses).  A rejected request gives back at once what it took in
  earlier zones (nginx's ``ngx_http_limit_conn_cleanup_all``).
- A request is counted once (``r.ctx["limit_conn"]``, nginx's
  ``r->main->limit_conn_status``), internal redirects included.  Empty
  keys are not counted; keys over 255 bytes are logged and skipped.
- Handlers are registered only when some level has ``limit_conn``.
- The zone, reference, status, log-level, dry-run, variable and reload
  plumbing is ``limit_common``'s, shared with limit_req; this file keeps
  the counting.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import TAKE2
from ...core.shm.declare import shared_memory_add
from ...core.shm.keyed import KeyedTable
from ...core.values import parse_number
from ..request import DECLINED, Request
from .limit_common import (Limit, LimitLocConf, LimitMainConf, LimitModule, LimitZone,
                           add_limit, add_zone, check_duplicate, limit_directives, main_conf, zone_param)

TAG = "limit_conn"

# $limit_conn_status values (nginx's NGX_HTTP_LIMIT_CONN_*)
PASSED, REJECTED, REJECTED_DRY_RUN = 1, 2, 3
_STATUS_TEXT = {PASSED: "PASSED", REJECTED: "REJECTED", REJECTED_DRY_RUN: "REJECTED_DRY_RUN"}


class LimitConnZone(LimitZone):
    """One ``limit_conn_zone`` (nginx's ngx_http_limit_conn_ctx_t)."""

    __slots__ = ()
    tag = TAG
    node_fmt = "=q"  # concurrent requests holding this key


class ConnLimit(Limit):
    """One ``limit_conn``: at most ``conn`` concurrent requests per key."""

    __slots__ = ("conn",)

    def __init__(self, zone_name: str, conn: int) -> None:
        super().__init__(zone_name)
        self.conn = conn


class LimitConnMainConf(LimitMainConf):
    pass


class LimitConnLocConf(LimitLocConf):
    pass


# --- directives ------------------------------------------------------------------------

def _limit_conn_zone(cf: Any, node: Node, conf: Any) -> None:
    http = cf.extra["http"]
    mc = main_conf(cf, TAG)
    key_text = node.args[0]
    key = http.variables.compile(key_text, node.file, node.line)
    size = 0
    name = ""
    for v in node.args[1:]:
        if v.startswith("zone="):
            name, size = zone_param(node, v)
            continue
        raise node.error(f'invalid parameter "{v}"')
    add_zone(cf, node, mc, LimitConnZone(name, size, key, key_text))


def _limit_conn(cf: Any, node: Node, conf: LimitConnLocConf) -> None:
    mc = main_conf(cf, TAG)
    name = node.args[0]
    shared_memory_add(cf.cycle, node, name, 0, TAG)
    check_duplicate(node, conf, name)
    n = parse_number(node.args[1])
    if not n:
        raise node.error(f'invalid number of connections "{node.args[1]}"')
    if n > 65535:
        raise node.error("connection limit must be less 65536")
    add_limit(conf, mc, ConnLimit(name, n))


# --- the PREACCESS handler -------------------------------------------------------------

def _release(taken: list[tuple[KeyedTable, int]]) -> None:
    """ngx_http_limit_conn_cleanup for each unit held; empties ``taken``."""
    while taken:
        t, idx = taken.pop()
        with t.zone.lock:
            (n,) = t.get(idx)
            if n <= 1:
                t.remove(idx, lru=False)
            else:
                t.put(idx, (n - 1,))


def limit_conn_handler(r: Request) -> int:
    if "limit_conn" in r.ctx:
        return DECLINED
    conf: LimitConnLocConf = r.loc.limit_conn
    if not conf.limits:
        return DECLINED
    taken: list[tuple[KeyedTable, int]] | None = None
    for limit in conf.limits:
        zone: LimitConnZone = limit.zone
        key = zone.key.eval(r)
        if not key:
            continue
        kb = key.encode("utf-8", "surrogateescape")
        if len(kb) > 255:
            r.log_error(logmod.ERROR, f'the value of the "{zone.key_text}" key '
                                      f'is more than 255 bytes: "{key}"')
            continue
        r.ctx["limit_conn"] = PASSED
        t = zone.table or zone.attach(r.http.cycle)
        rejected = False
        with t.zone.lock:
            idx = t.find(kb)
            if idx < 0:
                idx = t.insert(kb, (1,), lru=False)
                nomem = idx < 0
            else:
                nomem = False
                (n,) = t.get(idx)
                if n >= limit.conn:
                    rejected = True
                else:
                    t.put(idx, (n + 1,))
        if nomem or rejected:
            if nomem:
                r.http.cycle.log.log(logmod.CRIT, "ngx_slab_alloc() failed: no memory"
                                                  f' in limit_conn_zone "{zone.name}"')
            else:
                r.log_error(conf.log_level,
                            f"limiting connections{', dry run,' if conf.dry_run else ''} "
                            f'by zone "{zone.name}"')
            if taken:
                _release(taken)
            if conf.dry_run:
                r.ctx["limit_conn"] = REJECTED_DRY_RUN
                return DECLINED
            r.ctx["limit_conn"] = REJECTED
            return conf.status_code
        if taken is None:
            taken = []
            # one pool cleanup gives back every unit this request holds
            r.add_pool_cleanup(lambda held=taken: _release(held))
        taken.append((t, idx))
    return DECLINED


class LimitConnModule(LimitModule):
    name = TAG
    nginx_name = "ngx_http_limit_conn_module"
    main_conf = LimitConnMainConf
    loc_conf = LimitConnLocConf
    directives = limit_directives(TAG, TAKE2, _limit_conn_zone, TAKE2, _limit_conn)
    handler = staticmethod(limit_conn_handler)
    status_text = _STATUS_TEXT
    reload_what = "limit_conn_zone"
