"""ngx_http_gzip_filter_module, with the gzip_* directives nginx keeps in
ngx_http_core_module (gzip_vary, gzip_proxied, gzip_http_version,
gzip_disable) and ngx_http_gzip_ok, which gzip_static and gunzip share.

Invariants:
- The body is a gzip stream as nginx writes it: zlib's 10-byte header
  ``1f 8b 08 00 00000000 XFL 03`` (XFL 4 at level 1, 2 at 9), raw deflate at ``gzip_comp_level`` with
  nginx's window and memory level (shrunk for small known lengths as
  ngx_http_gzip_filter_memory does), then CRC32 and ISIZE little-endian.
- Only 200/403/404 responses, not HEAD, without Content-Encoding, of a
  listed type and not known to be shorter than gzip_min_length are
  compressed; Content-Length and Accept-Ranges go, a strong ETag becomes
  weak (ngx_http_weak_etag).  Which coding wins when brotli/zstd are on too
  is decided in ``portico.http.encoding``.
- ``gzip_ok`` is computed once per request (nginx's r->gzip_tested) and
  looks at the response headers present when it first runs.
- gzip_buffers, postpone_gzipping and gzip_no_buffer are checked as nginx
  does but change only buffering, never the bytes: accepted as partial.
- What brotli and zstd copied from this module (gzip, gzip_buffers,
  gzip_types, gzip_min_length, $gzip_ratio, the filters' registration) is
  ``portico.http.encoding``'s ``filter_directives`` and ``FilterModule``.
"""
from __future__ import annotations

import struct
import time
import zlib
from typing import Any

from ...conf.parser import Node
from ...core import pcre
from ...core.module import HSL, MORE1, TAKE1, UNSET, dir, set_enum, set_flag, set_size
from .. import encoding
from ..request import Request
from ..response import parse_http_date

# gzip_proxied bits (nginx's NGX_HTTP_GZIP_PROXIED_*)
P_OFF, P_EXPIRED, P_NO_CACHE, P_NO_STORE, P_PRIVATE = 0x02, 0x04, 0x08, 0x10, 0x20
P_NO_LM, P_NO_ETAG, P_AUTH, P_ANY = 0x40, 0x80, 0x100, 0x200
_PROXIED = {"off": P_OFF, "expired": P_EXPIRED, "no-cache": P_NO_CACHE, "no-store": P_NO_STORE,
            "private": P_PRIVATE, "no_last_modified": P_NO_LM, "no_etag": P_NO_ETAG, "auth": P_AUTH,
            "any": P_ANY}
_HTTP_VERSIONS = {"HTTP/0.9": 9, "HTTP/1.0": 1000, "HTTP/1.1": 1001, "HTTP/2.0": 2000, "HTTP/3.0": 3000}
# the header zlib writes for nginx (deflateInit2 with wbits + 16): no mtime,
# XFL 4 at level 1 ("fastest"), 2 at level 9 ("best"), OS 3 (unix)
GZ_HEADERS = {level: b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([4 if level == 1 else 2 if level == 9 else 0])
              + b"\x03" for level in range(1, 10)}


class GzipLocConf(encoding.FilterLocConf):
    level: int = 1
    wbits: int = 15
    memlevel: int = 8
    postpone: int = 0
    no_buffer: bool = False
    # ngx_http_core_module's part
    vary: bool = False
    proxied: int = P_OFF
    http_version: int = 1001
    disable: tuple = ()  # compiled regexes, matched against User-Agent
    disable_msie6: bool = False


def _proxied(cf: Any, node: Node, conf: GzipLocConf) -> None:
    # ngx_conf_set_bitmask_slot: directives accumulate, a repeat only warns
    cur = 0 if conf.proxied is UNSET else conf.proxied
    for a in node.args:
        bit = _PROXIED.get(a.lower())
        if bit is None:
            raise node.error(f'invalid value "{a}"')
        if cur & bit:
            cf.cycle.warn(f'duplicate value "{a}"', node)
        cur |= bit
    conf.proxied = cur


def _disable(cf: Any, node: Node, conf: GzipLocConf) -> None:
    # a level with gzip_disable has its own regex list (even if only msie6),
    # while the msie6 flag is inherited on its own, as in nginx's merge
    regexes = list(conf.disable) if conf.disable is not UNSET else []
    for a in node.args:
        if a == "msie6":
            conf.disable_msie6 = True
            continue
        try:
            regexes.append(pcre.compile(a, caseless=True))
        except pcre.PcreError as e:
            raise node.error(e.message) from None
    conf.disable = tuple(regexes)


# --- ngx_http_gzip_ok ----------------------------------------------------------------------

def msie6(ua: str) -> bool:
    """ngx_http_process_user_agent's msie6 bit: MSIE 4.x/5.x, or 6.x without SV1."""
    i = ua.find("MSIE ")
    if i < 0 or i + 7 >= len(ua) or "Opera" in ua:
        return False
    if ua[i + 6] != ".":
        return False
    c = ua[i + 5]
    if c in "45":
        return True
    return c == "6" and ua.find("SV1", i + 8) < 0


