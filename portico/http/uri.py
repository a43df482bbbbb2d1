"""Request-target handling, exactly as nginx 1.22 does it.

Pure functions, no I/O.  They reproduce ngx_http_parse_request_line (the
target part), ngx_http_process_request_uri + ngx_http_parse_complex_uri and
ngx_http_validate_host, and were checked byte for byte against the real
nginx (tests/http/test_uri.py, corpus in tests/http/uri_corpus.txt).

``parse_target(target)`` returns a :class:`Target` or raises
:class:`BadRequest`.  Invariants of a returned Target:

* ``uri`` always starts with '/' and never has a segment that is exactly
  '.' or '..' (a segment such as '..#' or '.?' built from %23 / %3F is
  kept, as nginx keeps it); with ``merge_slashes`` it never contains '//'.
* ``uri`` is percent-decoded (%2F is '/', '+' stays '+'); it never contains
  NUL, but may contain other control bytes that came from %XX escapes.
* ``args`` is the raw query (never decoded), without '?' and without the
  '#fragment'; ``has_args`` is true when that '?' was present, even if
  ``args`` is empty (nginx's ``$is_args`` is '?' only when args is non-empty).
* ``raw_uri`` is nginx's ``$request_uri``: the target as sent, except that
  for the absolute form it starts after the authority (``http://h/x?y``
  gives '/x?y', ``http://h?y`` gives '?y', ``http://h`` gives '/').
* ``host`` is None unless the target is absolute-form; then it is the
  authority validated and normalised like a Host header (lower-case, port
  and one trailing dot stripped), and nginx uses it instead of Host.
* every str is decoded from bytes with utf-8/surrogateescape, so
  ``s.encode('utf-8', 'surrogateescape')`` gives back the exact bytes.

nginx on Unix treats '\\' as an ordinary byte; '*' (``OPTIONS *``) is
answered with 400 by nginx, so it is rejected here too.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["BadRequest", "Target", "parse_target", "normalise_host", "escape", "ESCAPE_URI", "ESCAPE_ARGS"]

INVALID_REQUEST = "client sent invalid request"
INVALID_HOST_IN_LINE = "client sent invalid host in request line"
INVALID_HOST_HEADER = "client sent invalid host header"


class BadRequest(Exception):
    """The client's request is rejected; ``reason`` is nginx's log wording."""

    def __init__(self, status: int = 400, reason: str = INVALID_REQUEST) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class Target(NamedTuple):
    uri: str
    args: str
    raw_uri: str
    has_args: bool
    host: str | None = None


# Anything that makes nginx leave its plain path (complex/quoted uri) or
# reject the line: '%', '#', '/.', '//', controls, space and DEL.
_SLOW = re.compile(rb"[\x00-\x20\x7f%#]|/[./]")
_CTL = re.compile(rb"[\x00-\x20\x7f]")
# The bytes parse_complex_uri acts on; everything else is copied as is.
_SPECIAL = re.compile(rb"[/.%?#]")
# scheme "://" (ip-literal | reg-name) [":" port], then '/', '?' or the end.
_ABSOLUTE = re.compile(
    rb"[A-Za-z][A-Za-z0-9+.\-]*://"
    rb"(\[[0-9A-Za-z:._~!$&'()*+,;=\-]*\]|[A-Za-z0-9.\-]*)"
    rb"(?::[0-9]*)?(?=[/?]|\Z)"
)
_HEX = b"0123456789abcdefABCDEF"

_USUAL, _SLASH, _DOT, _DOT_DOT, _QUOTED, _QUOTED2 = range(6)

# Building the NamedTuple through tuple.__new__ skips its Python-level
# __new__ (about 120 ns per request); every field must be given, in order.
_new = tuple.__new__


def _str(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


#: plain targets already parsed (their Target does not depend on merge_slashes)
_PLAIN: dict[bytes, Target] = {}


def parse_target(target: bytes, merge_slashes: bool = True) -> Target:
    """Parse a request-target as nginx does; raise BadRequest on 400."""
    t = _PLAIN.get(target)
    if t is not None:
        return t
    if target[:1] != b"/":
        return _absolute(target, merge_slashes)
    if not _SLOW.search(target):
        # Fast path: nginx copies the path as is and splits at the first '?'.
        q = target.find(b"?")
        if q < 0:
            s = _str(target)
            t = _new(Target, (s, "", s, False, None))
        else:
            t = _new(Target, (_str(target[:q]), _str(target[q + 1:]), _str(target), True, None))
        if len(_PLAIN) >= 1024:
            _PLAIN.clear()
        _PLAIN[target] = t
        return t
    return _slow(target, merge_slashes, None)


def _slow(path: bytes, merge_slashes: bool, host: str | None) -> Target:
    if _CTL.search(path):
        raise BadRequest(400, INVALID_REQUEST)
    uri, args = _complex_uri(path, merge_slashes)
    return _new(Target, (_str(uri), "" if args is None else _str(args),
                         _str(path), args is not None, host))


def _absolute(target: bytes, merge_slashes: bool) -> Target:
    """``scheme://host[:port][/path][?args]``; anything else is a 400.

    nginx checks the line's bytes first, then decodes the URI, and only then
    validates the host, so a bad URI wins over a bad host in the reason.
    """
    m = _ABSOLUTE.match(target)
    if m is None:
        raise BadRequest(400, INVALID_REQUEST)
    path = target[m.end():] or b"/"             # $request_uri is just this
    t = _slow(path, merge_slashes, None)
    host = _validate_host(m.group(1))
    if host is None:
        raise BadRequest(400, INVALID_HOST_IN_LINE)
    return t._replace(host=host)


def _climb(u: bytearray) -> None:
    """Drop the trailing '/..' and the segment before it (400 above root)."""
    k = u.rfind(b"/", 0, len(u) - 3)
    if k < 0:
        raise BadRequest(400, INVALID_REQUEST)
    del u[k + 1:]


def _complex_uri(path: bytes, merge: bool) -> tuple[bytes, bytes | None]:
    """ngx_http_parse_complex_uri: decode, merge, resolve; return uri, args.

    ``path`` starts with '/' (or '?' for an absolute-form target without a
    path).  Like the C code, a decoded byte is fed back into the state that
    saw its '%', except decoded '%', '#' and '?', which are kept literally.
    """
    u = bytearray(b"/" if path[:1] == b"?" else b"")
    n = len(path)
    state = qstate = _USUAL
    decoded = 0
    p = 0
    ch = 0
    fetch = True
    args_at = -1
    stop = 0                                    # 0: end of target, or '?'/'#'
    while True:
        if fetch:
            if p >= n:
                break
            if state == _USUAL:
                # Bulk-copy the run of ordinary bytes up to the next special.
                m = _SPECIAL.search(path, p)
                e = m.start() if m else n
                if e > p:
                    u += path[p:e]
                    p = e
                    if p >= n:
                        break
            ch = path[p]
            p += 1
        fetch = True

        if state == _QUOTED:
            if ch not in _HEX:
                raise BadRequest(400, INVALID_REQUEST)
            decoded = int(chr(ch), 16)
            state = _QUOTED2
            continue
        if state == _QUOTED2:
            if ch not in _HEX:
                raise BadRequest(400, INVALID_REQUEST)
            ch = (decoded << 4) + int(chr(ch), 16)
            if ch in (0x25, 0x23, 0x3F):        # '%', '#', '?' stay literal
                state = _USUAL
                u.append(ch)
            elif ch == 0:
                raise BadRequest(400, INVALID_REQUEST)
            else:                               # re-run it in the old state
                state = qstate
                fetch = False
            continue

        if ch == 0x25:                          # '%'
            qstate, state = state, _QUOTED
        elif ch == 0x3F or ch == 0x23:          # '?' or '#'
            if state == _DOT:
                del u[-1]
            elif state == _DOT_DOT:
                _climb(u)
            if ch == 0x3F:
                args_at = p
            stop = ch
            break
        elif ch == 0x2F:                        # '/'
            if state == _USUAL:
                u.append(ch)
            elif state == _SLASH:
                if not merge:
                    u.append(ch)
            elif state == _DOT:
                del u[-1]
            else:
                _climb(u)
            state = _SLASH
        elif ch == 0x2E and state in (_SLASH, _DOT):   # '.'
            u.append(ch)
            state = _DOT if state == _SLASH else _DOT_DOT
        else:
            u.append(ch)
            state = _USUAL

    if not stop:                                # ran off the end of the path
        if state in (_QUOTED, _QUOTED2):
            raise BadRequest(400, INVALID_REQUEST)
        if state == _DOT:
            del u[-1]
        elif state == _DOT_DOT:
            _climb(u)
    if args_at < 0:
        return bytes(u), None
    h = path.find(b"#", args_at)
    return bytes(u), path[args_at:h] if h >= 0 else path[args_at:]


def _validate_host(value: bytes) -> str | None:
    """ngx_http_validate_host; None where nginx declines the host."""
    dot_pos = n = len(value)
    host_len = n
    state = 0                                   # 0 usual, 1 literal, 2 rest
    for i, ch in enumerate(value):
        if ch == 0x2E:                          # '.'
            if dot_pos == i - 1:
                return None
            dot_pos = i
        elif ch == 0x3A:                        # ':'
            if state == 0:
                host_len = i
                state = 2
        elif ch == 0x5B:                        # '['
            if i == 0:
                state = 1
        elif ch == 0x5D:                        # ']'
            if state == 1:
                host_len = i + 1
                state = 2
        elif ch == 0x2F or ch <= 0x20 or ch == 0x7F:
            return None
    if dot_pos == host_len - 1:
        host_len -= 1
    if host_len <= 0:
        return None
    return _str(value[:host_len].lower())


def normalise_host(value: bytes) -> str:
    """Validate and normalise a Host header value as nginx does.

    Lower-cases ASCII, strips the port and one trailing dot.  Rejects with
    400 "client sent invalid host header": an empty result, '..', '/',
    NUL/controls/space/DEL.  Like nginx it accepts a leading '.', a '\\',
    '_' and an unterminated '[' literal (it does not check IPv6 syntax).
    """
    host = _validate_host(value)
    if host is None:
        raise BadRequest(400, INVALID_HOST_HEADER)
    return host


# --- ngx_escape_uri ------------------------------------------------------------------

#: NGX_ESCAPE_URI: controls, space, '#', '%', '?', DEL and non-ASCII
ESCAPE_URI = frozenset(list(range(0x21)) + [0x23, 0x25, 0x3F] + list(range(0x7F, 0x100)))
#: NGX_ESCAPE_ARGS: controls, space, '#', '%', '&', '+', ';', '?', DEL and non-ASCII
ESCAPE_ARGS = frozenset(list(range(0x21)) + [0x23, 0x25, 0x26, 0x2B, 0x3B, 0x3F] + list(range(0x7F, 0x100)))


def escape(s: str, table: frozenset[int]) -> str:
    """ngx_escape_uri(s, table): each byte in ``table`` as upper-case ``%XX``."""
    raw = s.encode("utf-8", "surrogateescape")
    if not any(b in table for b in raw):
        return s
    out = bytearray()
    for b in raw:
        if b in table:
            out += b"%%%02X" % b
        else:
            out.append(b)
    return out.decode("utf-8", "surrogateescape")
