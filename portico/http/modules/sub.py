"""sub_filter: string replacement in responses (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class SubModule(Module):
    name = "sub"
    nginx_name = "ngx_http_sub_module"
    is_http = True
    directives = []
