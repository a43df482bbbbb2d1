"""Response headers and nginx's built-in status texts and error pages.

Invariants:
- ``HeadersOut`` keeps the headers nginx treats specially as fields
  (Content-Type, Content-Length, Last-Modified, Location, ETag...) and the
  rest as an ordered list, so the serialised order matches nginx's.
- Error page bodies are byte-identical to nginx's apart from the product
  token in the footer (``portico/VERSION`` instead of ``nginx/VERSION``);
  codes without a built-in page in nginx (407, 417-420, 422-428, 506...) have
  none here either, and status lines use nginx's table (``"HTTP/1.1 418 "``).
- A special response keeps the header list as nginx does
  (``clear_for_error``); only a filter's finalize wipes it (``clean``).
"""
from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

import portico

REASONS: dict[int, str] = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information", 204: "No Content",
    205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 303: "See Other",
    304: "Not Modified", 307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Not Allowed", 406: "Not Acceptable", 408: "Request Time-out", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Large", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    421: "Misdirected Request", 422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency",
    425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
    504: "Gateway Time-out", 505: "HTTP Version Not Supported", 507: "Insufficient Storage",
}

#: nginx's own status lines (ngx_http_status_lines); other codes get "NNN " with no text
NGINX_STATUS_LINES: dict[int, str] = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 206: "Partial Content",
    301: "Moved Permanently", 302: "Moved Temporarily", 303: "See Other", 304: "Not Modified",
    307: "Temporary Redirect", 308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Not Allowed", 406: "Not Acceptable", 408: "Request Time-out", 409: "Conflict", 410: "Gone",
    411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Large", 415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    421: "Misdirected Request", 429: "Too Many Requests",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Temporarily Unavailable", 504: "Gateway Time-out", 505: "HTTP Version Not Supported",
    507: "Insufficient Storage",
}

#: codes that have a built-in page (ngx_http_error_pages); any other code's body is empty
_PAGES: dict[int, str] = {c: f"{c} {t}" for c, t in NGINX_STATUS_LINES.items()
                          if c >= 301 and c != 304}
_PAGES[498] = _PAGES[404]  # "canceled" answers with the 404 page
_PAGES[302] = "302 Found"  # the page says "Found" though the status line does not

# nginx's special pages: a "400 ..." title, "400 Bad Request" heading and a reason line.
_SPECIAL_PAGES: dict[int, str] = {
    494: "Request Header Or Cookie Too Large",
    495: "The SSL certificate error",
    496: "No required SSL certificate was sent",
    497: "The plain HTTP request was sent to HTTPS port",
}

#: statuses nginx answers with a status line of 400
STATUS_LINE_OVERRIDE = {494: 400, 495: 400, 496: 400, 497: 400}

#: statuses after which nginx closes the connection
NO_KEEPALIVE = frozenset({400, 413, 414, 494, 495, 496, 497, 500, 501})

