"""Portico: an nginx-compatible web server written in Python."""

__version__ = "0.1.0"
#: The nginx release whose behaviour Portico targets (``$nginx_version``).
NGINX_VERSION = "1.29.0"
