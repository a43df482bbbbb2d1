"""Parser: tokens -> a tree of Node(name, args, file, line, block).

Invariants:
- ``include`` is expanded here, in place, so later stages never see it; the
  included nodes keep their own file and line.  Globs are sorted like glob(3).
  Relative include paths are resolved against the configuration prefix
  (the directory of the main file), as nginx does.
- ``Node.block`` is None for a simple directive and a list for a block one.
- Every file read is recorded in ``Parsed.files`` (path, text) for ``-T``.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from .errors import ConfError
from .lexer import Token, tokenize


@dataclass(slots=True)
class Node:
    name: str
    args: list[str]
    file: str
    line: int
    block: list["Node"] | None = None
    quoted: list[bool] = field(default_factory=list)

    def error(self, message: str) -> ConfError:
        return ConfError(message, self.file, self.line)


@dataclass
class Parsed:
    nodes: list[Node]
    files: list[tuple[str, str]]


def _os_error(path: str, e: OSError) -> str:
    return f'open() "{path}" failed ({e.errno}: {e.strerror})'


class Parser:
    def __init__(self, conf_prefix: str) -> None:
        self.conf_prefix = conf_prefix
        self.files: list[tuple[str, str]] = []

    def parse_file(self, path: str, where: tuple[str, int] | None = None) -> list[Node]:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as e:
            if where:
                raise ConfError(_os_error(path, e), *where) from None
            raise ConfError(_os_error(path, e)) from None
        self.files.append((path, text))
        return self.parse_text(text, path)

    def parse_text(self, text: str, file: str) -> list[Node]:
        tokens = tokenize(text, file)
        nodes, closed_by = self._block(tokens, file, top=True)
        return nodes

    def _block(self, tokens, file: str, top: bool) -> tuple[list[Node], Token | None]:
        nodes: list[Node] = []
        words: list[Token] = []
        last_line = 1
        for tok in tokens:
            last_line = tok.line
            if tok.kind == "word":
                words.append(tok)
                continue
            if tok.kind == ";":
                if not words:
                    raise ConfError('unexpected ";"', tok.file, tok.line)
                self._emit(nodes, words, None, tok)
                words = []
                continue
            if tok.kind == "{":
                if not words:
                    raise ConfError('unexpected "{"', tok.file, tok.line)
                child, _ = self._block(tokens, file, top=False)
                self._emit(nodes, words, child, tok)
                words = []
                continue
            # "}"
            if words:
                raise ConfError('unexpected "}"', tok.file, tok.line)
            if top:
                raise ConfError('unexpected "}"', tok.file, tok.line)
            return nodes, tok
        if words:
            raise ConfError('unexpected end of file, expecting ";" or "}"', file, _eof_line(self, file, last_line))
        if not top:
            raise ConfError('unexpected end of file, expecting "}"', file, _eof_line(self, file, last_line))
        return nodes, None

    def _emit(self, nodes: list[Node], words: list[Token], block: list[Node] | None, end: Token) -> None:
        head = words[0]
        node = Node(head.value, [w.value for w in words[1:]], head.file, head.line, block,
                    [w.quoted for w in words[1:]])
        if node.name == "include" and block is None:
            if len(node.args) != 1:
                raise node.error('invalid number of arguments in "include" directive')
            nodes.extend(self._include(node))
            return
        nodes.append(node)

    def _include(self, node: Node) -> list[Node]:
        pattern = node.args[0]
        if not os.path.isabs(pattern):
            pattern = os.path.join(self.conf_prefix, pattern)
        out: list[Node] = []
        if any(c in pattern for c in "*?["):
            for path in sorted(glob.glob(pattern)):
                if os.path.isfile(path):
                    out.extend(self.parse_file(path, (node.file, node.line)))
            return out
        return self.parse_file(pattern, (node.file, node.line))


def _eof_line(parser: Parser, file: str, fallback: int) -> int:
    # nginx reports the line count of the file at EOF.
    for path, text in reversed(parser.files):
        if path == file:
            return text.count("\n") + (0 if text.endswith("\n") else 1)
    return fallback


def parse(path: str, conf_prefix: str | None = None) -> Parsed:
    prefix = conf_prefix if conf_prefix is not None else os.path.dirname(os.path.abspath(path))
    p = Parser(prefix)
    nodes = p.parse_file(path)
    return Parsed(nodes, p.files)


def parse_string(text: str, file: str, conf_prefix: str) -> list[Node]:
    """Parse a string such as the ``-g`` directives."""
    return Parser(conf_prefix).parse_text(text, file)
