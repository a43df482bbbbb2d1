"""Configuration errors, printed the way nginx prints them.

Invariants:
- ``str(ConfError)`` is the message without level or program name;
  ``ConfError.line_text()`` adds nginx's location suffix, so callers print
  ``portico: [emerg] <line_text()>`` exactly as nginx does:
  `` in FILE:LINE`` for a configuration file, `` in command line`` for
  the ``-g`` directives (``line == PARAM_LINE``), nothing when no file is known.
"""
from __future__ import annotations

#: the ``line`` of everything that comes from ``-g`` (nginx prints no number)
PARAM_LINE = 0
#: the ``file`` of everything that comes from ``-g``
PARAM_FILE = "command line"


class ConfError(Exception):
    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def line_text(self) -> str:
        if self.file is not None and self.line == PARAM_LINE:
            return f"{self.message} in {self.file}"
        if self.file is not None and self.line is not None:
            return f"{self.message} in {self.file}:{self.line}"
        return self.message
