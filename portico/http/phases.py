"""The phase engine and the filter chains, built once per Cycle.

Phases (nginx order): POST_READ, SERVER_REWRITE, FIND_CONFIG, REWRITE,
POST_REWRITE, PREACCESS, ACCESS, POST_ACCESS, PRECONTENT, CONTENT, then LOG
after the response is sent.

Invariants:
- ``Engine.handlers`` is a flat list of (checker, handler, next_phase_index)
  built once; running a request is a loop over it driven by
  ``r.phase_index``.  A handler returning DONE/AGAIN suspends the request;
  whoever resumes it calls ``engine.run(r)`` again.
- Filters are composed once into closures in the explicit orders below;
  each filter receives ``next`` as an argument.
- An internal redirect re-enters at SERVER_REWRITE (as nginx); entering a
  named location re-enters at REWRITE with that location's conf.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ..core import log as logmod
from .core_module import keepalive_disabled
from .request import AGAIN, DECLINED, DONE, OK, Request
from .static_fast import build_plan
from .variables import set_captures

if TYPE_CHECKING:
    from .core_module import HttpMain

PHASES = ("post_read", "server_rewrite", "find_config", "rewrite", "post_rewrite", "preaccess",
          "access", "post_access", "precontent", "content")

#: header filters, in call order (first called first)
HEADER_ORDER = ("not_modified", "headers", "gunzip", "addition", "sub_filter", "charset", "zstd", "brotli",
                "gzip", "range")
#: body filters, in call order.  "postpone" is nginx's postpone filter: a
#: subrequest's output runs through the filters above it with the
#: subrequest's own configuration, then joins the main request's stream
#: below it (``LocConfs.body_post_chain``), so it is compressed once, with
#: the main response.
BODY_ORDER = ("range", "trailers", "gunzip", "addition", "sub_filter", "charset", "postpone", "zstd",
              "brotli", "gzip")


class Engine:
    def __init__(self, http: "HttpMain") -> None:
        self.http = http
        self.handlers: list[tuple[Callable[..., bool], Any, int]] = []
        self.phase_start: dict[str, int] = {}
        # nginx runs each phase's handlers in reverse registration order
        # (ngx_http_init_phase_handlers), so the static module, registered
        # first, always answers last.
        self.content_handlers: list[Any] = list(reversed(http.phases.get("content", [])))
        static = getattr(http, "content_static", None)
        if static is not None:
            self.content_handlers.append(static)
        self._build()
        # the fast paths, where a location allows them (static_fast.py,
        # upstream/proxy_fast.py)
        from ..upstream.proxy_fast import build_plan as proxy_plan
        n = len(self.handlers)
        for loc in http.all_locations():
            loc.conf.fast_plan = build_plan(http, loc.conf, n) or proxy_plan(http, loc.conf, n)

    # --- construction ----------------------------------------------------------------
    def _build(self) -> None:
        http = self.http
        checkers = {
            "post_read": generic_checker, "server_rewrite": rewrite_checker,
            "rewrite": rewrite_checker, "preaccess": generic_checker, "access": access_checker,
            "precontent": generic_checker,
        }
        plan: list[tuple[str, list[tuple[Callable[..., bool], Any]]]] = []
        for phase in PHASES:
            if phase == "find_config":
                entries = [(find_config_checker, None)]
            elif phase == "post_rewrite":
                entries = [(post_rewrite_checker, None)]
            elif phase == "post_access":
                entries = [(post_access_checker, None)]
            elif phase == "content":
                entries = [(content_checker, None)]
            else:
                entries = [(checkers[phase], h) for h in reversed(http.phases.get(phase, []))]
            plan.append((phase, entries))
        idx = 0
        for phase, entries in plan:
            self.phase_start[phase] = idx
            idx += len(entries)
        self.phase_start["end"] = idx
        for n, (phase, entries) in enumerate(plan):
            nxt = self.phase_start[PHASES[n + 1]] if n + 1 < len(PHASES) else idx
            for checker, h in entries:
                self.handlers.append((checker, h, nxt))
        self.find_config_index = self.phase_start["find_config"]
        self.server_rewrite_index = self.phase_start["server_rewrite"]
        self.rewrite_index = self.phase_start["rewrite"]

    def _compose_header(self, http: "HttpMain", loc: Any = None) -> Callable[[Request], None]:
        def final(r: Request) -> None:
            r.conn.send_head(r)
        chain: Callable[[Request], None] = final
        registered = {e[0]: e for e in http.header_filters}
        for name in reversed(HEADER_ORDER):
            e = registered.get(name)
            if e is not None and (loc is None or len(e) < 3 or e[2](loc)):
                chain = _bind_header(e[1], chain)
        return chain

    def _compose_body(self, http: "HttpMain", loc: Any = None,
                      order: tuple[str, ...] = BODY_ORDER) -> Callable[[Request, list[Any], bool], None]:
        def final(r: Request, bufs: list[Any], last: bool) -> None:
            r.conn.send_body(r, bufs, last)
        chain: Callable[[Request, list[Any], bool], None] = final
        registered = {e[0]: e for e in http.body_filters}
        for name in reversed(order):
            e = registered.get(name)
            if e is not None and (loc is None or len(e) < 3 or e[2](loc)):
                chain = _bind_body(e[1], chain)
        return chain

    def chains_for(self, loc: Any) -> None:
        """Build a location's own filter chains, leaving out filters whose
        ``applies(loc_conf)`` says they can do nothing there (once per
        location per Cycle; stored on the LocConfs)."""
        loc.header_chain = self._compose_header(self.http, loc)
        loc.body_chain = self._compose_body(self.http, loc)
        split = BODY_ORDER.index("postpone")
        loc.body_pre_chain = self._compose_body(self.http, loc, BODY_ORDER[:split])
        loc.body_post_chain = self._compose_body(self.http, loc, BODY_ORDER[split + 1:])

    # --- running ---------------------------------------------------------------------
    def run(self, r: Request) -> None:
        handlers = self.handlers
        n = len(handlers)
        while r.phase_index < n and not r.done:
            checker, h, nxt = handlers[r.phase_index]
            if not checker(r, h, nxt):
                return

    def start(self, r: Request) -> None:
        r.phase_index = 0
        r.loc = r.server.root.conf  # type: ignore[union-attr]
        r.location = r.server.root  # type: ignore[union-attr]
        checks = self.http.request_checks
        if checks:
            # ngx_http_process_request's checks before the phases (TLS: 497,
            # client certificates); their status goes through error_page
            for check in checks:
                rc = check(r)
                if rc:
                    r.finalize(rc)
                    return
        self.run(r)

    def restart_server_rewrite(self, r: Request) -> None:
        r.loc = r.server.root.conf  # type: ignore[union-attr]
        r.location = r.server.root  # type: ignore[union-attr]
        r.phase_index = self.server_rewrite_index
        self.run(r)

    def enter_location(self, r: Request, loc: Any) -> None:
        """ngx_http_named_location: the named location's conf, then REWRITE."""
        r.location = loc
        r.loc = loc.conf
        r.phase_index = self.rewrite_index
        self.run(r)

    def log(self, r: Request) -> None:
        for h in self.http.log_handlers:
            try:
                h(r)
            except Exception as e:  # logging must never kill the connection
                self.http.cycle.log.log(logmod.ALERT, f"log handler failed: {e!r}")