_MSIE_PADDING = ("<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6).encode()


def status_line(code: int) -> bytes:
    reason = NGINX_STATUS_LINES.get(code)
    if reason is None and code < 200:
        reason = REASONS.get(code)  # 101 for upgraded proxies: nginx relays upstream's line
    if reason is None:
        return f"HTTP/1.1 {code:03d} \r\n".encode()
    return f"HTTP/1.1 {code} {reason}\r\n".encode()


def product(tokens: str) -> str:
    if tokens == "off":
        return "portico"
    return f"portico/{portico.__version__}"


def wants_msie_padding(user_agent: str | None, version: str) -> bool:
    """nginx's ``r->headers_in.msie || r->headers_in.chrome`` for HTTP/1.0+ requests.

    ngx_http_process_user_agent (first User-Agent only): "MSIE " followed by at
    least three more bytes, unless "Opera" appears; else Chrome is "Chrome/"
    without "Gecko/" (Chrome itself says "like Gecko").
    """
    if not user_agent or version in ("HTTP/0.9", ""):
        return False
    if "Opera" in user_agent:
        return False
    i = user_agent.find("MSIE ")
    if i >= 0 and i + 7 < len(user_agent):
        return True
    return "Gecko/" not in user_agent and "Chrome/" in user_agent


def error_page_body(code: int, tokens: str, msie: bool = False) -> bytes | None:
    """nginx's built-in page, or None for codes that have none (2xx, 304, 407, 418...)."""
    tail = f"<hr><center>{product(tokens)}</center>\r\n</body>\r\n</html>\r\n"
    special = _SPECIAL_PAGES.get(code)
    if special is not None:
        head = (f"<html>\r\n<head><title>400 {special}</title></head>\r\n<body>\r\n"
                f"<center><h1>400 Bad Request</h1></center>\r\n<center>{special}</center>\r\n")
    else:
        title = _PAGES.get(code)
        if title is None:
            return None
        head = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{title}</h1></center>\r\n")
    body = (head + tail).encode()
    if msie and code >= 400:
        body += _MSIE_PADDING
    return body


class HeadersOut:
    # Class-level defaults: a response sets only what it has (hot path).
    status = 0
    content_type: str | None = None
    content_length: int | None = None
    last_modified: float | None = None
    etag: str | None = None
    location: str | None = None
    accept_ranges = False
    charset: str | None = None
    content_encoding: str | None = None
    trailers: list[tuple[str, str]] = []  # replaced, never mutated in place

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []

    def add(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def set(self, name: str, value: str) -> None:
        low = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != low]
        self.headers.append((name, value))

    def remove(self, name: str) -> None:
        low = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != low]

    def get(self, low: str) -> str | None:
        """Value of a response header by lower-case name (for $sent_http_*)."""
        if low == "content-type":
            return self.content_type
        if low == "content-length":
            return str(self.content_length) if self.content_length is not None else None
        if low == "last-modified":
            return http_date(self.last_modified) if self.last_modified is not None else None
        if low == "etag":
            return self.etag
        if low == "location":
            return self.location
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def clear_for_error(self) -> None:
        """What ngx_http_send_special_response clears before an error page.

        nginx keeps the header list (headers added by an earlier pass through
        the header filters, Content-Range of a 416, WWW-Authenticate...) and
        drops only Content-Length, Accept-Ranges, Last-Modified and ETag.
        """
        self.content_type = None
        self.content_length = None
        self.last_modified = None
        self.etag = None
        self.accept_ranges = False
        self.content_encoding = None
        self.headers = [(k, v) for k, v in self.headers
                        if k.lower() not in ("last-modified", "etag", "content-length")]

    def clean(self) -> None:
        """ngx_http_clean_header: forget every output header (filter finalize)."""
        self.status = 0
        self.content_type = None
        self.content_length = None
        self.last_modified = None
        self.etag = None
        self.location = None
        self.headers = []
        self.accept_ranges = False
        self.charset = None
        self.content_encoding = None


_date_str: list[Any] = [0, ""]


def date_str() -> str:
    """The ``Date`` value as str, formatted once per second."""
    now = int(time.time())
    if _date_str[0] != now:
        _date_str[0] = now
        _date_str[1] = formatdate(now, usegmt=True)
    return _date_str[1]


_date_bytes: list[Any] = [0, b""]


def date_bytes(now: int | None = None) -> bytes:
    """``date_str()`` as bytes, encoded once per second (``now``: that
    second instead of the clock's)."""
    if now is None:
        now = int(time.time())
    if _date_bytes[0] != now:
        _date_bytes[0] = now
        _date_bytes[1] = formatdate(now, usegmt=True).encode()
    return _date_bytes[1]


_http_dates: dict[int, str] = {}


def http_date(t: float) -> str:
    """RFC 1123 date; memoised because file mtimes repeat across requests."""
    k = int(t)
    v = _http_dates.get(k)
    if v is None:
        if len(_http_dates) > 4096:
            _http_dates.clear()
        v = _http_dates[k] = formatdate(k, usegmt=True)
    return v


