"""HTTP/2 request headers to a ``Request`` (nginx's
ngx_http_v2_state_process_header .. ngx_http_v2_run_request).

Invariants:
- Limits first: a field longer than one ``large_client_header_buffers``
  buffer, or a list longer than all of them, is a connection error
  ENHANCE_YOUR_CALM (``ConnError`` is raised after the GOAWAY is queued).
- Every other fault (invalid names or values, pseudo-headers out of order,
  duplicated or missing, connection-specific headers, a bad Content-Length,
  CONNECT/TRACE) answers that stream alone with 400/405/421 and an info line
  worded as nginx's; the connection goes on.
- ``cookie`` fields are joined into one with "; "; :authority becomes the
  Host (a Host header is added when the client sent none), as nginx.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...core import log as logmod
from ..request import Request
from ..uri import BadRequest, normalise_host, parse_target
from .body import RequestBody
from .common import duplicate_header
from .h2_stream import ENHANCE_YOUR_CALM, H2Stream

if TYPE_CHECKING:
    from .h2 import H2Connection

_METHODS = frozenset(b"GET POST HEAD OPTIONS PROPFIND PUT MKCOL DELETE COPY MOVE PROPPATCH LOCK UNLOCK "
                     b"PATCH TRACE CONNECT".split())
_METHOD_RE = re.compile(rb"[A-Z_-]+\Z")
_SCHEME_RE = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*\Z")
_NAME_OK = re.compile(rb"[a-z0-9-]+\Z")
_NAME_US = re.compile(rb"[a-z0-9_-]+\Z")
_NAME_BAD = re.compile(rb"[\x00-\x20\x7f:A-Z]")
_VALUE_BAD = re.compile(rb"[\x00\r\n]")
_NOT_ALLOWED = {b"connection": 'client sent "Connection" header',
                b"keep-alive": 'client sent "Keep-Alive" header',
                b"transfer-encoding": 'client sent "Transfer-Encoding" header',
                b"upgrade": 'client sent "Upgrade" header'}


def make_request(c: "H2Connection", st: H2Stream, raw: list[tuple[bytes, bytes]]) -> Request | None:
    """ngx_http_v2_state_process_header .. ngx_http_v2_run_request: the
    header list checked and turned into a Request, or a 400 on the stream."""
    num, size = c.srvconf.large_client_header_buffers
    limit = num * size
    for name, value in raw:
        if len(name) > size or len(value) > size:
            c.conn_error(ENHANCE_YOUR_CALM, "client sent too large header field")
            raise ConnError
        limit -= len(name) + len(value)
        if limit < 0:
            c.conn_error(ENHANCE_YOUR_CALM, "client sent too large header")
            raise ConnError
    sc = c.srvconf
    method = path = scheme = authority = None
    target = None
    regular = False
    headers: list[tuple[str, str]] = []
    hin: dict[str, str] = {}
    cookies: list[str] = []
    err: str | None = None
    status = 400
    host_raw: bytes | None = None
    for name, value in raw:
        if not (_NAME_OK.match(name, 1) if name[:1] == b":" else _NAME_OK.match(name)):
            if not name or (name[0] == 58 and len(name) == 1):
                err = f'client sent invalid header name: "{_s(name)}"'
                break
            body = name[1:] if name[0] == 58 else name
            if _NAME_BAD.search(body):
                err = f'client sent invalid header name: "{_s(name)}"'
                break
            invalid = not (sc.underscores_in_headers and _NAME_US.match(body))
        else:
            invalid = False
        if _VALUE_BAD.search(value):
            err = f'client sent header "{_s(name)}" with invalid value: "{_s(value)}"'
            break
        if name[0] == 58:  # ':'
            if regular:
                err = "client sent out of order pseudo-headers"
                break
            p = name[1:]
            if p == b"path":
                if path is not None:
                    err = "client sent duplicate :path header"
                    break
                if not value:
                    err = "client sent empty :path header"
                    break
                path = value
                try:
                    if value[0] != 47:  # '/'
                        raise BadRequest()
                    target = parse_target(value, sc.merge_slashes)
                except BadRequest:
                    err = f'client sent invalid :path header: "{_s(value)}"'
                    break
            elif p == b"method":
                if method is not None:
                    err = "client sent duplicate :method header"
                    break
                if not value:
                    err = "client sent empty :method header"
                    break
                method = value
                if value not in _METHODS and not _METHOD_RE.match(value):
                    err = f'client sent invalid method: "{_s(value)}"'
                    break
            elif p == b"scheme":
                if scheme is not None:
                    err = "client sent duplicate :scheme header"
                    break
                if not value:
                    err = "client sent empty :scheme header"
                    break
                if not _SCHEME_RE.match(value):
                    err = f'client sent invalid :scheme header: "{_s(value)}"'
                    break
                scheme = value
            elif p == b"authority":
                if authority is not None:
                    err = 'client sent duplicate ":authority" header'
                    break
                try:
                    authority = normalise_host(value)
                except BadRequest:
                    err = 'client sent invalid ":authority" header'
                    break
                host_raw = value
            else:
                err = f'client sent unknown pseudo-header ":{_s(p)}"'
                break
            continue
        if not regular:
            regular = True
            err = _missing(method, scheme, path)
            if err:
                break
        if invalid and sc.ignore_invalid_headers:
            c.stream_info(st, f'client sent invalid header: "{_s(name)}"')
            continue
        if name == b"cookie":
            cookies.append(_s(value))
            continue
        k, v = _s(name), _s(value)
        if k in hin:
            if k == "host" or k == "content-length":
                err = duplicate_header(headers, k, v, k)
                break
        else:
            hin[k] = v
        headers.append((k, v))
    if err is None and not regular:
        err = _missing(method, scheme, path)
    if cookies:
        # ngx_http_v2_construct_cookie_header: one field, joined with "; "
        joined = "; ".join(cookies)
        headers.append(("cookie", joined))
        hin["cookie"] = joined
    srv = c.table.default
    host = ""
    m = None
    if err is None:
        hv = hin.get("host")
        if authority is not None:
            host = authority
        elif hv is not None:
            try:
                host = normalise_host(hv.encode("utf-8", "surrogateescape"))
            except BadRequest:
                err = "client sent invalid host header"
        if host:
            srv, m = c.table.find(host)
    if err is None:
        err, status = _run_checks(c, srv, hin, authority, host_raw, method, st)
        if err is None and host_raw is not None and "host" not in hin:
            # ngx_http_v2_construct_host_header: $http_host from :authority
            a = _s(host_raw)
            headers.append(("host", a))
            hin["host"] = a
    m_str = _s(method) if method else "GET"
    if target is not None:
        r = Request(st, c.http, m_str, target.raw_uri, target.uri, target.args, "HTTP/2.0",
                    headers, hin, host)
    else:
        raw_path = _s(path) if path else ""
        r = Request(st, c.http, m_str, raw_path, "/", "", "HTTP/2.0", headers, hin, host)
    st.r = r
    if method and path:
        r.request_line = f"{m_str} {_s(path)} HTTP/2.0"
    r.request_length = st.hblock
    r.server = srv
    if m is not None:
        r.captures = m
        r.named = {k: (v or "") for k, v in m.groupdict().items()}
    if err is None:
        cl = hin.get("content-length")
        if cl is not None:
            if not cl.isdigit():
                err = 'client sent invalid "Content-Length" header'
            else:
                r.content_length = int(cl)
                if r.content_length > 0 and st.in_closed:
                    err = "client prematurely closed stream"
    if err is None and m_str in ("CONNECT", "TRACE"):
        err, status = f"client sent {m_str} method", 405
    if err is not None:
        r.location = srv.root  # type: ignore[union-attr]
        r.loc = srv.root.conf  # type: ignore[union-attr]
        r.header_only = m_str == "HEAD"
        r.log_error(logmod.INFO, f"{err} while processing HTTP/2 connection")
        st.skip_data = True
        try:
            r.special_response(status)
        except Exception as e:
            st.internal_error(r, e)
        return None
    if not st.in_closed:
        r.body = RequestBody(r, st)
    return r

def _run_checks(c: "H2Connection", srv: Any, hin: dict[str, str], authority: str | None,
                host_raw: bytes | None, method: bytes | None, st: H2Stream) -> tuple[str | None, int]:
    """ngx_http_v2_run_request's checks (nginx 1.29)."""
    if not srv.root.conf.http2.enable and not c.listen_h2:
        return ("client attempted to request the server name for which the negotiated "
                "protocol is disabled", 421)
    for k, msg in _NOT_ALLOWED.items():
        if k.decode() in hin:
            return msg, 400
    te = hin.get("te")
    if te is not None and te.lower() != "trailers":
        return 'client sent invalid "TE" header', 400
    hv = hin.get("host")
    if authority is None and hv is None:
        return 'client sent neither ":authority" nor "Host" header', 400
    if host_raw is not None and hv is not None and hv != _s(host_raw):
        return 'client sent ":authority" and "Host" headers with different values', 400
    return None, 400


class ConnError(Exception):
    """The header block broke a connection-level limit (already handled)."""


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _missing(method: bytes | None, scheme: bytes | None, path: bytes | None) -> str | None:
    if method is None:
        return "client sent no :method header"
    if scheme is None:
        return "client sent no :scheme header"
    if path is None:
        return "client sent no :path header"
    return None


