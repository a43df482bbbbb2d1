"""try_files (nginx's ngx_http_try_files_module, documented under ngx_http_core_module).

``try_files file ... uri;`` / ``try_files file ... =code;`` in server and
location context, run in the PRECONTENT phase exactly as
ngx_http_try_files_handler:

- Every parameter is compiled once (variables allowed).  A trailing ``/``
  on any parameter but the last one means "test for a directory" and is
  dropped from the name; otherwise a candidate must exist and not be a
  directory (nginx's open-file info: FIFOs, sockets, unreadable files count).
- A candidate is mapped like ngx_http_map_uri_to_path: ``root + name``; with
  ``alias`` in a prefix location, a candidate *with variables* whose value
  starts with the location's part of the URI loses that part first (a
  constant candidate is appended as written); with ``alias`` in a regex
  location the candidate is appended to the alias value.
- The first existing candidate becomes ``r.uri`` (alias in a prefix
  location: the URI's location part + the candidate; alias in a regex
  location: the candidate, and only for a file) and the request goes on to
  CONTENT in the same location with its arguments unchanged.
- The last parameter is the fallback: ``=code`` finalizes with code;
  ``@name`` enters that named location; anything else is an internal
  redirect to it, its ``?args`` (if any) replacing the request's, otherwise
  the arguments are emptied (ngx_http_split_args + internal redirect).
- try_files is never inherited (nginx's module has no merge), and the phase
  handler is only registered when some location uses the directive.
"""
from __future__ import annotations

import errno
import stat
from typing import Any

from ...conf.parser import Node
from ...core import log as logmod
from ...core.module import LOCATION, SERVER, Conf, Module, UNSET, dir
from ..open_file import stat_file
from ..request import DECLINED, DONE, Request

# stat() errors that only mean "not there": anything else is logged at crit
_QUIET = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})


class TryFile:
    """One compiled parameter: a ComplexValue (or constant), the
    directory-test flag, and for the last one the ``=code`` (0: none)."""

    __slots__ = ("value", "const", "test_dir", "code")

    def __init__(self, value: Any, test_dir: bool, code: int = 0) -> None:
        self.value = value
        self.const: str | None = value.const
        self.test_dir = test_dir
        self.code = code


class TryFilesMainConf(Conf):
    used: bool = False  # some location has try_files: register the handler


class TryFilesLocConf(Conf):
    try_files: Any = None  # tuple[TryFile, ...] | None

    def merge(self, parent: Conf | None) -> None:
        # nginx's module has no merge function: never inherited
        if self.try_files is UNSET:
            self.try_files = None


def _try_files(cf: Any, node: Node, conf: TryFilesLocConf) -> None:
    if conf.try_files is not UNSET:
        raise node.error('"try_files" directive is duplicate')
    main = cf.extra["http"]
    args = node.args
    last = len(args) - 1
    items: list[TryFile] = []
    for i, a in enumerate(args):
        name = a
        test_dir = False
        if name.endswith("/") and i < last:
            test_dir = True
            name = name[:-1]
        items.append(TryFile(main.variables.compile(name, node.file, node.line), test_dir))
    fallback = args[last]
    if fallback.startswith("="):
        # ngx_atoi over the digits; a value with variables is one byte short
        # in nginx (no trailing NUL was counted), so it never parses and the
        # message shows it without its last character.
        has_vars = items[last].const is None
        digits = fallback[1:-1] if has_vars else fallback[1:]
        shown = fallback[:-1] if has_vars else fallback
        if not digits or not digits.isascii() or not digits.isdigit() or int(digits) > 999:
            raise node.error(f'invalid code "{shown}"')
        items[last].code = int(digits)  # 0 stays a URI, as nginx's bit-field test
    conf.try_files = tuple(items)
    cf.extra["http"].main["try_files"].used = True


def try_files_handler(r: Request) -> int:
    tf = r.loc.try_files.try_files
    if tf is None:
        return DECLINED
    core = r.loc.core
    location = r.location
    uri = r.uri
    # nginx's clcf->alias: 0 (root), the location name's length (prefix
    # location) or "whole path" (regex location)
    alias_len = 0
    alias_whole = False
    if core.alias:
        root = core.alias.eval(r)
        if location is not None and location.regex is not None:
            alias_whole = True
        else:
            alias_len = len(location.name) if location is not None else 0
    else:
        root = core.root.eval(r) if core.root else r.http.default_root
    last = len(tf) - 1
    for i, t in enumerate(tf):
        name = t.const
        if name is None:
            name = t.value.eval(r)
            if alias_len and name[:alias_len] == uri[:alias_len]:
                name = name[alias_len:]
        if i == last:
            return _fallback(r, t, name)
        path = root + name
        try:
            st = stat_file(r, path)
        except OSError as e:
            if e.errno not in _QUIET:
                r.log_error(logmod.CRIT, f'stat() "{path}" failed ({e.errno}: {e.strerror})')
            continue
        except ValueError:  # an embedded NUL: no such file
            continue
        if stat.S_ISDIR(st.st_mode) != t.test_dir:
            continue
        if alias_whole:
            if not t.test_dir:
                r.uri = name
                # ngx_http_map_uri_to_path appends the URI to the alias from now on
                r.add_uri_to_alias = True
        elif alias_len:
            r.uri = uri[:alias_len] + name
        else:
            r.uri = name
        return DECLINED
    return DECLINED  # not reached: the last parameter always answers


def _fallback(r: Request, t: TryFile, name: str) -> int:
    if t.code:
        return t.code
    if name.startswith("@"):
        server = r.server
        loc = server.named.get(name) if server is not None else None
        if loc is None:
            r.log_error(logmod.ERROR, f'could not find named location "{name}"')
            return 500
        r.named_location(loc)
        return DONE
    path, sep, args = name.partition("?")
    # ngx_http_split_args: no '?' means empty arguments, not the old ones
    r.internal_redirect(path, args if sep else "")
    return DONE


class TryFilesModule(Module):
    name = "try_files"
    nginx_name = "ngx_http_core_module"
    is_http = True
    main_conf = TryFilesMainConf
    loc_conf = TryFilesLocConf
    directives = [
        dir("try_files", frozenset({SERVER, LOCATION}), (2, None), _try_files),
    ]

    def postconfiguration(self, http: Any) -> None:
        if http.main["try_files"].used:
            http.add_phase_handler("precontent", try_files_handler, lambda lc: lc.try_files.try_files is not None)
