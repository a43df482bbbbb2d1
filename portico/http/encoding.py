"""Content-coding shared by gzip, brotli, zstd, gzip_static and gunzip.

One place for: Accept-Encoding negotiation, the
``Vary: Accept-Encoding`` mark (nginx's ``r->gzip_vary``), the streaming
compression body filter and the precompressed-file (``*_static``) handler.

Negotiation (``negotiate`` for the filters, ``static_handler`` for files):
- Accept-Encoding is parsed once per distinct header value (RFC 9110
  qvalues, thousandths): an element's own q wins, else ``*``'s, else the
  coding is not acceptable.  ``q=0`` and a malformed q (``q=1.5``,
  ``q=0.1234``) mean "not acceptable", as nginx's ngx_http_gzip_quantity.
  ``identity`` is never refused: an unencoded body is always sent when no
  coding is chosen (nginx never answers 406 either).
- gzip additionally needs nginx's ngx_http_gzip_ok (gzip_http_version,
  gzip_proxied, gzip_disable, msie6), cached per request as nginx does.
- Among the codings that can act on a response (enabled, status
  200/403/404, type listed, length >= min_length, no Content-Encoding yet),
  the highest q wins; a tie goes to zstd, then br, then gzip.
  That tie order is what nginx with ngx_brotli and zstd-nginx-module does
  in practice (their filters run before gzip's, and the first to act sets
  Content-Encoding); unlike them, an explicitly higher q for gzip wins.
- Differences from nginx kept on purpose: ``*`` counts (nginx only looks
  for the literal token "gzip"), and a coding's q is compared with the others'.

Invariants:
- Every coding is registered once at import (``register``); its filter is
  left out of a location's chain by ``applies`` when it is off there, so
  locations without compression pay nothing.
- Bodies are streamed (``pump``, gunzip's loop too): file regions are read
  with ``os.pread`` in ``CHUNK``-byte pieces and output is passed on every
  ``FLUSH_AT`` bytes; neither a whole file nor a whole compressed body is
  built by a filter.  (The h1 writer still queues what it is given: see
  ``compress_body_filter``.)
- gzip, brotli and zstd share their common directives (``filter_directives``),
  setters (``bounded_number``, ``pow2_size``), ``$*_ratio`` and filter
  registration (``FilterModule``); a ``Coding`` says where each one's conf
  lives and how to make its encoder.  ``*_types`` lists are
  ``portico.http.types``'s; a precompressed file is answered with the
  static module's ``file_header`` / ``send_file``.
- A filter that fails mid-body logs (nginx's wording) and closes the
  connection with the response truncated, as nginx's NGX_ERROR does.
"""
from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

from ..conf.parser import Node
from ..core import log as logmod
from ..core import values
from ..core.module import (HSL, MORE1, TAKE1, TAKE2, UNSET, Conf, Directive, Module, dir, set_bufs, set_flag,
                           set_size)
from .modules.static import body_changed, file_header, send_file
from .open_file import open_file
from .request import DECLINED, FileBuf, Request
from .types import HTML_TYPES, type_listed, types_setter

CHUNK = 65536
FLUSH_AT = 65536
OFF, ON, ALWAYS = 0, 1, 2
STATIC_MODES = {"off": OFF, "on": ON, "always": ALWAYS}
COMPRESSIBLE = frozenset({200, 403, 404})

# --- Accept-Encoding ------------------------------------------------------------------------

_ae_cache: dict[str, dict[str, int]] = {}


def _qvalue(v: str) -> int:
    """RFC 9110 qvalue in thousandths; 0 for anything malformed (nginx's rule)."""
    v = v.strip()
    if not v or v[0] not in "01":
        return 0
    whole = int(v[0])
    if len(v) == 1:
        return whole * 1000
    frac = v[2:]
    if v[1] != "." or len(frac) > 3 or (frac and not (frac.isdigit() and frac.isascii())):
        return 0
    q = whole * 1000 + (int(frac.ljust(3, "0")) if frac else 0)
    return q if q <= 1000 else 0


