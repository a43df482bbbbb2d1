"""ngx_http_geo_module: ``geo [$address] $variable { ... }``.

Invariants:
- The tables are built once, when the ``geo`` block is read.  CIDR mode
  keeps one dict per prefix length (IPv4 and IPv6 apart), probed from the
  longest length down: the longest matching prefix wins, as in nginx's
  radix trees.  ``ranges`` mode replays nginx's per-/16 insertion (same
  overlap errors, same splits) and then flattens it into sorted
  start/end/value lists searched with ``bisect``.
- Addresses, networks and their parsing are ``portico.core.inet``'s.  The
  address is the client's (``r.conn.client_addr``) or, with a source
  variable, its value parsed exactly as nginx's ``ngx_parse_addr`` does
  (``ngx_inet_addr`` quirks included).  An unparsable or missing address,
  a unix-socket client, and (in ranges mode) an IPv6 address all look up
  255.255.255.255, nginx's INADDR_NONE; IPv4-mapped IPv6 addresses use the
  IPv4 table.
- With ``proxy`` entries, a trusted address is replaced by the last address
  of X-Forwarded-For (all of them, right to left, with ``proxy_recursive``),
  following ``ngx_http_get_forwarded_addr`` (``core.inet.forwarded_addr``,
  shared with realip).
- Values are plain strings (geo values are never compiled); without
  ``default`` the value is the empty string.  The variable is changeable
  and cached for the request.
- Messages (errors and warnings) carry nginx's wording.  Binary range bases
  (``include`` of a ``.bin`` file) are not supported: the text file is read.
"""
from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Any, Callable

from ...conf.parser import Node
from ...core.inet import (ALL32, INADDR_NONE, UNIX, V4, V6, Addr, Cidr, CidrSet, addr_key, forwarded_addr,
                          inet_addr, parse_addr, ptocidr, unmap_v4)
from ...core.module import HTTP, Module, dir
from .map import check_new_variable, new_variable, source_getter, variable_name

if TYPE_CHECKING:
    from ..request import Request

H = frozenset({HTTP})

_NO_ADDR: Addr = (UNIX, 0)


# --- a network in a geo block ----------------------------------------------------------

def _cidr_value(cf: Any, node: Node, net: str) -> Cidr:
    """ngx_http_geo_cidr_value: ngx_ptocidr, plus "255.255.255.255" (which
    ngx_inet_addr refuses) as that very host."""
    if net == "255.255.255.255":
        return Cidr(V4, INADDR_NONE, ALL32)
    c = ptocidr(net)
    if c is None:
        raise node.error(f'invalid network "{net}"')
    if c.low_bits:
        cf.cycle.warn(f"low address bits of {net} are meaningless", node)
    return c


# --- the tables ------------------------------------------------------------------------

