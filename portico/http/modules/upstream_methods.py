"""The balancing-method modules of upstream{}: ngx_http_upstream_hash_module,
ngx_http_upstream_ip_hash_module, ngx_http_upstream_least_conn_module and
ngx_http_upstream_random_module.

Invariants:
- Each module only declares its directive; the method itself lives in
  ``portico/upstream/balancers/`` and is registered with the upstream{}
  block's method registry (``portico.upstream.block.register_method``)
  when the module is created, so a Cycle's registry always knows it.
- The directive records the method on the enclosing upstream{}
  (``block.method_setter``); the balancer is built when the block closes.
"""
from __future__ import annotations

from typing import Any

from ...core.module import NOARGS, UPSTREAM, Module, dir
from ...upstream.balancers import hash as hash_method
from ...upstream.balancers import ip_hash, least_conn
from ...upstream.balancers import random as random_method
from ...upstream.block import method_setter

U = frozenset({UPSTREAM})


class _MethodModule(Module):
    is_http = True
    method: Any = None

    def __init__(self) -> None:
        self.method.register()


class UpstreamHashModule(_MethodModule):
    name = "upstream_hash"
    nginx_name = "ngx_http_upstream_hash_module"
    method = hash_method
    directives = [dir("hash", U, (1, 2), method_setter("hash"), "none")]


class UpstreamIpHashModule(_MethodModule):
    name = "upstream_ip_hash"
    nginx_name = "ngx_http_upstream_ip_hash_module"
    method = ip_hash
    directives = [dir("ip_hash", U, NOARGS, method_setter("ip_hash"), "none")]


class UpstreamLeastConnModule(_MethodModule):
    name = "upstream_least_conn"
    nginx_name = "ngx_http_upstream_least_conn_module"
    method = least_conn
    directives = [dir("least_conn", U, NOARGS, method_setter("least_conn"), "none")]


class UpstreamRandomModule(_MethodModule):
    name = "upstream_random"
    nginx_name = "ngx_http_upstream_random_module"
    method = random_method
    directives = [dir("random", U, (0, 2), method_setter("random"), "none")]
