"""Tokeniser for the nginx configuration language: a port of ngx_conf_read_token.

The lexer yields *statements*, not single tokens: the words of one directive
and what ended them (``;``, ``{``), a ``}``, or the end of the input, exactly
the units nginx's parser consumes.

Invariants:
- ``Statement.line`` is the lexer's line *when the statement ended* (the line
  of its ``;``, ``{`` or ``}``); that is the line nginx prints for every error
  raised while handling the statement.  ``start_line`` is where its first
  word began.  Lines count every LF, including escaped and quoted ones.
- Lexical errors raise ConfError with nginx's wording at the current line;
  at the end of the input that line is 1 + the number of LFs in the input.
- Escapes are applied as nginx does: ``\\"``, ``\\'`` and ``\\\\`` lose their
  backslash, ``\\t \\r \\n`` become control characters, and any other
  backslash is kept (so regexes such as ``\\d`` survive).  A backslash also
  makes the next character ordinary (``\\;`` does not end a statement).
- ``#`` starts a comment only where a new word could start.
- Inside an unquoted word only white space, ``;`` and ``{`` end it (a ``}``
  is an ordinary character there); ``{`` directly after ``$`` is ordinary
  too (``${var}``).  Quotes only count at the start of a word.
- After a closing quote only white space, ``;``, ``{`` or ``)`` may follow.
- In parameter mode (``-g``) the end of input inside a statement is
  "unexpected end of parameter"; positions are reported as ``command line``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .errors import PARAM_LINE, ConfError

STMT = ";"       # words terminated by ";"
BLOCK = "{"      # words terminated by "{"
END = "}"        # a closing brace
EOF = "eof"      # end of the input

_SPACE = " \t\r\n"


@dataclass(slots=True)
class Statement:
    kind: str  # STMT | BLOCK | END | EOF
    line: int
    words: list[str] = field(default_factory=list)
    quoted: list[bool] = field(default_factory=list)
    start_line: int = 0


def unescape(raw: str) -> str:
    """Apply nginx's escapes to the raw text of one word."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt in "\"'\\":
                i += 1
                ch = nxt
            elif nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                i += 2
                continue
        out.append(ch)
        i += 1
    return "".join(out)


def statements(text: str, file: str, param: bool = False) -> Iterator[Statement]:
    """Yield the statements of ``text``; the last one has kind EOF."""
    i, n, line = 0, len(text), 1

    def error(msg: str) -> ConfError:
        return ConfError(msg, file, PARAM_LINE if param else line)

    while True:
        words: list[str] = []
        quoted_words: list[bool] = []
        need_space = False
        last_space = True
        sharp_comment = False
        variable = False
        quoted = False
        s_quoted = d_quoted = False
        start = i
        first_line = line
        while True:
            if i >= n:
                if words or not last_space:
                    if param:
                        raise error('unexpected end of parameter, expecting ";"')
                    raise error('unexpected end of file, expecting ";" or "}"')
                yield Statement(EOF, line)
                return
            ch = text[i]
            i += 1
            if ch == "\n":
                line += 1
                sharp_comment = False
            if sharp_comment:
                continue
            if quoted:
                quoted = False
                continue
            if need_space:
                if ch in _SPACE:
                    last_space = True
                    need_space = False
                    continue
                if ch == ";" or ch == "{":
                    break
                if ch == ")":
                    last_space = True
                    need_space = False
                else:
                    raise error(f'unexpected "{ch}"')
            if last_space:
                start = i - 1
                if ch in _SPACE:
                    continue
                if ch == ";" or ch == "{":
                    if not words:
                        raise error(f'unexpected "{ch}"')
                    break
                if ch == "}":
                    if words:
                        raise error('unexpected "}"')
                    break
                if ch == "#":
                    sharp_comment = True
                    continue
                if not words:
                    first_line = line
                last_space = False
                if ch == "\\":
                    quoted = True
                elif ch == '"':
                    start += 1
                    d_quoted = True
                elif ch == "'":
                    start += 1
                    s_quoted = True
                elif ch == "$":
                    variable = True
                continue
            if ch == "{" and variable:
                continue
            variable = False
            if ch == "\\":
                quoted = True
                continue
            if ch == "$":
                variable = True
                continue
            found = False
            if d_quoted:
                if ch == '"':
                    d_quoted = False
                    need_space = found = True
            elif s_quoted:
                if ch == "'":
                    s_quoted = False
                    need_space = found = True
            elif ch in _SPACE or ch == ";" or ch == "{":
                last_space = found = True
            if found:
                words.append(unescape(text[start:i - 1]))
                quoted_words.append(need_space)
                if ch == ";" or ch == "{":
                    break
        if ch == "}":
            yield Statement(END, line)
        else:
            yield Statement(STMT if ch == ";" else BLOCK, line, words, quoted_words, first_line)
