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
import stat
from typing import TYPE_CHECKING, Any, Callable

from ..core import log as logmod
from ..core import pcre
from . import uri
from .open_file import stat_file
from .request import DECLINED
from .variables import is_capture, set_captures

if TYPE_CHECKING:
    from .request import Request
    from .variables import ComplexValue, Variables

Step = Callable[["Request", bool], "int | None"]


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
        return pcre.compile(pattern, caseless)
    except pcre.PcreError as e:
        raise node.error(e.message) from None


def regex_exec(r: "Request", rx: Any, pattern: str, line: str, log: bool) -> Any:
    """ngx_http_script_regex_start_code's match: the match or None; a miss
    clears the captures, a hit sets them; both are logged with rewrite_log."""
    m = rx.search(line)
    if m is None:
        if log:
            r.log_error(logmod.NOTICE, f'"{pattern}" does not match "{line}"')
        r.captures = None
        return None
    if log:
        r.log_error(logmod.NOTICE, f'"{pattern}" matches "{line}"')
    set_captures(r, rx, m)
    return m


# --- replacement strings -------------------------------------------------------------

class Replacement:
    """A rewrite replacement: ``uri`` and, after the first literal '?' when it
    is compiled as arguments (not for redirects, where '?' stays in the
    URL), ``args``; both compiled values.  ``has_q``: a literal '?' was seen
    (nginx's ``sc.args``)."""

    __slots__ = ("uri", "args", "has_q", "has_caps")

    def __init__(self, uri: "ComplexValue", args: "ComplexValue | None", has_q: bool) -> None:
        self.uri = uri
        self.args = args
        self.has_q = has_q
        self.has_caps = any(is_capture(p) for cv in (uri, args) if cv is not None for p in cv.parts)

    @staticmethod
    def render(r: "Request", cv: "ComplexValue", escape: bool) -> str:
        """The value; with ``escape`` its captures are NGX_ESCAPE_ARGS-escaped."""
        if not escape:
            return cv.eval(r)
        vals = cv.pieces(r)
        for i, p in enumerate(cv.parts):
            if not isinstance(p, str) and is_capture(p):
                vals[i] = uri.escape(vals[i], uri.ESCAPE_ARGS)
        return "".join(vals)


def compile_replacement(variables: "Variables", text: str, compile_args: bool, node: Any) -> Replacement:
    """ngx_http_script_compile for a rewrite replacement: the first literal
    '?' starts the arguments (variable names cannot hold a '?', so the first
    one in the text is literal)."""
    q = text.find("?")
    if compile_args and q >= 0:
        return Replacement(variables.compile(text[:q], node.file, node.line),
                           variables.compile(text[q + 1:], node.file, node.line), True)
    return Replacement(variables.compile(text, node.file, node.line), None, q >= 0)


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
        get = variables.lookup(p[1:], node.file, node.line)
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
                return (regex_exec(r, rx, rhs, get(r) or "", log) is None) == negative
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
    """ngx_http_script_file_code: stat() the path, through the location's
    open_file_cache and disable_symlinks."""
    def test(r: "Request", log: bool) -> bool:
        path = cv.eval(r)
        try:
            st = stat_file(r, path)
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
