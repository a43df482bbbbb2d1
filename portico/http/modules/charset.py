"""ngx_http_charset_filter_module: ``; charset=`` in Content-Type, and
recoding between charsets (``charset``, ``source_charset``,
``override_charset``, ``charset_types``, ``charset_map``).

Invariants:
- Charsets are registered by name (case-insensitive, first spelling kept)
  as the configuration is read; ``charset_map`` blocks give the tables, and
  every location whose ``source_charset`` and ``charset`` differ needs one
  (nginx's ``no "charset_map" between the charsets`` at ``-t``).  The tables
  are turned into ``bytes.translate`` / ``str.translate`` tables once, at
  postconfiguration; a request only picks one.
- The header filter follows ngx_http_charset_header_filter step by step:
  the response's own charset (a proxied ``; charset=``) is the source and
  is kept unless ``override_charset on``; 301/302 never get a charset; an
  encoded body (Content-Encoding) is not recoded and then gets no charset
  at all; an unknown pair is an ``[error]`` line and no charset.
- ``charset_types`` unset means nginx's six default types; a first
  ``charset_types`` starts from text/html alone (as nginx, unlike its docs'
  default list suggests).
- 8-bit to 8-bit recoding is byte for byte: Content-Length stays.  From or
  to UTF-8 the length changes: Content-Length is removed.
- Recoding streams (``BodyFeed`` through sub's ``feed_body_filter``: file regions read 32 KB at a time).  An
  incomplete UTF-8 sequence at the end of a chunk waits for the next one;
  at the end of the body it is dropped, as nginx does.  Decoding is nginx's
  ``ngx_utf8_decode`` (``portico.core.utf8``; lenient continuation bytes, invalid -> ``?``,
  characters without a mapping -> ``&#N;``).  Well-formed input takes a
  fast path through Python's strict decoder, which agrees with nginx's on
  such input; anything else is decoded byte by byte as nginx does.
- 8-bit to UTF-8 keeps nginx's shortcut: a chunk in which no byte maps to
  more than one byte goes out unchanged (unmapped bytes included), and so
  does a run of more than 512 such bytes before the first one that does.
"""
from __future__ import annotations

import re
from typing import Any

from ...conf.errors import ConfError
from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import HSL, MORE1, TAKE1, TAKE2, Conf, Module, UNSET, dir, set_flag
from ...core.utf8 import INCOMPLETE, INVALID, utf8_decode
from ..request import ERROR, Request
from ..types import bare_type, type_listed, types_setter
from .sub import BodyFeed, feed_body_filter

_DEFAULT_TYPES = ("text/html", "text/xml", "text/plain", "text/vnd.wap.wml",
                  "application/javascript", "application/rss+xml")


class Charset:
    """One registered charset name; ``tables[dst]`` recodes from it to dst."""

    __slots__ = ("name", "utf8", "tables")

    def __init__(self, name: str) -> None:
        self.name = name
        self.utf8 = name.lower() == "utf-8"
        self.tables: dict[Charset, Any] = {}


class CharsetMap:
    """One charset_map block as nginx fills it: src2dst and dst2src."""

    __slots__ = ("src", "dst", "to_utf8", "src2dst", "dst2src")

    def __init__(self, src: Charset, dst: Charset, to_utf8: bool) -> None:
        self.src = src
        self.dst = dst
        self.to_utf8 = to_utf8
        if to_utf8:
            # byte -> its UTF-8 bytes; a code point -> byte (0 = none)
            self.src2dst: list[bytes] = [bytes([i]) for i in range(128)] + [b"?"] * 128
            self.dst2src: dict[int, int] = {}
        else:
            self.src2dst = list(range(128)) + [0x3F] * 128  # type: ignore[assignment]
            self.dst2src = dict.fromkeys(range(256), 0x3F)  # type: ignore[assignment]
            for i in range(128):
                self.dst2src[i] = i


class _Var:
    """``charset $name``: the name comes from a variable per request."""

    __slots__ = ("get",)

    def __init__(self, get: Any) -> None:
        self.get = get


class CharsetMainConf(Conf):
    by_name: Any = None  # dict: lower-cased name -> Charset
    maps: Any = None  # list[CharsetMap], in configuration order


class CharsetLocConf(Conf):
    charset: Any = None  # None (off), Charset or _Var
    source_charset: Any = None
    override_charset: bool = False
    types: Any = frozenset(_DEFAULT_TYPES)


def _main(cf: Any) -> CharsetMainConf:
    mc: CharsetMainConf = cf.main["charset"]
    if mc.by_name is UNSET:
        mc.by_name = {}
        mc.maps = []
    return mc


