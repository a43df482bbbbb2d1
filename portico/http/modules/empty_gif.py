"""ngx_http_empty_gif_module: the 1x1 transparent GIF as a location's handler.

Invariants (ngx_http_empty_gif_module.c is the spec):
- ``empty_gif`` (location context, no arguments) makes the module the
  location's exclusive content handler, as nginx's ``clcf->handler``.
- GET and HEAD get 200 with exactly nginx's 43 bytes, ``Content-Type:
  image/gif``, ``Content-Length: 43`` and ``Last-Modified`` 23349600
  (Mon, 28 Sep 1970 06:00:00 GMT), so If-Modified-Since can give 304; no
  ETag.  Any other method is 405.  A request body is discarded.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core.module import LOCATION, NOARGS, Module, dir
from ..request import OK, Request

#: the minimal single-pixel transparent GIF, 43 bytes
EMPTY_GIF = bytes([
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61,  # "GIF89a"
    0x01, 0x00, 0x01, 0x00,              # logical screen 1x1
    0x80, 0x01, 0x00,                    # global 1-bit color table, background #1, no aspect
    0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF,  # color table: black, white
    0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x01, 0x00,  # graphic control: color #1 transparent
    0x2C, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,  # image descriptor 1x1
    0x02, 0x02, 0x4C, 0x01, 0x00,        # LZW min code 2, one 2-byte block: clear, 1, end
    0x3B,                                # trailer
])
assert len(EMPTY_GIF) == 43

LAST_MODIFIED = 23349600  # nginx's fixed r->headers_out.last_modified_time


def empty_gif_handler(r: Request) -> int:
    if r.method not in ("GET", "HEAD"):
        return 405
    if r.body is not None:
        r.body.discard()
    h = r.hout
    h.status = 200
    h.content_type = "image/gif"
    h.content_length = len(EMPTY_GIF)
    h.last_modified = LAST_MODIFIED
    r.send_header()
    if r.header_only or r.done:
        r.send(None, True)
    else:
        r.send([EMPTY_GIF], True)
    return OK


def _empty_gif(cf: Any, node: Node, conf: Any) -> None:
    cf.loc["core"].handler = empty_gif_handler


class EmptyGifModule(Module):
    name = "empty_gif"
    nginx_name = "ngx_http_empty_gif_module"
    is_http = True
    directives = [dir("empty_gif", frozenset({LOCATION}), NOARGS, _empty_gif, "none")]