class _Cidr:
    """Prefix tables of one family; ``find`` is nginx's radix-tree find."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.by_len: dict[int, dict[int, str]] = {}
        self.levels: tuple[tuple[int, dict[int, str]], ...] = ()

    def insert(self, net: int, plen: int, value: str) -> bool:
        t = self.by_len.setdefault(plen, {})
        if net in t:
            return False
        t[net] = value
        self._freeze()
        return True

    def replace(self, net: int, plen: int, value: str) -> None:
        self.by_len.setdefault(plen, {})[net] = value
        self._freeze()

    def delete(self, net: int, plen: int) -> bool:
        t = self.by_len.get(plen)
        if not t or net not in t:
            return False
        del t[net]
        if not t:
            del self.by_len[plen]
        self._freeze()
        return True

    def _freeze(self) -> None:
        full = (1 << self.bits) - 1
        self.levels = tuple((full ^ ((1 << (self.bits - n)) - 1), t)
                            for n, t in sorted(self.by_len.items(), reverse=True))

    def find(self, v: int) -> str | None:
        for mask, t in self.levels:
            hit = t.get(v & mask)
            if hit is not None:
                return hit
        return None


class _Ranges:
    """nginx's ranges mode: per-/16 lists of [start, end, value] (16-bit
    offsets), maintained with nginx's insertion algorithm."""

    def __init__(self) -> None:
        self.low: dict[int, list[list[Any]]] = {}
        self.default: str | None = None

    def add(self, cf: Any, node: Node, net: str, start: int, end: int, value: str) -> None:
        n = start
        while n <= end:
            h = n >> 16
            s = n & 0xFFFF if n == start else 0
            e = end & 0xFFFF if (n | 0xFFFF) > end else 0xFFFF
            a = self.low.setdefault(h, [])
            self._add_one(cf, node, net, a, h, s, e, value)
            if h == 0xFFFF:
                break
            n = (n + 0x10000) & 0xFFFF0000

    @staticmethod
    def _add_one(cf: Any, node: Node, net: str, a: list[list[Any]], h: int, s: int, e: int, value: str) -> None:
        i = len(a)
        while i:
            i -= 1
            rs, re_, rv = a[i]
            if e < rs:
                continue
            if s > re_:
                a.insert(i + 1, [s, e, value])
                return
            if s == rs and e == re_:
                cf.cycle.warn(f'duplicate range "{net}", value: "{value}", old value: "{rv}"', node)
                a[i][2] = value
                return
            if s > rs and e < re_:
                a[i][1] = s - 1
                a.insert(i + 1, [s, e, value])
                a.insert(i + 2, [e + 1, re_, rv])
                return
            if s == rs and e < re_:
                a[i][0] = e + 1
                a.insert(i, [s, e, value])
                return
            if s > rs and e == re_:
                a[i][1] = s - 1
                a.insert(i + 1, [s, e, value])
                return
            raise node.error(f'range "{net}" overlaps "{h >> 8}.{h & 0xFF}.{rs >> 8}.{rs & 0xFF}-'
                             f'{h >> 8}.{h & 0xFF}.{re_ >> 8}.{re_ & 0xFF}"')
        a.insert(0, [s, e, value])

    def delete(self, start: int, end: int) -> bool:
        """True when some part was not found (nginx then warns)."""
        warn = False
        n = start
        while n <= end:
            h = n >> 16
            s = n & 0xFFFF if n == start else 0
            e = end & 0xFFFF if (n | 0xFFFF) > end else 0xFFFF
            a = self.low.get(h)
            if not a:
                warn = True
            else:
                for i, (rs, re_, _) in enumerate(a):
                    if rs == s and re_ == e:
                        del a[i]
                        break
                    if i == len(a) - 1:
                        warn = True
            if h == 0xFFFF:
                break
            n = (n + 0x10000) & 0xFFFF0000
        return warn

    def flatten(self) -> tuple[list[int], list[int], list[str]]:
        starts: list[int] = []
        ends: list[int] = []
        values: list[str] = []
        for h in sorted(self.low):
            base = h << 16
            for s, e, v in self.low[h]:
                starts.append(base | s)
                ends.append(base | e)
                values.append(v)
        return starts, ends, values


class _GeoCtx:
    """What the block has read so far."""

    def __init__(self) -> None:
        self.ranges = False
        self.cidr_used = False  # nginx's ctx->tree: created by the first CIDR-mode entry
        self.recursive = False
        self.proxies = CidrSet()
        self.v4 = _Cidr(32)
        self.v6 = _Cidr(128)
        self.rng = _Ranges()


def _cidr_add(cf: Any, node: Node, t: _Cidr, net: int, plen: int, value: str, text: str) -> None:
    if t.insert(net, plen, value):
        return
    old = t.find(net)
    cf.cycle.warn(f'duplicate network "{text}", value: "{value}", old value: "{old}"', node)
    t.replace(net, plen, value)


def _cidr_entry(cf: Any, node: Node, ctx: _GeoCtx, key: str, value: str) -> None:
    ctx.cidr_used = True
    if key == "default":
        _cidr_add(cf, node, ctx.v4, 0, 0, value, key)
        _cidr_add(cf, node, ctx.v6, 0, 0, value, key)
        return
    delete = key == "delete"
    net = value if delete else key
    c = _cidr_value(cf, node, net)
    t = ctx.v4 if c.family == V4 else ctx.v6
    if delete:
        if not t.delete(c.addr, c.prefix):
            cf.cycle.warn(f'no network "{net}" to delete', node)
        return
    _cidr_add(cf, node, t, c.addr, c.prefix, value, net)