def _add_charset(mc: CharsetMainConf, name: str) -> Charset:
    low = name.lower()
    cs = mc.by_name.get(low)
    if cs is None:
        cs = mc.by_name[low] = Charset(name)
    return cs


def _hextoi(s: str) -> int:
    """ngx_hextoi: -1 for an empty string or any non-hex character."""
    if not s:
        return -1
    v = 0
    for ch in s:
        c = ord(ch)
        if 48 <= c <= 57:
            v = v * 16 + c - 48
        elif 97 <= (c | 0x20) <= 102:
            v = v * 16 + (c | 0x20) - 87
        else:
            return -1
    return v


def _set_charset(cf: Any, node: Node, conf: CharsetLocConf) -> None:
    attr = node.name
    if getattr(conf, attr) is not UNSET:
        raise node.error(f'"{attr}" directive is duplicate')
    v = node.args[0]
    if attr == "charset" and v == "off":  # case-sensitive, as nginx's strcmp
        conf.charset = None
        return
    if v.startswith("$"):
        get = cf.extra["http"].variables.lookup(v[1:], node.file, node.line)
        setattr(conf, attr, _Var(get))
        return
    setattr(conf, attr, _add_charset(_main(cf), v))


def _charset_map(cf: Any, node: Node, conf: Any) -> None:
    mc = _main(cf)
    src = _add_charset(mc, node.args[0])
    dst = _add_charset(mc, node.args[1])
    if src is dst:
        raise node.error(f'"charset_map" between the same charsets "{node.args[0]}" and "{node.args[1]}"')
    # nginx compares with its first table only (the loop never advances its
    # pointer), so only a repeat of the first map is refused
    if mc.maps:
        first = mc.maps[0]
        if (first.src is src and first.dst is dst) or (first.src is dst and first.dst is src):
            raise node.error(f'duplicate "charset_map" between "{node.args[0]}" and "{node.args[1]}"')
    t = CharsetMap(src, dst, node.args[1].lower() == "utf-8")
    mc.maps.append(t)
    for e in node.block or []:
        if e.block is not None:
            raise e.error('unexpected "{"')
        if len(e.args) != 1:
            raise e.error("invalid parameters number")
        s = _hextoi(e.name)
        if s < 0 or s > 255:
            raise e.error(f'invalid value "{e.name}"')
        val = e.args[0]
        if t.to_utf8:
            if len(val) // 2 > 3:
                raise e.error(f'invalid value "{val}"')
            seq = []
            for i in range(0, len(val), 2):
                b = _hextoi(val[i:i + 2]) if i + 2 <= len(val) else -1
                if b < 0 or b > 255:
                    raise e.error(f'invalid value "{val}"')
                seq.append(b)
            raw = bytes(seq)
            cp, _ = utf8_decode(raw, 0) if raw else (INVALID, 0)
            if cp > 0xFFFF:
                raise e.error(f'invalid value "{val}"')
            t.src2dst[s] = raw
            t.dst2src[cp] = s
        else:
            d = _hextoi(val)
            if d < 0 or d > 255:
                raise e.error(f'invalid value "{val}"')
            t.src2dst[s] = d  # type: ignore[call-overload]
            t.dst2src[d] = s


# --- recoders: built once per (source, destination) pair ------------------------------

class _Recoder:
    """What a response needs to recode: ``kind`` is "8bit", "to_utf8" or
    "from_utf8"."""

    __slots__ = ("kind", "table", "multi")

    def __init__(self, kind: str, table: Any, multi: Any = None) -> None:
        self.kind = kind
        self.table = table
        self.multi = multi  # to_utf8: a regex finding bytes that map to several


class _FromUtf8Table(dict):  # type: ignore[type-arg]
    """str.translate mapping: mapped code points to their byte (as a latin-1
    character), ASCII to itself, anything else to nginx's ``&#N;``."""

    def __missing__(self, cp: int) -> str:
        return f"&#{cp};"


def _build_recoders(mc: CharsetMainConf) -> None:
    for t in mc.maps:
        if t.to_utf8:
            fwd = t.src2dst
            lat = [b.decode("latin-1") for b in fwd]  # type: ignore[union-attr]
            multi = bytes(i for i in range(256) if len(fwd[i]) != 1)  # type: ignore[arg-type]
            rx = re.compile(b"[" + b"".join(re.escape(bytes([c])) for c in multi) + b"]") if multi else None
            t.src.tables[t.dst] = _Recoder("to_utf8", lat, rx)
            back = _FromUtf8Table({i: i for i in range(128)})
            for cp, b in t.dst2src.items():
                if b:  # nginx reads a 0 entry as "no mapping"
                    back[cp] = chr(b)
            t.dst.tables[t.src] = _Recoder("from_utf8", back)
        else:
            t.src.tables[t.dst] = _Recoder("8bit", bytes(t.src2dst))  # type: ignore[arg-type]
            t.dst.tables[t.src] = _Recoder("8bit", bytes(t.dst2src[i] for i in range(256)))


