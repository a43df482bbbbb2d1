"""The protocol-neutral Request and its life: phases, finalization, errors.

A protocol object (h1 today, h2/h3 later) creates a Request when the request
headers are complete, then calls ``Request.start()``.  Everything after that
is protocol-neutral: the phase engine, the filter chains, error pages, the log.
The protocol object only has to provide the ``Stream`` interface used here:
``send_head(r, head_bytes_or_fields)``, ``send_body(r, bufs, last)`` and
``request_done(r)``, plus ``ssl``, addresses and ``id``.

Invariants:
- ``finalize(rc)`` is the single exit: every path that ends a request goes
  through it, and it runs at most once per request (``r.done``).
- Headers are sent at most once (``r.header_sent``); a special response after
  the header went out closes the connection instead (as nginx).
- ``uri_changes`` starts at 11 and every internal redirect takes one; at zero
  the request ends with 500 and nginx's "cycle" error-log line.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..core import log as logmod
from .response import NO_KEEPALIVE, HeadersOut, error_page_body, wants_msie_padding
from .variables import size_value

if TYPE_CHECKING:
    from .core_module import HttpMain
    from .server import Server

# Handler return codes (nginx's NGX_OK, NGX_DECLINED, NGX_DONE, NGX_AGAIN).
OK = 0
DECLINED = -5
DONE = -4
AGAIN = -2
ERROR = -1


class FileBuf:
    """A region of an open file to send (sendfile when the transport allows)."""
    __slots__ = ("fd", "offset", "size")

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd = fd
        self.offset = offset
        self.size = size


class Request:
    # Defaults live on the class so that creating a request sets only what
    # differs (the hot path).  Mutable per-request containers are created in
    # __init__; ``named`` is only ever replaced, never mutated in place.
    # ``headers`` and ``hin`` (the request's header lines, and the first
    # value of each lower-cased name) are read-only: h1 shares them between
    # requests with the same header lines, subrequests share their parent's.
    server: "Server | None" = None
    loc: Any = None
    location: Any = None
    captures: Any = None
    named: dict[str, str] = {}
    status = 0
    internal = False
    uri_changes = 11
    uri_changed = False
    phase_index = 0
    header_sent = False
    keepalive = True
    bytes_sent = 0
    body_bytes_sent = 0
    request_length = 0
    request_line = ""
    pipelined = False
    completed = False
    done = False
    error_page = False
    body: Any = None  # RequestBody, set by the protocol
    allow_ranges = False
    chunked = False
    log_status: int | None = None
    limit_rate = 0  # bytes/s; fixed at the first write unless $limit_rate was set
    limit_rate_set = False
    limit_rate_after = 0
    rate_sent = 0  # bytes the writer has passed on under limit_rate
    expect_trailers = False  # add_trailer applies: chunked on HTTP/1.1
    access_code: int | None = None
    _rid: str | None = None
    content_length: int | None = None
    error_status = 0
    discard_output = False
    close_after = False  # close the connection once this response is out
    internal_sub = False  # True for subrequests (addition, auth_request)
    add_uri_to_alias = False  # try_files in a regex location with alias
    valid_location = True  # False after "rewrite ... break" (alias is then refused)
    pool_cleanup: Any = ()  # a list of its own on first add_pool_cleanup()
    upstream_log = ""  # ', upstream: "..."' in error-log lines while proxying
    write_event: Any = None  # called when the client socket drained (proxy back-pressure)
    eof_event: Any = None  # called when the client closed its side while this request runs (proxy)
    # True when ``hin`` holds every request header under its only spelling
    # (no name repeats case-insensitively, none contains '_'): $http_NAME is
    # then one dict lookup (set by the protocol; False means "scan headers")
    hin_exact = False
    # True when the protocol can take a whole response in bytes (HTTP/1.x)
    # and this is a GET or HEAD (HTTP/1.0+) without body, conditional or
    # Range headers: static_fast.py may answer it
    plain_get = False
    # keepalive_disable's browser flags of the User-Agent (core_module.browser_of; h1)
    browser = 0

    def __init__(self, conn: Any, http: "HttpMain", method: str, raw_uri: str, uri: str, args: str,
                 version: str, headers: list[tuple[str, str]], hin: dict[str, str], host: str) -> None:
        self.conn = conn
        self.http = http
        self.method = method
        self.raw_uri = raw_uri
        self.uri = uri
        self.args = args
        self.version = version
        self.headers = headers
        self.hin = hin
        self.host = host
        self.hout = HeadersOut()
        self.start_time = time.time()
        self.header_only = method == "HEAD"
        self.vars: dict[str, str] = {}
        self.cleanup: list[Any] = []  # nginx's r->cleanup: run before the log
        self.ctx: dict[str, Any] = {}

    def add_pool_cleanup(self, fn: Any) -> None:
        """nginx's pool cleanup: run after the LOG phase (``cleanup`` runs
        before it), e.g. realip restoring the connection's address."""
        if not self.pool_cleanup:
            self.pool_cleanup = []
        self.pool_cleanup.append(fn)

    # --- request data ------------------------------------------------------------
    def request_id(self) -> str:
        if self._rid is None:
            self._rid = os.urandom(16).hex()
        return self._rid

    def document_root(self) -> str | None:
        c = self.loc.core
        if c.alias:
            return None
        if c.root:
            return c.root.eval(self)
        return self.http.default_root

    def map_uri_to_path(self, uri: str | None = None) -> str | None:
        """ngx_http_map_uri_to_path: root + uri, or the alias replacing the
        part of the URI its location matched (the whole URI in a regex
        location, unless try_files asked for the URI to be appended)."""
        c = self.loc.core
        u = self.uri if uri is None else uri
        if c.alias:
            if not self.valid_location:
                self.log_error(logmod.ALERT, f'"alias" cannot be used in location "{self.location.name}" '
                                             f'where URI was rewritten')
                return None
            alias = c.alias.eval(self)
            n = c.alias_len
            if n is None:
                return alias + u if self.add_uri_to_alias else alias
            return alias + u[n:]
        root = c.root.eval(self) if c.root else self.http.default_root
        return root + u

    # --- logging helpers ---------------------------------------------------------
    def log_ctx(self) -> str:
        parts = [f", client: {self.conn.client_addr}"]
        if self.server is not None:
            parts.append(f", server: {self.server.name}")
        if self.request_line:
            parts.append(f', request: "{self.request_line}"')
        if self.upstream_log:
            parts.append(self.upstream_log)
        host = self.hin.get("host")
        if host is not None:
            parts.append(f', host: "{host}"')
        return "".join(parts)

    def error_log(self) -> logmod.ErrorLog:
        if self.loc is not None:
            el = self.loc.core.error_log
            if el is not None:
                return el
        return self.http.cycle.log

    def log_error(self, level: int, msg: str) -> None:
        el = self.error_log()
        if level <= el.max_level:
            el.log(level, msg, self.conn.id, self.log_ctx())

    # --- control flow --------------------------------------------------------------
    def start(self) -> None:
        self.http.engine.start(self)

    def internal_redirect(self, uri: str, args: str | None) -> None:
        self.uri_changes -= 1
        if self.uri_changes == 0:
            self.log_error(logmod.ERROR, f'rewrite or internal redirection cycle while internally redirecting to "{uri}"')
            self.finalize(500)
            return
        self.uri = uri
        if args is not None:
            self.args = args
        self.internal = True
        self.add_uri_to_alias = False
        # captures and named captures survive, as nginx's r->captures do
        self.http.engine.restart_server_rewrite(self)

    def named_location(self, loc: Any) -> None:
        self.uri_changes -= 1
        if self.uri_changes == 0:
            self.log_error(logmod.ERROR, f'rewrite or internal redirection cycle while redirect to named location "{loc.name}"')
            self.finalize(500)
            return
        self.internal = True
        self.http.engine.enter_location(self, loc)

    def finalize(self, rc: int) -> None:
        """End the request with a handler's return code."""
        if rc == DONE or rc == AGAIN:
            return
        if self.done:
            return
        if rc == ERROR:
            self.keepalive = False
            self.terminate()
            return
        if rc >= 300 or (rc >= 200 and not self.header_sent and rc != 200):
            if self.header_sent:
                self.keepalive = False
                self.terminate()
                return
            self.special_response(rc)
            return
        if rc == OK or rc == 200:
            if not self.header_sent:
                # a handler said OK without sending anything: a bug, answer 500
                self.special_response(500)
            return

    def terminate(self) -> None:
        """Close without (more) response: client errors, timeouts, 444."""
        if self.done:
            return
        self.done = True
        self.keepalive = False
        self.conn.request_terminated(self)

    def special_response(self, code: int) -> None:
        """nginx's ngx_http_special_response_handler, with error_page."""
        core = self.loc.core if self.loc is not None else None
        if code == 444:
            self.log_status = 444
            self.status = 444
            self.terminate()
            return
        if code in NO_KEEPALIVE:
            self.keepalive = False
        # ngx_http_special_response_handler: the first error page a request
        # meets marks it unless that location has recursive_error_pages on
        if core is not None and not self.error_page and core.error_pages and self.uri_changes:
            if not core.recursive_error_pages:
                self.error_page = True
            page = core.error_pages.get(code)
            if page is not None and self._run_error_page(code, page):
                return
        self.status = code
        self.hout.clear_for_error()
        tokens = core.server_tokens if core is not None else "on"
        msie = bool(core is not None and core.msie_padding
                    and wants_msie_padding(self.hin.get("user-agent"), self.version))
        self._send_page(code, error_page_body(code, tokens, msie))

    def _send_page(self, code: int, body: bytes | None) -> None:
        """Send one of nginx's built-in pages (or an empty body) as the response."""
        self.hout.status = code
        if body is None:
            self.hout.content_length = 0 if code >= 200 and code not in (204, 304) else None
            self.send_header()
            self.send(None, True)
            return
        self.hout.content_type = "text/html"
        self.hout.content_length = len(body)
        self.send_header()
        self.send([body], True)

    def filter_finalize(self, code: int, clean: bool = False) -> None:
        """ngx_http_filter_finalize_request: a header filter replaces the
        response with ``code``; what the handler sends afterwards is dropped.
        With ``clean`` every output header is wiped first and the connection
        closes once the page is out (nginx ends such a request with NGX_ERROR)."""
        if clean:
            self.hout.clean()
            self.close_after = True
        self.header_sent = False
        self.special_response(code)
        self.discard_output = True

    def _run_error_page(self, code: int, page: Any) -> bool:
        uri = page.uri.eval(self)
        if page.overwrite is not None and page.overwrite > 0:
            overwrite = page.overwrite
        elif page.overwrite == 0:
            overwrite = 0
        else:
            overwrite = code
        if page.named:
            loc = self.server.named.get(uri) if self.server is not None else None
            if loc is None:
                self.log_error(logmod.ERROR, f'named location "{uri}" not found')
                return False
            self.status = overwrite if overwrite else 0
            self.error_status = overwrite
            self.named_location(loc)
            return True
        if uri.startswith("/"):
            self.status = overwrite if overwrite else 0
            self.error_status = overwrite
            path, _, args = uri.partition("?")
            if self.method != "HEAD":
                self.method = "GET"
            self.hout = HeadersOut()
            self.internal_redirect(path, args if "?" in uri else "")
            return True
        # an absolute URL: a redirect
        status = overwrite if overwrite in (301, 302, 303, 307, 308) else 302
        self.hout.clear_for_error()
        self.hout.location = uri
        self.error_page = True
        self.status = status
        self._send_page(status, error_page_body(status, self.loc.core.server_tokens))
        return True

    # --- output --------------------------------------------------------------------
    def init_rate(self) -> None:
        """ngx_http_write_filter's first pass: the location's limit_rate and
        limit_rate_after, unless ``set $limit_rate`` chose the rate already.
        Called by the protocol when the header is written."""
        core = self.loc.core
        if not self.limit_rate_set:
            self.limit_rate = size_value(self, core.limit_rate) if core.limit_rate else 0
            self.limit_rate_set = True
        if core.limit_rate_after:
            self.limit_rate_after = size_value(self, core.limit_rate_after)

    def send_header(self) -> None:
        if self.header_sent:
            return
        if not self.hout.status:
            self.hout.status = self.status or 200
        if self.error_status and self.hout.status == 200:
            self.hout.status = self.error_status
        self.status = self.hout.status
        self.header_sent = True
        loc = self.loc
        chain = loc.header_chain
        if chain is None:
            self.http.engine.chains_for(loc)
            chain = loc.header_chain
        chain(self)

    def send(self, bufs: list[Any] | None, last: bool) -> None:
        """Push body buffers (bytes or FileBuf) through the body filter chain."""
        if self.discard_output:
            return
        loc = self.loc
        if loc.body_chain is None:
            self.http.engine.chains_for(loc)
        # a subrequest's output joins its parent's stream at "postpone"
        (loc.body_pre_chain if self.internal_sub else loc.body_chain)(self, bufs or [], last)

    def redirect_url(self, path: str) -> str:
        """Build an absolute Location as nginx does for relative redirects."""
        core = self.loc.core
        if not core.absolute_redirect:
            return path
        scheme = "https" if self.conn.ssl else "http"
        if core.server_name_in_redirect and self.server is not None and self.server.name:
            host = self.server.name
        else:
            host = self.host or self.conn.server_addr
        port = ""
        if core.port_in_redirect:
            p = self.conn.server_port
            if not ((p == 80 and scheme == "http") or (p == 443 and scheme == "https")):
                port = f":{p}"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{host}{port}{path}"
