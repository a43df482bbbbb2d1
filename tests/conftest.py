"""Shared fixtures: a factory that starts real servers and always stops them."""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Server, have_nginx  # noqa: E402


@pytest.fixture
def server() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(conf: str, kind: str = "portico", files: dict[str, Any] | None = None, start: bool = True,
             args: tuple[str, ...] = ()) -> Server:
        if kind == "nginx" and not have_nginx():
            pytest.skip("Debian's nginx is not installed")
        s = Server(conf, kind, files)
        started.append(s)
        if start:
            s.start(*args)
        return s

    yield make
    for s in started:
        s.cleanup()
