"""proxy_cookie_domain, proxy_cookie_path and proxy_cookie_flags: the
directives' parsing and the Set-Cookie rewrite (ngx_http_proxy_rewrite_cookie
and its helpers in ngx_http_proxy_module.c).

Invariants:
- Parsing is nginx's: one directive list per location, ``off`` only as the
  sole entry ("is duplicate" otherwise, and for anything after ``off``);
  inherited as a whole from the enclosing level when a level has none.
- Rules are compiled once (complex values, regexes); a request evaluates
  only the rules it tries.  The first matching rule of a list wins.
- A Set-Cookie value is split at ``;`` into (name, value) pairs with
  nginx's space trimming; it is rebuilt (joined with ``"; "``, removed
  attributes dropped) only when a rule changed something, otherwise it
  leaves byte for byte as the upstream sent it.  A cookie whose first pair
  has no ``=`` is never touched.
- domain rules: a leading ``.`` of the attribute and of both directive
  arguments is ignored, the comparison is case-insensitive and whole;
  ``~`` rules are case-insensitive regexes (nginx passes caseless for
  ``proxy_cookie_domain``).  path rules: a case-sensitive prefix, or ``~`` /
  ``~*`` regexes.  A regex that matches replaces the whole value.
"""
from __future__ import annotations

from typing import Any

from ..conf.parser import Node
from ..core import pcre
from ..core.module import UNSET
from ..http.variables import set_captures

# proxy_cookie_flags masks (ngx_http_proxy_cookie_flags_masks)
SECURE_ON, SECURE_OFF, HTTPONLY_ON, HTTPONLY_OFF = 0x1, 0x2, 0x4, 0x8
SAMESITE_STRICT, SAMESITE_LAX, SAMESITE_NONE, SAMESITE_OFF = 0x10, 0x20, 0x40, 0x80
FLAG_MASKS = {"secure": SECURE_ON, "nosecure": SECURE_OFF, "httponly": HTTPONLY_ON,
              "nohttponly": HTTPONLY_OFF, "samesite=strict": SAMESITE_STRICT, "samesite=lax": SAMESITE_LAX,
              "samesite=none": SAMESITE_NONE, "nosamesite": SAMESITE_OFF}


class Rule:
    """One proxy_cookie_domain / proxy_cookie_path rule."""
    __slots__ = ("kind", "pattern", "repl")

    def __init__(self, kind: str, pattern: Any, repl: Any) -> None:
        self.kind = kind  # "domain" | "prefix" | "regex"
        self.pattern = pattern  # ComplexValue or a compiled regex
        self.repl = repl  # ComplexValue


class FlagRule:
    __slots__ = ("regex", "cookie", "flags")

    def __init__(self, regex: Any, cookie: Any, flags: list[Any]) -> None:
        self.regex = regex
        self.cookie = cookie
        self.flags = flags  # ComplexValues


def _regex(cf: Any, node: Node, src: str, caseless: bool) -> Any:
    try:
        rx = pcre.compile(src, caseless=caseless)
    except pcre.PcreError as e:
        raise node.error(e.message) from None
    if rx.groupindex:  # ngx_http_regex_compile: named captures are variables
        cf.extra["http"].variables.declare_named_captures(list(rx.groupindex))
    return rx


def _start(node: Node, conf: Any, attr: str) -> list[Any] | None:
    """nginx's NULL / UNSET / array dance shared by the three directives."""
    cur = getattr(conf, attr)
    if cur is None:
        raise node.error(f'"{node.name}" directive is duplicate')
    if len(node.args) == 1:
        if node.args[0] == "off":
            if cur is not UNSET:
                raise node.error(f'"{node.name}" directive is duplicate')
            setattr(conf, attr, None)
            return None
        if attr != "cookie_flags":
            raise node.error(f'invalid parameter "{node.args[0]}"')
    if cur is UNSET:
        cur = []
        setattr(conf, attr, cur)
    return cur


def cookie_domain(cf: Any, node: Node, conf: Any) -> None:
    rules = _start(node, conf, "cookie_domains")
    if rules is None:
        return
    v = cf.extra["http"].variables
    pat, repl = node.args
    if pat.startswith("~"):
        rule = Rule("regex", _regex(cf, node, pat[1:], True), None)
    else:
        rule = Rule("domain", v.compile(pat[1:] if pat.startswith(".") else pat, node.file, node.line), None)
        if repl.startswith("."):
            repl = repl[1:]
    rule.repl = v.compile(repl, node.file, node.line)
    rules.append(rule)


def cookie_path(cf: Any, node: Node, conf: Any) -> None:
    rules = _start(node, conf, "cookie_paths")
    if rules is None:
        return
    v = cf.extra["http"].variables
    pat, repl = node.args
    if pat.startswith("~*"):
        rule = Rule("regex", _regex(cf, node, pat[2:], True), None)
    elif pat.startswith("~"):
        rule = Rule("regex", _regex(cf, node, pat[1:], False), None)
    else:
        rule = Rule("prefix", v.compile(pat, node.file, node.line), None)
    rule.repl = v.compile(repl, node.file, node.line)
    rules.append(rule)


