"""brotli: the ngx_brotli filter and brotli_static (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class BrotliModule(Module):
    name = "brotli"
    nginx_name = "ngx_http_brotli_filter_module"
    is_http = True
    directives = []