def _bind_header(f: Any, nxt: Callable[[Request], None]) -> Callable[[Request], None]:
    return lambda r: f(r, nxt)


def _bind_body(f: Any, nxt: Callable[[Request, list[Any], bool], None]) -> Callable[[Request, list[Any], bool], None]:
    return lambda r, bufs, last: f(r, bufs, last, nxt)


# --- checkers (return True to keep looping) ------------------------------------------

def generic_checker(r: Request, h: Any, nxt: int) -> bool:
    rc = h(r)
    if rc == OK:
        r.phase_index = nxt
        return True
    if rc == DECLINED:
        r.phase_index += 1
        return True
    if rc == DONE or rc == AGAIN:
        return False
    r.finalize(rc)
    return False


def rewrite_checker(r: Request, h: Any, nxt: int) -> bool:
    rc = h(r)
    if rc == DECLINED:
        r.phase_index += 1
        return True
    if rc == DONE or rc == AGAIN:
        return False
    if rc == OK:
        r.phase_index += 1
        return True
    r.finalize(rc)
    return False


def find_config_checker(r: Request, h: Any, nxt: int) -> bool:
    r.uri_changed = False
    r.valid_location = True
    server = r.server
    loc, m = server.root.find(r.uri)  # type: ignore[union-attr]
    r.location = loc
    r.loc = loc.conf
    # ngx_http_regex_exec: only a matching regex with groups replaces the
    # captures; a prefix location keeps those of an earlier rewrite
    if m is not None:
        set_captures(r, loc.regex, m)
    core = r.loc.core
    if core.internal and not r.internal:
        r.finalize(404)
        return False
    if r.browser and r.keepalive and keepalive_disabled(r, core):
        r.keepalive = False
    cl = r.content_length
    if cl is not None and core.client_max_body_size and cl > core.client_max_body_size:
        r.log_error(logmod.ERROR, f"client intended to send too large body: {cl} bytes")
        r.keepalive = False
        r.finalize(413)
        return False
    plan = r.loc.fast_plan
    if plan is not None and plan.serve(r):
        return False
    r.phase_index += 1
    return True