def _from_utf8(data: bytes, saved_len: int, table: _FromUtf8Table) -> tuple[bytes, bytes]:
    """Recode UTF-8 ``data`` (whose first ``saved_len`` bytes were held from
    the previous chunk); returns (output, bytes to hold for the next)."""
    if data.isascii():
        return data, b""
    n = len(data)
    cut = n
    for k in range(n - 3 if n > 3 else 0, n):
        c = data[k]
        need = 3 if c >= 0xF0 else 2 if c >= 0xE0 else 1 if c >= 0xC2 else 0
        if need and n - 1 - k < need:
            cut = k
            break
    try:
        text = data[:cut].decode("utf-8")
    except UnicodeDecodeError:
        return _from_utf8_slow(data, saved_len, table)
    return text.translate(table).encode("latin-1"), data[cut:]


def _from_utf8_slow(data: bytes, saved_len: int, table: _FromUtf8Table) -> tuple[bytes, bytes]:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        c = data[i]
        if c < 0x80:
            out.append(c)
            i += 1
            continue
        cp, j = utf8_decode(data, i)
        if cp == INCOMPLETE:
            return bytes(out), data[i:]
        if cp < 0x10000:
            v = table.get(cp)
            if isinstance(v, str) and len(v) == 1:
                out.append(ord(v))
            else:
                out += b"&#%d;" % cp
        elif cp > 0x10FFFF:
            out.append(0x3F)
            # nginx's path for a sequence begun in the previous chunk skips
            # at least the held bytes
            if i == 0 and saved_len > j:
                j = saved_len
        else:
            out += b"&#%d;" % cp
        i = j
    return bytes(out), b""


def _to_utf8(data: bytes, rc: _Recoder) -> bytes:
    rx = rc.multi
    m = rx.search(data) if rx is not None else None
    if m is None:
        return data  # ngx_http_charset_recode_to_utf8's shortcut
    k = m.start()
    if k > 512:
        return data[:k] + data[k:].decode("latin-1").translate(rc.table).encode("latin-1")
    return data.decode("latin-1").translate(rc.table).encode("latin-1")


# --- filters --------------------------------------------------------------------------

class CharsetCtx:
    __slots__ = ("rc", "saved", "feed", "next")

    def __init__(self, rc: _Recoder) -> None:
        self.rc = rc
        self.saved = b""
        self.feed: BodyFeed | None = None
        self.next: Any = None


def _lookup(r: Request, name: str) -> Charset | None:
    mc: CharsetMainConf = r.http.main["charset"]
    return mc.by_name.get(name.lower())


def _from_conf(r: Request, v: Any) -> tuple[str, Charset | None] | None:
    """A configured charset as (name, Charset or None if unknown); None when
    its variable is not found (nginx: NGX_ERROR)."""
    if isinstance(v, Charset):
        return v.name, v
    name = v.get(r)
    if name is None:
        return None
    return name, _lookup(r, name)


def charset_header_filter(r: Request, next: Any) -> None:
    if r.internal_sub:
        # TODO(subrequests): nginx recodes a subrequest into the main
        # request's charset (ngx_http_main_request_charset)
        next(r)
        return
    h = r.hout
    lc: CharsetLocConf = r.loc.charset
    # ngx_http_destination_charset
    if not h.content_type:
        next(r)
        return
    override = r.ctx.get("override_charset")  # X-Accel-Charset from an upstream
    if override:
        dst = _lookup(r, override)
        if dst is None:
            r.log_error(logmod.ERROR, f'unknown charset "{override}" to override')
            next(r)
            return
        dst_name = override
    else:
        if lc.charset is None:
            next(r)
            return
        if h.charset:
            if not lc.override_charset:
                next(r)
                return
        elif not type_listed(lc.types, h):
            next(r)
            return
        d = _from_conf(r, lc.charset)
        if d is None:
            _fail(r)
            return
        dst_name, dst = d
    # ngx_http_source_charset
    if h.charset:
        src_name: str = h.charset
        src = _lookup(r, src_name)
    elif lc.source_charset is None:
        _set(h, dst_name)
        next(r)
        return
    else:
        s = _from_conf(r, lc.source_charset)
        if s is None:
            _fail(r)
            return
        src_name, src = s
    if dst is None or src is None:
        # both unknown and the same name: nothing to recode
        if dst is src and src_name.lower().startswith(dst_name.lower()):
            _set(h, dst_name)
        else:
            _no_map(r, src_name, dst_name)
        next(r)
        return
    if src is dst:
        h.content_type = bare_type(h.content_type)
        _set(h, dst_name)
        next(r)
        return
    if h.content_encoding:
        next(r)  # an encoded body cannot be recoded: no charset at all
        return
    rc = src.tables.get(dst)
    if rc is None:
        _no_map(r, src_name, dst_name)
        next(r)
        return
    h.content_type = bare_type(h.content_type)
    _set(h, dst_name)
    r.ctx["charset"] = CharsetCtx(rc)
    if rc.kind != "8bit":
        h.content_length = None
        h.remove("Content-Length")
    next(r)


