"""Parsers for nginx's value syntaxes: numbers, sizes, offsets and times.

Each function is a port of the nginx routine named in its docstring
(``src/core/ngx_parse.c``, ``ngx_string.c``), including its limits.

Invariants:
- Every parser returns None on invalid input (the caller formats nginx's
  error message) and never raises.
- Only ASCII digits count as digits; signs, spaces (except inside times) and
  fractions are invalid; values above nginx's 64-bit limits are invalid.
- Times: units ``y M w d h m s`` (and ``ms`` in "msec" slots only) must come
  in that order, each at most once, and may be separated by spaces
  (``"1h 30m"``); a trailing number without a unit means seconds.  In msec
  slots ``y`` and ``M`` are invalid, as in nginx (whose msec parse starts
  after the month step).
"""
from __future__ import annotations

#: NGX_MAX_INT_T_VALUE, NGX_MAX_SIZE_T_VALUE and NGX_MAX_OFF_T_VALUE on 64-bit Linux
MAX_INT = 2 ** 63 - 1

_DIGITS = frozenset("0123456789")


def parse_number(s: str) -> int | None:
    """``ngx_atoi``: a non-empty run of ASCII digits not above MAX_INT."""
    if not s or not all(c in _DIGITS for c in s):
        return None
    v = int(s)
    return v if v <= MAX_INT else None


def _scaled(s: str, units: dict[str, int]) -> int | None:
    if not s:
        return None
    scale = units.get(s[-1], 1)
    digits = s[:-1] if s[-1] in units else s
    v = parse_number(digits)
    if v is None or v > MAX_INT // scale:
        return None
    return v * scale


_K, _M, _G = 1024, 1024 * 1024, 1024 * 1024 * 1024
_SIZE_UNITS = {"k": _K, "K": _K, "m": _M, "M": _M}
_OFF_UNITS = {**_SIZE_UNITS, "g": _G, "G": _G}


def parse_size(s: str) -> int | None:
    """``ngx_parse_size``: bytes with an optional ``k``/``m`` suffix (no ``g``)."""
    return _scaled(s, _SIZE_UNITS)


def parse_offset(s: str) -> int | None:
    """``ngx_parse_offset``: like parse_size, ``g`` allowed too."""
    return _scaled(s, _OFF_UNITS)


# steps of ngx_parse_time, in the order units must appear
_START, _YEAR, _MONTH, _WEEK, _DAY, _HOUR, _MIN, _SEC, _MSEC, _LAST = range(10)
_UNIT_STEP = {"y": (_YEAR, 31536000), "M": (_MONTH, 2592000), "w": (_WEEK, 604800),
              "d": (_DAY, 86400), "h": (_HOUR, 3600), "m": (_MIN, 60), "s": (_SEC, 1)}


def _parse_time(s: str, is_sec: bool) -> int | None:
    """``ngx_parse_time``: seconds when ``is_sec``, else milliseconds."""
    step = _START if is_sec else _MONTH
    valid = False
    value = total = 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c in _DIGITS:
            value = value * 10 + int(c)
            if value > MAX_INT:
                return None
            valid = True
            i += 1
            continue
        i += 1
        if c == "m" and i < n and s[i] == "s":
            if is_sec or step >= _MSEC:
                return None
            i += 1
            step, scale = _MSEC, 1
        elif c in _UNIT_STEP:
            new, scale = _UNIT_STEP[c]
            # nginx: "y" fails after any step (step > st_start), the others
            # fail when the step was already reached (step >= st_x)
            if (c == "y" and step > _START) or (c != "y" and step >= new):
                return None
            step = new
        elif c == " ":
            if step >= _SEC:
                return None
            step, scale = _LAST, 1
        else:
            return None
        if step != _MSEC and not is_sec:
            scale *= 1000
        if value > MAX_INT // scale:
            return None
        value *= scale
        if total > MAX_INT - value:
            return None
        total += value
        value = 0
        while i < n and s[i] == " ":
            i += 1
    if not valid:
        return None
    if not is_sec:
        if value > MAX_INT // 1000:
            return None
        value *= 1000
    if total > MAX_INT - value:
        return None
    return total + value


def parse_msec(s: str) -> int | None:
    """A time for an nginx "msec" slot (``ngx_conf_set_msec_slot``), in milliseconds."""
    return _parse_time(s, False)


def parse_sec(s: str) -> int | None:
    """A time for an nginx "sec" slot (``ngx_conf_set_sec_slot``), in seconds."""
    return _parse_time(s, True)


def parse_time(s: str, default_unit_ms: bool = False) -> float | None:
    """Seconds as a float.

    ``default_unit_ms=True`` selects nginx's msec slot syntax (``ms`` allowed,
    ``y``/``M`` not); False selects the sec slot syntax.  Either way a bare
    number means seconds, as in nginx.
    """
    if default_unit_ms:
        ms = parse_msec(s)
        return None if ms is None else ms / 1000.0
    sec = parse_sec(s)
    return None if sec is None else float(sec)
