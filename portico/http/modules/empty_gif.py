"""empty_gif (helper fills this in)."""
from __future__ import annotations

from ...core.module import Module


class EmptyGifModule(Module):
    name = "empty_gif"
    nginx_name = "ngx_http_empty_gif_module"
    is_http = True
    directives = []
