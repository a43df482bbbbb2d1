"""ngx_http_random_index_module: a random file of the directory as its index.

Invariants (ngx_http_random_index_module.c is the spec):
- Runs in the CONTENT phase before index and autoindex (content handlers run
  in reverse registration order), for a URI ending in '/', for GET, HEAD and
  POST, where ``random_index on``; it is registered only if some location
  enables it.
- The directory is ``map_uri_to_path()`` minus its last byte; opendir()
  errors map ENOENT/ENOTDIR/ENAMETOOLONG -> 404 and EACCES -> 403 (error
  level), anything else -> 500 (crit): autoindex's ``open_dir`` and
  ``read_dir`` are used, nginx's two modules having the same code.
- Candidates are the entries not starting with '.' that are regular files:
  by d_type, as nginx (no stat(), so an unreadable file is still chosen and
  the static handler answers 403); a symlink is stat()ed (followed), a
  dangling one (ENOENT, then lstat) is no candidate, and any other
  stat()/readdir() error (ELOOP included) is a 500 logged at crit.
- With no candidate the handler DECLINES (index / autoindex / 403 follow);
  otherwise one is chosen uniformly and the request is internally redirected
  to ``uri + name`` keeping its arguments, and ``$random_index`` is that name.
"""
from __future__ import annotations

import errno
import os
import random
import stat
from typing import Any

from ...core import log as logmod
from ...core.module import LOCATION, TAKE1, Conf, Module, dir, set_flag
from ..request import DECLINED, DONE, Request
from .autoindex import open_dir, path_str, read_dir

_rng = random.Random()


class RandomIndexLocConf(Conf):
    enable: bool = False


def _files(r: Request, dpath: bytes) -> list[bytes] | int:
    """The candidate names, or the status of a failure (already logged)."""
    it = open_dir(r, dpath)
    if isinstance(it, int):
        return it
    names: list[bytes] = []
    prefix = dpath + b"/"
    with it:
        for de in read_dir(r, it, dpath):
            if de is None:
                return 500
            name: bytes = de.name
            # nginx trusts d_type: only a link (or an unknown type) is
            # stat()ed, so a plain file is a candidate even if unreadable
            if not de.is_symlink():
                try:
                    if de.is_file(follow_symlinks=False):
                        names.append(name)
                except OSError:
                    pass  # vanished since readdir: as nginx, not a file
                continue
            full = prefix + name
            try:
                st = os.stat(full)
            except OSError as e:
                # unlike autoindex, only ENOENT (a dangling link) is forgiven
                if e.errno != errno.ENOENT:
                    r.log_error(logmod.CRIT, f'stat() "{path_str(full)}" failed ({e.errno}: {e.strerror})')
                    return 500
                try:
                    st = os.lstat(full)
                except OSError as e2:
                    r.log_error(logmod.CRIT, f'lstat() "{path_str(full)}" failed ({e2.errno}: {e2.strerror})')
                    return 500
            if stat.S_ISREG(st.st_mode):
                names.append(name)
    return names


def random_index_handler(r: Request) -> int:
    if not r.uri.endswith("/") or r.method not in ("GET", "HEAD", "POST"):
        return DECLINED
    if not r.loc.random_index.enable:
        return DECLINED
    path = r.map_uri_to_path()
    if path is None:
        return 500
    found = _files(r, path[:-1].encode("utf-8", "surrogateescape"))
    if isinstance(found, int):
        return found
    if not found:
        return DECLINED
    name = path_str(found[_rng.randrange(len(found))])
    # nginx keeps the name in r->variables, which outlive the redirect
    r.vars["random_index"] = name
    r.internal_redirect(r.uri + name, None)
    return DONE


def _random_index_var(r: Request) -> str | None:
    return r.vars.get("random_index")


class RandomIndexModule(Module):
    name = "random_index"
    nginx_name = "ngx_http_random_index_module"
    is_http = True
    loc_conf = RandomIndexLocConf
    directives = [dir("random_index", frozenset({LOCATION}), TAKE1, set_flag("enable"))]

    def preconfiguration(self, http: Any) -> None:
        http.variables.add("random_index", _random_index_var)

    def postconfiguration(self, http: Any) -> None:
        if any(loc.confs_raw[self.name].enable for loc in http.all_locations()):
            # acts only on URIs ending in "/": never on the static fast path
            http.add_phase_handler("content", random_index_handler, lambda lc: False)
