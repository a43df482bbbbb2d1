"""Variables and compiled "complex values" (strings with ``$var`` inside).

Invariants:
- A string with variables is compiled once, at configuration time, into a
  ``ComplexValue``: a tuple of literal strings and getter functions.  Nothing
  is re-parsed per request; a value without variables evaluates to a constant.
- A getter takes the request and returns ``str`` or None.  None is nginx's
  "not found" (an access log writes ``-``); ``""`` is a found, empty value
  (written as nothing).  A ComplexValue renders None as the empty string.
- Names follow ngx_http_script_compile: ``$1``..``$9`` are single-digit
  captures (``$10`` is ``$1`` then ``0``), other names are ``[A-Za-z0-9_]``
  (``${name}`` too), and lookups are case-insensitive as nginx's lower-cased
  variable hash.  Unknown names raise ``unknown "name" variable`` once the
  whole http{} block is read (names defined later are fine).
- Every embedded variable of ngx_http_core_module exists, with nginx 1.29's
  formats: times with millisecond precision, truncated like nginx's msec
  arithmetic; ``$status`` "000" before a response; repeated request headers
  joined with ", " (``$http_cookie`` with "; "); response-derived
  ``$sent_http_*`` values as nginx's header filter leaves them.
- Getters do no work that can be done once: names, header keys and prefix
  lengths are prepared when the variable is first referenced in the config.
- ``setters`` holds nginx's set handlers (``$args``, ``$limit_rate``): the
  ``set`` directive calls ``setter(r, value)`` instead of storing the value.
"""
from __future__ import annotations

import base64
import binascii
import os
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import portico
from ..conf.errors import ConfError
from ..core import log as logmod
from ..core import values

if TYPE_CHECKING:
    from .request import Request

Getter = Callable[["Request"], "str | None"]
Setter = Callable[["Request", str], None]

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


class ComplexValue:
    """A compiled string.  nginx runs such a program twice, a lengths pass
    then a values pass; variables are computed in the first and cached,
    captures are copied in the second.  So when a string mixes ``$1`` with a
    variable whose computation runs a regex (a map with regex keys), the
    capture shows what that regex left, not what the location matched.
    ``late_captures`` reproduces this, for such mixed strings only."""

    __slots__ = ("parts", "const", "text", "late_captures")

    def __init__(self, parts: list[Any], text: str) -> None:
        self.text = text
        self.parts = tuple(parts)
        self.const: str | None = None
        if all(isinstance(p, str) for p in parts):
            self.const = "".join(parts)
        caps = [not isinstance(p, str) and is_capture(p) for p in parts]
        self.late_captures = any(caps) and any(not isinstance(p, str) and not c for p, c in zip(parts, caps))

    def eval(self, r: "Request") -> str:
        if self.const is not None:
            return self.const
        if self.late_captures:
            return "".join(self.pieces(r))
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                v = p(r)
                if v is not None:
                    out.append(v)
        return "".join(out)

    def pieces(self, r: "Request") -> list[str]:
        """The value part by part (literals, variables, captures), with
        nginx's two passes: variables first, then captures as the
        variables left them."""
        parts = self.parts
        vals: list[str] = [p if isinstance(p, str) or is_capture(p) else (p(r) or "") for p in parts]
        for i, p in enumerate(parts):
            if not isinstance(p, str) and is_capture(p):
                vals[i] = p(r) or ""
        return vals

    @property
    def has_vars(self) -> bool:
        return self.const is None


# --- request headers ($http_*) ----------------------------------------------------------

def _hdr_getter(name: str) -> Getter:
    """$http_NAME (ngx_http_variable_unknown_header): every request header
    whose name, lower-cased with '-' read as '_', equals NAME; several are
    joined with ", " (nginx 1.23+), Cookie lines with "; "."""
    var = name.lower()
    dashed = var.replace("_", "-")
    n = len(var)

    if var == "host":  # a second Host line is refused: at most one
        def get_host(r: "Request") -> str | None:
            return r.hin.get("host")
        return get_host

    sep = "; " if var == "cookie" else ", "
    # A header spelt with '_' only exists with underscores_in_headers; a name
    # without '_' can only match one spelling, so the dict says "absent" fast.
    exact_only = "_" not in var

    def get(r: "Request") -> str | None:
        if r.hin_exact:
            return r.hin.get(dashed)
        if exact_only and dashed not in r.hin:
            return None
        vals = [v for k, v in r.headers if len(k) == n and k.lower().replace("-", "_") == var]
        if not vals:
            return None
        return vals[0] if len(vals) == 1 else sep.join(vals)
    get.inline = f"(r.hin.get({dashed!r}) if r.hin_exact else {{g}}(r))"  # type: ignore[attr-defined]
    return get