def parse_accept_encoding(value: str) -> dict[str, int]:
    """{coding: q in thousandths}; the first occurrence of a coding counts."""
    got = _ae_cache.get(value)
    if got is not None:
        return got
    out: dict[str, int] = {}
    for elem in value.split(","):
        name, _, params = elem.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1000
        for p in params.split(";"):
            k, eq, v = p.partition("=")
            if eq and k.strip().lower() == "q":
                q = _qvalue(v)
        out.setdefault(name, q)
    if len(_ae_cache) > 256:
        _ae_cache.clear()
    _ae_cache[value] = out
    return out


def quality(r: Request, coding: str) -> int:
    """How much the client wants ``coding`` (0: not acceptable)."""
    ae = r.hin.get("accept-encoding")
    if not ae or r.internal_sub:
        return 0
    parsed = parse_accept_encoding(ae)
    q = parsed.get(coding)
    if q is None:
        q = parsed.get("*", 0)
    return q


# --- Vary -------------------------------------------------------------------------------------

def mark_vary(r: Request) -> None:
    """nginx's ``r->gzip_vary = 1``: with ``gzip_vary on`` the response says
    ``Vary: Accept-Encoding`` (once; first in the header list, where nginx's
    header filter puts it before the other headers)."""
    h = r.hout
    if r.ctx.get("vary") is h:
        return
    r.ctx["vary"] = h
    if r.loc.gzip.vary:
        h.headers.insert(0, ("Vary", "Accept-Encoding"))


# --- the codings ------------------------------------------------------------------------------

@dataclass
class Coding:
    """One content coding: its token, tie rank, where its settings live and
    how to make its encoder.  The loc conf of ``module`` has ``enable``,
    ``min_length`` and ``types`` (the fields ``filter_directives`` sets)."""
    name: str  # the Content-Encoding token: "zstd", "br", "gzip"
    rank: int  # lower wins a tie of q
    module: str  # the Portico module whose loc conf holds it
    suffix: str  # precompressed file suffix: ".zst", ".br", ".gz"
    encoder: Callable[[Request], "Encoder"]  # a fresh encoder for this response
    static_module: str  # the module whose loc conf's ``mode`` is *_static
    gate: Callable[[Request], bool] | None = None  # a test before q (gzip: gzip_ok)
    ratio_digits: int = 2  # of $<module>_ratio (see ``ratio``)

    def quality(self, r: Request) -> int:
        """How much the client wants this coding for ``r`` (0: not at all)."""
        if self.gate is not None and not self.gate(r):
            return 0
        return quality(r, self.name)

    def eligible(self, r: Request) -> bool:
        """Can its filter act on this response?"""
        c = getattr(r.loc, self.module)
        return filter_eligible(r, c.enable, c.min_length, c.types)

    def static_mode(self, loc: Any) -> int:
        """OFF / ON / ALWAYS: the location's *_static setting."""
        return int(getattr(loc, self.static_module).mode)


CODINGS: list[Coding] = []


def register(c: Coding) -> None:
    for i, old in enumerate(CODINGS):
        if old.name == c.name:
            CODINGS[i] = c
            break
    else:
        CODINGS.append(c)
    CODINGS.sort(key=lambda x: x.rank)


def filter_eligible(r: Request, enable: bool, min_length: int, types: Any) -> bool:
    """The common test of ngx_http_gzip_header_filter and its copies in
    ngx_brotli and zstd-nginx-module."""
    h = r.hout
    # HEAD is not excluded: nginx sets r->header_only for it only in the
    # last header filter, so a HEAD answer carries the compressed headers
    if not enable or h.status not in COMPRESSIBLE or h.content_encoding:
        return False
    cl = h.content_length
    if cl is not None and cl < min_length:
        return False
    return type_listed(types, h)


