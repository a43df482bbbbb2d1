"""Cycle: one loaded configuration, everything derived from it.

Invariants:
- A Cycle is built completely (parse, directive checks, merges, compiled
  locations and variables) before any process uses it; a ConfError raised
  anywhere during ``load()`` leaves no side effects except opened log files,
  which ``close()`` releases.  That is what lets a reload with a broken config
  keep the old workers.
- Listening sockets are not opened here; the master opens (or reuses) them
  from ``Cycle.listens`` so that reloads keep inherited sockets.
"""
from __future__ import annotations

import os
from typing import Any

from ..conf.parser import Node, parse, parse_string
from . import log as logmod
from .module import MAIN, Conf, Directive, Registry


class ConfCtx:
    """What a setter sees: the cycle, the current context and conf levels."""

    def __init__(self, cycle: "Cycle", ctx: str) -> None:
        self.cycle = cycle
        self.ctx = ctx
        self.main: dict[str, Conf] = {}
        self.srv: dict[str, Conf] = {}
        self.loc: dict[str, Conf] = {}
        self.extra: dict[str, Any] = {}

    def child(self, ctx: str) -> "ConfCtx":
        c = ConfCtx(self.cycle, ctx)
        c.main, c.srv, c.loc, c.extra = self.main, self.srv, self.loc, dict(self.extra)
        return c

    def conf_for(self, d: Directive) -> Any:
        mod = d.module
        assert mod is not None
        if d.level == "core":
            return self.cycle.confs[mod.name]
        if d.level == "main":
            return self.main.get(mod.name)
        if d.level == "srv":
            return self.srv.get(mod.name)
        if d.level == "loc":
            return self.loc.get(mod.name)
        return None

    def process(self, nodes: list[Node]) -> None:
        reg = self.cycle.registry
        for node in nodes:
            d = reg.lookup(node, self.ctx)
            d.setter(self, node, self.conf_for(d))

    def full_path(self, path: str) -> str:
        return self.cycle.full_path(path)



class Cycle:
    def __init__(self, conf_file: str, prefix: str, conf_prefix: str | None = None,
                 globals_: str | None = None, error_log_path: str | None = None,
                 registry: Registry | None = None) -> None:
        from .. import modules as allmods

        self.conf_file = os.path.abspath(conf_file)
        self.prefix = prefix.rstrip("/") + "/"
        self.conf_prefix = conf_prefix or os.path.dirname(self.conf_file)
        self.globals = globals_
        self.error_log_path = error_log_path
        self.registry = registry or allmods.registry()
        self.confs: dict[str, Any] = {}
        self.files: list[tuple[str, str]] = []
        self.http: Any = None
        self.listens: list[Any] = []
        self.zones: dict[str, Any] = {}  # name -> (size, owner description)
        self.log = logmod.ErrorLog.to_stderr()
        self.warnings: list[str] = []
        self.infos: list[str] = []  # written to the error log at info once it is open

    def full_path(self, path: str) -> str:
        return path if os.path.isabs(path) else os.path.join(self.prefix, path)

    def warn(self, msg: str, node: Node | None = None) -> None:
        where = f" in {node.file}:{node.line}" if node is not None else ""
        self.warnings.append(f"{msg}{where}")

    def info(self, msg: str, node: Node | None = None) -> None:
        where = f" in {node.file}:{node.line}" if node is not None else ""
        self.infos.append(f"{msg}{where}")

    def load(self) -> None:
        for mod in self.registry.modules:
            conf_cls = getattr(mod, "core_conf", None)
            if conf_cls is not None:
                self.confs[mod.name] = conf_cls()
        parsed = parse(self.conf_file, self.conf_prefix)
        self.files = parsed.files
        cf = ConfCtx(self, MAIN)
        if self.globals:
            gnodes = parse_string(self.globals, "command line", self.conf_prefix)
            cf.process(gnodes)
        cf.process(parsed.nodes)
        for mod in self.registry.modules:
            init = getattr(mod, "init_cycle", None)
            if init is not None:
                init(self)

    def open_logs(self) -> None:
        """Open error logs and access logs (in the master, before forking)."""
        self.log.open()
        for el in getattr(self, "extra_logs", []):
            el.open()
        for m in self.infos:
            self.log.log(logmod.INFO, m)
        for lf in getattr(self, "log_files", []):
            lf.open()

    def close(self) -> None:
        self.log.close()
        for el in getattr(self, "extra_logs", []):
            el.close()
        for lf in getattr(self, "log_files", []):
            if lf.fd >= 0:
                os.close(lf.fd)
                lf.fd = -1
