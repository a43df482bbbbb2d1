"""addition: add_before_body / add_after_body (filled in later)."""
from __future__ import annotations

from ...core.module import Module


class AdditionModule(Module):
    name = "addition"
    nginx_name = "ngx_http_addition_filter_module"
    is_http = True
    directives = []
