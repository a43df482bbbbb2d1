"""PCRE-syntax regexes for the configuration: one compile, nginx's errors.

Invariants:
- Every regex of a configuration (location, server_name, rewrite, if, map)
  is compiled here once, with the ``regex`` package in its V0 (PCRE-like)
  mode; ``caseless`` is nginx's NGX_REGEX_CASELESS.
- A compile error raises ``PcreError`` whose text is nginx's
  ``pcre2_compile() failed: MESSAGE in "PATTERN" [at "REST"]``; the common
  messages are translated to PCRE2's wording, others keep regex's.
"""
from __future__ import annotations

from typing import Any

import regex


class PcreError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def compile(pattern: str, caseless: bool = False) -> Any:
    try:
        return regex.compile(pattern, regex.V0 | (regex.IGNORECASE if caseless else 0))
    except regex.error as e:
        raise PcreError(pcre_error(pattern, e)) from None


# PCRE2's wording for the errors the ``regex`` package reports differently;
# ``at`` says where nginx's "at" text starts relative to regex's position
# (None: at the end of the pattern, where nginx prints no "at").
_PCRE_ERRORS: dict[str, tuple[str, str]] = {
    "missing )": ("missing closing parenthesis", "end"),
    "unbalanced parenthesis": ("unmatched closing parenthesis", "pos"),
    "unterminated character set": ("missing terminating ] for character class", "end"),
    "multiple repeat": ("quantifier does not follow a repeatable item", "pos"),
    "nothing to repeat": ("quantifier does not follow a repeatable item", "pos"),
    "min repeat greater than max repeat": ("numbers out of order in {} quantifier", "brace"),
    "bad character range": ("range out of order in character class", "before"),
    "unknown extension": ("unrecognized character after (? or (?-", "pos"),
    "invalid group reference": ("reference to non-existent subpattern", "before"),
    "bad escape (end of pattern)": ("\\ at end of pattern", "end"),
}


def pcre_error(pattern: str, e: regex.error) -> str:
    """An ``regex`` compile error in nginx's ``pcre2_compile() failed`` form."""
    msg = getattr(e, "msg", str(e))
    pos = getattr(e, "pos", None)
    known = _PCRE_ERRORS.get(msg)
    if known is None:
        return f'pcre2_compile() failed: {msg} in "{pattern}"'
    text, where = known
    if where == "end" or pos is None:
        return f'pcre2_compile() failed: {text} in "{pattern}"'
    if where == "brace":
        at = pattern.find("}", pos)
        pos = at if at >= 0 else pos
    elif where == "before":
        pos = max(0, pos - 1)
    if pos >= len(pattern):
        return f'pcre2_compile() failed: {text} in "{pattern}"'
    return f'pcre2_compile() failed: {text} in "{pattern}" at "{pattern[pos:]}"'
