"""The static fast path: a plain GET or HEAD of a small file, answered
without the phase loop and the filter chains.

Most requests a static server sees need none of nginx's machinery after
FIND_CONFIG: no rewrite, access or try_files handler acts in the location,
no filter changes the response, the file exists and is small.  For such a
location a ``StaticPlan`` is built once per configuration; ``serve`` then
does the work of ngx_http_static_handler, the header filters that apply
(not_modified and range only see that nothing is asked of them) and the
HTTP/1 header writer in one function.

Invariants:
- The response is byte-for-byte the generic path's: same header lines in
  the same order, same log variables.  ``tests/integration/test_static_fast.py``
  compares both paths on the same requests.
- A plan exists only where every phase handler that could run after
  FIND_CONFIG says it does nothing there (``HttpMain.phase_applies``), the
  location has no exclusive content handler, and the location's filter
  chains hold only filters this path reproduces.  A handler registered
  without a predicate disables the plan: new modules are safe by default.
- A file is read as nginx reads it (open, fstat, pread, close) unless a
  stat shows it unchanged since it was kept in ``_FILES``: only contents
  whose mtime and ctime were over ``SETTLED`` seconds old when read are
  kept, so any later change moves ctime (or the inode, for a rename), and
  a lost permission moves ctime too.  One stat instead of four calls.
- ``serve`` returns False, having sent and changed nothing the generic path
  depends on, for anything it does not reproduce: other methods, a body,
  conditional or Range headers (``Request.plain_get`` is False for all of
  these, and for every protocol but HTTP/1.x), internal requests, a URI
  ending in '/', any error opening the file, anything but a regular file,
  files past ``SMALL_FILE`` (those go out by sendfile on the generic path).
"""
from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING, Any

from .modules.static import content_type_for, etag_for
from .open_file import O_FILE
from .proto.h1_write import SMALL_FILE, head_tail, server_line
from .response import HeadersOut, date_bytes

if TYPE_CHECKING:
    from .core_module import HttpMain
    from .request import Request

_S_ISREG = stat.S_ISREG
_pread = os.pread
_open = os.open
_close = os.close
_fstat = os.fstat
_stat = os.stat
_time = time.time

#: phases whose handlers run after FIND_CONFIG for a request in its location
_AFTER_FIND_CONFIG = ("rewrite", "preaccess", "access", "precontent", "content")
#: filters this path reproduces (for a 200 without conditional or Range headers
#: they change nothing but Accept-Ranges)
_HEADER_OK = frozenset({"not_modified", "range"})
_BODY_OK = frozenset({"range"})


class _FileHead:
    """A file version's header: what follows the Date value (with its ETag
    and Content-Type for the log), and the whole header of one second."""

    __slots__ = ("tail", "etag", "ct", "sec", "whole")

    def __init__(self, tail: bytes, etag: str | None, ct: str | None) -> None:
        self.tail = tail
        self.etag = etag
        self.ct = ct
        self.sec = -1  # the second ``whole`` was made for
        self.whole = b""


class StaticPlan:
    """What a location's static answer needs, computed once."""

    __slots__ = ("root", "core", "nphases", "etag", "accept_ranges", "head", "tails")

    def __init__(self, lc: Any, root: str, nphases: int) -> None:
        core = lc.core
        self.root = root
        self.core = core
        self.nphases = nphases
        self.etag = core.etag
        self.accept_ranges = core.max_ranges != 0
        # the header up to the Date value; the rest is per file (``_tail``)
        self.head = ("HTTP/1.1 200 OK\r\n" + server_line(core.server_tokens) + "Date: ").encode()
        self.tails: dict[tuple[str, int, float, bool], _FileHead] = {}

    def _tail(self, r: "Request", st: os.stat_result, keepalive: bool) -> "_FileHead":
        """The header of one file version after its Date value: made once,
        while the file does not change."""
        uri, size, mtime = r.uri, st.st_size, st.st_mtime
        key = (uri, size, mtime, keepalive)  # serve() looks it up first
        ct = content_type_for(r, uri) or None  # "" is nginx's "no Content-Type"
        etag = etag_for(st) if self.etag else None
        h = HeadersOut()  # what serve() leaves in r.hout, for the writer's own formatting
        h.content_type, h.content_length, h.last_modified = ct, size, mtime
        h.etag, h.accept_ranges = etag, self.accept_ranges
        text = head_tail(r, h, 200, self.core, False, keepalive, False)
        entry = _FileHead(text.encode("utf-8", "surrogateescape"), etag, ct)
        if len(self.tails) >= 1024:
            self.tails.clear()
        self.tails[key] = entry
        return entry

    def serve(self, r: "Request") -> bool:
        """Answer ``r`` and return True, or return False untouched."""
        # plain_get: the protocol (h1) saw a GET or HEAD without body,
        # conditional or Range headers (not_modified and range would act)
        if not r.plain_get or r.internal or r.limit_rate_set or r.hout.headers or r.discard_output:
            return False  # (a subrequest is never plain_get)
        uri = r.uri
        if uri[-1] == "/":
            return False
        conn = r.conn
        path = self.root + uri
        header_only = r.header_only
        try:
            st = _stat(path)
        except (OSError, ValueError):
            return False  # the generic path answers the error and logs it
        size = st.st_size
        if not _S_ISREG(st.st_mode) or size > SMALL_FILE:
            return False
        ent = _FILES.get(path)
        if ent is not None and ent[0] == (st.st_ino, st.st_dev, size, st.st_mtime_ns, st.st_ctime_ns):
            body = b"" if header_only else ent[1]
        else:
            got = _read(path, header_only)
            if got is None:
                return False
            st, body = got
            size = st.st_size
        if len(body) != size and not header_only:
            return False  # truncated under us: the generic path reports it
        keepalive = r.keepalive
        if keepalive and not conn.keepalive_allowed(self.core):
            keepalive = r.keepalive = False
        mtime = st.st_mtime
        fh = self.tails.get((uri, size, mtime, keepalive))
        if fh is None:
            fh = self._tail(r, st, keepalive)
        # the Date of the request's second (nginx: the time cached for the
        # event loop iteration), so the whole header is made once a second
        sec = int(r.start_time)
        if fh.sec != sec:
            fh.sec = sec
            fh.whole = self.head + date_bytes(sec) + fh.tail
        head = fh.whole
        # what the log and $sent_http_* read, as the generic path leaves it
        h = r.hout
        h.status = 200
        h.content_length = size
        h.last_modified = mtime
        h.content_type = fh.ct
        h.etag = fh.etag
        h.accept_ranges = self.accept_ranges
        r.status = 200
        r.header_sent = True
        n = len(body)
        r.body_bytes_sent = n
        r.bytes_sent = len(head) + n
        r.phase_index = self.nphases  # the phases are over
        conn.write_static(r, head + body)
        return True


