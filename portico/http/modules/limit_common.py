"""What limit_req and limit_conn share: zones of per-key state, the
``limit_*`` reference list, ``*_status``, ``*_log_level``, ``*_dry_run``,
the ``$limit_*_status`` variable and the module's life cycle.

nginx's ngx_http_limit_req_module.c and ngx_http_limit_conn_module.c repeat
this plumbing nearly line for line; here it is written once and each module
keeps only its own arithmetic (the leaky bucket, the connection count) and
its own messages.

Invariants:
- A ``LimitZone`` is one ``limit_*_zone``: its name, size, compiled key and
  key text, and this process's ``KeyedTable`` handle (attached lazily, or in
  ``init_worker``).  Its subclass fixes the zone tag and node format; a zone
  name is declared through ``shared_memory_add`` so that tags, sizes and
  zero-size references are checked as nginx's ``ngx_shared_memory_add``.
- A ``limit_*`` directive records a ``Limit`` by zone *name*; the zone is
  resolved once the whole configuration is read (postconfiguration), since
  nginx allows the reference before the definition.
- A level with its own ``limit_*`` list does not inherit the parent's (the
  generic merge only fills UNSET); one zone may appear once per level.
- The PREACCESS handler is registered only when some level uses the module.
- On reload, a zone kept with the same name and size must keep its key
  (nginx's zone ``init``: "uses the ... key while previously it used ...").
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

from ...conf.errors import ConfError
from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import (HTTP, LOCATION, SERVER, TAKE1, UNSET, Conf, Directive, Factory, Module, dir, set_enum,
                            set_flag)
from ...core.shm.declare import check_zero_size, note_cycle, previous_cycle, shared_memory_add
from ...core.shm.keyed import KeyedTable
from ...core.shm.zone import MIN_ZONE_SIZE, SharedZone
from ...core.values import parse_number, parse_size
from ..request import Request

HSL = frozenset({HTTP, SERVER, LOCATION})

#: ``limit_*_log_level`` values (nginx's ngx_http_limit_*_log_levels)
LEVELS = {"info": logmod.INFO, "notice": logmod.NOTICE, "warn": logmod.WARN, "error": logmod.ERROR}


class LimitZone:
    """One ``limit_*_zone`` (nginx's ngx_http_limit_*_ctx_t)."""

    __slots__ = ("name", "size", "key", "key_text", "table")
    tag: ClassVar[str] = ""  # the shared-memory tag: the module's name
    node_fmt: ClassVar[str] = ""  # the struct format of a node's value

    def __init__(self, name: str, size: int, key: Any, key_text: str) -> None:
        self.name = name
        self.size = size
        self.key = key
        self.key_text = key_text
        self.table: KeyedTable | None = None  # this process's handle

    def attach(self, cycle: Any) -> KeyedTable:
        shm = getattr(cycle, "shm", None)
        zone = shm.get(self.name) if shm is not None else None
        if zone is None:
            # master_process off: no master made zones; this process alone
            # serves, so a private zone is shared by everyone there is
            zone = SharedZone(self.name, self.size, self.tag)
        self.table = KeyedTable.attach(zone, self.node_fmt, self.key_text)
        return self.table


class Limit:
    """One ``limit_*`` directive (ngx_http_limit_*_limit_t); ``zone`` is
    resolved by name once the whole configuration is read."""

    __slots__ = ("zone_name", "zone")

    def __init__(self, zone_name: str) -> None:
        self.zone_name = zone_name
        self.zone: Any = None  # the LimitZone subclass of the module


class LimitMainConf(Conf):
    zones: Any = Factory(dict)  # name -> LimitZone
    refs: Any = Factory(list)  # every Limit, to resolve its zone
    used: bool = False


class LimitLocConf(Conf):
    limits: Any = ()  # list[Limit]; a level with its own does not inherit
    log_level: int = logmod.ERROR
    status_code: int = 503
    dry_run: bool = False


def main_conf(cf: Any, module: str) -> Any:
    """The http{} main conf, its containers made on first use (the generic
    merge fills defaults only after the block is read)."""
    mc: LimitMainConf = cf.main[module]
    if mc.zones is UNSET:
        mc.zones = {}
        mc.refs = []
    return mc


def zone_param(node: Node, v: str) -> tuple[str, int]:
    """``zone=NAME:SIZE`` of a ``limit_*_zone``: (name, size in bytes)."""
    spec = v[5:]
    p = spec.find(":")
    if p < 0:
        raise node.error(f'invalid zone size "{v}"')
    size = parse_size(spec[p + 1:])
    if size is None:
        raise node.error(f'invalid zone size "{v}"')
    if size < MIN_ZONE_SIZE:
        raise node.error(f'zone "{v}" is too small')
    return spec[:p], size


def add_zone(cf: Any, node: Node, mc: LimitMainConf, zone: LimitZone) -> None:
    """Declare a parsed ``limit_*_zone`` (``zone.name`` empty: none was given)."""
    if not zone.name:
        raise node.error(f'"{node.name}" must have "zone" parameter')
    shared_memory_add(cf.cycle, node, zone.name, zone.size, zone.tag)
    old = mc.zones.get(zone.name)
    if old is not None:
        raise node.error(f'{node.name} "{zone.name}" is already bound to key "{old.key_text}"')
    mc.zones[zone.name] = zone


def check_duplicate(node: Node, conf: LimitLocConf, zone_name: str) -> None:
    """One zone once per level (each module checks where nginx's does)."""
    if conf.limits is not UNSET and any(lim.zone_name == zone_name for lim in conf.limits):
        raise node.error(f'"{node.name}" directive is duplicate')


def add_limit(conf: LimitLocConf, mc: LimitMainConf, limit: Limit) -> None:
    """Record a checked ``limit_*`` at this level and for zone resolution."""
    if conf.limits is UNSET:
        conf.limits = []
    conf.limits.append(limit)
    mc.refs.append(limit)
    mc.used = True


def set_status(cf: Any, node: Node, conf: LimitLocConf) -> None:
    """``limit_*_status``: ngx_conf_set_num_slot with a 400..599 bounds post."""
    if conf.status_code is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')
    n = parse_number(node.args[0])
    if n is None:
        raise node.error(f'"{node.name}" directive invalid number')
    if not 400 <= n <= 599:
        raise node.error("value must be between 400 and 599")
    conf.status_code = n


Setter = Callable[[Any, Node, Any], None]


def limit_directives(prefix: str, zone_nargs: tuple[int, int | None], zone_setter: Setter,
                     limit_nargs: tuple[int, int | None], limit_setter: Setter) -> list[Directive]:
    """The five directives of ``prefix`` (limit_req, limit_conn): the two the
    module parses itself (``PREFIX_zone`` in http{}, ``PREFIX``) and the
    three that are the same in both (log level, status, dry run)."""
    return [
        dir(f"{prefix}_zone", frozenset({HTTP}), zone_nargs, zone_setter, "main"),
        dir(prefix, HSL, limit_nargs, limit_setter),
        dir(f"{prefix}_log_level", HSL, TAKE1, set_enum("log_level", LEVELS)),
        dir(f"{prefix}_status", HSL, TAKE1, set_status),
        dir(f"{prefix}_dry_run", HSL, TAKE1, set_flag("dry_run")),
    ]


class LimitModule(Module):
    """The life cycle both modules share; a subclass sets ``name``, its confs,
    directives, ``handler`` (the PREACCESS handler), ``status_text`` (the
    ``$<name>_status`` values) and ``reload_what`` (how the reload error
    names a zone: nginx says "limit_req" but "limit_conn_zone").  ``handler``
    is set as a ``staticmethod`` so that ``self.handler`` is the plain function."""

    is_http = True
    handler: ClassVar[Callable[[Request], int]]
    status_text: ClassVar[dict[int, str]] = {}
    reload_what: ClassVar[str] = ""

    def preconfiguration(self, http: Any) -> None:
        key, texts = self.name, self.status_text

        def status_var(r: Request) -> str | None:
            s = r.ctx.get(key)  # the module's r->main->limit_*_status
            return texts[s] if s else None
        http.variables.add(f"{self.name}_status", status_var)

    def postconfiguration(self, http: Any) -> None:
        cycle = http.cycle
        note_cycle(cycle)
        mc: LimitMainConf = http.main[self.name]
        check_zero_size(cycle)
        for limit in mc.refs:
            limit.zone = mc.zones[limit.zone_name]
        self._check_reload_keys(cycle, mc)
        if mc.used:
            name = self.name
            http.add_phase_handler("preaccess", self.handler, lambda lc: bool(getattr(lc, name).limits))

    def init_worker(self, worker: Any) -> None:
        http = worker.cycle.http
        if http is None:
            return
        for zone in http.main[self.name].zones.values():
            zone.attach(worker.cycle)

    def _check_reload_keys(self, cycle: Any, mc: LimitMainConf) -> None:
        """nginx's init_zone on reload: a kept zone must keep its key."""
        prev = previous_cycle(cycle)
        if prev is None or prev.http is None:
            return
        old = prev.http.main[self.name].zones
        for name, z in mc.zones.items():
            o = old.get(name)
            if o is not None and o.size == z.size and o.key_text != z.key_text:
                raise ConfError(f'{self.reload_what} "{name}" uses the "{z.key_text}" key '
                                f'while previously it used the "{o.key_text}" key')
