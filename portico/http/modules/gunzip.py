"""gunzip: decompression for clients without gzip (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class GunzipModule(Module):
    name = "gunzip"
    nginx_name = "ngx_http_gunzip_filter_module"
    is_http = True
    directives = []