#: path -> ((ino, dev, size, mtime_ns, ctime_ns), bytes): small files whose
#: timestamps had settled when read (``_read``), checked by a stat each time
_FILES: dict[str, tuple[tuple[int, int, int, int, int], bytes]] = {}
_files_bytes = 0
#: at most this much file content is kept per worker
FILES_MAX = 4 << 20
#: a file changed less than this long ago is not kept: a second change within
#: the file system's timestamp granularity (up to 2 s) could leave every
#: stat field as it was
SETTLED = 2.5


def _read(path: str, header_only: bool) -> tuple[os.stat_result, bytes] | None:
    """The file's stat and contents (b"" for HEAD), read as nginx does
    (open, fstat, pread, close); None for anything the generic path must
    answer.  Contents whose timestamps have settled are kept in ``_FILES``."""
    global _files_bytes
    try:
        fd = _open(path, O_FILE)
    except (OSError, ValueError):
        return None
    try:
        st = _fstat(fd)
        size = st.st_size
        if not _S_ISREG(st.st_mode) or size > SMALL_FILE:
            return None
        if header_only or not size:
            return st, b""
        body = _pread(fd, size, 0)
    except OSError:
        return None
    finally:
        _close(fd)
    if len(body) == size and _time() - max(st.st_mtime, st.st_ctime) > SETTLED:
        if _files_bytes + size > FILES_MAX:
            _FILES.clear()
            _files_bytes = 0
        old = _FILES.get(path)
        if old is not None:
            _files_bytes -= len(old[1])
        _FILES[path] = ((st.st_ino, st.st_dev, size, st.st_mtime_ns, st.st_ctime_ns), body)
        _files_bytes += size
    return st, body


def build_plan(http: "HttpMain", lc: Any, nphases: int) -> StaticPlan | None:
    """The location's plan, or None where the generic path must run
    (``nphases``: the phase handlers' count, where a served request ends)."""
    core = lc.core
    if core.handler is not None or core.alias or core.open_file_cache is not None:
        return None
    if core.disable_symlinks != "off" or core.limit_rate or core.internal:
        return None
    if core.root is None:
        root = http.default_root
    else:
        root = core.root.const
        if root is None:
            return None  # variables in root: evaluated per request by the generic path
    if not nothing_else_acts(http, lc, _AFTER_FIND_CONFIG):
        return None
    return StaticPlan(lc, root, nphases)


def nothing_else_acts(http: "HttpMain", lc: Any, phases: tuple[str, ...]) -> bool:
    """True when no handler of ``phases`` (but the static module's) says it
    may act in the location, and its filter chains hold only filters that
    leave a plain GET's 200 as it is (a fast path's precondition)."""
    static = getattr(http, "content_static", None)
    for phase in phases:
        for h in http.phases.get(phase, ()):
            if phase == "content" and h is static:
                continue
            applies = http.phase_applies.get(h)
            if applies is None or applies(lc):
                return False
    for entries, ok in ((http.header_filters, _HEADER_OK), (http.body_filters, _BODY_OK)):
        for e in entries:
            if e[0] not in ok and (len(e) < 3 or e[2](lc)):
                return False
    return True