def negotiate(r: Request) -> str | None:
    """The coding the filters should apply to this response, or None.

    Every coding that could act marks Vary (each of nginx's filters sets
    r->gzip_vary before testing the client)."""
    best: str | None = None
    best_q = 0
    for c in CODINGS:
        if not c.eligible(r):
            continue
        mark_vary(r)
        q = c.quality(r)
        if q > best_q:
            best, best_q = c.name, q
    return best


def start_encoding(r: Request, coding: str, encoder: "Encoder") -> None:
    """The header half of a compression filter: the body will be ``coding``."""
    r.hout.content_encoding = coding
    body_changed(r)
    if not r.header_only:
        r.ctx["enc:" + coding] = encoder


# --- streaming --------------------------------------------------------------------------------

class Encoder:
    """A streaming compressor: ``feed`` input, ``end`` once; counts bytes."""
    __slots__ = ("zin", "zout", "done")
    failed_msg = "compression failed"

    def __init__(self) -> None:
        self.zin = 0
        self.zout = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        raise NotImplementedError

    def feed_chunk(self, data: bytes, final: bool) -> bytes:
        """``feed`` as ``pump`` calls it (an encoder has no use for ``final``)."""
        return self.feed(data)


class LibEncoder(Encoder):
    """An encoder over a library compressor's own ``process`` / ``finish``
    pair (brotli's Compressor, zstandard's compressobj), counting bytes."""
    __slots__ = ("_process", "_finish")

    def __init__(self, process: Callable[[bytes], bytes], finish: Callable[[], bytes]) -> None:
        super().__init__()
        self._process = process
        self._finish = finish

    def feed(self, data: bytes) -> bytes:
        self.zin += len(data)
        out = self._process(data)
        self.zout += len(out)
        return out

    def end(self) -> bytes:
        out = self._finish()
        self.zout += len(out)
        return out


def ratio(zin: int, zout: int, digits: int = 2) -> str:
    """nginx's "%ui.%02ui" with its rounding (2.125 -> 2.13)."""
    if digits == 3:  # zstd-nginx-module: truncated, three digits
        return f"{zin // zout}.{zin * 1000 // zout % 1000:03d}"
    i = zin // zout
    frac = zin * 100 // zout % 100
    if zin * 1000 // zout % 10 > 4:
        frac += 1
        if frac > 99:
            i += 1
            frac = 0
    return f"{i}.{frac:02d}"


def read_chunks(r: Request, b: Any) -> Iterator[bytes]:
    """The bytes of a body buffer, a file region in CHUNK-byte reads."""
    if not isinstance(b, FileBuf):
        if len(b):
            yield bytes(b)
        return
    off, left = b.offset, b.size
    while left > 0:
        data = os.pread(b.fd, min(left, CHUNK), off)
        if not data:
            raise EOFError
        off += len(data)
        left -= len(data)
        yield data


def pump(r: Request, bufs: list[Any], last: bool, feed: Callable[[bytes, bool], bytes],
         next: Any) -> list[bytes] | None:
    """The streaming loop of the compression filters and gunzip: every chunk
    of ``bufs`` (file regions read CHUNK bytes at a time) goes through
    ``feed(chunk, final)``, ``final`` when it comes from the body's last
    buffer; output goes on to ``next`` every FLUSH_AT bytes.  Returns the
    output not yet passed on, or None when the request ended meanwhile.
    A truncated file (EOFError) and ``feed``'s errors reach the caller."""
    out: list[bytes] = []
    size = 0
    n = len(bufs)
    for i, b in enumerate(bufs):
        final = last and i == n - 1
        for chunk in read_chunks(r, b):
            data = feed(chunk, final)
            if data:
                out.append(data)
                size += len(data)
                if size >= FLUSH_AT:
                    next(r, out, False)
                    out, size = [], 0
                    if r.done:
                        return None
    return out


def fail(r: Request, level: int, msg: str) -> None:
    """A filter's NGX_ERROR after the header went out: log, close, truncated."""
    r.log_error(level, msg)
    r.keepalive = False
    r.terminate()


