"""Opening files as nginx's ngx_open_cached_file does: open_file_cache and
disable_symlinks.

Invariants:
- ``open_file(r, path)`` returns ``(fd, stat)`` or raises OSError (errno as
  the kernel said; ELOOP when disable_symlinks refused a link).  The fd
  stays valid until the request ends: an uncached fd is closed by a request
  cleanup, a cached one is counted and closed only once no request uses it
  and the cache has dropped it.  ``stat_file(r, path)`` is the test-only
  form (try_files, ``if -f``, index) and never keeps a descriptor.
- A cache (``open_file_cache max=N inactive=T``) belongs to the location
  level that declared it, per worker (nginx's is per process too).  An
  entry younger than ``open_file_cache_valid`` is used as is; an older one
  is checked again with stat() and reopened when the file changed.  Entries
  unused for ``inactive`` go, the least recently used goes when ``max`` is
  reached.  ``open_file_cache_min_uses``: a descriptor is kept only once a
  name was asked for that often within ``inactive``.  Errors are cached only
  with ``open_file_cache_errors on``.
- disable_symlinks ``on`` opens every component below ``from=`` with
  O_NOFOLLOW, relative to the already opened parent (openat); with
  ``if_not_owner`` a link is followed only when it and its target have the
  same owner.  The part of the path up to ``from=`` may contain links.
"""
from __future__ import annotations

import errno
import os
import stat
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .request import Request

O_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_O_SEARCH = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NONBLOCK


class OpenFileCache:
    """One ``open_file_cache max=N inactive=T`` (shared by the levels that inherit it)."""

    def __init__(self, max_entries: int, inactive: float) -> None:
        self.max = max_entries
        self.inactive = inactive
        self.entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first

    def expire(self, now: float) -> None:
        entries = self.entries
        while entries:
            name, e = next(iter(entries.items()))
            if now - e.accessed < self.inactive and len(entries) <= self.max:
                break
            del entries[name]
            e.drop()


class _Entry:
    __slots__ = ("fd", "st", "err", "uses", "created", "accessed", "count", "dropped")

    def __init__(self, now: float) -> None:
        self.fd = -1
        self.st: os.stat_result | None = None
        self.err = 0
        self.uses = 0
        self.created = now
        self.accessed = now
        self.count = 0  # requests using fd now
        self.dropped = False

    def drop(self) -> None:
        self.dropped = True
        if self.count == 0:
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def release(self) -> None:
        self.count -= 1
        if self.count == 0 and self.dropped:
            self.close()


def stat_file(r: "Request", path: str) -> os.stat_result:
    """The test-only open (``of.test_only``): stat() under the location's rules."""
    core = r.loc.core
    cache: OpenFileCache | None = core.open_file_cache
    if cache is None:
        return _stat(r, path)
    e = _lookup(r, cache, path, want_fd=False)
    if e.err:
        raise OSError(e.err, os.strerror(e.err), path)
    assert e.st is not None
    return e.st


def open_file(r: "Request", path: str) -> tuple[int, os.stat_result]:
    core = r.loc.core
    cache: OpenFileCache | None = core.open_file_cache
    if cache is None:
        fd = _open(r, path)
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        if not stat.S_ISDIR(st.st_mode):
            r.cleanup.append(lambda: os.close(fd))
        else:
            os.close(fd)
            fd = -1
        return fd, st
    e = _lookup(r, cache, path, want_fd=True)
    if e.err:
        raise OSError(e.err, os.strerror(e.err), path)
    assert e.st is not None
    if e.fd < 0:
        if stat.S_ISDIR(e.st.st_mode):
            return -1, e.st
        # not (yet) worth a cached descriptor: this request's own
        fd = _open(r, path)
        r.cleanup.append(lambda: os.close(fd))
        return fd, e.st
    e.count += 1
    r.cleanup.append(e.release)
    return e.fd, e.st


