"""ngx_http_split_clients_module: ``split_clients "KEY" $variable { ... }``.

Invariants:
- The key is a ComplexValue compiled once; the parts become cumulative
  32-bit thresholds once, when the block is read, computed exactly as
  nginx does (``percent * 0xffffffff / 10000``, truncated, summed), so a
  key lands in the same bucket as with nginx.
- Per request: one key evaluation, one MurmurHash2 (``ngx_murmur_hash2``,
  seed 0, over the key's bytes) and a scan of the thresholds; the first
  part with ``hash < threshold`` (or ``*``) wins, else the empty string.
- Percentages take up to two decimals (``ngx_atofp(..., 2)``); the total
  may not exceed 100% (a ``*`` counts as the rest, so nothing may follow
  it), reported at the block's closing brace as nginx does.
- The variable is changeable and cached for the request.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...conf.parser import Node
from ...core.module import HTTP, TAKE2, Module, dir
from .map import check_new_variable, new_variable, variable_name

if TYPE_CHECKING:
    from ..request import Request

H = frozenset({HTTP})

_M = 0x5BD1E995
_U32 = 0xFFFFFFFF


def murmur_hash2(data: bytes) -> int:
    """ngx_murmur_hash2: 32-bit MurmurHash2, little-endian blocks, h = len."""
    n = len(data)
    h = n & _U32
    end4 = n - (n % 4)
    for i in range(0, end4, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _U32
        k ^= k >> 24
        k = (k * _M) & _U32
        h = ((h * _M) & _U32) ^ k
    rest = n - end4
    if rest == 3:
        h ^= data[end4 + 2] << 16
    if rest >= 2:
        h ^= data[end4 + 1] << 8
    if rest >= 1:
        h ^= data[end4]
        h = (h * _M) & _U32
    h ^= h >> 13
    h = (h * _M) & _U32
    h ^= h >> 15
    return h


def _atofp(s: str, point: int) -> int | None:
    """ngx_atofp (nginx 1.22): a decimal with at most ``point`` decimals,
    scaled by 10**point; more decimals, a second dot or a non-digit fail."""
    if not s:
        return None
    cutoff, cutlim = 0x7FFFFFFFFFFFFFFF // 10, 0x7FFFFFFFFFFFFFFF % 10
    value = 0
    dot = False
    for c in s:
        if c == ".":
            if dot:
                return None
            dot = True
            continue
        if not ("0" <= c <= "9"):
            return None
        if point == 0:
            return None
        d = ord(c) - 48
        if value >= cutoff and (value > cutoff or d > cutlim):
            return None
        value = value * 10 + d
        if dot:
            point -= 1
    while point:
        if value > cutoff:
            return None
        value *= 10
        point -= 1
    return value


def _split_block(cf: Any, node: Node, conf: Any) -> None:
    main = cf.extra["http"]
    key = main.variables.compile(node.args[0], node.file, node.line)
    name = variable_name(node, node.args[1])
    check_new_variable(main, node, name)

    parts: list[tuple[int, str]] = []  # (percent * 100, value); 0 is "*"
    for entry in node.block or []:
        if entry.block is not None:
            raise entry.error('unexpected "{"')
        pct = entry.name
        if pct == "*":
            percent = 0
        else:
            n = _atofp(pct[:-1], 2) if pct.endswith("%") else None
            if not n:
                raise entry.error(f'invalid percent value "{pct}"')
            percent = n & _U32  # nginx stores it in a uint32_t
        # nginx reads the value without counting the words; a missing one is empty here
        parts.append((percent, entry.args[0] if entry.args else ""))

    total = 0
    last = 0
    table: list[tuple[int, str]] = []
    for percent, value in parts:
        total = (total + percent) & _U32 if percent else 10000
        if total > 10000:
            raise node.error("percent total is greater than 100%")
        if percent:
            last = (last + percent * 0xFFFFFFFF // 10000) & _U32
            table.append((last, value))
        else:
            table.append((0, value))
    thresholds = tuple(table)

    def get(r: "Request") -> str:
        v = key.const if key.const is not None else key.eval(r)
        h = murmur_hash2(v.encode("utf-8", "surrogateescape"))
        for limit, value in thresholds:
            if h < limit or limit == 0:
                return value
        return ""

    new_variable(main, name, get)


class SplitClientsModule(Module):
    name = "split_clients"
    nginx_name = "ngx_http_split_clients_module"
    is_http = True
    directives = [
        dir("split_clients", H, TAKE2, _split_block, "none", block=True),
    ]
