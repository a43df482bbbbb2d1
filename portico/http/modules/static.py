"""ngx_http_static_module and ngx_http_index_module: files and index files.

Invariants:
- The path is always ``root + uri`` (or the alias mapping); ``uri`` was
  normalised by the protocol layer so it never climbs out of the root.
- The Content-Type comes from the URI's extension (``r->exten``), never from
  the mapped file name; an empty type (``default_type ""``) means none.
- The 301 Location for a directory is the decoded URI escaped as nginx's
  NGX_ESCAPE_URI, plus '/' and the raw ``?args``.
- Errors map as nginx: ENOENT/ENOTDIR -> 404 (logged at error level when
  ``log_not_found``), EACCES -> 403, a directory without a trailing slash ->
  301 to ``uri/``, methods other than GET/HEAD/POST -> 405, POST -> 405.
- The file descriptor is owned by the request and closed in its cleanup.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import HSL, MORE1, Conf, Module, UNSET, dir
from ..uri import ESCAPE_URI, escape
from ..open_file import open_file, stat_file
from ..request import DECLINED, FileBuf, OK, Request

# ngx_http_static_handler: anything else (EPERM, EIO...) is a 500 logged at crit
_ERRNO_STATUS = {errno.ENOENT: 404, errno.ENOTDIR: 404, errno.ENAMETOOLONG: 404,
                 errno.EACCES: 403, errno.ELOOP: 403, errno.EMLINK: 403}


def uri_exten(uri: str) -> str:
    """nginx's ``r->exten`` (ngx_http_set_exten): the text after the last '.' of
    the last segment, unless that '.' starts the segment ("/.htaccess" has none)."""
    i = len(uri) - 1
    while i > 1:
        c = uri[i]
        if c == ".":
            if uri[i - 1] != "/":
                return uri[i + 1:]
            return ""
        if c == "/":
            return ""
        i -= 1
    return ""


def content_type_for(r: Request, uri: str) -> str:
    """ngx_http_set_content_type: by the URI's extension (not the file's: an
    ``alias`` or regex capture may map it elsewhere), else ``default_type``."""
    core = r.loc.core
    ext = uri_exten(uri)
    if ext:
        t = core.types.get(ext.lower())
        if t is not None:
            return t
    return core.default_type


def etag_for(st: os.stat_result) -> str:
    return f'"{int(st.st_mtime):x}-{st.st_size:x}"'


def weak_etag(h: Any) -> None:
    """ngx_http_weak_etag: ``"x"`` becomes ``W/"x"``; a value that is not a
    quoted string is dropped; a weak one (``W/`` and more) stays."""
    etag = h.etag
    if etag is None or (len(etag) > 2 and etag.startswith("W/")):
        return
    h.etag = f"W/{etag}" if etag.startswith('"') else None


def body_changed(r: Request) -> None:
    """What a filter that rewrites the body does to the header (gzip, gunzip,
    addition): ngx_http_clear_content_length, ngx_http_clear_accept_ranges
    (ranges of the new body are not served either) and ngx_http_weak_etag."""
    h = r.hout
    h.content_length = None
    h.accept_ranges = False
    r.allow_ranges = False
    weak_etag(h)


def _open_error(r: Request, e: OSError, path: str) -> int:
    status = _ERRNO_STATUS.get(e.errno or 0, 500)
    level = logmod.ERROR if status != 500 else logmod.CRIT
    if status == 404 and not r.loc.core.log_not_found:
        return status
    r.log_error(level, f'open() "{path}" failed ({e.errno}: {e.strerror})')
    return status


def static_handler(r: Request) -> int:
    if r.method not in ("GET", "HEAD", "POST"):
        return 405
    if r.uri.endswith("/"):
        return DECLINED
    path = r.map_uri_to_path()
    if path is None:
        return 500
    try:
        # the descriptor lives until the request ends (a cleanup or the cache)
        fd, st = open_file(r, path)
    except OSError as e:
        return _open_error(r, e, path)
    except ValueError:  # an embedded NUL: no such file
        return _open_error(r, OSError(errno.ENOENT, os.strerror(errno.ENOENT)), path)
    if stat.S_ISDIR(st.st_mode):
        if r.body is not None:
            r.body.discard()
        # nginx escapes the decoded URI (NGX_ESCAPE_URI), adds '/' and the raw args
        uri = escape(r.uri, ESCAPE_URI) + "/"
        if r.args:
            uri += "?" + r.args
        r.hout.location = uri
        return 301
    if not stat.S_ISREG(st.st_mode):
        r.log_error(logmod.CRIT, f'"{path}" is not a regular file')
        return 404
    if r.method == "POST":
        return 405
    file_header(r, st)
    r.allow_ranges = True
    return send_file(r, fd, st)


def file_header(r: Request, st: os.stat_result) -> None:
    """The header of a whole file answered 200, as ngx_http_static_handler
    sets it and ngx_http_gzip_static_handler copies it (the request body is
    discarded first): the file's length and mtime, the URI's type, the ETag
    where ``etag on``.  Ranges are the caller's choice (gzip_static: none)."""
    if r.body is not None:
        r.body.discard()
    h = r.hout
    h.status = 200
    h.content_length = st.st_size
    h.last_modified = st.st_mtime
    if not h.content_type:  # ngx_http_set_content_type keeps one already set (X-Accel-Redirect)
        h.content_type = content_type_for(r, r.uri) or None  # "" is nginx's "no Content-Type"
    if r.loc.core.etag:
        h.etag = etag_for(st)


