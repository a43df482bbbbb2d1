"""autoindex: directory listings (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class AutoindexModule(Module):
    name = "autoindex"
    nginx_name = "ngx_http_autoindex_module"
    is_http = True
    directives = []