# --- response headers ($sent_http_*, $sent_trailer_*) ---------------------------------

def _scan_out(headers: list[tuple[str, str]], var: str, n: int) -> str | None:
    vals = [v for k, v in headers if len(k) == n and k.lower().replace("-", "_") == var]
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else ", ".join(vals)


def _sent_content_type(r: "Request") -> str | None:
    h = r.hout
    if not h.content_type:
        return None
    # nginx's header filter rewrites content_type with the charset it sent
    if r.header_sent and h.charset and h.status != 304:
        return f"{h.content_type}; charset={h.charset}"
    return h.content_type


def _sent_content_length(r: "Request") -> str | None:
    h = r.hout
    if h.content_length is None:
        return _scan_out(h.headers, "content_length", 14)
    if r.header_sent and (h.status < 200 or h.status in (204, 304)):
        return None  # cleared by the header filter for bodiless statuses
    return str(h.content_length)


def _sent_location(r: "Request") -> str | None:
    h = r.hout
    loc = h.location
    if loc is None:
        return _scan_out(h.headers, "location", 8)
    # the header filter made a relative Location absolute
    if r.header_sent and loc.startswith("/") and r.loc is not None and r.loc.core.absolute_redirect:
        return r.redirect_url(loc)
    return loc


def _sent_last_modified(r: "Request") -> str | None:
    h = r.hout
    if r.header_sent and h.status not in (200, 206, 304):
        return None  # the header filter drops it for other statuses
    if h.last_modified is not None:
        from .response import http_date
        return http_date(h.last_modified)
    return _scan_out(h.headers, "last_modified", 13)


def _sent_connection(r: "Request") -> str:
    if r.hout.status == 101:
        return "upgrade"
    # By the time nginx logs, ngx_http_set_keepalive has cleared r->keepalive.
    if r.keepalive and not r.completed:
        return "keep-alive"
    return "close"


def _sent_keep_alive(r: "Request") -> str | None:
    if r.keepalive and not r.completed and r.loc is not None:
        kh = r.loc.core.keepalive_header
        if kh:
            return f"timeout={int(kh)}"
    return None


def _sent_transfer_encoding(r: "Request") -> str | None:
    return "chunked" if r.chunked else None


def _sent_etag(r: "Request") -> str | None:
    h = r.hout
    return h.etag if h.etag is not None else _scan_out(h.headers, "etag", 4)


def _sent_content_encoding(r: "Request") -> str | None:
    h = r.hout
    return h.content_encoding or _scan_out(h.headers, "content_encoding", 16)


def _sent_accept_ranges(r: "Request") -> str | None:
    h = r.hout
    # nginx's range header filter adds it to HTTP/1.0+ responses only
    if h.accept_ranges and r.version != "HTTP/0.9":
        return "bytes"
    return _scan_out(h.headers, "accept_ranges", 13)


#: $sent_http_* computed from HeadersOut fields rather than the header list
_SENT_SPECIAL: dict[str, Getter] = {
    "content_type": _sent_content_type,
    "content_length": _sent_content_length,
    "location": _sent_location,
    "last_modified": _sent_last_modified,
    "connection": _sent_connection,
    "keep_alive": _sent_keep_alive,
    "transfer_encoding": _sent_transfer_encoding,
    # kept as fields by Portico, in nginx's header list
    "etag": _sent_etag,
    "content_encoding": _sent_content_encoding,
    "accept_ranges": _sent_accept_ranges,
}


def _sent_hdr_getter(name: str) -> Getter:
    """$sent_http_NAME; Server and Date are written by the header filter
    itself and are not variables, as in nginx.  Cache-Control and Link are
    ordinary header-list entries (joined with ", ")."""
    var = name.lower()
    special = _SENT_SPECIAL.get(var)
    if special is not None:
        return special
    n = len(var)

    def get(r: "Request") -> str | None:
        return _scan_out(r.hout.headers, var, n)
    return get


