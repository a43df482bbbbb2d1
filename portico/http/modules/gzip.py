"""gzip: the response compression filter (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class GzipModule(Module):
    name = "gzip"
    nginx_name = "ngx_http_gzip_filter_module"
    is_http = True
    directives = []