def _set(h: Any, name: str) -> None:
    # ngx_http_set_charset: no charset on a redirect (Netscape 4 applied it
    # to the next page)
    if h.status == 301 or h.status == 302:
        h.charset = None
    else:
        h.charset = name


def _no_map(r: Request, src: str, dst: str) -> None:
    r.log_error(logmod.ERROR, f'no "charset_map" between the charsets "{src}" and "{dst}"')


def _fail(r: Request) -> None:
    # the header filter's NGX_ERROR: nginx closes the connection, no response
    r.keepalive = False
    r.finalize(ERROR)


def _consume(r: Request, data: bytes, last: bool) -> None:
    ctx: CharsetCtx = r.ctx["charset"]
    rc = ctx.rc
    if rc.kind == "8bit":
        out = data.translate(rc.table)
    elif rc.kind == "to_utf8":
        out = _to_utf8(data, rc)
    else:
        held = len(ctx.saved)
        if held:
            data = ctx.saved + data
        out, ctx.saved = _from_utf8(data, held, rc.table)
        # what is still held at the end of the body is dropped (nginx)
    if out or last:
        ctx.next(r, [out] if out else [], last)


charset_body_filter = feed_body_filter("charset", _consume)


class CharsetModule(Module):
    name = "charset"
    nginx_name = "ngx_http_charset_filter_module"
    is_http = True
    main_conf = CharsetMainConf
    loc_conf = CharsetLocConf
    directives = [
        dir("charset", HSL | {"lif"}, TAKE1, _set_charset),
        dir("source_charset", HSL | {"lif"}, TAKE1, _set_charset),
        dir("override_charset", HSL | {"lif"}, TAKE1, set_flag("override_charset")),
        # a first charset_types starts from text/html alone (nginx's post
        # handler is ngx_http_html_default_types); unset, the six defaults hold
        dir("charset_types", HSL, MORE1, types_setter("types")),
        dir("charset_map", {"http"}, TAKE2, _charset_map, level="main", block=True),
    ]

    def postconfiguration(self, http: Any) -> None:
        mc: CharsetMainConf = http.main["charset"]
        if mc.by_name is UNSET or mc.by_name is None:
            mc.by_name, mc.maps = {}, []
        # ngx_http_charset_merge_loc_conf collects every (source, charset)
        # pair a location recodes; postconfiguration wants a map for each
        pairs = {(t.src, t.dst) for t in mc.maps} | {(t.dst, t.src) for t in mc.maps}
        for srv in http.servers:
            for loc in _in_order(srv):
                lc: CharsetLocConf = loc.confs_raw["charset"]
                cs, src = lc.charset, lc.source_charset
                if isinstance(cs, Charset) and isinstance(src, Charset) and cs is not src \
                        and (src, cs) not in pairs:
                    raise ConfError(f'no "charset_map" between the charsets "{src.name}" and "{cs.name}"')
        _build_recoders(mc)
        http.header_filters.append(("charset", charset_header_filter, _applies))
        http.body_filters.append(("charset", charset_body_filter, _applies))


def _in_order(srv: Any) -> list[Any]:
    """A server's locations in nginx's merge order (configuration order)."""
    out: list[Any] = []

    def walk(loc: Any) -> None:
        out.append(loc)
        for child in loc.children:
            walk(child)
        for child in loc.if_children:
            walk(child)
    walk(srv.root)
    for named in srv.named.values():
        walk(named)
    return out


def _applies(loc: Any) -> bool:
    return loc.charset.charset is not None
