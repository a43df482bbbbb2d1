"""ngx_http_range_filter_module: byte ranges (206, multipart, 416, If-Range).

Invariants:
- Ranges apply only to 200 responses of known length whose producer set
  ``r.allow_ranges`` (static files, later cached/proxied responses).
- Parsing follows ngx_http_range_parse exactly: a malformed header is 416,
  a syntactically valid but useless one (e.g. ``bytes=0-`` of an empty file,
  more than ``max_ranges``, overlapping ranges larger than the file) falls
  back to the whole 200 response.
- A 416 keeps the header list (nginx's special response does not clean
  it), so headers added by the first filter pass stay, then Content-Range.
- Multipart boundaries are 20 zero-padded digits, as nginx's ``%0muA``.
- The body part needs the whole body in one call (a FileBuf or bytes);
  that is what every range-capable producer sends.
"""
from __future__ import annotations

import itertools
from typing import Any

from ...core.module import Module
from ..request import FileBuf, Request
from ..response import parse_http_date

NOT_SATISFIABLE = -1
DECLINED = -2
_boundary = itertools.count(1)
_MAX_OFF_T = 2 ** 63 - 1
_CUTOFF, _CUTLIM = divmod(_MAX_OFF_T, 10)


def parse_ranges(value: str, length: int, max_ranges: int | None) -> list[tuple[int, int]] | int:
    """Return [(start, end_exclusive)], NOT_SATISFIABLE or DECLINED."""
    p = value[6:]
    i, n = 0, len(p)
    ranges: list[tuple[int, int]] = []
    size = 0
    left = max_ranges if max_ranges is not None else 2 ** 31 - 1

    def digits(i: int) -> tuple[int, int]:
        """Read a number; (-1, i) when it overflows off_t (nginx: 416)."""
        j = i
        v = 0
        while j < n and p[j].isdigit() and p[j].isascii():
            d = ord(p[j]) - 48
            if v >= _CUTOFF and (v > _CUTOFF or d > _CUTLIM):
                return -1, j
            v = v * 10 + d
            j += 1
        return v, j

    while True:
        start = end = 0
        suffix = False
        while i < n and p[i] == " ":
            i += 1
        found = False
        if i < n and p[i] != "-":
            if not (p[i].isdigit() and p[i].isascii()):
                return NOT_SATISFIABLE
            start, i = digits(i)
            if start < 0:
                return NOT_SATISFIABLE
            while i < n and p[i] == " ":
                i += 1
            if i >= n or p[i] != "-":
                return NOT_SATISFIABLE
            i += 1
            while i < n and p[i] == " ":
                i += 1
            if i >= n or p[i] == ",":
                end = length
                found = True
        elif i < n:
            suffix = True
            i += 1
        else:
            return NOT_SATISFIABLE
        if not found:
            if i >= n or not (p[i].isdigit() and p[i].isascii()):
                return NOT_SATISFIABLE
            end, i = digits(i)
            if end < 0:
                return NOT_SATISFIABLE
            while i < n and p[i] == " ":
                i += 1
            if i < n and p[i] != ",":
                return NOT_SATISFIABLE
            if suffix:
                start = length - end if end < length else 0
                end = length - 1
            end = length if end >= length else end + 1
        if start < end:
            ranges.append((start, end))
            if size > _MAX_OFF_T - (end - start):
                return NOT_SATISFIABLE
            size += end - start
            if left == 0:
                return DECLINED
            left -= 1
        elif start == 0:
            return DECLINED
        if i >= n or p[i] != ",":
            break
        i += 1
    if not ranges:
        return NOT_SATISFIABLE
    if size > length:
        return DECLINED
    return ranges


def range_header_filter(r: Request, next: Any) -> None:
    h = r.hout
    length = h.content_length
    if h.status != 200 or length is None or not r.allow_ranges or r.internal_sub:
        next(r)
        return
    max_ranges = r.loc.core.max_ranges
    if max_ranges == 0:
        next(r)
        return
    rv = r.hin.get("range")
    if rv is None or len(rv) < 7 or rv[:6].lower() != "bytes=":
        h.accept_ranges = True
        next(r)
        return
    if_range = r.hin.get("if-range")
    if if_range is not None:
        if len(if_range) >= 2 and if_range.endswith('"'):
            if h.etag is None or h.etag != if_range:
                h.accept_ranges = True
                next(r)
                return
        else:
            if h.last_modified is None or parse_http_date(if_range) != int(h.last_modified):
                h.accept_ranges = True
                next(r)
                return
    res = parse_ranges(rv, length, 1 if getattr(r, "single_range", False) else max_ranges)
    if res == DECLINED:
        h.accept_ranges = True
        next(r)
        return
    if res == NOT_SATISFIABLE:
        h.headers.append(("Content-Range", f"bytes */{length}"))
        r.filter_finalize(416)
        return
    assert isinstance(res, list)
    h.status = 206
    r.ctx["ranges"] = res
    if len(res) == 1:
        s, e = res[0]
        h.headers.append(("Content-Range", f"bytes {s}-{e - 1}/{length}"))
        h.content_length = e - s
        next(r)
        return
    # nginx: "%0muA" of ngx_next_temp_number(0), i.e. 20 zero-padded digits
    boundary = f"{next_boundary():020d}"
    ctype = h.content_type or ""
    if ctype and h.charset:
        part_type = f"Content-Type: {ctype}; charset={h.charset}\r\n"
    elif ctype:
        part_type = f"Content-Type: {ctype}\r\n"
    else:
        part_type = ""  # no Content-Type line in the parts at all
    heads = []
    total = 0
    for s, e in res:
        head = (f"\r\n--{boundary}\r\n{part_type}"
                f"Content-Range: bytes {s}-{e - 1}/{length}\r\n\r\n").encode()
        heads.append(head)
        total += len(head) + (e - s)
    tail = f"\r\n--{boundary}--\r\n".encode()
    total += len(tail)
    r.ctx["multipart"] = (heads, tail)
    h.content_type = f"multipart/byteranges; boundary={boundary}"
    h.charset = None
    h.content_length = total
    next(r)


def next_boundary() -> int:
    return next(_boundary)


def range_body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
    ranges = r.ctx.get("ranges")
    if ranges is None or not bufs:
        next(r, bufs, last)
        return
    del r.ctx["ranges"]
    src = bufs[0]
    mp = r.ctx.pop("multipart", None)
    out: list[Any] = []
    if mp is None:
        s, e = ranges[0]
        out.append(_slice(src, s, e))
    else:
        heads, tail = mp
        for (s, e), head in zip(ranges, heads):
            out.append(head)
            out.append(_slice(src, s, e))
        out.append(tail)
    next(r, out, last)


def _slice(src: Any, s: int, e: int) -> Any:
    if isinstance(src, FileBuf):
        return FileBuf(src.fd, src.offset + s, e - s)
    return bytes(src[s:e])


class RangeModule(Module):
    name = "range"
    nginx_name = "ngx_http_range_filter_module"
    is_http = True
    directives = []

    def postconfiguration(self, http: Any) -> None:
        http.header_filters.append(("range", range_header_filter))
        http.body_filters.append(("range", range_body_filter))