def header_filter(c: Coding) -> Callable[[Request, Any], None]:
    """The header half of a compression filter: when ``c`` wins the
    negotiation, the body will be ``c``-coded by a fresh encoder."""
    def filter_(r: Request, next: Any) -> None:
        if negotiate(r) == c.name:
            start_encoding(r, c.name, c.encoder(r))
        next(r)
    return filter_


def compress_body_filter(coding: str) -> Callable[[Request, list[Any], bool, Any], None]:
    """The body half of a compression filter (gzip, br, zstd).

    Output goes on every FLUSH_AT compressed bytes, so a filter never holds
    more than that; the h1 writer queues it until the socket takes it (it
    has no pull interface for filters yet)."""
    key = "enc:" + coding

    def body_filter(r: Request, bufs: list[Any], last: bool, next: Any) -> None:
        enc: Encoder | None = r.ctx.get(key)
        if enc is None or enc.done:
            next(r, bufs, last)
            return
        try:
            out = pump(r, bufs, last, enc.feed_chunk, next)
            if out is None:  # the request ended while output went on
                enc.done = True
                return
            if last:
                enc.done = True
                tail = enc.end()
                if tail:
                    out.append(tail)
        except EOFError:
            enc.done = True
            fail(r, logmod.ALERT, "file was truncated while sending")
            return
        except Exception as e:  # a codec error must end the response, not the worker
            enc.done = True
            fail(r, logmod.ALERT, f"{enc.failed_msg}: {e}")
            return
        if out or last:
            next(r, out, last)
    return body_filter


# --- precompressed files ------------------------------------------------------------------------

def static_handler(r: Request) -> int:
    """gzip_static, brotli_static and zstd_static as one CONTENT handler.

    Each enabled coding follows ngx_http_gzip_static_handler: ``on`` serves
    ``FILE.gz`` when the client accepts the coding (opening it even when not,
    with gzip_vary, just to mark Vary as nginx does); ``always`` serves it
    regardless.  Acceptable codings are tried by q (ties zstd, br, gzip),
    then ``always`` ones; the first existing file is the answer."""
    if r.method not in ("GET", "HEAD") or r.uri.endswith("/") or "\0" in r.uri:
        return DECLINED
    loc = r.loc
    tried: list[tuple[int, int, Coding, int]] = []
    for c in CODINGS:
        mode = c.static_mode(loc)
        if mode == OFF:
            continue
        q = c.quality(r)
        tried.append((-q, c.rank, c, mode))
    if not tried:
        return DECLINED
    tried.sort(key=lambda t: (t[0], t[1]))
    vary = loc.gzip.vary
    base: str | None = None
    for negq, _, c, mode in tried:
        ok = mode == ALWAYS or negq < 0
        if not ok and not vary:
            continue
        if base is None:
            base = r.map_uri_to_path()
            if base is None:
                return 500
        path = base + c.suffix
        try:
            # open_file_cache and disable_symlinks apply, as to nginx's
            # gzip_static; the descriptor lives until the request ends
            fd, st = open_file(r, path)
        except OSError as e:
            _open_failed(r, e, path)
            continue
        except ValueError:  # an embedded NUL: no such file
            continue
        if mode == ON:
            mark_vary(r)
            if not ok:
                continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            r.log_error(logmod.CRIT, f'"{path}" is not a regular file')
            return 404
        file_header(r, st)
        r.hout.content_encoding = c.name
        return send_file(r, fd, st)
    return DECLINED


def _open_failed(r: Request, e: OSError, path: str) -> None:
    err = e.errno or 0
    if err in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
        return
    level = logmod.ERROR if err in (errno.EACCES, errno.EMLINK, errno.ELOOP) else logmod.CRIT
    r.log_error(level, f'open() "{path}" failed ({err}: {e.strerror})')


def register_static(http: Any) -> None:
    """Add ``static_handler`` to the CONTENT phase once per http{} (called by
    each *_static module's postconfiguration when it is used somewhere)."""
    if static_handler not in http.phases.get("content", []):
        http.add_phase_handler("content", static_handler,
                                lambda lc: any(c.static_mode(lc) != OFF for c in CODINGS))


