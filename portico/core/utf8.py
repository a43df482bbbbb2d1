"""nginx's UTF-8 decoder (``ngx_utf8_decode`` of src/core/ngx_string.c),
which the charset filter (recoding) and autoindex (name widths) both follow.

Invariants:
- Byte for byte nginx's: a lead byte below 0xC2 is invalid; leads 0xF8-0xFF
  act as 0xF0; any byte >= 0x80 passes as a continuation; an overlong form
  is invalid; surrogates and code points above 0x10FFFF are returned as
  they are (each caller decides, as nginx's callers do).
- A sequence cut short by the end of the data is ``INCOMPLETE`` and
  consumes nothing, so a streaming caller can hold it for the next chunk.
"""
from __future__ import annotations

__all__ = ["INCOMPLETE", "INVALID", "utf8_decode"]

INCOMPLETE = 0xFFFFFFFE
INVALID = 0xFFFFFFFF


def utf8_decode(d: bytes, i: int) -> tuple[int, int]:
    """ngx_utf8_decode at ``d[i]`` (a byte >= 0x80): (code point, or
    INCOMPLETE / INVALID, and the index after what it consumed)."""
    u = d[i]
    if u >= 0xF0:
        u &= 0x07
        valid, n = 0xFFFF, 3
    elif u >= 0xE0:
        u &= 0x0F
        valid, n = 0x7FF, 2
    elif u >= 0xC2:
        u &= 0x1F
        valid, n = 0x7F, 1
    else:
        return INVALID, i + 1
    if len(d) - i - 1 < n:
        return INCOMPLETE, i
    j = i + 1
    while n:
        c = d[j]
        j += 1
        if c < 0x80:
            return INVALID, j
        u = (u << 6) | (c & 0x3F)
        n -= 1
    return (u if u > valid else INVALID), j