def _sent_trailer_getter(name: str) -> Getter:
    """$sent_trailer_NAME: the trailers of the response (``HeadersOut.trailers``)."""
    var = name.lower()
    n = len(var)

    def get(r: "Request") -> str | None:
        return _scan_out(r.hout.trailers, var, n)
    return get


# --- arguments and cookies ----------------------------------------------------------

def _arg_getter(name: str) -> Getter:
    """$arg_NAME (ngx_http_arg): the first ``NAME=value`` of the arguments,
    NAME compared case-insensitively; a bare ``NAME`` without '=' is no match."""
    key = name.lower() + "="
    n = len(key)
    if n == 1:  # "$arg_": nginx finds nothing
        return lambda r: None

    def get(r: "Request") -> str | None:
        args = r.args
        if not args:
            return None
        for part in args.split("&"):
            if len(part) >= n and part[:n].lower() == key:
                return part[n:]
        return None
    return get


def parse_cookie(values: list[str], name: str) -> str | None:
    """ngx_http_parse_multi_header_lines: the value of cookie ``name``
    (case-insensitive) in the Cookie lines.  Pairs end at ';' (',' only
    ends a pair being skipped); spaces around '=' are skipped; the value
    runs to the next ';', trailing spaces kept."""
    low = name.lower()
    n = len(low)
    for line in values:
        end = len(line)
        start = 0
        while start < end:
            if line[start:start + n].lower() == low:
                p = start + n
                while p < end and line[p] == " ":
                    p += 1
                if p < end and line[p] == "=":
                    p += 1
                    while p < end and line[p] == " ":
                        p += 1
                    last = line.find(";", p)
                    return line[p:] if last < 0 else line[p:last]
                start = p
            # skip to the next pair
            while start < end:
                ch = line[start]
                start += 1
                if ch == ";" or ch == ",":
                    break
            while start < end and line[start] == " ":
                start += 1
    return None


def _cookie_getter(name: str) -> Getter:
    def get(r: "Request") -> str | None:
        if "cookie" not in r.hin:
            return None
        return parse_cookie([v for k, v in r.headers if len(k) == 6 and k.lower() == "cookie"], name)
    return get


# --- captures ----------------------------------------------------------------------

def is_capture(getter: Any) -> bool:
    return getattr(getter, "capture", None) is not None


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
    # rewrite escapes captures (not variables) in arguments and redirects
    get.capture = n  # type: ignore[attr-defined]
    return get


def set_captures(r: "Request", rx: Any, m: Any) -> None:
    """After a match: ngx_http_regex_exec replaces the captures only when the
    regex has groups; named groups become variables."""
    if rx.groups:
        r.captures = m
        if rx.groupindex:
            named = dict(r.named)
            for k, v in m.groupdict().items():
                named[k] = v if v is not None else ""
            r.named = named


def _named_capture_getter(name: str) -> Getter:
    def get(r: "Request") -> str | None:
        return r.named.get(name)
    return get


# --- times -------------------------------------------------------------------------

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

_tl_cache: list[Any] = [-1, ""]
_iso_cache: list[Any] = [-1, ""]


def _tz(lt: time.struct_time, colon: bool) -> str:
    off = lt.tm_gmtoff
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return f"{sign}{off // 3600:02d}{':' if colon else ''}{off % 3600 // 60:02d}"


_STATUS_TEXT = {n: f"{n:03d}" for n in range(600)}


def time_local(t: float) -> str:
    """$time_local (``28/Sep/1970:12:00:00 +0600``), formatted once per second."""
    sec = int(t)
    if _tl_cache[0] != sec:
        lt = time.localtime(sec)
        _tl_cache[1] = (f"{lt.tm_mday:02d}/{_MONTHS[lt.tm_mon - 1]}/{lt.tm_year}:"
                        f"{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d} {_tz(lt, False)}")
        _tl_cache[0] = sec
    return _tl_cache[1]


def time_iso8601(t: float) -> str:
    """$time_iso8601 (``1970-09-28T12:00:00+06:00``), formatted once per second."""
    sec = int(t)
    if _iso_cache[0] != sec:
        lt = time.localtime(sec)
        _iso_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", lt) + _tz(lt, True)
        _iso_cache[0] = sec
    return _iso_cache[1]


