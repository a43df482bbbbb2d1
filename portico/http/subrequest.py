"""Subrequests (ngx_http_subrequest): a request run inside another one, whose
body joins the parent's output at nginx's postpone point.

Invariants:
- A subrequest is a ``Request`` with ``internal_sub`` set, the parent's
  request headers, server and request line, method GET, and its own URI,
  args, variables, captures and location.  It starts at SERVER_REWRITE as
  every internal request does and skips the ACCESS phase (phases.py).
- Its connection is a ``SubrequestConn``: the connection facts (addresses,
  ssl, id) are the parent's; its header is never written; its body, after
  the filters above "postpone" in ``phases.BODY_ORDER`` (run with the
  subrequest's own location configuration), enters the parent's chain
  below "postpone" (``LocConfs.body_post_chain``), never as the last buffer.
- ``on_done(sr)`` runs exactly once, when the subrequest's last buffer
  passed or it ended without a body (444, a client error).
- Subrequests are not access-logged (nginx's ``log_subrequest`` is off by
  default; Portico does not log them at all yet).
"""
from __future__ import annotations

from typing import Any, Callable

from .request import Request


class SubrequestConn:
    """What a subrequest sees as its connection."""

    def __init__(self, parent: Request, on_done: Callable[[Request], None]) -> None:
        self.parent = parent
        self.conn = parent.conn
        self.on_done = on_done
        self.finished = False

    def __getattr__(self, name: str) -> Any:
        # client_addr, server_port, ssl, id, start_time...: the real connection's
        return getattr(self.conn, name)

    def send_head(self, r: Request) -> None:
        """ngx_http_header_filter: ``r != r->main`` sends nothing."""

    def send_body(self, r: Request, bufs: list[Any], last: bool) -> None:
        if self.finished:
            return
        parent = self.parent
        if bufs and not parent.done:
            ploc = parent.loc
            if ploc.body_post_chain is None:
                parent.http.engine.chains_for(ploc)
            ploc.body_post_chain(parent, bufs, False)
        if last:
            self._finish(r)

    def request_terminated(self, r: Request) -> None:
        self._finish(r)

    def _finish(self, r: Request) -> None:
        if not self.finished:
            self.finished = True
            r.done = True
            self.on_done(r)


def subrequest(parent: Request, uri: str, args: str, on_done: Callable[[Request], None]) -> Request:
    """Start a GET subrequest for ``uri?args``; it may finish before this returns."""
    sr = Request(SubrequestConn(parent, on_done), parent.http, "GET", parent.raw_uri, uri, args,
                 parent.version, parent.headers, parent.hin, parent.host)
    sr.internal = True
    sr.internal_sub = True
    sr.server = parent.server
    sr.request_line = parent.request_line
    sr.header_only = parent.header_only
    parent.http.engine.restart_server_rewrite(sr)
    return sr