def cookie_flags(cf: Any, node: Node, conf: Any) -> None:
    rules = _start(node, conf, "cookie_flags")
    if rules is None:
        return
    v = cf.extra["http"].variables
    name = node.args[0]
    if len(node.args) == 1:
        raise node.error(f'invalid parameter "{name}"')
    if name.startswith("~"):
        rule = FlagRule(_regex(cf, node, name[1:], True), None, [])
    else:
        rule = FlagRule(None, v.compile(name, node.file, node.line), [])
    for a in node.args[1:]:
        # an unknown flag is ignored when applied (nginx checks none at -t)
        rule.flags.append(v.compile(a, node.file, node.line))
    rules.append(rule)


# --- per request ----------------------------------------------------------------------------

def _parse(value: str) -> list[list[Any]]:
    """ngx_http_proxy_parse_cookie: [[key, value-or-None], ...]."""
    out: list[list[Any]] = []
    start = 0
    end = len(value)
    while True:
        last = value.find(";", start)
        if last < 0:
            last = end
        while start < last and value[start] == " ":
            start += 1
        eq = value.find("=", start, last)
        if eq < 0:
            name = value[start:last].rstrip(" ")
            val = None
        else:
            name = value[start:eq].rstrip(" ")
            p = eq + 1
            while p < last and value[p] == " ":
                p += 1
            val = value[p:last].rstrip(" ")
        out.append([name, val])
        if last == end:
            return out
        start = last + 1


def _rewrite_value(r: Any, value: str, rules: list[Rule]) -> str | None:
    for rule in rules:
        kind = rule.kind
        if kind == "regex":
            m = rule.pattern.search(value)
            if m is None:
                continue
            set_captures(r, rule.pattern, m)
            return rule.repl.eval(r)
        pat = rule.pattern.eval(r)
        if kind == "domain":
            v = value[1:] if value.startswith(".") else value
            if v.lower() != pat.lower():
                continue
            return value[:len(value) - len(v)] + rule.repl.eval(r)
        if value.startswith(pat):
            return rule.repl.eval(r) + value[len(pat):]
    return None


def _edit_flags(attrs: list[list[Any]], flags: int) -> None:
    """ngx_http_proxy_edit_cookie_flags."""
    for a in attrs[1:]:
        key = a[0]
        if key is None:
            continue
        low = key.lower()
        if low == "secure":
            if flags & SECURE_ON:
                flags &= ~SECURE_ON
            elif flags & SECURE_OFF:
                a[0] = None
        elif low == "httponly":
            if flags & HTTPONLY_ON:
                flags &= ~HTTPONLY_ON
            elif flags & HTTPONLY_OFF:
                a[0] = None
        elif low == "samesite":
            val = (a[1] or "").lower() if a[1] is not None else None
            for bit, word in ((SAMESITE_STRICT, "Strict"), (SAMESITE_LAX, "Lax"), (SAMESITE_NONE, "None")):
                if flags & bit:
                    flags &= ~bit
                    if val != word.lower():
                        a[0], a[1] = "SameSite", word
                    break
            else:
                if flags & SAMESITE_OFF:
                    a[0] = None
    if flags & SECURE_ON:
        attrs.append(["Secure", None])
    if flags & HTTPONLY_ON:
        attrs.append(["HttpOnly", None])
    if flags & (SAMESITE_STRICT | SAMESITE_LAX | SAMESITE_NONE):
        word = "Strict" if flags & SAMESITE_STRICT else "Lax" if flags & SAMESITE_LAX else "None"
        attrs.append(["SameSite", word])


def _flags_for(r: Any, name: str, rules: list[FlagRule]) -> int:
    for rule in rules:
        if rule.regex is not None:
            m = rule.regex.search(name)
            if m is None:
                continue
            set_captures(r, rule.regex, m)
        elif rule.cookie.eval(r).lower() != name.lower():
            continue
        f = 0
        for cv in rule.flags:
            bit = FLAG_MASKS.get(cv.eval(r).lower())
            if bit:
                f |= bit
        return f
    return 0


def rewrite_cookie(r: Any, conf: Any, value: str) -> str:
    """ngx_http_proxy_rewrite_cookie: the Set-Cookie value to send."""
    attrs = _parse(value)
    if attrs[0][1] is None:
        return value
    changed = False
    domains, paths = conf.cookie_domains, conf.cookie_paths
    for a in attrs[1:]:
        if a[1] is None:
            continue
        low = a[0].lower()
        if domains and low == "domain":
            new = _rewrite_value(r, a[1], domains)
            if new is not None:
                a[1] = new
                changed = True
        if paths and low == "path":
            new = _rewrite_value(r, a[1], paths)
            if new is not None:
                a[1] = new
                changed = True
    if conf.cookie_flags:
        f = _flags_for(r, attrs[0][0], conf.cookie_flags)
        if f:
            _edit_flags(attrs, f)
            changed = True
    if not changed:
        return value
    out = []
    for i, (k, v) in enumerate(attrs):
        if k is None:
            continue
        part = k if v is None else f"{k}={v}"
        out.append(part if i == 0 else "; " + part)
    return "".join(out)
