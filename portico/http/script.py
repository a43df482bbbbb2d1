"""The rewrite module's script language, compiled once per configuration.

This is Portico's ngx_http_script.c for ngx_http_rewrite_module: a server or
location owns a *script*, a list of steps compiled from its ``rewrite``,
``set``, ``if``, ``break`` and ``return`` directives in file order.

Invariants:
- A step is called as ``step(r, log)`` and returns None to go on with the
  next step, or an int that ends the script: ``DECLINED`` for nginx's plain
  exit (``last``/``break``), a status (301, 302, 500...) or ``DONE``.
- An ``if`` step owns the steps of its block (nginx compiles them into the
  parent's code array behind a jump; nesting them is the same program).  A
  true ``if`` in a location switches ``r.loc`` to the if block's own merged
  configuration and that switch outlives the block, as in nginx: the last
  true ``if`` decides the configuration the content phase runs with.
- Regexes run against the decoded ``r.uri`` (rewrite) or a variable's value
  (if).  A match of a regex with groups replaces ``r.captures``; a miss
  clears them (nginx sets ``r->ncaptures = 0``).
- Replacement strings are split once into literal, capture and variable
  parts; a literal ``?`` starts the new arguments.  Captures are escaped
  (NGX_ESCAPE_ARGS) in arguments and redirects only when the request URI
  had ``%`` escapes or ``+``, exactly as ngx_http_script_copy_capture_code.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, Any, Callable

import regex

from ..core import log as logmod
from .request import DECLINED

if TYPE_CHECKING:
    from .request import Request
    from .variables import ComplexValue, Variables

Step = Callable[["Request", bool], "int | None"]

# ngx_escape_uri(NGX_ESCAPE_ARGS): " ", "#", "%", "&", "+", ";", "?", controls, DEL, non-ASCII
_ARGS_ESCAPE = frozenset(list(range(0x21)) + [0x23, 0x25, 0x26, 0x2B, 0x3B, 0x3F] + list(range(0x7F, 0x100)))
_HEX = b"0123456789ABCDEF"


def escape_args(s: str) -> str:
    raw = s.encode("utf-8", "surrogateescape")
    if not any(b in _ARGS_ESCAPE for b in raw):
        return s
    out = bytearray()
    for b in raw:
        if b in _ARGS_ESCAPE:
            out += b"%" + _HEX[b >> 4:(b >> 4) + 1] + _HEX[b & 15:(b & 15) + 1]
        else:
            out.append(b)
    return out.decode("utf-8", "surrogateescape")


def unescape_redirect(s: str) -> str:
    """ngx_unescape_uri(NGX_UNESCAPE_REDIRECT): decode ``%XX`` only when the
    byte is printable ASCII above '%' (so '%', '&', '?'... stay escaped), and
    stop decoding at the first literal '?'."""
    if "%" not in s:
        return s
    raw = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x3F:  # '?': the rest is copied as is
            out += raw[i:]
            break
        if c == 0x25 and i + 2 < n and _is_hex(raw[i + 1]) and _is_hex(raw[i + 2]):
            ch = int(raw[i + 1:i + 3], 16)
            if 0x25 < ch < 0x7F:
                out.append(ch)
            else:
                out += raw[i:i + 3]
            i += 3
            continue
        out.append(c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _is_hex(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x46 or 0x61 <= b <= 0x66


def uri_is_quoted(r: "Request") -> bool:
    """nginx's ``r->quoted_uri || r->plus_in_uri`` from the raw request path."""
    path = r.raw_uri.partition("?")[0]
    return "%" in path or "+" in path


def compile_regex(pattern: str, node: Any, caseless: bool = False) -> Any:
    try:
        return regex.compile(pattern, regex.V0 | (regex.IGNORECASE if caseless else 0))
    except regex.error as e:
        raise node.error(f'pcre2_compile() failed: {_pcre_message(e)} in "{pattern}"') from None


