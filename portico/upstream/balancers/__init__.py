"""Load-balancing methods, one module each (ngx_http_upstream_*_module)."""
