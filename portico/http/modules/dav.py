"""ngx_http_dav_module: PUT, DELETE, MKCOL (COPY and MOVE: not yet).

This is also the core's first reader of request bodies: PUT reads the body
into a temporary file in client_body_temp_path and renames it into place,
as nginx does, so client_max_body_size, client_body_timeout and the temp
file path are exercised for real.

Invariants:
- A PUT never exposes a partial file: the body is complete in the temp file
  before the rename.
- Answers and statuses follow nginx: PUT 201 (created) / 204 (replaced),
  409 for a missing parent without create_full_put_path or a URI ending in
  '/', DELETE 204 / 404 / 409, MKCOL 201 / 405 (exists) / 409 / 415.
"""
from __future__ import annotations

import errno
import os
import shutil
from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import HSL, MORE1, TAKE1, Conf, Module, UNSET, dir, set_flag
from ..request import DECLINED, DONE, Request

_METHODS = ("PUT", "DELETE", "MKCOL", "COPY", "MOVE")


class DavLocConf(Conf):
    methods: frozenset = frozenset()
    create_full_put_path: bool = False
    access: int = 0o600
    min_delete_depth: int = 0


def _dav_methods(cf: Any, node: Node, conf: DavLocConf) -> None:
    if conf.methods is not UNSET:
        raise node.error('"dav_methods" directive is duplicate')
    if node.args == ["off"]:
        conf.methods = frozenset()
        return
    ms = set()
    for a in node.args:
        m = a.upper()
        if m not in _METHODS or a != m:
            raise node.error(f'invalid value "{a}" in "dav_methods" directive')
        ms.add(m)
    conf.methods = frozenset(ms)


def _dav_access(cf: Any, node: Node, conf: DavLocConf) -> None:
    mode = 0
    for a in node.args:
        who, _, perms = a.partition(":")
        shift = {"user": 6, "group": 3, "all": 0}.get(who)
        if shift is None or not perms or any(p not in "rw" for p in perms):
            raise node.error(f'invalid value "{a}" in "dav_access" directive')
        for p in perms:
            mode |= (4 if p == "r" else 2) << shift
    conf.access = mode


def _min_delete_depth(cf: Any, node: Node, conf: DavLocConf) -> None:
    if not node.args[0].isdigit():
        raise node.error('"min_delete_depth" directive invalid number')
    conf.min_delete_depth = int(node.args[0])


def dav_handler(r: Request) -> int:
    dc = r.loc.dav
    if r.method not in dc.methods:
        return DECLINED
    if r.method == "PUT":
        return _put(r)
    if r.method == "DELETE":
        return _delete(r)
    if r.method == "MKCOL":
        return _mkcol(r)
    return 405


def _put(r: Request) -> int:
    if r.uri.endswith("/"):
        r.log_error(logmod.ERROR, f'cannot PUT to a collection')
        return 409
    if r.hin.get("content-range") is not None:
        r.log_error(logmod.ERROR, "PUT with range is unsupported")
        return 501
    path = r.map_uri_to_path()
    if path is None:
        return 500

    def done(body: Any) -> None:
        if body.error:
            if not r.done and not r.header_sent:
                r.finalize(500 if body.error == "tempfile" else 400)
            return
        r.finalize(_put_finish(r, path, body.detach_file()))

    if r.body is None:
        _write_empty(r, path)
        return DONE
    r.body.read(done, in_file=True)
    return DONE


def _write_empty(r: Request, path: str) -> None:
    existed = os.path.exists(path)
    try:
        with open(path, "wb"):
            pass
        os.chmod(path, r.loc.dav.access)
    except OSError as e:
        r.finalize(_fs_error(r, e, path))
        return
    r.finalize(_created(r, existed))


def _put_finish(r: Request, path: str, tmp: str | None) -> int:
    dc = r.loc.dav
    existed = os.path.exists(path)
    if existed and os.path.isdir(path):
        if tmp:
            os.unlink(tmp)
        r.log_error(logmod.ERROR, f'"{path}" could not be created ({errno.EISDIR}: Is a directory)')
        return 409
    parent = os.path.dirname(path)
    if dc.create_full_put_path and not os.path.isdir(parent):
        try:
            os.makedirs(parent, 0o700 | (dc.access & 0o777) | 0o100, exist_ok=True)
        except OSError as e:
            return _fs_error(r, e, parent)
    try:
        if tmp is None:
            with open(path, "wb"):
                pass
        else:
            os.chmod(tmp, dc.access)
            os.rename(tmp, path)
    except OSError as e:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            r.log_error(logmod.ERROR, f'rename() "{tmp}" to "{path}" failed ({e.errno}: {e.strerror})')
            return 409
        return _fs_error(r, e, path)
    return _created(r, existed)


def _created(r: Request, existed: bool) -> int:
    h = r.hout
    if existed:
        h.status = 204
    else:
        h.status = 201
        h.location = r.uri
    h.content_length = 0
    r.send_header()
    r.send(None, True)
    return DONE


def _delete(r: Request) -> int:
    path = r.map_uri_to_path()
    if path is None:
        return 500
    depth = r.hin.get("depth")
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            if not r.uri.endswith("/"):
                r.log_error(logmod.ERROR, f'DELETE "{path}" failed')
                return 409
            if depth is not None and depth != "infinity":
                r.log_error(logmod.ERROR, '"Depth" header must be infinity')
                return 400
            shutil.rmtree(path)
        else:
            if depth is not None and depth not in ("0", "infinity"):
                r.log_error(logmod.ERROR, '"Depth" header must be 0 or infinity')
                return 400
            os.unlink(path)
    except OSError as e:
        return _fs_error(r, e, path)
    if r.body is not None:
        r.body.discard()
    r.hout.status = 204
    r.send_header()
    r.send(None, True)
    return DONE


def _mkcol(r: Request) -> int:
    if r.body is not None:
        r.log_error(logmod.ERROR, "MKCOL with body is unsupported")
        return 415
    if not r.uri.endswith("/"):
        r.log_error(logmod.ERROR, f'MKCOL can create a collection only')
        return 409
    path = (r.map_uri_to_path() or "").rstrip("/")
    try:
        os.mkdir(path, 0o700 | (r.loc.dav.access & 0o777) | 0o100)
    except FileExistsError:
        return 405
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return 409
        return _fs_error(r, e, path)
    r.hout.status = 201
    r.hout.location = r.uri
    r.hout.content_length = 0
    r.send_header()
    r.send(None, True)
    return DONE


def _fs_error(r: Request, e: OSError, path: str) -> int:
    status = {errno.ENOENT: 404, errno.ENOTDIR: 409, errno.EACCES: 403, errno.EPERM: 403,
              errno.EEXIST: 405, errno.ENOTEMPTY: 409}.get(e.errno or 0, 500)
    level = logmod.ERROR if status != 500 else logmod.CRIT
    r.log_error(level, f'"{path}" failed ({e.errno}: {e.strerror})')
    return status


class DavModule(Module):
    name = "dav"
    nginx_name = "ngx_http_dav_module"
    is_http = True
    loc_conf = DavLocConf
    directives = [
        dir("dav_methods", HSL, MORE1, _dav_methods, status="partial"),
        dir("create_full_put_path", HSL, TAKE1, set_flag("create_full_put_path")),
        dir("dav_access", HSL, (1, 3), _dav_access),
        dir("min_delete_depth", HSL, TAKE1, _min_delete_depth),
    ]

    def postconfiguration(self, http: Any) -> None:
        http.add_phase_handler("content", dav_handler,
                                lambda lc: "GET" in lc.dav.methods or "HEAD" in lc.dav.methods)
