"""Configuration errors, printed the way nginx prints them.

Invariant: ``str(ConfError)`` is the message without level or program name;
``ConfError.line_text()`` adds `` in FILE:LINE`` when a location is known, so
callers print ``portico: [emerg] <line_text()>`` exactly as nginx does.
"""
from __future__ import annotations


class ConfError(Exception):
    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line

    def line_text(self) -> str:
        if self.file is not None and self.line is not None:
            return f"{self.message} in {self.file}:{self.line}"
        return self.message
