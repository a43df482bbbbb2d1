"""ngx_http_headers_module (add_header, add_trailer, expires) and
ngx_http_not_modified_filter_module (conditional requests).

Invariants:
- add_header lists are inherited only by levels that define none (nginx's
  well-known trap; ``-t`` does not warn yet).
- Without ``always``, headers are added only for 200, 201, 204, 206, 301,
  302, 303, 304, 307 and 308, as nginx.
- The not-modified filter acts only on 200 responses to the main request.
  A failed If-Match / If-Unmodified-Since is nginx's filter finalize: all
  output headers wiped, the 412 page sent (saying keep-alive), then the
  connection closed.
- Dates are parsed exactly as ngx_parse_http_time; expires arithmetic is in
  whole seconds like nginx's ``time_t``.
"""
from __future__ import annotations

import time
from typing import Any

from ...conf.parser import Node
from ...core import values
from ...core.module import HSL, TAKE12, Conf, Module, UNSET, dir
from ..request import Request
from ..response import http_date, parse_http_date

_OK_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
_MAX_EXPIRES = "Thu, 31 Dec 2037 23:55:55 GMT"
_EPOCH = "Thu, 01 Jan 1970 00:00:01 GMT"


class HeadersLocConf(Conf):
    headers: tuple = ()
    trailers: tuple = ()
    expires: Any = None  # None (off) or (kind, seconds): kind in access|modified|epoch|max|daily


def _add_header(cf: Any, node: Node, conf: HeadersLocConf) -> None:
    main = cf.extra["http"]
    attr = "headers" if node.name == "add_header" else "trailers"
    if len(node.args) == 3 and node.args[2] != "always":
        raise node.error(f'invalid parameter "{node.args[2]}"')
    cur = getattr(conf, attr)
    if cur is UNSET:
        cur = ()
    name = node.args[0]
    value = main.variables.compile(node.args[1], node.file, node.line)
    setattr(conf, attr, cur + ((name, value, len(node.args) == 3),))


def _expires(cf: Any, node: Node, conf: HeadersLocConf) -> None:
    if conf.expires is not UNSET:
        raise node.error('"expires" directive is duplicate')
    args = list(node.args)
    modified = False
    if len(args) == 2:
        if args[0] != "modified":
            raise node.error('"expires" directive invalid value')
        modified = True
        args = args[1:]
    v = args[0]
    if v == "off":
        conf.expires = None
        return
    if v == "epoch":
        conf.expires = ("epoch", 0)
        return
    if v == "max":
        conf.expires = ("max", 0)
        return
    kind = "modified" if modified else "access"
    if v.startswith("@"):
        t = values.parse_time(v[1:])
        if t is None or t > 86400:
            raise node.error('"expires" directive invalid value')
        conf.expires = ("daily", t)
        return
    neg = v.startswith("-")
    t = values.parse_time(v.lstrip("+-"))
    if t is None:
        raise node.error('"expires" directive invalid value')
    conf.expires = (kind, -t if neg else t)


def headers_filter(r: Request, next: Any) -> None:
    hc = r.loc.headers
    h = r.hout
    status = h.status
    if hc.expires is not None and status in _OK_STATUSES:
        _set_expires(r, hc.expires)
    for name, value, always in hc.headers:
        if always or status in _OK_STATUSES:
            v = value.eval(r)
            low = name.lower()
            if low == "last-modified":
                # ngx_http_set_last_modified: replaces the computed header; an
                # empty value removes it
                h.last_modified = None
                h.remove("Last-Modified")
                if v:
                    h.headers.append((name, v))
            elif low == "etag":
                # ngx_http_set_response_header: replaces in place; empty removes
                h.etag = v or None
            elif v:
                h.headers.append((name, v))
    # ngx_http_headers_filter: a trailer that will apply makes the response
    # chunked (the writer drops Content-Length for it on HTTP/1.1)
    for _name, _value, always in hc.trailers:
        if always or status in _OK_STATUSES:
            r.expect_trailers = True
            break
    next(r)


def trailers_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
    """ngx_http_trailers_filter: on the last buffer, the add_trailer values
    (empty ones skipped) become ``hout.trailers``, which the chunked writer
    sends after the last chunk."""
    if last and r.expect_trailers:
        status = r.hout.status
        out = list(r.hout.trailers)
        for name, value, always in r.loc.headers.trailers:
            if always or status in _OK_STATUSES:
                v = value.eval(r)
                if v:
                    out.append((name, v))
        r.hout.trailers = out
    next(r, bufs, last)


