"""Variables and compiled "complex values" (strings with ``$var`` inside).

Invariants:
- A string with variables is compiled once, at configuration time, into a
  ``ComplexValue``: a tuple of literal strings and getter functions.  Nothing
  is re-parsed per request; a value without variables evaluates to a constant.
- A getter takes the request and returns ``str`` or None (not found); a
  ComplexValue renders None as the empty string, as nginx does.
- Names are case-insensitive for the ``http_``/``sent_http_``/``cookie_``
  families and case-sensitive otherwise, like nginx's hash of variables.
- Unknown names raise ConfError ``unknown "name" variable`` at compile time.
"""
from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any, Callable

import portico
from ..conf.errors import ConfError

if TYPE_CHECKING:
    from .request import Request

Getter = Callable[["Request"], "str | None"]


class ComplexValue:
    __slots__ = ("parts", "const", "text")

    def __init__(self, parts: list[Any], text: str) -> None:
        self.text = text
        self.parts = tuple(parts)
        self.const: str | None = None
        if all(isinstance(p, str) for p in parts):
            self.const = "".join(parts)

    def eval(self, r: "Request") -> str:
        if self.const is not None:
            return self.const
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                v = p(r)
                if v is not None:
                    out.append(v)
        return "".join(out)

    @property
    def has_vars(self) -> bool:
        return self.const is None


def _hdr_getter(name: str) -> Getter:
    key = name.replace("_", "-").lower()

    if key == "cookie":
        def get_cookie(r: "Request") -> str | None:
            vals = [v for k, v in r.headers if k.lower() == "cookie"]
            return "; ".join(vals) if vals else None
        return get_cookie

    def get(r: "Request") -> str | None:
        return r.hin.get(key)
    return get


def _sent_hdr_getter(name: str) -> Getter:
    key = name.replace("_", "-").lower()

    def get(r: "Request") -> str | None:
        return r.hout.get(key)
    return get


def _arg_getter(name: str) -> Getter:
    def get(r: "Request") -> str | None:
        return r.arg(name)
    return get


def _cookie_getter(name: str) -> Getter:
    def get(r: "Request") -> str | None:
        return r.cookie(name)
    return get


def _capture_getter(n: int) -> Getter:
    def get(r: "Request") -> str | None:
        m = r.captures
        if m is None:
            return None
        try:
            v = m.group(n)
        except IndexError:
            return None
        return v if v is not None else ""
    return get


def _named_capture_getter(name: str) -> Getter:
    def get(r: "Request") -> str | None:
        v = r.named.get(name)
        return v
    return get


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


_tl_cache: list[Any] = [-1, ""]


def time_local(t: float) -> str:
    """$time_local, formatted once per second."""
    sec = int(t)
    if _tl_cache[0] == sec:
        return _tl_cache[1]
    _tl_cache[0] = sec
    _tl_cache[1] = _time_local(sec)
    return _tl_cache[1]