def _cc_has(values_: list[str], token: str) -> bool:
    for v in values_:
        for part in v.split(","):
            if part.split("=", 1)[0].split(";", 1)[0].strip().lower() == token:
                return True
    return False


def _proxied_ok(r: Request, c: GzipLocConf) -> bool:
    p = c.proxied
    if p & P_OFF:
        return False
    if p & P_ANY:
        return True
    if p & P_AUTH and r.hin.get("authorization") is not None:
        return True
    h = r.hout
    expires = h.get("expires")
    if expires is not None:
        if not p & P_EXPIRED:
            return False
        e = parse_http_date(expires)
        if e is None:
            return False
        d_hdr = h.get("date")
        if d_hdr is not None:
            d = parse_http_date(d_hdr)
            if d is None:
                return False
        else:
            d = int(time.time())
        return e < d
    cc = [v for k, v in h.headers if k.lower() == "cache-control"]
    if cc:
        return bool((p & P_NO_CACHE and _cc_has(cc, "no-cache"))
                    or (p & P_NO_STORE and _cc_has(cc, "no-store"))
                    or (p & P_PRIVATE and _cc_has(cc, "private")))
    if p & P_NO_LM and (h.last_modified is not None or h.get("last-modified") is not None):
        return False
    if p & P_NO_ETAG and h.etag is not None:
        return False
    return True


def gzip_ok(r: Request) -> bool:
    """ngx_http_gzip_ok, once per request."""
    got = r.ctx.get("gzip_ok")
    if got is not None:
        return got
    ok = _gzip_ok(r)
    r.ctx["gzip_ok"] = ok
    return ok


def _gzip_ok(r: Request) -> bool:
    if encoding.quality(r, "gzip") == 0:
        return False
    c: GzipLocConf = r.loc.gzip
    ua = r.hin.get("user-agent")
    if c.disable_msie6 and ua and msie6(ua):
        return False
    if _HTTP_VERSIONS.get(r.version, 1001) < c.http_version:
        return False
    if r.hin.get("via") is not None and not _proxied_ok(r, c):
        return False
    if c.disable and ua:
        for rx in c.disable:
            if rx.search(ua):
                return False
    return True


# --- the filter ------------------------------------------------------------------------------

class GzipEncoder(encoding.Encoder):
    __slots__ = ("z", "crc", "started", "header")
    failed_msg = "deflate() failed"

    def __init__(self, c: GzipLocConf, length: int | None) -> None:
        super().__init__()
        wbits, memlevel = c.wbits, c.memlevel
        if length is not None and length > 0:
            # ngx_http_gzip_filter_memory: the real window is 262 bytes smaller
            while wbits > 9 and length < (1 << (wbits - 1)) - 262:
                wbits -= 1
                memlevel -= 1
        self.z = zlib.compressobj(c.level, zlib.DEFLATED, -wbits, max(memlevel, 1))
        self.crc = 0
        self.started = False
        self.header = GZ_HEADERS[c.level]

    def feed(self, data: bytes) -> bytes:
        self.zin += len(data)
        self.crc = zlib.crc32(data, self.crc)
        out = self.z.compress(data)
        if not out:
            return b""
        self.zout += len(out)
        if not self.started:
            self.started = True
            return self.header + out
        return out

    def end(self) -> bytes:
        out = self.z.flush(zlib.Z_FINISH)
        self.zout += len(out) + 18  # nginx's zout counts header and trailer
        trailer = struct.pack("<II", self.crc, self.zin & 0xFFFFFFFF)
        if not self.started:
            self.started = True
            return self.header + out + trailer
        return out + trailer


GZIP = encoding.Coding("gzip", 2, "gzip", ".gz", lambda r: GzipEncoder(r.loc.gzip, r.hout.content_length),
                       "gzip_static", gate=gzip_ok)
encoding.register(GZIP)


class GzipModule(encoding.FilterModule):
    name = "gzip"
    nginx_name = "ngx_http_gzip_filter_module"
    loc_conf = GzipLocConf
    coding = GZIP
    directives = [
        *encoding.filter_directives("gzip"),
        dir("gzip_comp_level", HSL, TAKE1, encoding.bounded_number("level", 1, 9)),
        dir("gzip_window", HSL, TAKE1,
            encoding.pow2_size("wbits", 9, 15, 0, "512, 1k, 2k, 4k, 8k, 16k, or 32k")),
        dir("gzip_hash", HSL, TAKE1,
            encoding.pow2_size("memlevel", 9, 17, 8, "512, 1k, 2k, 4k, 8k, 16k, 32k, 64k, or 128k")),
        dir("postpone_gzipping", HSL, TAKE1, set_size("postpone"), status="partial"),
        dir("gzip_no_buffer", HSL, TAKE1, set_flag("no_buffer"), status="partial"),
        dir("gzip_vary", HSL, TAKE1, set_flag("vary")),
        dir("gzip_proxied", HSL, MORE1, _proxied),
        dir("gzip_http_version", HSL, TAKE1, set_enum("http_version", {"1.0": 1000, "1.1": 1001})),
        dir("gzip_disable", HSL, MORE1, _disable),
    ]
