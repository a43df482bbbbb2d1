"""random_index (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class RandomIndexModule(Module):
    name = "random_index"
    nginx_name = "ngx_http_random_index_module"
    is_http = True
    directives = []
