"""charset: Content-Type charset and recoding (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class CharsetModule(Module):
    name = "charset"
    nginx_name = "ngx_http_charset_filter_module"
    is_http = True
    directives = []
