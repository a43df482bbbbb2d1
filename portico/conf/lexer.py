"""Tokeniser for the nginx configuration language.

Invariants:
- Every token carries the file name and the 1-based line where it started, so
  every later error can say ``in FILE:LINE`` like nginx.
- Escapes are applied exactly as ngx_conf_read_token does: ``\\"``, ``\\'`` and
  ``\\\\`` lose their backslash, ``\\t \\r \\n`` become control characters, and
  any other backslash is kept (so regexes such as ``\\d`` survive unquoted).
- ``#`` starts a comment only where a new token could start.
- ``{`` directly after ``$`` opens a ``${var}`` reference, not a block.
- After a closing quote only white space, ``;``, ``{`` or ``)`` may follow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .errors import ConfError


@dataclass(slots=True)
class Token:
    kind: str  # "word", ";", "{", "}"
    value: str
    quoted: bool
    file: str
    line: int


_SPACE = " \t\r\n"


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt == "t":
                out.append("\t")
                i += 2
                continue
            if nxt == "r":
                out.append("\r")
                i += 2
                continue
            if nxt == "n":
                out.append("\n")
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(text: str, file: str) -> Iterator[Token]:
    """Yield tokens; raise ConfError with nginx's wording on lexical errors."""
    i, n, line = 0, len(text), 1
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            continue
        if ch in _SPACE:
            i += 1
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch in ";{}":
            yield Token(ch, ch, False, file, line)
            i += 1
            continue
        start_line = line
        if ch == '"' or ch == "'":
            quote = ch
            j = i + 1
            while True:
                if j >= n:
                    raise ConfError("unexpected end of file, expecting \";\" or \"}\"", file, line)
                c = text[j]
                if c == "\\":
                    if j + 1 < n and text[j + 1] == "\n":
                        line += 1
                    j += 2
                    continue
                if c == "\n":
                    line += 1
                elif c == quote:
                    break
                j += 1
            value = _unescape(text[i + 1 : j])
            i = j + 1
            if i < n and text[i] not in _SPACE and text[i] not in ";{)":
                raise ConfError(f'unexpected "{text[i]}"', file, line)
            yield Token("word", value, True, file, start_line)
            continue
        # unquoted word
        j = i
        while j < n:
            c = text[j]
            if c == "\\":
                j += 2
                continue
            if c in _SPACE or c == ";":
                break
            if c == "{":
                if j > i and text[j - 1] == "$":
                    # ${var}: consume through the closing brace
                    k = text.find("}", j)
                    if k < 0:
                        break
                    j = k + 1
                    continue
                break
            j += 1
        yield Token("word", _unescape(text[i:j]), False, file, start_line)
        i = j
