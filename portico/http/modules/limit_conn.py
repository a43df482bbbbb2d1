"""limit_conn: concurrent connection limits (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class LimitConnModule(Module):
    name = "limit_conn"
    nginx_name = "ngx_http_limit_conn_module"
    is_http = True
    directives = []
