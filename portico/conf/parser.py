"""Parser: statements -> a tree of Node(name, args, file, line, block), read on demand.

nginx reads and executes its configuration in one pass: each directive's
handler runs as soon as its ``;`` or ``{`` is read, and a block handler reads
its own block.  So an error in a directive is reported before any syntax
error further down.  This parser keeps that order by being lazy: a ``Block``
(the top level of a file, or the children of a block directive) reads its
statements only when iterated, so a handler that iterates ``node.block``
drives the lexer exactly as nginx's ``ngx_conf_parse`` does.

Invariants:
- ``Node.line`` is the line where the directive's ``;`` or ``{`` was read,
  the line nginx reports for its errors; ``Node.start_line`` is where its
  name began.  Once a block has been read to its ``}``, ``Node.end_line``
  is that brace's line and ``Node.error()`` reports it (nginx's position
  after parsing a block).  Nodes from ``-g`` have line ``PARAM_LINE``.
- ``Node.block`` is None for a simple directive and a ``Block`` otherwise.
  A Block can be iterated any number of times (later iterations replay what
  was read); if a handler leaves its block unread, it is read (syntax
  checked, includes expanded) before the next sibling is.
- ``include`` is handled here with nginx's checks and messages, when it is
  reached; the included nodes keep their own file and line.  Relative paths
  are resolved against the configuration prefix (the directory of the main
  file), globs are sorted like glob(3) and may match nothing.
- Every file opened is recorded in ``Parsed.files`` (path, text) for ``-T``.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Generator, Iterator

from .errors import PARAM_FILE, PARAM_LINE, ConfError
from .lexer import BLOCK, END, EOF, Statement, statements


@dataclass(slots=True, eq=False)
class Node:
    name: str
    args: list[str]
    file: str
    line: int
    block: "Block | None" = None
    quoted: list[bool] = field(default_factory=list)
    start_line: int = 0
    end_line: int | None = None

    def error(self, message: str) -> ConfError:
        return ConfError(message, self.file, self.line if self.end_line is None else self.end_line)


class Block:
    """An ordered, lazily read list of nodes."""

    __slots__ = ("_source", "_nodes")

    def __init__(self, source: Iterator[Node] | None = None, nodes: list[Node] | None = None) -> None:
        self._source = source
        self._nodes: list[Node] = list(nodes or [])

    def __iter__(self) -> Iterator[Node]:
        i = 0
        while True:
            if i < len(self._nodes):
                yield self._nodes[i]
                i += 1
                continue
            if self._source is None:
                return
            try:
                node = next(self._source)
            except StopIteration:
                self._source = None
                return
            self._nodes.append(node)

    def __bool__(self) -> bool:
        return True

    def read_all(self) -> list[Node]:
        """Read to the end (raising any error on the way) and return every node."""
        for _ in self:
            pass
        return self._nodes

    def __repr__(self) -> str:
        more = ", ..." if self._source is not None else ""
        return f"Block({self._nodes!r}{more})"


@dataclass
class Parsed:
    nodes: Block
    files: list[tuple[str, str]]


def _os_error(path: str, e: OSError) -> str:
    return f'open() "{path}" failed ({e.errno}: {e.strerror})'


_FILE, _BLOCK, _PARAM = "file", "block", "param"


class Parser:
    def __init__(self, conf_prefix: str) -> None:
        self.conf_prefix = conf_prefix
        self.files: list[tuple[str, str]] = []

    def parse_file(self, path: str, where: tuple[str, int] | None = None) -> Block:
        """The nodes of a file; it is opened when the Block is first iterated."""
        return Block(self._file_nodes(path, where))

    def parse_text(self, text: str, file: str, param: bool = False) -> Block:
        """The nodes of ``text`` as if read from ``file`` (or ``-g`` when ``param``)."""
        kind = _PARAM if param else _FILE
        return Block(self._nodes(statements(text, file, param), file, kind))

    def _file_nodes(self, path: str, where: tuple[str, int] | None) -> Generator[Node, None, None]:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                text = f.read()
        except OSError as e:
            if where:
                raise ConfError(_os_error(path, e), *where) from None
            raise ConfError(_os_error(path, e)) from None
        self.files.append((path, text))
        yield from self._nodes(statements(text, path), path, _FILE)

    def _nodes(self, stream: Iterator[Statement], file: str, kind: str) -> Generator[Node, None, int | None]:
        """Nodes up to the end of the file (returns None) or of the block (returns the "}" line)."""
        for st in stream:
            line = PARAM_LINE if kind == _PARAM else st.line
            if st.kind == END:
                if kind != _BLOCK:
                    raise ConfError('unexpected "}"', file, line)
                return st.line
            if st.kind == EOF:
                if kind == _BLOCK:
                    raise ConfError('unexpected end of file, expecting "}"', file, line)
                return None
            if st.kind == BLOCK and kind == _PARAM:
                raise ConfError("block directives are not supported in -g option", file, line)
            node = Node(st.words[0], st.words[1:], file, line, None, st.quoted[1:],
                        PARAM_LINE if kind == _PARAM else st.start_line)
            if node.name == "include":
                if st.kind == BLOCK:
                    raise node.error('directive "include" is not terminated by ";"')
                if len(node.args) != 1:
                    raise node.error('invalid number of arguments in "include" directive')
                yield from self._include(node)
                continue
            if st.kind == BLOCK:
                node.block = Block(self._child(stream, file, node))
            yield node
            if node.block is not None:
                node.block.read_all()
        return None  # not reached: the lexer always ends with EOF

    def _child(self, stream: Iterator[Statement], file: str, node: Node) -> Generator[Node, None, None]:
        node.end_line = None
        end = yield from self._nodes(stream, file, _BLOCK)
        node.end_line = end

    def _include(self, node: Node) -> Generator[Node, None, None]:
        pattern = node.args[0]
        if not os.path.isabs(pattern):
            pattern = os.path.join(self.conf_prefix, pattern)
        where = (node.file, node.line)
        if any(c in pattern for c in "*?["):
            for path in sorted(glob.glob(pattern)):
                if os.path.isfile(path):
                    yield from self._file_nodes(path, where)
            return
        yield from self._file_nodes(pattern, where)


def parse(path: str, conf_prefix: str | None = None) -> Parsed:
    """The main configuration file, read on demand (see the module docstring)."""
    prefix = conf_prefix if conf_prefix is not None else os.path.dirname(os.path.abspath(path))
    p = Parser(prefix)
    return Parsed(p.parse_file(path), p.files)


def parse_string(text: str, file: str = PARAM_FILE, conf_prefix: str = "", param: bool = True) -> Block:
    """Parse the ``-g`` directives (``param``) or, with ``param=False``, any text."""
    return Parser(conf_prefix).parse_text(text, file, param)
