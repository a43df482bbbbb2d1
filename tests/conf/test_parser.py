"""Unit tests for portico.conf (lexer and lazy parser) beyond the nginx comparison.

Invariants:
- Words, escapes, quoting flags and the terminator line of each statement
  are exactly those of nginx's ngx_conf_read_token.
- A Block is read only when iterated, can be replayed, and a block its
  handler left unread is read before the next sibling.
"""
from __future__ import annotations

import pytest

from portico.conf.errors import PARAM_FILE, ConfError
from portico.conf.lexer import BLOCK, END, EOF, STMT, statements, unescape
from portico.conf.parser import Block, Node, parse_string


def _words(text: str) -> list[tuple[str, list[str], int]]:
    return [(s.kind, s.words, s.line) for s in statements(text, "f")]


def test_statements_and_lines() -> None:
    assert _words("a b;\nc {\n}\n") == [(STMT, ["a", "b"], 1), (BLOCK, ["c"], 2), (END, [], 3), (EOF, [], 4)]


def test_terminator_line_is_reported() -> None:
    st = list(statements("a\n\nb\n;", "f"))[0]
    assert (st.start_line, st.line) == (1, 4)


@pytest.mark.parametrize("raw,value", [
    ('"a\\"b"', 'a"b'), ("'x'", "x"), ('"\\t\\n\\r"', "\t\n\r"), ("a\\d", "a\\d"), ("a\\\\b", "a\\b"),
    ("${x}y", "${x}y"), ("a#b", "a#b"), ("'it\\'s'", "it's"),
])
def test_word_values(raw: str, value: str) -> None:
    st = list(statements(f"d {raw};", "f"))[0]
    assert st.words == ["d", value]


def test_quoted_flags() -> None:
    st = list(statements("d 'a' b \"c\";", "f"))[0]
    assert st.quoted == [False, True, False, True]


def test_unescape_keeps_unknown_escapes() -> None:
    assert unescape("\\x\\;\\") == "\\x\\;\\"


def test_param_mode_messages() -> None:
    with pytest.raises(ConfError) as e:
        list(parse_string("a 1", PARAM_FILE, "/"))
    assert e.value.line_text() == 'unexpected end of parameter, expecting ";" in command line'
    with pytest.raises(ConfError) as e:
        list(parse_string("a {}", PARAM_FILE, "/"))
    assert e.value.line_text() == "block directives are not supported in -g option in command line"


def test_block_is_lazy_and_replayable() -> None:
    top = parse_string("a {\nb;\n}\nbad", "f", "/", param=False)
    it = iter(top)
    a = next(it)
    assert a.name == "a" and isinstance(a.block, Block) and a.end_line is None
    assert [n.name for n in a.block] == ["b"]
    assert a.end_line == 3
    assert [n.name for n in a.block] == ["b"]  # replay
    with pytest.raises(ConfError) as e:
        next(it)
    assert e.value.line_text() == 'unexpected end of file, expecting ";" or "}" in f:4'


def test_unread_block_is_read_before_next_sibling() -> None:
    top = parse_string("a {\nb { c; }\n}\nd;", "f", "/", param=False)
    names = [n.name for n in top]
    assert names == ["a", "d"]
    a = top.read_all()[0]
    assert a.block is not None
    b = a.block.read_all()[0]
    assert b.block is not None and [n.name for n in b.block] == ["c"]


def test_node_error_uses_end_line_after_block() -> None:
    n = Node("x", [], "f", 2)
    assert n.error("m").line_text() == "m in f:2"
    n.end_line = 9
    assert n.error("m").line_text() == "m in f:9"