def _pcre_message(e: Exception) -> str:
    # the regex package words errors differently from PCRE2; map the common ones
    msg = str(e.args[0]) if e.args else str(e)
    if "missing )" in msg:
        return "missing closing parenthesis"
    if "nothing to repeat" in msg or "multiple repeat" in msg:
        return "quantifier does not follow a repeatable item"
    if "missing ]" in msg or "unterminated character set" in msg:
        return "missing terminating ] for character class"
    if "unbalanced parenthesis" in msg:
        return "unmatched closing parenthesis"
    return msg


def set_captures(r: "Request", rx: Any, m: Any) -> None:
    """After a match: ngx_http_regex_exec replaces the captures only when the
    regex has groups; named groups become variables."""
    if rx.groups:
        r.captures = m
        if rx.groupindex:
            named = dict(r.named)
            for k, v in m.groupdict().items():
                named[k] = v if v is not None else ""
            r.named = named


# --- replacement strings -------------------------------------------------------------

class Replacement:
    """A rewrite replacement split into (kind, value) parts.

    kind: "l" literal, "c" capture number, "v" variable getter.  ``args``
    holds the parts after the first literal '?' when they are compiled as
    arguments (not for redirects, where '?' stays in the URL).
    """

    __slots__ = ("uri", "args", "has_q", "has_caps")

    def __init__(self, uri: list[tuple[str, Any]], args: list[tuple[str, Any]] | None, has_q: bool) -> None:
        self.uri = uri
        self.args = args
        self.has_q = has_q  # nginx's sc.args: a literal '?' was seen
        self.has_caps = any(k == "c" for k, _ in uri) or any(k == "c" for k, _ in (args or []))

    @staticmethod
    def render(r: "Request", parts: list[tuple[str, Any]], escape: bool) -> str:
        out: list[str] = []
        for kind, v in parts:
            if kind == "l":
                out.append(v)
            elif kind == "c":
                m = r.captures
                if m is None:
                    continue
                try:
                    s = m.group(v)
                except IndexError:
                    continue
                if s:
                    out.append(escape_args(s) if escape else s)
            else:
                s = v(r)
                if s:
                    out.append(s)
        return "".join(out)


def compile_replacement(variables: "Variables", text: str, compile_args: bool, node: Any) -> Replacement:
    """ngx_http_script_compile for a rewrite replacement: the first literal
    '?' starts the arguments (variable names cannot hold a '?', so the first
    one in the text is literal); captures are kept apart from variables
    because only they are escaped."""
    q = text.find("?")
    if compile_args and q >= 0:
        return Replacement(_parts(variables, text[:q], node), _parts(variables, text[q + 1:], node), True)
    return Replacement(_parts(variables, text, node), None, q >= 0)


def _parts(variables: "Variables", text: str, node: Any) -> list[tuple[str, Any]]:
    cv = variables.compile(text, node.file, node.line)
    out: list[tuple[str, Any]] = []
    for p in cv.parts:
        if isinstance(p, str):
            out.append(("l", p))
        elif getattr(p, "capture", None) is not None:
            out.append(("c", p.capture))
        else:
            out.append(("v", p))
    return out


def _var(variables: "Variables", name: str, node: Any) -> Any:
    """A getter for ``$name``; names defined later in the file resolve at the
    end of http{}, as nginx checks them."""
    return variables._resolve(name, node.file, node.line, None)


# --- if conditions -------------------------------------------------------------------

Cond = Callable[["Request", bool], bool]


