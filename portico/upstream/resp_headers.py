"""The upstream response header, copied to the client's (the header half of
ngx_http_upstream_process_headers and the ngx_http_upstream_headers_in
handlers), and X-Accel-Redirect.

Invariants:
- X-Accel-* are read while the header is processed, whatever
  proxy_hide_header says, unless proxy_ignore_headers names them:
  X-Accel-Limit-Rate sets the request's rate, X-Accel-Buffering switches
  buffering (yes/no), X-Accel-Charset is kept as ``r.ctx["override_charset"]``
  and X-Accel-Expires as ``r.ctx["x_accel_expires"]`` (seconds from now, or
  ``"@"`` + an absolute time; 0 means "not cacheable") for the cache.
  They reach the client only when proxy_pass_header names them.
- Set-Cookie goes through proxy_cookie_domain / _path / _flags when any is
  configured (``portico/upstream/cookies.py``).
- With X-Accel-Redirect (not ignored) nothing of the header is sent except
  nginx's "redirect" headers: Content-Type, Set-Cookie (rewritten), Content-Disposition,
  Cache-Control, Expires and Accept-Ranges; the request then restarts at the
  URI (method GET unless HEAD, nginx's unsafe-URI check: 404) or the
  named location.
"""
from __future__ import annotations

import time
import urllib.parse
from typing import Any

from ..core import log as logmod
from ..http.modules import proxy as px
from ..http.response import HeadersOut
from . import cookies

SKIP_RESPONSE = frozenset({"connection", "keep-alive", "transfer-encoding"})
#: ngx_http_upstream_headers_in entries with redirect = 1
REDIRECT_KEEP = frozenset({"content-type", "set-cookie", "content-disposition", "cache-control", "expires",
                           "accept-ranges"})
_X_ACCEL = frozenset({"x-accel-redirect", "x-accel-limit-rate", "x-accel-buffering", "x-accel-charset",
                      "x-accel-expires"})


def _x_accel(u: Any, low: str, v: str, ignore: frozenset[str]) -> None:
    """ngx_http_upstream_process_{limit_rate,buffering,charset,accel_expires}."""
    if low in ignore:
        return
    r = u.r
    if low == "x-accel-limit-rate":
        n = v.strip()
        if n.isdigit():
            r.limit_rate = int(n)
            r.limit_rate_set = True
    elif low == "x-accel-buffering":
        lv = v.lower()
        if lv == "yes":
            u.buffering = True
        elif lv == "no":
            u.buffering = False
    elif low == "x-accel-charset":
        r.ctx["override_charset"] = v
    elif low == "x-accel-expires":
        if v.startswith("@"):
            if v[1:].isdigit():
                r.ctx["x_accel_expires"] = "@" + v[1:]
        elif v.isdigit():
            n = int(v)
            r.ctx["x_accel_expires"] = 0 if n == 0 else time.time() + n
    else:  # x-accel-redirect
        u.xa_redirect = v


def process_headers(u: Any, status: int) -> None:
    r = u.r
    conf = u.conf
    h = r.hout
    h.status = status
    hide = conf.hide_set
    redirects = conf.redirects
    ignore = conf.ignore_headers or frozenset()
    rewrite_cookies = conf.rewrite_cookies
    r.ctx["upstream_headers"] = u.headers
    for k, v in u.headers:
        low = k.lower()
        if low in _X_ACCEL:
            _x_accel(u, low, v, ignore)
        if low in hide or low in SKIP_RESPONSE:
            if low == "transfer-encoding" and "chunked" in v.lower():
                u.chunked_resp = True
            continue
        if low == "content-length":
            if v.isdigit():
                u.resp_cl = int(v)
                h.content_length = int(v)
            continue
        if low == "content-type":
            h.content_type = v
            continue
        if low == "location":
            h.location = px.rewrite_redirect(r, redirects, v) if redirects else v
            continue
        if low == "refresh" and redirects:
            i = v.lower().find("url=")
            if i >= 0:
                v = px.rewrite_redirect(r, redirects, v, i + 4)
        elif low == "set-cookie" and rewrite_cookies:
            v = cookies.rewrite_cookie(r, conf, v)
        elif low == "etag":
            h.etag = v
            continue
        elif low == "content-encoding":
            h.content_encoding = v
            continue
        h.headers.append((k, v))
    if u.chunked_resp:
        u.resp_cl = None
        h.content_length = None
    if status == 101:
        # ngx_http_header_filter: a protocol switch says "Connection: upgrade"
        h.headers.insert(0, ("Connection", "upgrade"))


def x_accel_headers(u: Any) -> HeadersOut:
    """The headers an X-Accel-Redirect keeps (copy handlers with redirect = 1)."""
    r = u.r
    conf = u.conf
    h = HeadersOut()
    for k, v in u.headers:
        low = k.lower()
        if low not in REDIRECT_KEEP:
            continue
        if low == "set-cookie" and conf.rewrite_cookies:
            v = cookies.rewrite_cookie(r, conf, v)
        elif low == "content-type":
            h.content_type = v
            continue
        elif low == "accept-ranges":
            if v.strip().lower() == "bytes":
                h.accept_ranges = True
            continue
        h.headers.append((k, v))
    return h


def x_accel_redirect(u: Any) -> None:
    """Restart the request at X-Accel-Redirect's target (the upstream is released)."""
    r = u.r
    target: str = u.xa_redirect
    r.hout = x_accel_headers(u)
    r.ctx.pop("upstream_headers", None)
    if target.startswith("@"):
        loc = r.server.named.get(target) if r.server is not None else None
        if loc is None:
            r.log_error(logmod.ERROR, f'could not find named location "{target}"')
            r.finalize(500)
            return
        r.named_location(loc)
        return
    parsed = parse_unsafe_uri(target)
    if parsed is None:
        r.log_error(logmod.ERROR, f'unsafe URI "{target}" was detected')
        r.finalize(404)
        return
    uri, args = parsed
    if r.method != "HEAD":
        r.method = "GET"
    r.internal_redirect(uri, args)


def parse_unsafe_uri(uri: str) -> tuple[str, str] | None:
    """ngx_http_parse_unsafe_uri: (uri, args), None when unsafe."""
    while True:
        if not uri or uri[0] == "?":
            return None
        if uri.startswith("..") and (len(uri) == 2 or uri[2] == "/"):
            return None
        args = ""
        quoted = False
        n = len(uri)
        i = 0
        while i < n:
            ch = uri[i]
            if ch == "%":
                quoted = True
            elif ch == "?":
                args = uri[i + 1:]
                uri = uri[:i]
                break
            elif ch == "\0":
                return None
            elif ch == "/" and n - i > 2:
                if uri[i + 1] == "." and uri[i + 2] == "." and (n - i == 3 or uri[i + 3] == "/"):
                    return None
            i += 1
        if not quoted:
            return uri, args
        uri = urllib.parse.unquote_to_bytes(uri).decode("utf-8", "surrogateescape")
        if args:
            uri += "?" + args
