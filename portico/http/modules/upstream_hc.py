"""ngx_http_upstream_hc_module (nginx Plus's active health checks):
``health_check`` in a location and ``match NAME { ... }`` in http{}.

Invariants:
- Directives only record: ``health_check`` its parsed parameters with the
  location's conf dicts, ``match`` its parsed block (a duplicate name is an
  error).  Both may come in any order; postconfiguration binds each check
  to the upstream{} its location proxies to (which must have a ``zone``)
  and to its match, with nginx-style ``[emerg]`` errors.
- The checks run in the workers: ``portico/upstream/health.py`` (started
  by the upstream module's tick, once per interval for the whole server).
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import ANY, HTTP, LOCATION, TAKE1, Conf, Factory, Module, dir
from ...upstream import health


class HcMain(Conf):
    matches: Any = Factory(dict)  # name -> health.Match
    checks: Any = Factory(list)  # (HealthCheck, location conf dict)


def _main(cf: Any) -> HcMain:
    mc: HcMain = cf.main["upstream_hc"]
    if not isinstance(mc.matches, dict):
        mc.matches = {}
        mc.checks = []
    return mc


def _health_check(cf: Any, node: Node, conf: Any) -> None:
    _main(cf).checks.append((health.parse_health_check(node), cf.loc))


def _match(cf: Any, node: Node, conf: Any) -> None:
    mc = _main(cf)
    name = node.args[0]
    if name in mc.matches:
        raise node.error(f'duplicate match "{name}"')
    mc.matches[name] = health.parse_match(node, cf.extra["http"].variables)


class UpstreamHcModule(Module):
    name = "upstream_hc"
    nginx_name = "ngx_http_upstream_hc_module"
    is_http = True
    main_conf = HcMain
    directives = [
        dir("health_check", frozenset({LOCATION}), ANY, _health_check, "main"),
        dir("match", frozenset({HTTP}), TAKE1, _match, "main", block=True),
    ]

    def postconfiguration(self, http: Any) -> None:
        mc: HcMain = http.main["upstream_hc"]
        for hc, loc in mc.checks or ():
            proxy = loc.get("proxy")
            ub = getattr(proxy, "upstream", None)
            if ub is None:
                raise hc.node.error('"health_check" requires "proxy_pass" to an upstream group')
            health.bind(hc, ub, proxy, mc.matches or {})
