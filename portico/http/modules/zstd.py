"""zstd: the zstd filter and zstd_static (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class ZstdModule(Module):
    name = "zstd"
    nginx_name = "ngx_http_zstd_filter_module"
    is_http = True
    directives = []
