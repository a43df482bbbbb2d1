"""Parsers for nginx's value syntaxes: sizes, offsets and time intervals.

Invariant: each returns None on invalid input (the caller formats nginx's
error) and never raises.
"""
from __future__ import annotations

import re

_SIZE_RE = re.compile(r"^(\d+)([kKmM]?)$")
_OFF_RE = re.compile(r"^(\d+)([kKmMgG]?)$")
_MUL = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}
_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800,
               "M": 2592000, "y": 31536000}
_TIME_RE = re.compile(r"(\d+)\s*(ms|s|m|h|d|w|M|y)?\s*")
_ORDER = ["y", "M", "w", "d", "h", "m", "s", "ms"]


def parse_size(s: str) -> int | None:
    m = _SIZE_RE.match(s)
    if not m:
        return None
    return int(m.group(1)) * _MUL[m.group(2).lower()]


def parse_offset(s: str) -> int | None:
    m = _OFF_RE.match(s)
    if not m:
        return None
    return int(m.group(1)) * _MUL[m.group(2).lower()]


def parse_time(s: str, default_unit_ms: bool = False) -> float | None:
    """Return seconds as float.  ``ms`` is only valid for msec slots."""
    if not s:
        return None
    pos, total, last_rank = 0, 0.0, -1
    s = s.strip()
    while pos < len(s):
        m = _TIME_RE.match(s, pos)
        if not m or m.end() == pos:
            return None
        unit = m.group(2)
        if unit is None:
            if m.end() != len(s):
                return None
            unit = "s"
        if unit == "ms" and not default_unit_ms:
            return None
        rank = _ORDER.index(unit)
        if rank <= last_rank:
            return None
        last_rank = rank
        total += int(m.group(1)) * _TIME_UNITS[unit]
        pos = m.end()
    return total