def _lookup(r: "Request", cache: OpenFileCache, path: str, want_fd: bool) -> _Entry:
    core = r.loc.core
    now = time.monotonic()
    cache.expire(now)
    e = cache.entries.get(path)
    if e is not None:
        cache.entries.move_to_end(path)
        e.uses += 1
        e.accessed = now
        if now - e.created < core.open_file_cache_valid and (e.err or e.fd >= 0 or not want_fd
                                                              or e.uses < core.open_file_cache_min_uses
                                                              or (e.st is not None and stat.S_ISDIR(e.st.st_mode))):
            return e
        # too old (or now worth a descriptor): look at the file again
        cache.entries.pop(path)
        e.drop()
        uses = e.uses
    else:
        uses = 1
    fresh = _Entry(now)
    fresh.uses = uses
    try:
        if want_fd and uses >= core.open_file_cache_min_uses:
            fd = _open(r, path)
            try:
                fresh.st = os.fstat(fd)
            except OSError:
                os.close(fd)
                raise
            if stat.S_ISDIR(fresh.st.st_mode):
                os.close(fd)
            else:
                fresh.fd = fd
        else:
            fresh.st = _stat(r, path)
    except OSError as ex:
        fresh.err = ex.errno or errno.EIO
        if not core.open_file_cache_errors:
            raise
    cache.entries[path] = fresh
    if len(cache.entries) > cache.max:
        cache.expire(now)
    return fresh


# --- disable_symlinks ---------------------------------------------------------------------

def _symlinks(r: "Request", path: str) -> tuple[str, int]:
    """ngx_http_set_disable_symlinks: (mode, length of the prefix of ``path``
    where links are allowed, 0 for none)."""
    core = r.loc.core
    mode = core.disable_symlinks
    if mode == "off" or core.disable_symlinks_from is None:
        return mode, 0
    frm = core.disable_symlinks_from.eval(r)
    n = len(frm)
    if not n or n > len(path) or not path.startswith(frm):
        return mode, 0
    if n == len(path):
        return "off", 0
    if path[n] == "/":
        return mode, n
    if frm.endswith("/"):
        return mode, n - 1
    return mode, 0


def _open(r: "Request", path: str) -> int:
    mode, skip = _symlinks(r, path)
    if mode == "off":
        return os.open(path, O_FILE)
    return _walk(path, skip, mode, O_FILE)


def _stat(r: "Request", path: str) -> os.stat_result:
    mode, skip = _symlinks(r, path)
    if mode == "off":
        return os.stat(path)
    fd = _walk(path, skip, mode, O_FILE)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def _walk(path: str, skip: int, mode: str, flags: int) -> int:
    """ngx_open_file_wrapper: open ``path`` one component at a time below
    ``path[:skip]`` (or below "/")."""
    if skip:
        base, rest = path[:skip], path[skip + 1:]
    else:
        base, rest = "/", path.lstrip("/")
    at = os.open(base, _O_SEARCH)
    try:
        parts = [p for p in rest.split("/") if p]
        for i, name in enumerate(parts):
            last = i == len(parts) - 1
            fd = _openat(at, name, flags if last else _O_SEARCH, mode)
            os.close(at)
            at = fd
        fd, at = at, -1
        return fd
    finally:
        if at >= 0:
            os.close(at)


def _openat(at: int, name: str, flags: int, mode: str) -> int:
    if mode == "on":
        return os.open(name, flags | os.O_NOFOLLOW, dir_fd=at)
    # if_not_owner (ngx_openat_file_owner): follow, then compare owners
    fd = os.open(name, flags, dir_fd=at)
    try:
        link = os.stat(name, dir_fd=at, follow_symlinks=False)
        if stat.S_ISLNK(link.st_mode) and link.st_uid != os.fstat(fd).st_uid:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    except OSError:
        os.close(fd)
        raise
    return fd


def cache_setting(cf: Any, node: Any) -> OpenFileCache | None:
    """``open_file_cache off | max=N [inactive=time]`` (ngx_http_core_open_file_cache)."""
    from ..core import values
    max_entries = -1
    inactive = 60.0
    off = False
    for a in node.args:
        if a.startswith("max="):
            v = values.parse_number(a[4:])
            if v is None or v <= 0:
                raise node.error(f'invalid "open_file_cache" parameter "{a}"')
            max_entries = v
        elif a.startswith("inactive="):
            t = values.parse_time(a[9:], default_unit_ms=False)
            if t is None:
                raise node.error(f'invalid "open_file_cache" parameter "{a}"')
            inactive = t
        elif a == "off":
            off = True  # nginx: "off" anywhere wins
        else:
            raise node.error(f'invalid "open_file_cache" parameter "{a}"')
    if off:
        return None
    if max_entries < 0:
        raise node.error('"open_file_cache" must have the "max" parameter')
    return OpenFileCache(max_entries, inactive)