_MDAY = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_http_date(s: str) -> int | None:
    """ngx_parse_http_time, byte for byte: RFC 1123 ("Tue, 10 Nov 2002 23:50:13"),
    RFC 850 ("Tuesday, 10-Nov-02 23:50:13") and asctime ("Tue Nov 10 23:50:13 2002").

    Whatever follows the time (the zone, "GMT" or not) is ignored, as nginx
    does; None where nginx returns NGX_ERROR.  The string is read as if
    NUL-terminated, like nginx's header values.
    """
    v = s.encode("latin-1", "replace")
    end = len(v)

    def at(i: int) -> int:
        return v[i] if i < end else 0

    def dig(i: int) -> bool:
        return 48 <= at(i) <= 57

    fmt = ""
    p = 0
    while p < end:
        if v[p] == 44:  # ','
            break
        if v[p] == 32:
            fmt = "isoc"
            break
        p += 1
    p += 1
    while p < end and v[p] == 32:
        p += 1
    if end - p < 18:
        return None
    day = 0
    if fmt != "isoc":
        if not (dig(p) and dig(p + 1)):
            return None
        day = (at(p) - 48) * 10 + at(p + 1) - 48
        p += 2
        if at(p) == 32:
            if end - p < 18:
                return None
            fmt = "rfc822"
        elif at(p) == 45:  # '-'
            fmt = "rfc850"
        else:
            return None
        p += 1
    c = chr(at(p))
    if c == "J":
        month = 0 if chr(at(p + 1)) == "a" else 5 if chr(at(p + 2)) == "n" else 6
    elif c == "F":
        month = 1
    elif c == "M":
        month = 2 if chr(at(p + 2)) == "r" else 4
    elif c == "A":
        month = 3 if chr(at(p + 1)) == "p" else 7
    elif c == "S":
        month = 8
    elif c == "O":
        month = 9
    elif c == "N":
        month = 10
    elif c == "D":
        month = 11
    else:
        return None
    p += 3
    if (fmt == "rfc822" and at(p) != 32) or (fmt == "rfc850" and at(p) != 45):
        return None
    p += 1
    year = 0
    if fmt == "rfc822":
        if not all(dig(p + k) for k in range(4)):
            return None
        year = int(v[p:p + 4])
        p += 4
    elif fmt == "rfc850":
        if not (dig(p) and dig(p + 1)):
            return None
        year = int(v[p:p + 2])
        year += 2000 if year < 70 else 1900
        p += 2
    if fmt == "isoc":
        if at(p) == 32:
            p += 1
        if not dig(p):
            return None
        day = at(p) - 48
        p += 1
        if at(p) != 32:
            if not dig(p):
                return None
            day = day * 10 + at(p) - 48
            p += 1
        if end - p < 14:
            return None
    if at(p) != 32:
        return None
    p += 1
    if not (dig(p) and dig(p + 1)):
        return None
    hour = int(v[p:p + 2])
    p += 2
    if at(p) != 58:  # ':'
        return None
    p += 1
    if not (dig(p) and dig(p + 1)):
        return None
    minute = int(v[p:p + 2])
    p += 2
    if at(p) != 58:
        return None
    p += 1
    if not (dig(p) and dig(p + 1)):
        return None
    sec = int(v[p:p + 2])
    if fmt == "isoc":
        p += 2
        if at(p) != 32:
            return None
        p += 1
        if not all(dig(p + k) for k in range(4)):
            return None
        year = int(v[p:p + 4])
    if hour > 23 or minute > 59 or sec > 59:
        return None
    if day == 29 and month == 1:
        if (year & 3) or (year % 100 == 0 and year % 400 != 0):
            return None
    elif day > _MDAY[month]:
        return None
    month -= 1
    if month <= 0:
        month += 12
        year -= 1
    days = (365 * year + year // 4 - year // 100 + year // 400 + 367 * month // 12 - 30
            + day - 1 - 719527 + 31 + 28)
    return days * 86400 + hour * 3600 + minute * 60 + sec