def _msec_text(ms: int) -> str:
    """nginx's "%T.%03M" of a millisecond count."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def _elapsed(start: float) -> str:
    # both ends truncated to whole milliseconds, as nginx's (sec, msec) pairs
    ms = int(time.time() * 1000) - int(start * 1000)
    return _msec_text(ms if ms > 0 else 0)


# --- process-wide values -------------------------------------------------------------

# nginx lower-cases gethostname() once at startup (ngx_init_cycle)
_HOSTNAME = socket.gethostname().lower()
_PID = [str(os.getpid())]


def _refresh_pid() -> None:
    _PID[0] = str(os.getpid())


# workers are forked after the configuration is read: $pid is each worker's own
os.register_at_fork(after_in_child=_refresh_pid)


# --- the core variables ----------------------------------------------------------------

def _b64_basic_user(header: str) -> str | None:
    """ngx_http_auth_basic_user: "Basic" (any case), spaces, base64 that
    ngx_decode_base64 accepts (stops at '=', no padding needed), then a
    non-empty user before the first ':' (which must be there)."""
    if len(header) < 6 or header[:6].lower() != "basic ":
        return None
    enc = header[6:].lstrip(" ")
    if not enc:
        return None
    eq = enc.find("=")
    if eq >= 0:
        enc = enc[:eq]
    if len(enc) % 4 == 1:
        return None
    try:
        raw = base64.b64decode(enc + "=" * (-len(enc) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, _ = raw.partition(b":")
    if not sep or not user:
        return None
    return user.decode("utf-8", "surrogateescape")


def _document_root(r: "Request") -> str | None:
    """The root, or the alias (its value as configured, trailing '/' kept);
    a value built from variables is made absolute against the prefix."""
    core = r.loc.core
    cv = core.alias or core.root
    if not cv:
        return r.http.default_root
    if cv.const is not None:
        return cv.const
    return r.http.cycle.full_path(cv.eval(r))


def _builtin() -> dict[str, Getter]:
    def request_line(r: "Request") -> str | None:
        return r.request_line or None

    def request_method(r: "Request") -> str | None:
        return r.method or None

    def args(r: "Request") -> str | None:
        return r.args or None

    def uri(r: "Request") -> str:
        return r.uri

    def request_uri(r: "Request") -> str:
        return r.raw_uri

    def is_args(r: "Request") -> str:
        return "?" if r.args else ""

    def host(r: "Request") -> str:
        # headers_in.server (request line or Host, normalised), else server_name
        if r.host:
            return r.host
        return r.server.name if r.server is not None else ""

    def server_name(r: "Request") -> str:
        return r.server.name if r.server is not None else ""

    def server_protocol(r: "Request") -> str | None:
        v = r.version
        return None if v == "HTTP/0.9" else v

    def status(r: "Request") -> str:
        st = r.error_status or r.hout.status or r.status
        if not st and r.version == "HTTP/0.9":
            st = 9
        text = _STATUS_TEXT.get(st)
        return text if text is not None else f"{st:03d}"

    def msec(r: "Request") -> str:
        return _msec_text(int(time.time() * 1000))

    def request_time(r: "Request") -> str:
        return _elapsed(r.start_time)

    def connection_time(r: "Request") -> str:
        return _elapsed(r.conn.start_time)

    def content_length(r: "Request") -> str | None:
        v = r.hin.get("content-length")
        if v is not None:
            return v
        b = r.body
        # a chunked body, once read, has a length (content_length_n = received)
        if b is not None and b.requested and b.complete and not b.discarding:
            return str(b.size)
        return None

    def content_type(r: "Request") -> str | None:
        return r.hin.get("content-type")

    def realpath_root(r: "Request") -> str | None:
        root = _document_root(r)
        if root is None:
            return None
        try:
            return os.path.realpath(root, strict=True)
        except OSError as e:
            r.log_error(logmod.CRIT, f'realpath() "{root}" failed ({e.errno}: {e.strerror})')
            return None

    def request_filename(r: "Request") -> str | None:
        return r.map_uri_to_path()

    def https(r: "Request") -> str:
        return "on" if r.conn.ssl else ""

    def scheme(r: "Request") -> str:
        return "https" if r.conn.ssl else "http"

    def remote_user(r: "Request") -> str | None:
        auth = r.hin.get("authorization")
        return _b64_basic_user(auth) if auth is not None else None

    def request_body(r: "Request") -> str | None:
        # only a body a handler has read, and only while it is in memory
        b = r.body
        if b is None or not b.requested or b.discarding or b.file is not None:
            return None
        if not b.chunks:
            return None
        data = b.chunks[0] if len(b.chunks) == 1 else b"".join(b.chunks)
        return data.decode("utf-8", "surrogateescape")

    def request_body_file(r: "Request") -> str | None:
        b = r.body
        if b is None or b.file is None:
            return None
        return b.path

    def request_completion(r: "Request") -> str:
        return "OK" if r.completed else ""

    def remote_addr(r: "Request") -> str:
        return r.conn.client_addr

    def binary_remote_addr(r: "Request") -> str:
        c = r.conn
        if c.family == socket.AF_UNIX:
            return c.client_addr
        addr = c.client_addr
        # the family of the text, not of the socket: realip may have put an
        # IPv6 address on an IPv4 connection
        try:
            raw = socket.inet_pton(socket.AF_INET6 if ":" in addr else socket.AF_INET, addr)
        except (OSError, ValueError):
            return ""
        # bytes >= 0x80 travel as surrogates, like every wire byte in Portico
        return raw.decode("utf-8", "surrogateescape")

    def remote_port(r: "Request") -> str:
        p = r.conn.client_port
        return str(p) if 0 < p < 65536 else ""

    def server_addr(r: "Request") -> str:
        return r.conn.server_addr

    def server_port(r: "Request") -> str:
        p = r.conn.server_port
        return str(p) if 0 < p < 65536 else ""

    def limit_rate(r: "Request") -> str:
        # r->limit_rate: 0 until set, or until the first write applies the
        # location's limit_rate (Request.init_rate)
        return str(r.limit_rate)

    def body_bytes_sent(r: "Request") -> str:
        return str(r.body_bytes_sent)

    def bytes_sent(r: "Request") -> str:
        return str(r.bytes_sent)

    def request_length(r: "Request") -> str:
        return str(r.request_length)

    def connection(r: "Request") -> str:
        return str(r.conn.id)

    def connection_requests(r: "Request") -> str:
        # nginx counts a request when it starts; the h1 parser has already
        # counted the pipelined requests queued behind this one
        c = r.conn
        return str(c.requests - len(getattr(c, "queue", ())))

    def pipe(r: "Request") -> str:
        return "p" if r.pipelined else "."

    def request_id(r: "Request") -> str:
        return r.request_id()

    def proxy_protocol(field: int) -> Getter:
        # (src addr, src port, dst addr, dst port) of a PROXY protocol header,
        # when the protocol layer parsed one into ``conn.proxy_protocol``
        def get(r: "Request") -> str | None:
            pp = getattr(r.conn, "proxy_protocol", None)
            if pp is None:
                return None
            v = pp[field]
            if field & 1:
                return str(v) if 0 < v < 65536 else ""
            return v
        return get

    def tcpinfo(index: int) -> Getter:
        def get(r: "Request") -> str | None:
            return _tcpinfo(r, index)
        return get

    def time_local_var(r: "Request") -> str:
        return time_local(time.time())

    # Expressions the log's compiled renderer uses instead of calling the
    # getter (log.LogFormat): the same value, one call less per variable.
    # "{g}" in one stands for the getter itself.  ``never_none``: the value
    # is always a string (no "not found" check).
    for g in (remote_addr, body_bytes_sent, bytes_sent, status, time_local_var):
        g.never_none = True  # type: ignore[attr-defined]
    request_line.inline = "(r.request_line or None)"  # type: ignore[attr-defined]
    # a status past the table (or 0, which HTTP/0.9 logs as 009): the getter
    status.inline = (  # type: ignore[attr-defined]
        "(_ST.get(r.error_status or r.hout.status or r.status or 1000) or {g}(r))")
    status.inline_env = {"_ST": _STATUS_TEXT}  # type: ignore[attr-defined]
    remote_user.inline = '({g}(r) if "authorization" in r.hin else None)'  # type: ignore[attr-defined]
    # the second's text straight from time_local's cache when it is current
    time_local_var.inline = (  # type: ignore[attr-defined]
        "(_TL[1] if _TL[0] == _int(_time()) else _time_local(_time()))")
    time_local_var.inline_env = {  # type: ignore[attr-defined]
        "_TL": _tl_cache, "_int": int, "_time_local": time_local, "_time": time.time}
    remote_addr.inline = "r.conn.client_addr"  # type: ignore[attr-defined]
    body_bytes_sent.inline = "str(r.body_bytes_sent)"  # type: ignore[attr-defined]
    bytes_sent.inline = "str(r.bytes_sent)"  # type: ignore[attr-defined]
    return {
        "request": request_line,
        "request_method": request_method,
        "request_uri": request_uri,
        "uri": uri,
        "document_uri": uri,
        "args": args,
        "query_string": args,
        "is_args": is_args,
        "host": host,
        "hostname": lambda r: _HOSTNAME,
        "remote_addr": remote_addr,
        "remote_port": remote_port,
        "binary_remote_addr": binary_remote_addr,
        "server_addr": server_addr,
        "server_port": server_port,
        "server_protocol": server_protocol,
        "server_name": server_name,
        "scheme": scheme,
        "https": https,
        "status": status,
        "body_bytes_sent": body_bytes_sent,
        "bytes_sent": bytes_sent,
        "request_length": request_length,
        "request_time": request_time,
        "msec": msec,
        "time_local": time_local_var,
        "time_iso8601": lambda r: time_iso8601(time.time()),
        "connection": connection,
        "connection_requests": connection_requests,
        "connection_time": connection_time,
        "content_length": content_length,
        "content_type": content_type,
        "document_root": _document_root,
        "realpath_root": realpath_root,
        "request_filename": request_filename,
        "nginx_version": lambda r: portico.NGINX_VERSION,
        "portico_version": lambda r: portico.__version__,
        "pid": lambda r: _PID[0],
        "pipe": pipe,
        "remote_user": remote_user,
        "request_body": request_body,
        "request_body_file": request_body_file,
        "request_completion": request_completion,
        "limit_rate": limit_rate,
        "request_id": request_id,
        "proxy_protocol_addr": proxy_protocol(0),
        "proxy_protocol_port": proxy_protocol(1),
        "proxy_protocol_server_addr": proxy_protocol(2),
        "proxy_protocol_server_port": proxy_protocol(3),
        "tcpinfo_rtt": tcpinfo(_TI_RTT),
        "tcpinfo_rttvar": tcpinfo(_TI_RTTVAR),
        "tcpinfo_snd_cwnd": tcpinfo(_TI_SND_CWND),
        "tcpinfo_rcv_space": tcpinfo(_TI_RCV_SPACE),
    }


# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32 fields; these
# are the indexes of tcpi_rtt, tcpi_rttvar, tcpi_snd_cwnd and tcpi_rcv_space
_TI_RTT, _TI_RTTVAR, _TI_SND_CWND, _TI_RCV_SPACE = 15, 16, 18, 22
_TI_LEN = 8 + 4 * (_TI_RCV_SPACE + 1)


def _tcpinfo(r: "Request", index: int) -> str | None:
    """$tcpinfo_*: getsockopt(TCP_INFO) on the client socket, not found when
    the socket cannot tell (unix sockets, a closed transport)."""
    transport = getattr(r.conn, "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TI_LEN)
    except (OSError, AttributeError):
        return None
    if len(raw) < _TI_LEN:
        return None
    return str(int.from_bytes(raw[8 + 4 * index:12 + 4 * index], sys.byteorder))


def size_value(r: "Request", v: Any) -> int:
    """ngx_http_complex_value_size(r, v, 0): a bad size logs and counts as 0."""
    if isinstance(v, int):
        return v
    text = v.eval(r)
    n = values.parse_size(text)
    if n is None:
        r.log_error(logmod.ERROR, f'invalid size "{text}"')
        return 0
    return n


# --- set handlers (nginx's set_handler of changeable core variables) -----------------

def _set_args(r: "Request", v: str) -> None:
    r.args = v


def _set_limit_rate(r: "Request", v: str) -> None:
    n = values.parse_size(v)
    if n is None:
        r.log_error(logmod.ERROR, f'invalid $limit_rate "{v}"')
        return
    r.limit_rate = n
    r.limit_rate_set = True


_SETTERS: dict[str, Setter] = {"args": _set_args, "limit_rate": _set_limit_rate}

_PREFIXES: list[tuple[str, Callable[[str], Getter]]] = [
    ("http_", _hdr_getter),
    ("sent_http_", _sent_hdr_getter),
    ("sent_trailer_", _sent_trailer_getter),
    ("arg_", _arg_getter),
    ("cookie_", _cookie_getter),
    # TLVs of a PROXY protocol v2 header: not parsed by Portico, never found
    ("proxy_protocol_tlv_", lambda name: (lambda r: None)),
]


class Variables:
    """The variables of one http{} block."""

    def __init__(self) -> None:
        self.vars: dict[str, Getter] = _builtin()
        self.prefixes = list(_PREFIXES)
        # variables ``set`` may override (map, geo, split_clients, set's own,
        # and the core's $args and $limit_rate, which have set handlers)
        self.changeable: set[str] = set(_SETTERS)
        #: nginx's set handlers: ``set $name value`` calls setters[name](r, value)
        self.setters: dict[str, Setter] = dict(_SETTERS)
        self.pending: list[tuple[str, str | None, int | None, list[Getter]]] = []

    def add(self, name: str, getter: Getter, changeable: bool = False, cacheable: bool = False) -> None:
        """Define ``$name``.  ``changeable`` (nginx's NGX_HTTP_VAR_CHANGEABLE)
        lets ``set`` override it: a value in ``r.vars`` wins.  ``cacheable``
        stores the first computed value in ``r.vars`` for the rest of the
        request (nginx caches every variable not marked NOCACHEABLE; map,
        geo and split_clients values are computed once per request)."""
        if changeable or cacheable:
            compute = getter

            def getter(r: "Request", _n: str = name, _c: Getter = compute) -> str | None:
                v = r.vars.get(_n)
                if v is None:
                    v = _c(r)
                    if cacheable and v is not None:
                        r.vars[_n] = v
                return v
            self.changeable.add(name)
        self.vars[name] = getter

    def add_prefix(self, prefix: str, factory: Callable[[str], Getter]) -> None:
        self.prefixes.append((prefix, factory))

    def setter(self, name: str) -> Setter | None:
        """The set handler of a changeable core variable, or None."""
        return self.setters.get(name.lower())

    def getter(self, name: str) -> Getter | None:
        """The getter of ``$name`` (case-insensitive), or None if unknown.

        Digit names are not captures here: ``$1``..``$9`` are compiled by
        ``compile``; ``${1}`` or ``$0`` are unknown variables, as in nginx."""
        g = self.vars.get(name)
        if g is not None:
            return g
        low = name.lower()
        g = self.vars.get(low)
        if g is None:
            # a name registered with capitals elsewhere (set $Foo): config time only
            for k, v in self.vars.items():
                if k.lower() == low:
                    g = v
                    break
        if g is not None:
            self.vars[name] = g
            return g
        # ngx_http_get_variable: the longest matching prefix wins
        best: tuple[str, Callable[[str], Getter]] | None = None
        for prefix, factory in self.prefixes:
            if low.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, factory)
        if best is None:
            return None
        g = best[1](name[len(best[0]):])
        self.vars[name] = g
        return g

    def capture(self, n: int) -> Getter:
        """The getter of capture ``$n`` of the last regex match."""
        return _capture_getter(n)

    def compile(self, text: str, file: str | None = None, line: int | None = None,
                named_captures: set[str] | None = None) -> ComplexValue:
        """ngx_http_script_compile over ``text``: literals and variables."""
        parts: list[Any] = []
        lit: list[str] = []
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch != "$":
                lit.append(ch)
                i += 1
                continue
            j = i + 1
            if j >= n:
                raise ConfError("invalid variable name", file, line)
            if "1" <= text[j] <= "9":
                if lit:
                    parts.append("".join(lit))
                    lit = []
                parts.append(_capture_getter(int(text[j])))
                i = j + 1
                continue
            bracket = text[j] == "{"
            if bracket:
                j += 1
                if j >= n:
                    raise ConfError("invalid variable name", file, line)
            k = j
            while k < n and text[k] in _NAME_CHARS:
                k += 1
            name = text[j:k]
            if bracket:
                if k >= n or text[k] != "}":
                    raise ConfError(f'the closing bracket in "{name}" variable is missing', file, line)
                k += 1
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

    def lookup(self, name: str, file: str | None = None, line: int | None = None) -> Getter:
        """The getter of ``$name``; a name not (yet) known resolves at the end
        of http{}, where an unknown one is nginx's ``unknown "x" variable``."""
        return self._resolve(name, file, line, None)

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
                raise ConfError(f'unknown "{name.lower()}" variable')
            cell.append(g)
        self.pending.clear()

    def declare_named_captures(self, names: list[str]) -> None:
        for nm in names:
            if self.vars.get(nm) is None and self.vars.get(nm.lower()) is None:
                self.vars[nm] = _named_capture_getter(nm)
