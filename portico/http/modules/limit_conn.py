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
"""
from __future__ import annotations

from typing import Any

from ...conf.errors import ConfError
from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import (HTTP, LOCATION, SERVER, TAKE1, TAKE2, UNSET, Conf, Factory, Module, dir,
                            set_enum, set_flag)
from ...core.shm.declare import check_zero_size, note_cycle, previous_cycle, shared_memory_add
from ...core.shm.keyed import KeyedTable
from ...core.shm.zone import MIN_ZONE_SIZE, SharedZone
from ...core.values import parse_number, parse_size
from ..request import DECLINED, Request

HSL = frozenset({HTTP, SERVER, LOCATION})
TAG = "limit_conn"
NODE_FMT = "=q"  # concurrent requests holding this key

LEVELS = {"info": logmod.INFO, "notice": logmod.NOTICE, "warn": logmod.WARN, "error": logmod.ERROR}

# $limit_conn_status values (nginx's NGX_HTTP_LIMIT_CONN_*)
PASSED, REJECTED, REJECTED_DRY_RUN = 1, 2, 3
_STATUS_TEXT = {PASSED: "PASSED", REJECTED: "REJECTED", REJECTED_DRY_RUN: "REJECTED_DRY_RUN"}


class LimitConnZone:
    """One ``limit_conn_zone`` (nginx's ngx_http_limit_conn_ctx_t)."""

    __slots__ = ("name", "size", "key", "key_text", "table")

    def __init__(self, name: str, size: int, key: Any, key_text: str) -> None:
        self.name = name
        self.size = size
        self.key = key
        self.key_text = key_text
        self.table: KeyedTable | None = None  # this process's handle

    def attach(self, cycle: Any) -> KeyedTable:
        shm = getattr(cycle, "shm", None)
        zone = shm.get(self.name) if shm is not None else None
        if zone is None:  # master_process off: this process alone serves
            zone = SharedZone(self.name, self.size, TAG)
        self.table = KeyedTable.attach(zone, NODE_FMT, self.key_text)
        return self.table


class Limit:
    __slots__ = ("zone_name", "zone", "conn")

    def __init__(self, zone_name: str, conn: int) -> None:
        self.zone_name = zone_name
        self.zone: LimitConnZone = None  # type: ignore[assignment]
        self.conn = conn


class LimitConnMainConf(Conf):
    zones: Any = Factory(dict)  # name -> LimitConnZone
    refs: Any = Factory(list)
    used: bool = False


class LimitConnLocConf(Conf):
    limits: Any = ()  # list[Limit]; a level with its own does not inherit
    log_level: int = logmod.ERROR
    status_code: int = 503
    dry_run: bool = False


def _main_conf(cf: Any) -> LimitConnMainConf:
    """The http{} main conf, its containers made on first use (the generic
    merge fills defaults only after the block is read)."""
    mc: LimitConnMainConf = cf.main["limit_conn"]
    if mc.zones is UNSET:
        mc.zones = {}
        mc.refs = []
    return mc


# --- directives ------------------------------------------------------------------------

def _limit_conn_zone(cf: Any, node: Node, conf: Any) -> None:
    http = cf.extra["http"]
    mc = _main_conf(cf)
    key_text = node.args[0]
    key = http.variables.compile(key_text, node.file, node.line)
    size = 0
    name = ""
    for v in node.args[1:]:
        if v.startswith("zone="):
            spec = v[5:]
            p = spec.find(":")
            if p < 0:
                raise node.error(f'invalid zone size "{v}"')
            name = spec[:p]
            sz = parse_size(spec[p + 1:])
            if sz is None:
                raise node.error(f'invalid zone size "{v}"')
            if sz < MIN_ZONE_SIZE:
                raise node.error(f'zone "{v}" is too small')
            size = sz
            continue
        raise node.error(f'invalid parameter "{v}"')
    if not name:
        raise node.error(f'"{node.name}" must have "zone" parameter')
    shared_memory_add(cf.cycle, node, name, size, TAG)
    old = mc.zones.get(name)
    if old is not None:
        raise node.error(f'{node.name} "{name}" is already bound to key "{old.key_text}"')
    mc.zones[name] = LimitConnZone(name, size, key, key_text)


def _limit_conn(cf: Any, node: Node, conf: LimitConnLocConf) -> None:
    mc = _main_conf(cf)
    name = node.args[0]
    shared_memory_add(cf.cycle, node, name, 0, TAG)
    if conf.limits is UNSET:
        conf.limits = []
    if any(lim.zone_name == name for lim in conf.limits):
        raise node.error(f'"{node.name}" directive is duplicate')
    n = parse_number(node.args[1])
    if not n:
        raise node.error(f'invalid number of connections "{node.args[1]}"')
    if n > 65535:
        raise node.error("connection limit must be less 65536")
    limit = Limit(name, n)
    conf.limits.append(limit)
    mc.refs.append(limit)
    mc.used = True


def _status(cf: Any, node: Node, conf: Any) -> None:
    if conf.status_code is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    n = parse_number(node.args[0])
    if n is None:
        raise node.error(f'"{node.name}" directive invalid number')
    if not 400 <= n <= 599:
        raise node.error("value must be between 400 and 599")
    conf.status_code = n


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
        zone = limit.zone
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


def _status_var(r: Request) -> str | None:
    s = r.ctx.get("limit_conn")
    return _STATUS_TEXT[s] if s else None


class LimitConnModule(Module):
    name = "limit_conn"
    nginx_name = "ngx_http_limit_conn_module"
    is_http = True
    main_conf = LimitConnMainConf
    loc_conf = LimitConnLocConf
    directives = [
        dir("limit_conn_zone", frozenset({HTTP}), TAKE2, _limit_conn_zone, "main"),
        dir("limit_conn", HSL, TAKE2, _limit_conn),
        dir("limit_conn_log_level", HSL, TAKE1, set_enum("log_level", LEVELS)),
        dir("limit_conn_status", HSL, TAKE1, _status),
        dir("limit_conn_dry_run", HSL, TAKE1, set_flag("dry_run")),
    ]

    def preconfiguration(self, http: Any) -> None:
        http.variables.add("limit_conn_status", _status_var)

    def postconfiguration(self, http: Any) -> None:
        cycle = http.cycle
        note_cycle(cycle)
        mc: LimitConnMainConf = http.main["limit_conn"]
        check_zero_size(cycle)
        for limit in mc.refs:
            limit.zone = mc.zones[limit.zone_name]
        _check_reload_keys(cycle, mc)
        if mc.used:
            http.add_phase_handler("preaccess", limit_conn_handler)

    def init_worker(self, worker: Any) -> None:
        http = worker.cycle.http
        if http is None:
            return
        for zone in http.main["limit_conn"].zones.values():
            zone.attach(worker.cycle)


def _check_reload_keys(cycle: Any, mc: LimitConnMainConf) -> None:
    """nginx's init_zone on reload: a kept zone must keep its key."""
    prev = previous_cycle(cycle)
    if prev is None or prev.http is None:
        return
    old = prev.http.main["limit_conn"].zones
    for name, z in mc.zones.items():
        o = old.get(name)
        if o is not None and o.size == z.size and o.key_text != z.key_text:
            raise ConfError(f'limit_conn_zone "{name}" uses the "{z.key_text}" key '
                            f'while previously it used the "{o.key_text}" key')