def _time_local(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return (f"{lt.tm_mday:02d}/{_MONTHS[lt.tm_mon - 1]}/{lt.tm_year}:"
            f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {sign}{off // 3600:02d}{off % 3600 // 60:02d}")


def time_iso8601(t: float) -> str:
    lt = time.localtime(t)
    off = lt.tm_gmtoff
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return time.strftime("%Y-%m-%dT%H:%M:%S", lt) + f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


_HOSTNAME = socket.gethostname()


def _builtin() -> dict[str, Getter]:
    def request_line(r: "Request") -> str:
        return r.request_line

    def status(r: "Request") -> str:
        return f"{r.status:03d}" if r.status else "000"

    def msec(r: "Request") -> str:
        return f"{time.time():.3f}"

    def request_time(r: "Request") -> str:
        return f"{max(0.0, time.time() - r.start_time):.3f}"

    def content_length(r: "Request") -> str | None:
        return r.hin.get("content-length")

    def content_type(r: "Request") -> str | None:
        return r.hin.get("content-type")

    def is_args(r: "Request") -> str:
        return "?" if r.args else ""

    def document_root(r: "Request") -> str | None:
        return r.document_root()

    def realpath_root(r: "Request") -> str | None:
        root = r.document_root()
        return os.path.realpath(root) if root is not None else None

    def request_filename(r: "Request") -> str | None:
        return r.map_uri_to_path()

    def server_name(r: "Request") -> str:
        return r.server.name if r.server is not None else ""

    def https(r: "Request") -> str:
        return "on" if r.conn.ssl else ""

    def scheme(r: "Request") -> str:
        return "https" if r.conn.ssl else "http"

    def remote_user(r: "Request") -> str | None:
        return r.remote_user()

    def request_body(r: "Request") -> str | None:
        b = r.body_bytes()
        return b.decode("utf-8", "surrogateescape") if b is not None else None

    def request_completion(r: "Request") -> str:
        return "OK" if r.completed else ""

    def binary_remote_addr(r: "Request") -> str:
        try:
            return socket.inet_pton(r.conn.family, r.conn.client_addr).decode("utf-8", "surrogateescape")
        except (OSError, ValueError):
            return ""

    def limit_rate(r: "Request") -> str:
        return str(getattr(r, "limit_rate", 0))

    def request_id(r: "Request") -> str:
        return r.request_id()

    return {
        "request": request_line,
        "request_method": lambda r: r.method,
        "request_uri": lambda r: r.raw_uri,
        "uri": lambda r: r.uri,
        "document_uri": lambda r: r.uri,
        "args": lambda r: r.args,
        "query_string": lambda r: r.args,
        "is_args": is_args,
        "host": lambda r: r.host,
        "hostname": lambda r: _HOSTNAME,
        "remote_addr": lambda r: r.conn.client_addr,
        "remote_port": lambda r: str(r.conn.client_port),
        "binary_remote_addr": binary_remote_addr,
        "server_addr": lambda r: r.conn.server_addr,
        "server_port": lambda r: str(r.conn.server_port),
        "server_protocol": lambda r: r.version,
        "server_name": server_name,
        "scheme": scheme,
        "https": https,
        "status": status,
        "body_bytes_sent": lambda r: str(r.body_bytes_sent),
        "bytes_sent": lambda r: str(r.bytes_sent),
        "request_length": lambda r: str(r.request_length),
        "request_time": request_time,
        "msec": msec,
        "time_local": lambda r: time_local(time.time()),
        "time_iso8601": lambda r: time_iso8601(time.time()),
        "connection": lambda r: str(r.conn.id),
        "connection_requests": lambda r: str(r.conn.requests),
        "connection_time": lambda r: f"{time.time() - r.conn.start_time:.3f}",
        "content_length": content_length,
        "content_type": content_type,
        "document_root": document_root,
        "realpath_root": realpath_root,
        "request_filename": request_filename,
        "nginx_version": lambda r: portico.NGINX_VERSION,
        "portico_version": lambda r: portico.__version__,
        "pid": lambda r: str(os.getpid()),
        "pipe": lambda r: "p" if r.pipelined else ".",
        "remote_user": remote_user,
        "request_body": request_body,
        "request_completion": request_completion,
        "limit_rate": limit_rate,
        "request_id": request_id,
        "http2": lambda r: "h2" if r.version == "HTTP/2.0" else "",
    }


_PREFIXES: list[tuple[str, Callable[[str], Getter]]] = [
    ("http_", _hdr_getter),
    ("sent_http_", _sent_hdr_getter),
    ("arg_", _arg_getter),
    ("cookie_", _cookie_getter),
]


class Variables:
    """The variables of one http{} block."""

    def __init__(self) -> None:
        self.vars: dict[str, Getter] = _builtin()
        self.prefixes = list(_PREFIXES)
        # names declared by ``set``: values live in r.vars
        self.settable: set[str] = set()
        self.pending: list[tuple[str, str | None, int | None, list[Getter]]] = []

    def add(self, name: str, getter: Getter) -> None:
        self.vars[name] = getter

    def add_prefix(self, prefix: str, factory: Callable[[str], Getter]) -> None:
        self.prefixes.append((prefix, factory))

    def declare_set(self, name: str) -> None:
        if name not in self.vars:
            self.settable.add(name)

            def get(r: "Request", _n: str = name) -> str | None:
                return r.vars.get(_n)
            self.vars[name] = get

    def getter(self, name: str) -> Getter | None:
        g = self.vars.get(name)
        if g is not None:
            return g
        if name.isdigit():
            return _capture_getter(int(name))
        for prefix, factory in self.prefixes:
            if name.startswith(prefix):
                g = factory(name[len(prefix):])
                self.vars[name] = g
                return g
        return None

    def compile(self, text: str, file: str | None = None, line: int | None = None,
                named_captures: set[str] | None = None) -> ComplexValue:
        parts: list[Any] = []
        lit: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$":
                lit.append(ch)
                i += 1
                continue
            if i + 1 >= n:
                raise ConfError("invalid variable name", file, line)
            j = i + 1
            if text[j] == "{":
                k = text.find("}", j)
                if k < 0:
                    raise ConfError(f'the closing bracket in "{text[j + 1:]}" variable is missing', file, line)
                name = text[j + 1:k]
                i = k + 1
            else:
                k = j
                while k < n and (text[k].isalnum() or text[k] == "_"):
                    k += 1
                name = text[j:k]
                i = k
            if not name:
                raise ConfError("invalid variable name", file, line)
            if lit:
                parts.append("".join(lit))
                lit = []
            parts.append(self._resolve(name, file, line, named_captures))
        if lit:
            parts.append("".join(lit))
        return ComplexValue(parts, text)

    def _resolve(self, name: str, file: str | None, line: int | None,
                 named_captures: set[str] | None) -> Getter:
        g = self.getter(name)
        if g is not None:
            return g
        # nginx checks variable names after the whole http{} block is read,
        # so a name declared later (a named capture, a map) is fine here.
        cell: list[Getter] = []

        def deferred(r: "Request") -> str | None:
            return cell[0](r)
        self.pending.append((name, file, line, cell))
        return deferred

    def resolve_pending(self) -> None:
        for name, file, line, cell in self.pending:
            g = self.getter(name)
            if g is None:
                # nginx checks names after the whole block and names no line
                raise ConfError(f'unknown "{name}" variable')
            cell.append(g)
        self.pending.clear()

    def declare_named_captures(self, names: list[str]) -> None:
        for nm in names:
            if nm not in self.vars:
                self.vars[nm] = _named_capture_getter(nm)