def _range_entry(cf: Any, node: Node, ctx: _GeoCtx, key: str, value: str) -> None:
    rng = ctx.rng
    if key == "default":
        if rng.default is not None:
            cf.cycle.warn(f'duplicate default geo range value: "{value}", old value: "{rng.default}"', node)
        rng.default = value
        return
    delete = key == "delete"
    net = value if delete else key
    dash = net.find("-")
    start = inet_addr(net[:dash]) if dash >= 0 else None
    end = inet_addr(net[dash + 1:]) if dash >= 0 else None
    if start is None or end is None or start > end:
        raise node.error(f'invalid range "{net}"')
    if delete:
        if rng.delete(start, end):
            cf.cycle.warn(f'no address range "{net}" to delete', node)
        return
    rng.add(cf, node, net, start, end, value)


def _geo_block(cf: Any, node: Node, conf: Any) -> None:
    main = cf.extra["http"]
    args = node.args
    src: Callable[["Request"], str | None] | None = None
    if len(args) == 2:
        src = source_getter(main, node, variable_name(node, args[0]))
        name = variable_name(node, args[1])
    else:
        name = variable_name(node, args[0])
    check_new_variable(main, node, name)

    ctx = _GeoCtx()
    for entry in node.block or []:
        if entry.block is not None:
            raise entry.error('unexpected "{"')
        words = [entry.name, *entry.args]
        if len(words) == 1:
            if words[0] == "ranges":
                if ctx.cidr_used:
                    raise entry.error('the "ranges" directive must be the first directive inside "geo" block')
                ctx.ranges = True
                continue
            if words[0] == "proxy_recursive":
                ctx.recursive = True
                continue
        if len(words) != 2:
            raise entry.error("invalid number of the geo parameters")
        key, value = words
        if key == "proxy":
            c = _cidr_value(cf, entry, value)
            ctx.proxies.add(c.family, c.addr, c.mask)
            continue
        if ctx.ranges:
            _range_entry(cf, entry, ctx, key, value)
        else:
            _cidr_entry(cf, entry, ctx, key, value)

    getter = _make_getter(ctx, src)
    new_variable(main, name, getter)


def _make_getter(ctx: _GeoCtx, src: Callable[["Request"], str | None] | None) -> Callable[["Request"], str]:
    proxies = ctx.proxies if ctx.proxies.v4 or ctx.proxies.v6 else None
    recursive = ctx.recursive

    def address(r: "Request") -> Addr:
        if src is None:
            a = addr_key(r.conn.client_addr)
        else:
            v = src(r)
            parsed = parse_addr(v) if v else None
            if parsed is None:
                return _NO_ADDR  # nginx skips X-Forwarded-For then
            a = parsed
        if proxies is not None:
            xff = [v for k, v in r.headers if k.lower() == "x-forwarded-for"]
            if xff:
                new = forwarded_addr((a[0], a[1], 0), xff, proxies, recursive)
                if new is not None:
                    a = (new[0], new[1])
        return a

    if ctx.ranges:
        starts, ends, values = ctx.rng.flatten()
        default = ctx.rng.default if ctx.rng.default is not None else ""

        def get_range(r: "Request") -> str:
            fam, v = unmap_v4(*address(r))
            if fam != V4:
                v = INADDR_NONE
            i = bisect_right(starts, v) - 1
            if i >= 0 and v <= ends[i]:
                return values[i]
            return default
        return get_range

    # what nginx inserts at the end of the block: a null value at /0 unless
    # default is set
    ctx.v4.insert(0, 0, "")
    ctx.v6.insert(0, 0, "")
    find4, find6 = ctx.v4.find, ctx.v6.find

    def get_cidr(r: "Request") -> str:
        fam, v = unmap_v4(*address(r))
        if fam == V6:
            return find6(v) or ""
        return find4(v if fam == V4 else INADDR_NONE) or ""
    return get_cidr


class GeoModule(Module):
    name = "geo"
    nginx_name = "ngx_http_geo_module"
    is_http = True
    directives = [
        dir("geo", H, (1, 2), _geo_block, "none", block=True),
    ]