def compile_condition(variables: "Variables", node: Any) -> Cond:
    """ngx_http_rewrite_if_condition: the arguments of ``if (...)``."""
    value = list(node.args)
    last = len(value) - 1
    first = value[0]
    if not first.startswith("("):
        raise node.error(f'invalid condition "{first}"')
    if len(first) == 1:
        cur = 1
    else:
        cur = 0
        value[0] = first[1:]
    if not value[last].endswith(")"):
        raise node.error(f'invalid condition "{value[last]}"')
    if len(value[last]) == 1:
        last -= 1
    else:
        value[last] = value[last][:-1]
    if cur > last:
        raise node.error(f'invalid condition "{value[cur] if cur < len(value) else ""}"')
    p = value[cur]
    if len(p) > 1 and p[0] == "$":
        if cur != last and cur + 2 != last:
            raise node.error(f'invalid condition "{p}"')
        get = _var(variables, p[1:], node)
        if cur == last:
            def bare(r: "Request", log: bool) -> bool:
                v = get(r)
                return bool(v) and v != "0"
            return bare
        op = value[cur + 1]
        rhs = value[last]
        if op in ("=", "!="):
            cv = variables.compile(rhs, node.file, node.line)
            negate = op == "!="

            def equal(r: "Request", log: bool) -> bool:
                return ((get(r) or "") == cv.eval(r)) != negate
            return equal
        if op in ("~", "~*", "!~", "!~*"):
            rx = compile_regex(rhs, node, caseless=op.endswith("*"))
            if rx.groupindex:
                variables.declare_named_captures(list(rx.groupindex))
            negative = op.startswith("!")

            def match(r: "Request", log: bool) -> bool:
                line = get(r) or ""
                m = rx.search(line)
                if m is None:
                    if log:
                        r.log_error(logmod.NOTICE, f'"{rhs}" does not match "{line}"')
                    r.captures = None
                    return negative
                if log:
                    r.log_error(logmod.NOTICE, f'"{rhs}" matches "{line}"')
                set_captures(r, rx, m)
                return not negative
            return match
        raise node.error(f'unexpected "{op}" in condition')
    if (len(p) == 2 and p[0] == "-") or (len(p) == 3 and p[0] == "!" and p[1] == "-"):
        if cur + 1 != last:
            raise node.error(f'invalid condition "{p}"')
        kind = p[-1]
        if kind not in "fdex":
            raise node.error(f'invalid condition "{p}"')
        cv = variables.compile(value[last], node.file, node.line)
        return _file_test(cv, kind, p[0] == "!")
    raise node.error(f'invalid condition "{p}"')


def _file_test(cv: "ComplexValue", kind: str, negate: bool) -> Cond:
    """ngx_http_script_file_code: stat() the path (following symlinks)."""
    def test(r: "Request", log: bool) -> bool:
        path = cv.eval(r)
        try:
            st = os.stat(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
                r.log_error(logmod.CRIT, f'stat() "{path}" failed ({e.errno}: {e.strerror})')
            return negate
        except ValueError:  # an embedded NUL: no such file
            return negate
        mode = st.st_mode
        if kind == "f":
            ok = stat.S_ISREG(mode)
        elif kind == "d":
            ok = stat.S_ISDIR(mode)
        elif kind == "e":
            ok = stat.S_ISREG(mode) or stat.S_ISDIR(mode)
        else:
            ok = mode & stat.S_IXUSR == stat.S_IXUSR
        return ok != negate
    return test


# --- the interpreter -------------------------------------------------------------------

def run(r: "Request", steps: list[Step], log: bool) -> int | None:
    for step in steps:
        rc = step(r, log)
        if rc is not None:
            return rc
    return None


class IfStep:
    """``if (cond) { ... }``; ``loc`` is the implicit location of a location-level
    ``if`` (None at server level, where nginx switches no configuration)."""

    __slots__ = ("cond", "steps", "loc")

    def __init__(self, cond: Cond, loc: Any) -> None:
        self.cond = cond
        self.steps: list[Step] = []
        self.loc = loc

    def __call__(self, r: "Request", log: bool) -> int | None:
        if not self.cond(r, log):
            return None
        if self.loc is not None:
            r.loc = self.loc.conf
        return run(r, self.steps, log)


def break_step(r: "Request", log: bool) -> int:
    """ngx_http_script_break_code: stay in this location."""
    if r.uri_changed:
        r.valid_location = False
        r.uri_changed = False
    return DECLINED