# --- the filter modules' directives and hooks ------------------------------------------------
#
# ngx_brotli and zstd-nginx-module copied ngx_http_gzip_filter_module's
# command table and hooks; here the copies are one table and one class.

Setter = Callable[[Any, Node, Any], None]


def bounded_number(attr: str, lo: int, hi: int) -> Setter:
    """ngx_conf_set_num_slot with an ngx_conf_check_num_bounds post."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        if getattr(conf, attr) is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        v = values.parse_number(node.args[0])
        if v is None:
            raise node.error(f'"{node.name}" directive invalid number')
        if not lo <= v <= hi:
            raise node.error(f"value must be between {lo} and {hi}")
        setattr(conf, attr, v)
    return setter


def pow2_size(attr: str, lo_bits: int, hi_bits: int, offset: int, text: str) -> Setter:
    """A size that must be 2**b for lo_bits <= b <= hi_bits, stored as
    ``b - offset`` (gzip_window -> windowBits, gzip_hash -> memLevel,
    brotli_window -> lgwin); ``text`` lists the sizes for the error."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        if getattr(conf, attr) is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        v = values.parse_size(node.args[0])
        if v is None:
            raise node.error(f'"{node.name}" directive invalid value')
        for bits in range(lo_bits, hi_bits + 1):
            if v == 1 << bits:
                setattr(conf, attr, bits - offset)
                return
        raise node.error(f'"{node.name}" directive must be {text}')
    return setter


class FilterLocConf(Conf):
    """The loc conf fields ``filter_directives`` sets, with the defaults the
    three modules share (nginx's gzip ones: off, 20 bytes, text/html, 32 4k)."""
    enable: bool = False
    min_length: int = 20
    types: Any = HTML_TYPES  # a frozenset, or ANY_TYPE for "*"
    bufs: tuple = (32, 4096)


def filter_directives(prefix: str, min_length_nargs: tuple[int, int | None] = TAKE1) -> list[Directive]:
    """What every compression filter has, into its loc conf's ``enable``,
    ``bufs``, ``types`` and ``min_length``: ``PREFIX`` (also in ``if``),
    ``PREFIX_buffers`` (buffering only: partial), ``PREFIX_types`` and
    ``PREFIX_min_length`` (zstd-nginx-module takes 1MORE there)."""
    return [
        dir(prefix, HSL | {"lif"}, TAKE1, set_flag("enable")),
        dir(f"{prefix}_buffers", HSL, TAKE2, set_bufs("bufs"), status="partial"),
        dir(f"{prefix}_types", HSL, MORE1, types_setter("types")),
        dir(f"{prefix}_min_length", HSL, min_length_nargs, set_size("min_length")),
    ]


class FilterModule(Module):
    """A compression filter module: ``$<name>_ratio``, its header and body
    filters (left out of a location's chain where it is off) and, when
    ``static_here`` and some level turned its *_static on (main conf
    ``used``), the shared precompressed-file handler."""

    is_http = True
    coding: ClassVar[Coding]
    static_here: ClassVar[bool] = False

    def preconfiguration(self, http: Any) -> None:
        c = self.coding

        def ratio_var(r: Request) -> str | None:
            enc = r.ctx.get("enc:" + c.name)
            if enc is None or not enc.done or enc.zout == 0:
                return None
            return ratio(enc.zin, enc.zout, c.ratio_digits)
        http.variables.add(f"{self.name}_ratio", ratio_var)

    def postconfiguration(self, http: Any) -> None:
        c, name = self.coding, self.name

        def applies(loc: Any) -> bool:
            return bool(getattr(loc, name).enable)
        http.header_filters.append((name, header_filter(c), applies))
        http.body_filters.append((name, compress_body_filter(c.name), applies))
        if self.static_here and http.main[name].used:
            register_static(http)
