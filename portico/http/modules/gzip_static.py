"""gzip_static: precompressed .gz files (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class GzipStaticModule(Module):
    name = "gzip_static"
    nginx_name = "ngx_http_gzip_static_module"
    is_http = True
    directives = []