def post_rewrite_checker(r: Request, h: Any, nxt: int) -> bool:
    if not r.uri_changed:
        r.phase_index += 1
        return True
    r.uri_changes -= 1
    if r.uri_changes == 0:
        r.log_error(logmod.ERROR, f'rewrite or internal redirection cycle while processing "{r.uri}"')
        r.finalize(500)
        return False
    r.phase_index = r.http.engine.find_config_index
    return True


def access_checker(r: Request, h: Any, nxt: int) -> bool:
    if r.internal_sub:  # ngx_http_core_access_phase: r != r->main skips access
        r.phase_index = nxt
        return True
    rc = h(r)
    if rc == DECLINED:
        r.phase_index += 1
        return True
    if rc == DONE or rc == AGAIN:
        return False
    if r.loc.core.satisfy == "all":
        if rc == OK:
            r.phase_index += 1
            return True
    else:
        if rc == OK:
            r.access_code = 0
            r.phase_index = nxt
            return True
        if rc in (401, 403):
            if r.access_code != 401:
                r.access_code = rc
            r.phase_index += 1
            return True
    r.finalize(rc)
    return False


def post_access_checker(r: Request, h: Any, nxt: int) -> bool:
    code = r.access_code
    if code:
        r.access_code = None
        if code == 403:
            r.log_error(logmod.ERROR, "access forbidden by rule")
        r.finalize(code)
        return False
    r.phase_index += 1
    return True


def content_checker(r: Request, h: Any, nxt: int) -> bool:
    handler = r.loc.core.handler
    if handler:
        r.phase_index = len(r.http.engine.handlers)
        r.finalize(handler(r))
        return False
    for ch in r.http.engine.content_handlers:
        rc = ch(r)
        if rc != DECLINED:
            r.phase_index = len(r.http.engine.handlers)
            r.finalize(rc)
            return False
    r.phase_index = len(r.http.engine.handlers)
    if r.uri.endswith("/"):
        path = r.map_uri_to_path() or ""
        r.log_error(logmod.ERROR, f'directory index of "{path}" is forbidden')
        r.finalize(403)
    else:
        r.finalize(404)
    return False
