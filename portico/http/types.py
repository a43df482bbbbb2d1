"""MIME type lists of filter modules (``gzip_types``, ``brotli_types``,
``zstd_types``, ``sub_filter_types``, ``charset_types``, ``addition_types``):
nginx's ``ngx_http_types_slot``, ``ngx_http_merge_types`` and
``ngx_http_test_content_type``, written once.

Invariants:
- A conf field holds a ``frozenset`` of lower-cased types or ``ANY_TYPE``
  (nginx's ``(void *) -1``); the conf class's default is the module's
  default list (nginx's merge default), which need not be the list a first
  directive starts from (``charset_types``: six defaults, but a directive
  starts from text/html alone, as nginx's ``cmd->post``).
- Directives at one level accumulate; values are lower-cased; a type given
  twice is a ``[warn]``, not an error; ``*`` makes the level match any type
  and later directives there no-ops.
- Matching compares the lower-cased Content-Type up to a ``; charset=``
  parameter (nginx's ``content_type_len``: the charset of a proxied type is
  not part of it, any other parameter is).  ``*`` matches even a response
  without a Content-Type; otherwise an empty one never matches.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from ..conf.parser import Node
from ..core.module import UNSET

__all__ = ["ANY_TYPE", "HTML_TYPES", "bare_type", "content_type_key", "type_listed", "types_setter"]

#: ``*`` in a types directive (ngx_http_types_slot's ``(void *) -1``)
ANY_TYPE = "*"
#: nginx's ngx_http_html_default_types: the default of every list but charset's
HTML_TYPES = frozenset({"text/html"})


def types_setter(attr: str, first: frozenset[str] = HTML_TYPES) -> Callable[[Any, Node, Any], None]:
    """ngx_http_types_slot into ``conf.<attr>``; ``first`` is what the first
    directive at a level starts from (the slot's ``post``)."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        cur = getattr(conf, attr)
        if cur == ANY_TYPE:
            return
        types = set(first) if cur is UNSET else set(cur)
        for v in node.args:
            if v == "*":
                setattr(conf, attr, ANY_TYPE)
                return
            low = v.lower()
            if low in types:
                cf.cycle.warn(f'duplicate MIME type "{low}"', node)
                continue
            types.add(low)
        setattr(conf, attr, frozenset(types))
    return setter


_CHARSET_PARAM = re.compile(r"; *charset=", re.IGNORECASE)


def bare_type(ct: str) -> str:
    """nginx's ``content_type_len`` part of a Content-Type value: everything
    before a ``; charset=`` parameter (upstream parsing stops there), else
    the whole value."""
    if ";" not in ct:
        return ct
    m = _CHARSET_PARAM.search(ct)
    return ct[:m.start()] if m is not None else ct


def content_type_key(h: Any) -> str | None:
    """The lower-cased type nginx looks up in a types hash; None when empty."""
    ct = h.content_type
    if not ct:
        return None
    return bare_type(ct).lower()


def type_listed(types: Any, h: Any) -> bool:
    """ngx_http_test_content_type on the response headers ``h``."""
    if types == ANY_TYPE:
        return True
    key = content_type_key(h)
    return key is not None and key in types