def _set_expires(r: Request, exp: tuple[str, float]) -> None:
    """ngx_http_set_expires: Expires, then Cache-Control, in whole seconds.

    Headers already there (from an upstream) are replaced in place (the first
    Expires, the first Cache-Control; further Cache-Control lines dropped), as
    nginx; else both are appended.
    """
    kind, secs = exp
    h = r.hout
    if kind == "epoch":
        _put_expires(h, _EPOCH, "no-cache")
        return
    if kind == "max":
        _put_expires(h, _MAX_EXPIRES, "max-age=315360000")
        return
    now = int(time.time())
    max_age = int(secs)
    if max_age == 0 and kind != "daily":
        _put_expires(h, http_date(now), "max-age=0")
        return
    if kind == "daily":
        expires_at = _next_time(now, max_age)
        max_age = expires_at - now
    elif kind == "access" or h.last_modified is None:
        expires_at = now + max_age
    else:
        expires_at = int(h.last_modified) + max_age
        max_age = expires_at - now
    if secs < 0 or max_age < 0:
        cc = "no-cache"
    else:
        cc = f"max-age={max_age}"
    _put_expires(h, http_date(expires_at), cc)


def _next_time(now: int, when: int) -> int:
    """ngx_next_time: the next local ``when`` seconds after midnight (mktime-normalised)."""
    lt = time.localtime(now)
    tm = [lt.tm_year, lt.tm_mon, lt.tm_mday, when // 3600, when % 3600 // 60, when % 60, 0, 0, -1]
    nxt = int(time.mktime(tuple(tm)))  # type: ignore[arg-type]
    if nxt - now > 0:
        return nxt
    tm[2] += 1
    return int(time.mktime(tuple(tm)))  # type: ignore[arg-type]


def _put_expires(h: Any, expires: str, cc: str) -> None:
    out: list[tuple[str, str]] = []
    seen_e = seen_cc = False
    for k, v in h.headers:
        low = k.lower()
        if low == "expires" and not seen_e:
            out.append((k, expires))
            seen_e = True
            continue
        if low == "cache-control":
            if not seen_cc:
                out.append((k, cc))
                seen_cc = True
            continue
        out.append((k, v))
    if not seen_e:
        out.append(("Expires", expires))
    if not seen_cc:
        out.append(("Cache-Control", cc))
    h.headers = out


# --- not modified ------------------------------------------------------------------

def _etag_list(value: str) -> list[str]:
    out = []
    for part in value.split(","):
        p = part.strip()
        if p:
            out.append(p)
    return out


def _test_if_match(r: Request, value: str, weak: bool) -> bool:
    # ngx_http_test_if_match: a lone "*" matches even without an ETag
    if value == "*":
        return True
    etag = r.hout.etag
    if etag is None:
        return False
    if weak and etag.startswith("W/"):
        etag = etag[2:]
    for tag in _etag_list(value):
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def not_modified_filter(r: Request, next: Any) -> None:
    h = r.hout
    if h.status != 200 or r.internal_sub:
        next(r)
        return
    hin = r.hin
    ius = hin.get("if-unmodified-since")
    if ius is not None:
        # ngx_http_test_if_unmodified: no Last-Modified, or a date nginx cannot
        # parse (-1), or an older one, all fail the precondition
        t = parse_http_date(ius)
        if h.last_modified is None or t is None or t < int(h.last_modified):
            _precondition_failed(r)
            return
    im = hin.get("if-match")
    if im is not None and not _test_if_match(r, im, False):
        _precondition_failed(r)
        return
    ims = hin.get("if-modified-since")
    inm = hin.get("if-none-match")
    if ims is not None or inm is not None:
        if ims is not None and _modified(r, ims):
            next(r)
            return
        if inm is not None and not _test_if_match(r, inm, True):
            next(r)
            return
        h.status = 304
        h.content_type = None
        h.content_length = None
        h.accept_ranges = False
        r.allow_ranges = False
        h.content_encoding = None
    next(r)


def _modified(r: Request, ims: str) -> bool:
    lm = r.hout.last_modified
    if lm is None:
        return True
    mode = r.loc.core.if_modified_since
    if mode == "off":
        return True
    t = parse_http_date(ims)
    if t is None:
        return True
    lm_i = int(lm)
    if int(t) == lm_i:
        return False
    if mode == "exact" or int(t) < lm_i:
        return True
    return False


def _precondition_failed(r: Request) -> None:
    """ngx_http_filter_finalize_request(r, NULL, 412).

    nginx wipes every output header (ngx_http_clean_header), sends the 412
    special response -- whose header still says ``Connection: keep-alive`` --
    and then ends the request with NGX_ERROR, which closes the connection.
    """
    r.filter_finalize(412, clean=True)


class HeadersModule(Module):
    name = "headers"
    nginx_name = "ngx_http_headers_module"
    is_http = True
    loc_conf = HeadersLocConf
    directives = [
        dir("add_header", HSL | {"lif"}, (2, 3), _add_header),
        dir("add_trailer", HSL | {"lif"}, (2, 3), _add_header),
        dir("expires", HSL | {"lif"}, TAKE12, _expires),
    ]

    def postconfiguration(self, http: Any) -> None:
        http.header_filters.append(("headers", headers_filter,
                                    lambda loc: bool(loc.headers.headers or loc.headers.trailers)
                                    or loc.headers.expires is not None))
        http.body_filters.append(("trailers", trailers_filter, lambda loc: bool(loc.headers.trailers)))
        http.header_filters.append(("not_modified", not_modified_filter))
