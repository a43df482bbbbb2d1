"""ngx_http_stub_status_module: the basic status page and its variables.

Invariant: the page is byte-identical in format to nginx's; the numbers are
the sums over every worker's slot in the shared status zone, so any worker
answers for the whole server.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import LOCATION, SERVER, Module, dir
from ..request import DONE, Request

_FIELDS = ("active", "accepts", "handled", "requests", "reading", "writing", "waiting")


def totals(cycle: Any) -> dict[str, int]:
    c = getattr(cycle, "status_counters", None)
    if c is None:
        return dict.fromkeys(_FIELDS, 0)
    if hasattr(c, "totals"):
        return c.totals()
    return dict(zip(_FIELDS, c.cells))


def _stub_status(cf: Any, node: Node, conf: Any) -> None:
    if node.args and node.args[0] not in ("on", "off"):
        raise node.error(f'invalid value "{node.args[0]}" in "stub_status" directive')
    cf.loc["core"].handler = stub_status_handler


def stub_status_handler(r: Request) -> int:
    if r.method not in ("GET", "HEAD"):
        return 405
    if r.body is not None:
        r.body.discard()
    t = totals(r.http.cycle)
    body = (f"Active connections: {t['active']} \n"
            f"server accepts handled requests\n"
            f" {t['accepts']} {t['handled']} {t['requests']} \n"
            f"Reading: {t['reading']} Writing: {t['writing']} Waiting: {t['waiting']} \n").encode()
    h = r.hout
    h.status = 200
    h.content_type = "text/plain"
    h.content_length = len(body)
    r.send_header()
    r.send(None if r.header_only else [body], True)
    return DONE


def _var(field: str) -> Any:
    return lambda r: str(totals(r.http.cycle)[field])


class StubStatusModule(Module):
    name = "stub_status"
    nginx_name = "ngx_http_stub_status_module"
    is_http = True
    directives = [dir("stub_status", frozenset({SERVER, LOCATION}), (0, 1), _stub_status, "none")]

    def preconfiguration(self, http: Any) -> None:
        for f in ("active", "reading", "writing", "waiting"):
            http.variables.add(f"connections_{f}", _var(f))
