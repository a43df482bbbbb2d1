"""limit_req: leaky-bucket request rate limiting (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class LimitReqModule(Module):
    name = "limit_req"
    nginx_name = "ngx_http_limit_req_module"
    is_http = True
    directives = []
