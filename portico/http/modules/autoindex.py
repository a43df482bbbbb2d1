"""ngx_http_autoindex_module: directory listings in html, xml, json and jsonp.

Invariants (nginx 1.22-1.29, ngx_http_autoindex_module.c is the spec):
- The handler runs in the CONTENT phase after index and random_index (the
  engine calls content handlers in reverse registration order), only for a
  URI ending in '/', only for GET and HEAD (anything else is DECLINED and the
  static handler / core answer 405 or 403), and only where ``autoindex on``.
  It is registered at all only when some location enables it.
- The directory is ``map_uri_to_path()`` minus its last byte (nginx drops the
  trailing '/'); opendir() errors map ENOENT/ENOTDIR/ENAMETOOLONG -> 404 and
  EACCES -> 403 at error level, anything else -> 500 at crit, always logged
  (``open_dir``; it and ``read_dir`` serve random_index too).
- A jsonp callback (``$arg_callback``, raw) longer than 128 bytes or with a
  byte outside [A-Za-z0-9_.] is a 400 logged at info, before the directory is
  opened; an empty or absent callback turns jsonp into plain json.
- The header goes out before the directory is read (no Content-Length, so
  chunked on HTTP/1.1); a HEAD request never reads it.  A read error after
  that ends the request with ERROR (connection closed), as nginx does.
- Every name is handled as raw bytes: entries starting with '.' are skipped;
  each entry is stat()ed (symlinks followed); ENOENT/ELOOP fall back to
  lstat() (a dangling link is "other"), EACCES skips the entry (crit log),
  any other error aborts.  Entries sort directories first, then by strcmp.
- Escaping is nginx's: hrefs NGX_ESCAPE_URI_COMPONENT, html/xml text
  ngx_escape_html (only < > & "), json ngx_escape_json; names are cut to 50
  display columns with "..&gt;", counting UTF-8 characters (with nginx's own
  lenient decoder) only when the response charset is utf-8.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from typing import Any, Callable, Iterator

from ...core import log as logmod
from ...core.module import HSL, TAKE1, Conf, Module, dir, set_enum, set_flag
from ...core.utf8 import utf8_decode
from ..request import DECLINED, ERROR, OK, Request
from ..variables import Getter

HTML, JSON, JSONP, XML = "html", "json", "jsonp", "xml"

NAME_LEN = 50  # NGX_HTTP_AUTOINDEX_NAME_LEN

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_CONTENT_TYPE = {HTML: "text/html", JSON: "application/json", JSONP: "application/javascript",
                 XML: "text/xml"}


class AutoindexLocConf(Conf):
    enable: bool = False
    format: str = HTML
    localtime: bool = False
    exact_size: bool = True


# --- nginx's escaping, byte for byte ----------------------------------------------------

# NGX_ESCAPE_URI_COMPONENT: everything but ALPHA, DIGIT, "-", ".", "_", "~"
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_URI_COMPONENT = tuple(bytes([b]) if b in _KEEP else b"%%%02X" % b for b in range(256))

# ngx_escape_json: '"' and '\\' get a backslash; controls a short or \u00XX form
_JSON = tuple(
    b'\\"' if b == 0x22 else b"\\\\" if b == 0x5C
    else {0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x08: b"\\b", 0x0C: b"\\f"}.get(b, b"\\u00%02X" % b)
    if b < 0x20 else bytes([b])
    for b in range(256))
_JSON_SPECIAL = frozenset(list(range(0x20)) + [0x22, 0x5C])
_HTML_SPECIAL = frozenset(b'<>&"')


def escape_uri_component(name: bytes) -> bytes:
    if all(b in _KEEP for b in name):
        return name
    return b"".join([_URI_COMPONENT[b] for b in name])


def escape_html(s: bytes) -> bytes:
    """ngx_escape_html: only these four characters, '&' first."""
    if not any(b in _HTML_SPECIAL for b in s):
        return s
    return s.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;").replace(b'"', b"&quot;")


def escape_json(s: bytes) -> bytes:
    if not any(b in _JSON_SPECIAL for b in s):
        return s
    return b"".join([_JSON[b] for b in s])


def _utf8_char_len(s: bytes, i: int) -> int:
    """The length of the UTF-8 sequence at s[i] (a byte >= 0x80), or 0 where
    nginx's ngx_utf8_length / ngx_utf8_cpystrn call it invalid: whatever
    ngx_utf8_decode returns above 0x10FFFF (a cut-short sequence included:
    nginx reads the NUL terminator there)."""
    cp, j = utf8_decode(s, i)
    return j - i if cp <= 0x10FFFF else 0


def utf8_length(s: bytes) -> int:
    """ngx_utf8_length: characters, or the byte length if anything is invalid."""
    if s.isascii():
        return len(s)
    i = n = 0
    end = len(s)
    while i < end:
        if s[i] < 0x80:
            i += 1
        else:
            k = _utf8_char_len(s, i)
            if not k:
                return end
            i += k
        n += 1
    return n


def utf8_prefix(s: bytes, chars: int) -> bytes:
    """The first ``chars`` characters of a name utf8_length() found valid."""
    i = 0
    end = len(s)
    while chars and i < end:
        i += 1 if s[i] < 0x80 else _utf8_char_len(s, i)
        chars -= 1
    return s[:i]


# --- dates --------------------------------------------------------------------------

def gmtime(t: int) -> tuple[int, int, int, int, int, int, int]:
    """ngx_gmtime: (year, month 1-12, mday, hour, min, sec, wday 0=Sunday).
    Like nginx it treats a negative time as 0 and never fails on a huge one."""
    if t < 0:
        t = 0
    days, sec = divmod(t, 86400)
    wday = (4 + days) % 7  # January 1, 1970 was a Thursday
    hour, sec = divmod(sec, 3600)
    minute, sec = divmod(sec, 60)
    days = days - (31 + 28) + 719527  # days since March 1, 1 BC
    year = (days + 2) * 400 // (365 * 400 + 100 - 4 + 1)
    yday = days - (365 * year + year // 4 - year // 100 + year // 400)
    if yday < 0:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        yday = 365 + leap + yday
        year -= 1
    mon = (yday + 31) * 10 // 306
    mday = yday - (367 * mon // 12 - 30) + 1
    if yday >= 306:
        year += 1
        mon -= 10
    else:
        mon += 2
    return year, mon, mday, hour, minute, sec, wday


_WDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _http_time(t: int) -> bytes:
    """ngx_http_time: "Wed, 31 Dec 1986 10:00:00 GMT" (year as %4d)."""
    y, mo, d, h, mi, s, wd = gmtime(t)
    return f"{_WDAYS[wd]}, {d:02d} {_MONTHS[mo - 1]} {y:4d} {h:02d}:{mi:02d}:{s:02d} GMT".encode()


def _iso_time(t: int) -> bytes:
    y, mo, d, h, mi, s, _ = gmtime(t)
    return f"{y:4d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z".encode()


def _html_time(t: int) -> bytes:
    y, mo, d, h, mi, _, _ = gmtime(t)
    return f"{d:02d}-{_MONTHS[mo - 1]}-{y} {h:02d}:{mi:02d} ".encode()


def _html_size(size: int, exact: bool, is_dir: bool) -> bytes:
    if exact:
        return b"                  -" if is_dir else b"%19d" % size
    if is_dir:
        return b"      -"
    g, m = 1024 * 1024 * 1024, 1024 * 1024
    if size > g - 1:
        n, scale = size // g + (size % g > g // 2 - 1), b"G"
    elif size > m - 1:
        n, scale = size // m + (size % m > m // 2 - 1), b"M"
    elif size > 9999:
        n, scale = size // 1024 + (size % 1024 > 511), b"K"
    else:
        return b" %6d" % size
    return b"%6d" % n + scale


# --- entries ----------------------------------------------------------------------------

class Entry:
    __slots__ = ("name", "is_dir", "is_file", "mtime", "size")

    def __init__(self, name: bytes, st: os.stat_result) -> None:
        self.name = name
        mode = st.st_mode
        self.is_dir = stat.S_ISDIR(mode)
        self.is_file = stat.S_ISREG(mode)
        self.mtime = st.st_mtime_ns // 1_000_000_000  # time_t: the floor
        self.size = st.st_size


def _sort_key(e: Entry) -> tuple[bool, bytes]:
    return (not e.is_dir, e.name)


def open_dir(r: Request, dpath: bytes) -> os._ScandirIterator[bytes] | int:
    """opendir(): the open directory, or the status of a failure, logged as
    ngx_http_autoindex_error / ngx_http_random_index_error (the same code):
    ENOENT/ENOTDIR/ENAMETOOLONG -> 404 and EACCES -> 403 at error level,
    anything else -> 500 at crit."""
    try:
        return os.scandir(dpath)
    except OSError as e:
        err = e.errno or 0
        if err in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            level, rc = logmod.ERROR, 404
        elif err == errno.EACCES:
            level, rc = logmod.ERROR, 403
        else:
            level, rc = logmod.CRIT, 500
        r.log_error(level, f'opendir() "{path_str(dpath)}" failed ({err}: {e.strerror})')
        return rc


def read_dir(r: Request, it: Iterator[os.DirEntry[bytes]], dpath: bytes
             ) -> Iterator[os.DirEntry[bytes] | None]:
    """readdir() over an open directory: the entries not starting with '.'
    (both modules skip those); a readdir() failure is logged at crit and
    ends the listing with a None, which each caller answers its own way."""
    while True:
        try:
            de = next(it, None)
        except OSError as e:
            r.log_error(logmod.CRIT, f'readdir() "{path_str(dpath)}" failed ({e.errno}: {e.strerror})')
            yield None
            return
        if de is None:
            return
        if de.name[:1] != b".":
            yield de


def _read_entries(r: Request, it: Any, dpath: bytes) -> list[Entry] | None:
    """The loop of ngx_http_autoindex_handler; None after an error nginx
    answers with NGX_ERROR (already logged)."""
    out: list[Entry] = []
    prefix = dpath + b"/"
    for de in read_dir(r, it, dpath):
        if de is None:
            return None
        name: bytes = de.name
        full = prefix + name
        try:
            st = os.stat(full)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.ELOOP):
                r.log_error(logmod.CRIT, f'stat() "{path_str(full)}" failed ({e.errno}: {e.strerror})')
                if e.errno == errno.EACCES:
                    continue
                return None
            try:
                st = os.lstat(full)
            except OSError as e2:
                r.log_error(logmod.CRIT, f'lstat() "{path_str(full)}" failed ({e2.errno}: {e2.strerror})')
                return None
        out.append(Entry(name, st))
    out.sort(key=_sort_key)
    return out


def path_str(b: bytes) -> str:
    """A file system path or name for a log line (undecodable bytes kept)."""
    return b.decode("utf-8", "surrogateescape")


# --- the three renderers ------------------------------------------------------------

def render_html(uri: bytes, entries: list[Entry], utf8: bool, exact: bool, gmtoff: int) -> bytes:
    title = escape_html(uri)
    out = [b"<html>\r\n<head><title>Index of ", title,
           b"</title></head>\r\n<body>\r\n<h1>Index of ", title,
           b"</h1><hr><pre><a href=\"../\">../</a>\r\n"]
    for e in entries:
        name = e.name
        out.append(b'<a href="')
        out.append(escape_uri_component(name))
        out.append(b'/">' if e.is_dir else b'">')
        n = utf8_length(name) if utf8 else len(name)
        if n != len(name):
            # multi-byte UTF-8: cut by characters, then escape what was kept
            shown = utf8_prefix(name, NAME_LEN - 3 if n > NAME_LEN else NAME_LEN)
            out.append(escape_html(shown))
        elif any(b in _HTML_SPECIAL for b in name):
            out.append(escape_html(name[:NAME_LEN - 3] if n > NAME_LEN else name))
        else:
            out.append(name[:NAME_LEN - 3] if n > NAME_LEN else name)
        if n > NAME_LEN:
            out.append(b"..&gt;</a>")
        else:
            if e.is_dir and NAME_LEN - n > 0:
                out.append(b"/")
                n += 1
            out.append(b"</a>")
            if NAME_LEN - n > 0:
                out.append(b" " * (NAME_LEN - n))
        out.append(b" ")
        out.append(_html_time(e.mtime + gmtoff))
        out.append(_html_size(e.size, exact, e.is_dir))
        out.append(b"\r\n")
    out.append(b"</pre><hr></body>\r\n</html>\r\n")
    return b"".join(out)


def render_json(entries: list[Entry], callback: bytes | None) -> bytes:
    out = []
    if callback is not None:
        out += [b"/* callback */\r\n", callback, b"("]
    out.append(b"[")
    rows = []
    for e in entries:
        kind = b"directory" if e.is_dir else b"file" if e.is_file else b"other"
        tail = b'", "size":%d' % e.size if e.is_file else b'"'
        rows.append(b'\r\n{ "name":"' + escape_json(e.name) + b'", "type":"' + kind
                    + b'", "mtime":"' + _http_time(e.mtime) + tail + b" }")
    out.append(b",".join(rows))
    out.append(b"\r\n]")
    if callback is not None:
        out.append(b");")
    return b"".join(out)


def render_xml(entries: list[Entry]) -> bytes:
    out = [b'<?xml version="1.0"?>\r\n<list>\r\n']
    for e in entries:
        kind = b"directory" if e.is_dir else b"file" if e.is_file else b"other"
        size = b'" size="%d' % e.size if e.is_file else b""
        out += [b"<", kind, b' mtime="', _iso_time(e.mtime), size, b'">', escape_html(e.name),
                b"</", kind, b">\r\n"]
    out.append(b"</list>\r\n")
    return b"".join(out)


# --- the handler ------------------------------------------------------------------------

_CALLBACK_OK = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")


def _jsonp_callback(r: Request, arg: Getter) -> bytes | None:
    """ngx_http_autoindex_jsonp_callback: b"" for none, None for a 400."""
    cb = arg(r)
    if not cb:
        return b""
    raw = cb.encode("utf-8", "surrogateescape")
    if len(raw) > 128:
        r.log_error(logmod.INFO, f'client sent too long callback name: "{cb}"')
        return None
    if not all(b in _CALLBACK_OK for b in raw):
        r.log_error(logmod.INFO, f'client sent invalid callback name: "{cb}"')
        return None
    return raw


def make_handler(callback_arg: Getter) -> Callable[[Request], int]:
    """The content handler; ``callback_arg`` is the compiled ``$arg_callback``."""
    def handler(r: Request) -> int:
        return autoindex_handler(r, callback_arg)
    return handler


def autoindex_handler(r: Request, callback_arg: Getter) -> int:
    if not r.uri.endswith("/") or r.method not in ("GET", "HEAD"):
        return DECLINED
    conf: AutoindexLocConf = r.loc.autoindex
    if not conf.enable:
        return DECLINED
    path = r.map_uri_to_path()
    if path is None:
        return 500
    # nginx cuts the last byte (the URI's '/') unless the path is one byte long
    if len(path) > 1:
        path = path[:-1]
    fmt = conf.format
    callback: bytes | None = None
    if fmt == JSONP:
        callback = _jsonp_callback(r, callback_arg)
        if callback is None:
            return 400
        if not callback:
            fmt = JSON
    dpath = path.encode("utf-8", "surrogateescape")
    it = open_dir(r, dpath)
    if isinstance(it, int):
        return it
    with it:
        if r.body is not None:
            r.body.discard()
        h = r.hout
        h.status = 200
        h.content_type = _CONTENT_TYPE[fmt]
        if fmt == XML:
            h.charset = "utf-8"
        r.send_header()
        if r.header_only or r.done:
            r.send(None, True)
            return OK
        entries = _read_entries(r, it, dpath)
    if entries is None:
        return ERROR
    if fmt == HTML:
        # the charset filter has run by now: names are measured in UTF-8
        # characters only when the response says charset=utf-8
        cs = h.charset
        utf8 = cs is not None and cs.lower() == "utf-8"
        gmtoff = time.localtime().tm_gmtoff if conf.localtime else 0
        body = render_html(r.uri.encode("utf-8", "surrogateescape"), entries, utf8, conf.exact_size, gmtoff)
    elif fmt == XML:
        body = render_xml(entries)
    else:
        body = render_json(entries, callback if fmt == JSONP else None)
    r.send([body], True)
    return OK


class AutoindexModule(Module):
    name = "autoindex"
    nginx_name = "ngx_http_autoindex_module"
    is_http = True
    loc_conf = AutoindexLocConf
    directives = [
        dir("autoindex", HSL, TAKE1, set_flag("enable")),
        dir("autoindex_format", HSL, TAKE1,
            set_enum("format", {HTML: HTML, JSON: JSON, JSONP: JSONP, XML: XML})),
        dir("autoindex_localtime", HSL, TAKE1, set_flag("localtime")),
        dir("autoindex_exact_size", HSL, TAKE1, set_flag("exact_size")),
    ]

    def postconfiguration(self, http: Any) -> None:
        # unconfigured servers pay nothing: the handler exists only if used
        if any(loc.confs_raw[self.name].enable for loc in http.all_locations()):
            arg = http.variables.getter("arg_callback")
            # acts only on URIs ending in "/": never on the static fast path
            http.add_phase_handler("content", make_handler(arg), lambda lc: False)
