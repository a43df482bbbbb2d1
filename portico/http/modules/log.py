"""ngx_http_log_module: log_format and access_log.

Invariants:
- Formats compile once into (literal | (getter, escape)) parts; a line is
  one join per request.  ``combined`` is predefined exactly as nginx's.
- A variable that is not found logs as ``-`` (``escape=default|none``) or
  nothing (``escape=json``), as nginx; an empty value logs nothing.
- Escaping (default): ``"``, ``\\`` and bytes < 0x20 or > 0x7e become
  ``\\xXX``; json escapes as JSON strings do.
- One open file per path, shared by every access_log naming it; unbuffered
  logs write the lines of one loop iteration in one ``os.write``, before
  that iteration's responses leave (core/deferred.py); ``buffer=`` logs
  flush when full, on ``flush=`` expiry (checked at each write and each
  worker tick), at reopen and at worker exit.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any

from ...conf.parser import Node
from ...core import values
from ...core.deferred import flush_soon
from ...core.module import HSL, HTTP, MORE1, MORE2, Conf, Module, UNSET, dir
from ..request import Request

COMBINED = ('$remote_addr - $remote_user [$time_local] '
            '"$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')


def _escape_default(v: str) -> str:
    if v.isascii() and v.isprintable() and '"' not in v and "\\" not in v:
        return v
    out = []
    for b in v.encode("utf-8", "surrogateescape"):
        if b < 0x20 or b > 0x7e or b in (0x22, 0x5c):
            out.append(f"\\x{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


_JSON_ESC = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _escape_json(v: str) -> str:
    out = []
    for ch in v:
        e = _JSON_ESC.get(ch)
        if e is not None:
            out.append(e)
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


_needs_escape = re.compile(r'[^\x20-\x21\x23-\x5b\x5d-\x7e]').search


class LogFormat:
    """A compiled log_format.

    ``render`` is generated Python source, compiled once per format: one
    expression per variable with the not-found and escaping rules inline,
    so a line costs at most one call per variable (none for getters that
    carry an ``inline`` expression) and one join.
    """

    def __init__(self, name: str, escape: str, parts: list[Any]) -> None:
        self.name = name
        self.escape = escape
        self.parts = parts
        self.render = self._compile()

    def _compile(self) -> Any:
        # Escaped forms of short values, per format: the same user agents
        # and request lines come back all the time, and a lookup is cheaper
        # than the scan.  Bounded in count and in the length of a value.
        cache: dict[str, str] = {}
        esc_fn = {"default": _escape_default, "json": _escape_json}.get(self.escape)

        def escaped(v: str) -> str:
            out = esc_fn(v) if _needs_escape(v) else v  # type: ignore[misc]
            if len(v) <= 256:
                if len(cache) >= 4096:
                    cache.clear()
                cache[v] = out
            return out

        env: dict[str, Any] = {"_ec": cache, "_escaped": escaped}
        lines = ["def render(r):"]
        pieces = []
        for i, p in enumerate(self.parts):
            if isinstance(p, str):
                pieces.append(repr(p))
                continue
            getter, esc = p
            env[f"g{i}"] = getter
            # variables.py: a getter may come with the same value as an
            # expression ("{g}" is the getter itself) and the names it uses
            inline = getattr(getter, "inline", None)
            if inline:
                env.update(getattr(getter, "inline_env", {}))
            lines.append(f"    v{i} = " + (inline.replace("{g}", f"g{i}") if inline else f"g{i}(r)"))
            missing = '"-"' if self.escape == "default" else '""'
            if getattr(getter, "never_none", False):
                if esc is not None:
                    lines.append(f"    v{i} = _ec.get(v{i}) or _escaped(v{i})")
                pieces.append(f"v{i}")
                continue
            lines.append(f"    if v{i} is None: v{i} = {missing}")
            if esc is not None:
                lines.append(f"    else: v{i} = _ec.get(v{i}) or _escaped(v{i})")
            pieces.append(f"v{i}")
        pieces.append(repr("\n"))
        lines.append("    return ''.join((" + ", ".join(pieces) + ",))")
        exec(compile("\n".join(lines), f"<log_format {self.name}>", "exec"), env)
        return env["render"]


class LogFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.buf: list[bytes] = []
        self.buf_size = 0
        self.limit = 0
        self.flush_every = 0.0
        self.first_at = 0.0

    def open(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        if not self.limit:
            # Unbuffered, as nginx without buffer=: but the lines of one
            # loop iteration leave in one write, made before that
            # iteration's responses (core/deferred.py, first=True).
            if self.buf or flush_soon(self, first=True):
                self.buf.append(data)
                return
            try:
                os.write(self.fd, data)
            except OSError:
                pass
            return
        if not self.buf:
            self.first_at = time.monotonic()
        self.buf.append(data)
        self.buf_size += len(data)
        if self.buf_size >= self.limit or (self.flush_every and time.monotonic() - self.first_at >= self.flush_every):
            self.flush()

    def flush(self) -> None:
        if self.buf and self.fd >= 0:
            data = b"".join(self.buf)
            self.buf = []
            self.buf_size = 0
            try:
                os.write(self.fd, data)
            except OSError:
                pass

    def flush_deferred(self) -> None:
        if not self.limit:
            self.flush()

    def tick(self) -> None:
        if self.buf and self.flush_every and time.monotonic() - self.first_at >= self.flush_every:
            self.flush()

    def reopen(self) -> None:
        self.flush()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError:
            return
        old, self.fd = self.fd, fd
        if old >= 0:
            os.close(old)


class LogMainConf(Conf):
    formats: dict = None  # type: ignore[assignment]
    files: dict = None  # type: ignore[assignment]


class LogLocConf(Conf):
    logs: Any = None  # None = off; list of (LogFile, LogFormat, condition)


def _main(cf: Any) -> LogMainConf:
    mc: LogMainConf = cf.main["log"]
    if mc.formats is UNSET or mc.formats is None:
        mc.formats = {}
    if mc.files is UNSET or mc.files is None:
        mc.files = {}
    if "combined" not in mc.formats:
        mc.formats["combined"] = _compile(cf.extra["http"].variables, "combined", "default", COMBINED, None)
    return mc


#: variables whose values never hold a byte either escaping changes (numbers,
#: times, addresses): their values are not checked
_PLAIN = ("status", "body_bytes_sent", "bytes_sent", "request_length", "request_time", "msec",
          "time_local", "time_iso8601", "connection", "connection_requests", "pid", "remote_addr",
          "remote_port", "server_port")


def _compile(variables: Any, name: str, escape: str, text: str, node: Node | None) -> LogFormat:
    cv = variables.compile(text, node.file if node else None, node.line if node else None)
    esc = {"default": _escape_default, "json": _escape_json, "none": None}[escape]
    plain = {variables.getter(v) for v in _PLAIN}
    parts: list[Any] = []
    for p in cv.parts:
        parts.append(p if isinstance(p, str) else (p, None if p in plain else esc))
    return LogFormat(name, escape, parts)


def _log_format(cf: Any, node: Node, conf: Any) -> None:
    mc = _main(cf)
    args = list(node.args)
    name = args.pop(0)
    escape = "default"
    if args and args[0].startswith("escape="):
        escape = args.pop(0)[7:]
        if escape not in ("default", "json", "none"):
            raise node.error(f'unknown log format escaping "{escape}"')
    if not args:
        raise node.error('invalid number of arguments in "log_format" directive')
    if name in mc.formats and name != "combined":
        raise node.error(f'duplicate "log_format" name "{name}"')
    if name == "combined":
        raise node.error('duplicate "log_format" name "combined"')
    mc.formats[name] = _compile(cf.extra["http"].variables, name, escape, "".join(args), node)


def _access_log(cf: Any, node: Node, conf: LogLocConf) -> None:
    mc = _main(cf)
    if node.args[0] == "off":
        if len(node.args) > 1:
            raise node.error(f'invalid parameter "{node.args[1]}"')
        conf.logs = None
        return
    if conf.logs is UNSET or conf.logs is None:
        conf.logs = []
    path = node.args[0]
    if path.startswith("syslog:"):
        raise node.error("syslog access_log is not supported by portico yet")
    if "$" in path:
        raise node.error("access_log with variables in the path is not supported by portico yet")
    fmt_name = "combined"
    rest = node.args[1:]
    if rest and "=" not in rest[0]:
        fmt_name = rest.pop(0)
    fmt = mc.formats.get(fmt_name)
    if fmt is None:
        raise node.error(f'unknown log format "{fmt_name}"')
    full = cf.full_path(path)
    lf = mc.files.get(full)
    if lf is None:
        lf = mc.files[full] = LogFile(full)
    cond = None
    for p in rest:
        if p.startswith("buffer="):
            size = values.parse_size(p[7:])
            if size is None:
                raise node.error(f'invalid buffer size "{p[7:]}"')
            lf.limit = size
        elif p.startswith("flush="):
            t = values.parse_time(p[6:], default_unit_ms=True)
            if t is None:
                raise node.error(f'invalid flush time "{p[6:]}"')
            lf.flush_every = t
        elif p.startswith("if="):
            cond = cf.extra["http"].variables.compile(p[3:], node.file, node.line)
        elif p == "gzip" or p.startswith("gzip="):
            raise node.error("gzip access_log is not supported by portico yet")
        else:
            raise node.error(f'invalid parameter "{p}"')
    if lf.flush_every and not lf.limit:
        lf.limit = 64 * 1024
    conf.logs.append((lf, fmt, cond))


def log_handler(r: Request) -> None:
    logs = r.loc.log.logs if r.loc is not None else None
    if not logs:
        return
    for lf, fmt, cond in logs:
        if cond is not None:
            v = cond.eval(r)
            if v == "" or v == "0":
                continue
        lf.write(fmt.render(r).encode("utf-8", "surrogateescape"))


class LogModule(Module):
    name = "log"
    nginx_name = "ngx_http_log_module"
    is_http = True
    main_conf = LogMainConf
    loc_conf = LogLocConf
    directives = [
        dir("log_format", frozenset({HTTP}), MORE2, _log_format, "none"),
        dir("access_log", HSL | {"lif", "limit_except"}, MORE1, _access_log),
        dir("open_log_file_cache", HSL, (1, 4), lambda cf, n, c: None, "none", status="partial"),
    ]

    def init_worker(self, worker: Any) -> None:
        self._files = list(getattr(worker.cycle, "log_files", []))

    def tick_worker(self) -> None:
        for lf in getattr(self, "_files", []):
            lf.tick()

    def exit_worker(self, worker: Any) -> None:
        for lf in getattr(self, "_files", []):
            lf.flush()

    def reopen(self, cycle: Any) -> None:
        for lf in getattr(cycle, "log_files", []):
            lf.reopen()

    def postconfiguration(self, http: Any) -> None:
        mc = http.main["log"]
        if mc.files is None or mc.files is UNSET:
            mc.files = {}
        if not mc.formats:
            mc.formats = {"combined": _compile(http.variables, "combined", "default", COMBINED, None)}
        # the default access_log (logs/access.log combined) where none is given
        default_path = http.cycle.full_path("logs/access.log")
        files = mc.files
        default_used = False
        for loc in http.all_locations():
            if loc.confs_raw["log"].logs is _DEFAULT_MARK:
                default_used = True
        if default_used and default_path not in files:
            files[default_path] = LogFile(default_path)
        if default_used:
            fmt = mc.formats["combined"] if mc.formats else None
            for loc in http.all_locations():
                lc = loc.confs_raw["log"]
                if lc.logs is _DEFAULT_MARK:
                    lc.logs = [(files[default_path], fmt, None)]
        http.cycle.log_files = list(files.values())
        http.log_handlers.append(log_handler)


_DEFAULT_MARK: Any = "__default_access_log__"
LogLocConf._fields["logs"] = _DEFAULT_MARK
