"""Module and directive registry, conf structs and the generic setters.

Invariants:
- A module declares its directives as data (``Directive``) next to its code;
  the registry is the single source for parsing, ``-V`` and ``docs/``.
- Conf structs start with every field UNSET; ``merge(parent)`` replaces each
  UNSET field with the parent's (already merged) value, or with the declared
  default at the top level.  So defaults are written exactly once.
- Setters raise ConfError (via ``node.error``) with nginx's wording; they never
  print.  Argument counts are checked before a setter is called.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..conf.parser import Node
from . import values

# Contexts, named after nginx's NGX_*_CONF flags.
MAIN = "main"
EVENTS = "events"
HTTP = "http"
SERVER = "server"
LOCATION = "location"
SIF = "sif"  # if in server
LIF = "lif"  # if in location
LMT = "limit_except"
UPSTREAM = "upstream"
TYPES = "types"

HSL = frozenset({HTTP, SERVER, LOCATION})


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class Conf:
    """Base of every conf struct.

    Subclasses declare fields as annotated class attributes whose value is the
    default (immutables, or a zero-argument callable wrapped in ``Factory``).
    """

    _fields: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls) -> None:
        fields: dict[str, Any] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(getattr(base, "_fields", {}))
        for name in cls.__dict__.get("__annotations__", {}):
            if name.startswith("_"):
                continue
            fields[name] = cls.__dict__.get(name, None)
        cls._fields = fields

    def __init__(self) -> None:
        for name in self._fields:
            setattr(self, name, UNSET)

    def merge(self, parent: "Conf | None") -> None:
        for name, default in self._fields.items():
            if getattr(self, name) is UNSET:
                if parent is not None:
                    setattr(self, name, getattr(parent, name))
                elif isinstance(default, Factory):
                    setattr(self, name, default.make())
                else:
                    setattr(self, name, default)


@dataclass(frozen=True)
class Factory:
    make: Callable[[], Any]


@dataclass
class Directive:
    name: str
    contexts: frozenset[str]
    nargs: tuple[int, int | None]  # (min, max); max None = unlimited
    setter: Callable[[Any, Node, Any], None]
    level: str = "loc"  # which conf struct receives it: main | srv | loc
    block: bool = False
    module: "Module | None" = None
    status: str = "done"  # done | partial, for docs/


class Module:
    """A module: a name, an nginx module name, its conf classes and directives."""

    name: str = ""
    nginx_name: str = ""  # e.g. ngx_http_static_module
    main_conf: type[Conf] | None = None
    srv_conf: type[Conf] | None = None
    loc_conf: type[Conf] | None = None
    directives: list[Directive] = []

    def postconfiguration(self, http: Any) -> None:  # register phase handlers, filters
        pass

    def init_worker(self, cycle: Any) -> None:
        pass


class Registry:
    def __init__(self) -> None:
        self.modules: list[Module] = []
        self.by_context: dict[str, dict[str, Directive]] = {}
        self.all: dict[str, list[Directive]] = {}

    def add(self, module: Module) -> None:
        self.modules.append(module)
        for d in module.directives:
            d.module = module
            self.all.setdefault(d.name, []).append(d)
            for ctx in d.contexts:
                self.by_context.setdefault(ctx, {})[d.name] = d

    def lookup(self, node: Node, ctx: str) -> Directive:
        d = self.by_context.get(ctx, {}).get(node.name)
        if d is None:
            if node.name in self.all:
                raise node.error(f'"{node.name}" directive is not allowed here')
            raise node.error(f'unknown directive "{node.name}"')
        lo, hi = d.nargs
        n = len(node.args)
        if d.block and node.block is None:
            raise node.error(f'directive "{node.name}" has no opening "{{"')
        if not d.block and node.block is not None:
            raise node.error(f'directive "{node.name}" is not terminated by ";"')
        if n < lo or (hi is not None and n > hi):
            raise node.error(f'invalid number of arguments in "{node.name}" directive')
        return d


# --- argument-count shorthands -------------------------------------------------
NOARGS = (0, 0)
TAKE1 = (1, 1)
TAKE2 = (2, 2)
TAKE12 = (1, 2)
TAKE3 = (3, 3)
TAKE23 = (2, 3)
TAKE123 = (1, 3)
TAKE1234 = (1, 4)
MORE1 = (1, None)
MORE2 = (2, None)
ANY = (0, None)


# --- generic setters -------------------------------------------------------------
def _dup_check(conf: Any, attr: str, node: Node) -> None:
    if getattr(conf, attr) is not UNSET:
        raise node.error(f'"{node.name}" directive is duplicate')


def set_flag(attr: str) -> Callable[[Any, Node, Any], None]:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = node.args[0].lower()
        if v == "on":
            setattr(conf, attr, True)
        elif v == "off":
            setattr(conf, attr, False)
        else:
            raise node.error(f'invalid value "{node.args[0]}" in "{node.name}" directive, it must be "on" or "off"')
    return setter


def set_str(attr: str) -> Callable[[Any, Node, Any], None]:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        setattr(conf, attr, node.args[0])
    return setter


def set_num(attr: str) -> Callable[[Any, Node, Any], None]:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = values.parse_number(node.args[0])
        if v is None:
            raise node.error(f'"{node.name}" directive invalid number')
        setattr(conf, attr, v)
    return setter


def set_size(attr: str) -> Callable[[Any, Node, Any], None]:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = values.parse_size(node.args[0])
        if v is None:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, v)
    return setter


def set_off_size(attr: str) -> Callable[[Any, Node, Any], None]:
    """Size with nginx's off_t parsing (allows g); used for client_max_body_size."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = values.parse_offset(node.args[0])
        if v is None:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, v)
    return setter


def set_msec(attr: str) -> Callable[[Any, Node, Any], None]:
    """Time stored as float seconds (nginx's msec slot: default unit ms)."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = values.parse_time(node.args[0], default_unit_ms=True)
        if v is None:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, v)
    return setter


def set_sec(attr: str) -> Callable[[Any, Node, Any], None]:
    """Time stored as float seconds (nginx's sec slot: default unit s)."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        v = values.parse_time(node.args[0], default_unit_ms=False)
        if v is None:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, v)
    return setter


def set_enum(attr: str, choices: dict[str, Any]) -> Callable[[Any, Node, Any], None]:
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        key = node.args[0].lower()
        if key not in choices:
            raise node.error(f'invalid value "{node.args[0]}"')
        setattr(conf, attr, choices[key])
    return setter


def set_bufs(attr: str) -> Callable[[Any, Node, Any], None]:
    """``NUMBER SIZE`` pairs such as large_client_header_buffers 4 8k."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        _dup_check(conf, attr, node)
        num = values.parse_number(node.args[0])
        size = values.parse_size(node.args[1])
        if not num or not size:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, (num, size))
    return setter


def ignore(cf: Any, node: Node, conf: Any) -> None:
    """Accepted for compatibility; has no effect in Portico."""


def unsupported(cf: Any, node: Node, conf: Any) -> None:
    """Known to nginx, deliberately rejected by Portico (docs list it as missing)."""
    raise node.error(f'"{node.name}" directive is not supported by portico')


def dir(name: str, contexts: frozenset[str] | set[str], nargs: tuple[int, int | None],
        setter: Callable[[Any, Node, Any], None], level: str = "loc", block: bool = False,
        status: str = "done") -> Directive:
    return Directive(name, frozenset(contexts), nargs, setter, level, block, None, status)