def send_file(r: Request, fd: int, st: os.stat_result) -> int:
    """Send the header, then the whole file (nothing for HEAD, a request that
    ended meanwhile, or an empty file)."""
    r.send_header()
    if r.header_only or r.done or st.st_size == 0:
        r.send(None, True)
        return OK
    r.send([FileBuf(fd, 0, st.st_size)], True)
    return OK


# --- index -------------------------------------------------------------------------

class IndexLocConf(Conf):
    index: tuple = ("index.html",)


def _index(cf: Any, node: Node, conf: IndexLocConf) -> None:
    main = cf.extra["http"]
    if conf.index is UNSET:
        conf.index = ()
    items = []
    for a in node.args:
        if not a:
            raise node.error(f'index "{a}" in "index" directive is invalid')
        if a.startswith("/") and a is not node.args[-1]:
            raise node.error('only the last index in "index" directive should be absolute')
        items.append(main.variables.compile(a, node.file, node.line) if "$" in a else a)
    conf.index = conf.index + tuple(items)


def index_handler(r: Request) -> int:
    """ngx_http_index_handler: the first existing index wins (internal redirect).

    ENOTDIR / ENAMETOOLONG -> 404 and EACCES -> 403 at once; on the first other
    failure the directory itself is tested once (missing -> 404); ENOENT moves
    on to the next index; anything else is a 500.  An absolute (last) index is
    redirected to without a test.  The redirect keeps the request's args.
    """
    if not r.uri.endswith("/"):
        return DECLINED
    if r.method not in ("GET", "HEAD", "POST"):
        return DECLINED
    base = r.map_uri_to_path()
    if base is None:
        return 500
    dir_tested = False
    for item in r.loc.index.index:
        name = item if isinstance(item, str) else item.eval(r)
        if name.startswith("/"):
            r.internal_redirect(name, None)
            return OK
        path = base + name
        try:
            stat_file(r, path)
        except OSError as e:
            err = e.errno or 0
            if err in (errno.ENOTDIR, errno.ENAMETOOLONG, errno.EACCES):
                return _index_error(r, path, e)
            if not dir_tested:
                rc = _index_test_dir(r, base)
                if rc != OK:
                    return rc
                dir_tested = True
            if err == errno.ENOENT:
                continue
            r.log_error(logmod.CRIT, f'stat() "{path}" failed ({err}: {e.strerror})')
            return 500
        # an index that is a directory counts as found (the static handler 301s)
        r.internal_redirect(r.uri + name, None)
        return OK
    return DECLINED


def _index_error(r: Request, file: str, e: OSError) -> int:
    if e.errno == errno.EACCES:
        r.log_error(logmod.ERROR, f'"{file}" is forbidden ({e.errno}: {e.strerror})')
        return 403
    if r.loc.core.log_not_found:
        r.log_error(logmod.ERROR, f'"{file}" is not found ({e.errno}: {e.strerror})')
    return 404


def _index_test_dir(r: Request, base: str) -> int:
    """ngx_http_index_test_dir on the directory (logged without its last '/')."""
    d = base[:-1] if base.endswith("/") and len(base) > 1 else base
    try:
        st = os.stat(d)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            return 403
        if e.errno == errno.ENOENT:
            return _index_error(r, d, e)
        if e.errno == errno.EACCES:
            return OK  # searching was allowed: the index test said so
        r.log_error(logmod.CRIT, f'stat() "{d}" failed ({e.errno}: {e.strerror})')
        return 500
    if stat.S_ISDIR(st.st_mode):
        return OK
    r.log_error(logmod.ALERT, f'"{d}" is not a directory')
    return 500


class StaticModule(Module):
    name = "static"
    nginx_name = "ngx_http_static_module"
    is_http = True
    directives = []

    def postconfiguration(self, http: Any) -> None:
        http.content_static = static_handler


class IndexModule(Module):
    name = "index"
    nginx_name = "ngx_http_index_module"
    is_http = True
    loc_conf = IndexLocConf
    directives = [dir("index", HSL, MORE1, _index)]

    def postconfiguration(self, http: Any) -> None:
        http.add_phase_handler("content", index_handler, lambda lc: False)  # acts only on URIs ending in "/"
