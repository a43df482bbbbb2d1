"""Response headers and nginx's built-in status texts and error pages.

Invariants:
- ``HeadersOut`` keeps the headers nginx treats specially as fields
  (Content-Type, Content-Length, Last-Modified, Location, ETag...) and the
  rest as an ordered list, so the serialised order matches nginx's.
- Error page bodies are byte-identical to nginx's apart from the product
  token in the footer (``portico/VERSION`` instead of ``nginx/VERSION``).
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

# Titles of nginx's special pages that differ from the status line.
_PAGE_TITLES: dict[int, str] = {
    494: "400 Request Header Or Cookie Too Large",
    495: "400 The SSL certificate error",
    496: "400 No required SSL certificate was sent",
    497: "400 The plain HTTP request was sent to HTTPS port",
}

#: statuses nginx answers with a status line of 400
STATUS_LINE_OVERRIDE = {494: 400, 495: 400, 496: 400, 497: 400}

#: statuses after which nginx closes the connection
NO_KEEPALIVE = frozenset({400, 413, 414, 494, 495, 496, 497, 500, 501})

_MSIE_PADDING = ("<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6).encode()


def status_line(code: int) -> bytes:
    reason = REASONS.get(code)
    if reason is None:
        return f"HTTP/1.1 {code} \r\n".encode()
    return f"HTTP/1.1 {code} {reason}\r\n".encode()


def product(tokens: str) -> str:
    if tokens == "off":
        return "portico"
    return f"portico/{portico.__version__}"


def error_page_body(code: int, tokens: str, msie: bool = False) -> bytes | None:
    """nginx's built-in page, or None for codes that have none (1xx, 2xx, 204, 304...)."""
    if code < 300 or code in (304,):
        return None
    title = _PAGE_TITLES.get(code)
    if title is None:
        reason = REASONS.get(code)
        if reason is None:
            return None
        title = f"{code} {reason}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n"
            f"<hr><center>{product(tokens)}</center>\r\n</body>\r\n</html>\r\n").encode()
    if msie and code >= 400:
        body += _MSIE_PADDING
    return body


class HeadersOut:
    __slots__ = ("status", "content_type", "content_length", "last_modified", "etag", "location",
                 "headers", "accept_ranges", "charset", "content_encoding", "trailers")

    def __init__(self) -> None:
        self.status = 0
        self.content_type: str | None = None
        self.content_length: int | None = None
        self.last_modified: float | None = None
        self.etag: str | None = None
        self.location: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.accept_ranges = False
        self.charset: str | None = None
        self.content_encoding: str | None = None
        self.trailers: list[tuple[str, str]] = []

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
        self.content_type = None
        self.content_length = None
        self.last_modified = None
        self.etag = None
        self.accept_ranges = False
        self.content_encoding = None
        self.headers = [(k, v) for k, v in self.headers if k.lower() in ("www-authenticate", "location")]


_date_cache: list[Any] = [0, b""]


def date_header() -> bytes:
    """The ``Date`` value, formatted once per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]


def http_date(t: float) -> str:
    return formatdate(int(t), usegmt=True)


def parse_http_date(s: str) -> float | None:
    """nginx's ngx_parse_http_time: RFC 1123, RFC 850 and asctime forms."""
    from email.utils import parsedate_to_datetime
    try:
        dt = parsedate_to_datetime(s)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):
        return None
