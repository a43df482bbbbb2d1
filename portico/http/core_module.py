"""ngx_http_core_module: http{}, server{}, location{} and their core directives.

Invariants:
- Every http module gets a fresh loc conf at http, server and location level
  (and srv conf at http and server level); after ``http{}`` is read they are
  merged top-down once (``Conf.merge``), so inheritance is uniform.
- ``HttpMain`` is complete when ``http{}`` returns: servers, location trees,
  server tables per listening socket, phase handlers and filter chains.
"""
from __future__ import annotations

import os
import socket
from typing import Any

from ..conf.errors import ConfError
from ..conf.parser import Node
from ..core.resolver import resolver_setter
from ..core import log as logmod
from ..core import values
from ..core import pcre
from ..core.module import (HTTP, LOCATION, MAIN, MORE1, MORE2, NOARGS, SERVER, TAKE1, TAKE12,
                           Conf, Factory, Module, UNSET, dir, ignore, set_bufs, set_flag,
                           set_msec, set_num, set_off_size, set_sec, set_size, set_str, set_enum)
from .listen import ListenOpt, ListenSpec, parse_listen
from .location import Location
from .server import Server, ServerTable
from .variables import Variables

H = frozenset({HTTP})
S = frozenset({SERVER})
L = frozenset({LOCATION})
HS = frozenset({HTTP, SERVER})
HSL = frozenset({HTTP, SERVER, LOCATION})
SL = frozenset({SERVER, LOCATION})


class CoreMainConf(Conf):
    pass


class CoreSrvConf(Conf):
    client_header_timeout: float = 60.0
    client_header_buffer_size: int = 1024
    large_client_header_buffers: tuple = (4, 8192)
    ignore_invalid_headers: bool = True
    merge_slashes: bool = True
    underscores_in_headers: bool = False


DEFAULT_TYPES = {"html": "text/html", "gif": "image/gif", "jpg": "image/jpeg"}


class ErrorPage:
    __slots__ = ("uri", "overwrite", "named")

    def __init__(self, uri: Any, overwrite: int | None, named: bool) -> None:
        self.uri = uri  # ComplexValue
        self.overwrite = overwrite  # None: keep code; 0: "=" (use the new response's); >0: that code
        self.named = named


class CoreLocConf(Conf):
    root: Any = None  # ComplexValue | None (None -> "html")
    alias: Any = None  # ComplexValue | None
    # nginx's clcf->alias: how much of the URI the alias replaces, the length
    # of the declaring location's name (inherited with the alias); None in a
    # regex location, where the alias is the whole path
    alias_len: int | None = 0
    types: dict = Factory(lambda: dict(DEFAULT_TYPES))  # type: ignore[assignment]
    default_type: str = "text/plain"
    client_max_body_size: int = 1024 * 1024
    client_body_buffer_size: int = 16384
    client_body_timeout: float = 60.0
    client_body_temp_path: str = "client_body_temp"
    client_body_in_file_only: str = "off"
    sendfile: bool = False
    sendfile_max_chunk: int = 2 * 1024 * 1024
    tcp_nopush: bool = False
    tcp_nodelay: bool = True
    keepalive_timeout: float = 75.0
    keepalive_header: float | None = None
    keepalive_requests: int = 1000
    keepalive_time: float = 3600.0
    keepalive_disable: int = 1  # MSIE6 (see _keepalive_disable)
    send_timeout: float = 60.0
    lingering_close: str = "on"
    lingering_time: float = 30.0
    lingering_timeout: float = 5.0
    reset_timedout_connection: bool = False
    error_pages: dict = Factory(dict)  # type: ignore[assignment]
    recursive_error_pages: bool = False
    internal: bool = False
    server_tokens: str = "on"
    etag: bool = True
    if_modified_since: str = "exact"
    log_not_found: bool = True
    log_subrequest: bool = False
    absolute_redirect: bool = True
    port_in_redirect: bool = True
    server_name_in_redirect: bool = False
    msie_padding: bool = True
    msie_refresh: bool = False
    chunked_transfer_encoding: bool = True
    max_ranges: int | None = None
    limit_rate: Any = 0  # int, or a ComplexValue giving a size (nginx 1.17+)
    limit_rate_after: Any = 0
    postpone_output: int = 1460
    output_buffers: tuple = (2, 32768)
    error_log: Any = None  # ErrorLog for this level (None -> cycle log)
    satisfy: str = "all"
    handler: Any = None  # exclusive content handler set by return/proxy_pass/...
    resolver: Any = None
    resolver_timeout: float = 30.0
    open_file_cache: Any = None  # open_file.OpenFileCache, shared by the levels inheriting it
    open_file_cache_valid: float = 60.0
    open_file_cache_min_uses: int = 1
    open_file_cache_errors: bool = False
    disable_symlinks: str = "off"  # off | on | if_not_owner
    disable_symlinks_from: Any = None  # ComplexValue

    def merge(self, parent: Conf | None) -> None:
        # nginx's locations never inherit the exclusive content handler.
        own = self.handler
        super().merge(parent)
        if own is UNSET:
            self.handler = None


class HttpMain:
    """Everything one http{} block produced."""

    def __init__(self, cycle: Any) -> None:
        self.cycle = cycle
        self.variables = Variables()
        self.servers: list[Server] = []
        self.listen_specs: list[ListenSpec] = []
        self.phases: dict[str, list[Any]] = {}
        self.phase_applies: dict[Any, Any] = {}  # handler -> applies(loc_confs), see add_phase_handler
        self.header_filters: list[Any] = []  # functions (r, next) in chain order
        self.body_filters: list[Any] = []  # functions (r, bufs, last, next)
        self.log_handlers: list[Any] = []
        self.main: dict[str, Conf] = {}
        self.modules: list[Module] = []
        self.engine: Any = None  # phases.Engine
        self.default_root = cycle.full_path("html")
        # temp directories modules need (proxy_temp_path...), added in their
        # postconfiguration; the master creates them for the worker user
        self.temp_paths: set[str] = set()
        # functions (r) -> status or 0, run before the phases (Engine.start)
        self.request_checks: list[Any] = []

    def all_locations(self) -> list[Location]:
        """Every location of every server (server roots and named ones too)."""
        out: list[Location] = []
        for srv in self.servers:
            stack = [srv.root] + list(srv.named.values())
            while stack:
                loc = stack.pop()
                out.append(loc)
                stack.extend(loc.children)
                stack.extend(loc.if_children)
        return out

    def add_phase_handler(self, phase: str, handler: Any, applies: Any = None) -> None:
        """Register a phase handler.  ``applies(loc_confs)`` says whether the
        handler may act, in that location, on a GET or HEAD without a body
        for a URI not ending in '/'; where no handler may, static_fast.py
        answers such requests without the phase loop.  Without ``applies``
        the handler is assumed to act everywhere."""
        self.phases.setdefault(phase, []).append(handler)
        if applies is not None:
            self.phase_applies[handler] = applies


# --- block directives -----------------------------------------------------------

def http_modules(cf: Any) -> list[Module]:
    return [m for m in cf.cycle.registry.modules
            if getattr(m, "is_http", False)]


def _http_block(cf: Any, node: Node, conf: Any) -> None:
    if cf.cycle.http is not None:
        raise node.error('"http" directive is duplicate')
    main = HttpMain(cf.cycle)
    cf.cycle.http = main
    mods = http_modules(cf)
    main.modules = mods
    sub = cf.child(HTTP)
    sub.main = {m.name: m.main_conf() for m in mods if m.main_conf}
    sub.srv = {m.name: m.srv_conf() for m in mods if m.srv_conf}
    sub.loc = {m.name: m.loc_conf() for m in mods if m.loc_conf}
    sub.extra = {"http": main, "location": None}
    main.main = sub.main
    for m in mods:
        pre = getattr(m, "preconfiguration", None)
        if pre:
            pre(main)
    sub.process(node.block or [])
    _finish_http(sub, main, mods)


def _finish_http(cf: Any, main: HttpMain, mods: list[Module]) -> None:
    http_srv, http_loc = cf.srv, cf.loc
    for name, c in http_srv.items():
        c.merge(None)
    for name, c in http_loc.items():
        c.merge(None)
    for m in mods:
        if m.main_conf:
            main.main[m.name].merge(None)
    for srv in main.servers:
        for name, c in srv.srv.items():
            c.merge(http_srv[name])
        _merge_location(srv.root, http_loc)
        srv.root.finalize()
        for named in srv.named.values():
            named.finalize()
    for m in mods:
        post = getattr(m, "postconfiguration", None)
        if post:
            post(main)
    main.variables.resolve_pending()
    _build_listens(cf, main)
    main.temp_paths.update(cf.cycle.full_path(loc.confs_raw["core"].client_body_temp_path)
                           for loc in main.all_locations())
    cf.cycle.temp_paths = sorted(main.temp_paths)
    from .phases import Engine
    main.engine = Engine(main)


def _merge_location(loc: Location, parent_confs: dict[str, Conf]) -> None:
    for name, c in loc.confs_raw.items():
        parent = parent_confs.get(name)
        c.merge(parent)
    for child in loc.children:
        _merge_location(child, loc.confs_raw)
    for child in getattr(loc, "named_children", []):
        _merge_location(child, loc.confs_raw)
    for child in loc.if_children:
        _merge_location(child, loc.confs_raw)
        # ngx_http_update_location_config keeps the location's content
        # handler unless the if block set its own (proxy_pass inside if)
        core = child.confs_raw["core"]
        if core.handler is None:
            core.handler = loc.confs_raw["core"].handler


def _server_block(cf: Any, node: Node, conf: Any) -> None:
    main: HttpMain = cf.extra["http"]
    mods = main.modules
    sub = cf.child(SERVER)
    sub.srv = {m.name: m.srv_conf() for m in mods if m.srv_conf}
    sub.loc = {m.name: m.loc_conf() for m in mods if m.loc_conf}
    root = Location("", "", sub.loc, None, node.file, node.line)
    srv = Server(sub.srv, root, node.file, node.line)
    sub.extra = dict(cf.extra, server=srv, location=root)
    sub.process(node.block or [])
    if not srv.listens:
        port = 80 if os.geteuid() == 0 else 8000
        srv.listens.append(ListenOpt(socket.AF_INET, "0.0.0.0", port, f"0.0.0.0:{port}"))
    if not srv.names:
        srv.add_name("")
    main.servers.append(srv)


def _location_block(cf: Any, node: Node, conf: Any) -> None:
    main: HttpMain = cf.extra["http"]
    srv: Server = cf.extra["server"]
    parent: Location = cf.extra["location"]
    args = node.args
    if len(args) == 2:
        mod, name = args
        if mod not in ("=", "~", "~*", "^~"):
            raise node.error(f'invalid location modifier "{mod}"')
    else:
        a = args[0]
        if a.startswith("="):
            mod, name = "=", a[1:]
        elif a.startswith("^~"):
            mod, name = "^~", a[2:]
        elif a.startswith("~*"):
            mod, name = "~*", a[2:]
        elif a.startswith("~"):
            mod, name = "~", a[1:]
        elif a.startswith("@"):
            mod, name = "@", a
        else:
            mod, name = "", a
    mods = main.modules
    confs = {m.name: m.loc_conf() for m in mods if m.loc_conf}
    try:
        loc = Location(name, mod, confs, parent, node.file, node.line)
    except pcre.PcreError as e:
        raise node.error(e.message) from None
    if loc.named_groups:
        main.variables.declare_named_captures(loc.named_groups)
    if mod == "@":
        if parent.parent is not None:
            raise node.error(f'named location "{name}" can be on the server level only')
        # nginx 1.22 accepts a repeated named location; the first one is used
        srv.named.setdefault(name, loc)
        parent.named_children = getattr(parent, "named_children", []) + [loc]
    else:
        if parent.parent is not None or parent.modifier:
            if parent.exact:
                raise node.error(f'location "{name}" cannot be inside the exact location "{parent.name}"')
            if parent.named:
                raise node.error(f'location "{name}" cannot be inside the named location "{parent.name}"')
            if mod in ("", "=", "^~") and parent.regex is None and not name.startswith(parent.name):
                raise node.error(f'location "{name}" is outside location "{parent.name}"')
        for sib in parent.children:
            if sib.name == name and (sib.exact == loc.exact) and (sib.regex is None) == (loc.regex is None) \
                    and (sib.modifier == mod or (sib.regex is None and not sib.exact and not loc.exact)):
                raise node.error(f'duplicate location "{name}"')
        parent.children.append(loc)
    sub = cf.child(LOCATION)
    sub.loc = confs
    sub.extra = dict(cf.extra, location=loc)
    sub.process(node.block or [])


def _listen(cf: Any, node: Node, conf: Any) -> None:
    srv: Server = cf.extra["server"]
    lo = parse_listen(node)
    if lo.http2:
        cf.cycle.warn('the "listen ... http2" directive is deprecated, use the "http2" directive instead', node)
    for other in srv.listens:
        if other.key == lo.key:
            raise node.error(f"a duplicate listen {lo.text}")
    srv.listens.append(lo)


def _server_name(cf: Any, node: Node, conf: Any) -> None:
    srv: Server = cf.extra["server"]
    main: HttpMain = cf.extra["http"]
    for name in node.args:
        try:
            groups = srv.add_name(name)
        except ConfError as e:
            raise node.error(e.message) from None
        if groups:
            main.variables.declare_named_captures(groups)


def _root(cf: Any, node: Node, conf: CoreLocConf) -> None:
    is_alias = node.name == "alias"
    if conf.alias or conf.root:
        other = "alias" if conf.alias else "root"
        if other == node.name:
            raise node.error(f'"{node.name}" directive is duplicate')
        raise node.error(f'"{node.name}" directive is duplicate, "{other}" directive was specified earlier')
    main: HttpMain = cf.extra["http"]
    path = node.args[0]
    loc: Location = cf.extra["location"]
    if is_alias and loc is not None and loc.named:
        raise node.error('the "alias" directive cannot be used inside the named location')
    # nginx prefixes a relative root with the prefix unless it starts with a variable.
    if not path.startswith("$") and not os.path.isabs(path):
        path = cf.full_path(path)
    if path.endswith("/") and len(path) > 1 and not is_alias:
        path = path.rstrip("/") or "/"
    cv = main.variables.compile(path, node.file, node.line)
    if is_alias:
        conf.alias = cv
        conf.root = None
        conf.alias_len = None if loc.regex is not None else len(loc.name)
    else:
        conf.root = cv
        conf.alias = None
        conf.alias_len = 0


def _types(cf: Any, node: Node, conf: CoreLocConf) -> None:
    if conf.types is UNSET:
        conf.types = {}
    for entry in node.block or []:
        if entry.block is not None:
            raise entry.error('unexpected "{"')
        mime = entry.name
        for ext in entry.args:
            key = ext.lower()
            prev = conf.types.get(key)
            if prev is not None and prev != mime:
                cf.cycle.warn(f'duplicate extension "{ext}", content type: "{mime}", '
                              f'previous content type: "{prev}"', entry)
            conf.types[key] = mime


#: keepalive_disable's browsers (ngx_http_core_keepalive_disable), as bits
#: of Request.browser (set by h1 from the first User-Agent line)
MSIE6, SAFARI = 1, 2
_KEEPALIVE_DISABLE = {"none": 0, "msie6": MSIE6, "safari": SAFARI}


def _keepalive_disable(cf: Any, node: Node, conf: CoreLocConf) -> None:
    """ngx_conf_set_bitmask_slot: "none", "msie6", "safari"."""
    if conf.keepalive_disable is not UNSET:
        raise node.error('"keepalive_disable" directive is duplicate')
    mask = 0
    for a in node.args:
        bit = _KEEPALIVE_DISABLE.get(a.lower())
        if bit is None:
            raise node.error(f'invalid value "{a}"')
        mask |= bit
    conf.keepalive_disable = mask


def browser_of(ua: str | None) -> int:
    """ngx_http_process_user_agent's MSIE 4-6 and Safari flags (MSIE6 |
    SAFARI bits); the matches are case-sensitive, as ngx_strstrn."""
    if not ua:
        return 0
    bits = 0
    msie = ua.find("MSIE ")
    is_msie = msie >= 0 and msie + 7 < len(ua)
    if is_msie and ua[msie + 6] == "." and (
            ua[msie + 5] in "45" or (ua[msie + 5] == "6" and "SV1" not in ua[msie + 8:])):
        bits = MSIE6
    if "Opera" in ua:
        return 0
    if not is_msie and "Gecko/" not in ua and "Chrome/" not in ua and "Safari/" in ua and "Mac OS X" in ua:
        bits |= SAFARI
    return bits


def keepalive_disabled(r: Any, core: "CoreLocConf") -> bool:
    """ngx_http_update_location_config's keepalive_disable test for a
    request from a flagged browser (``r.browser``)."""
    mask = core.keepalive_disable & r.browser
    return bool(mask & SAFARI or (mask & MSIE6 and r.method == "POST"))


def _keepalive_timeout(cf: Any, node: Node, conf: CoreLocConf) -> None:
    from ..core import values
    if conf.keepalive_timeout is not UNSET:
        raise node.error('"keepalive_timeout" directive is duplicate')
    t = values.parse_time(node.args[0], default_unit_ms=True)
    if t is None:
        raise node.error('"keepalive_timeout" directive invalid value')
    conf.keepalive_timeout = t
    if len(node.args) == 2:
        h = values.parse_time(node.args[1], default_unit_ms=False)
        if h is None:
            raise node.error('"keepalive_timeout" directive invalid value')
        conf.keepalive_header = h
    else:
        conf.keepalive_header = None


def _error_page(cf: Any, node: Node, conf: CoreLocConf) -> None:
    main: HttpMain = cf.extra["http"]
    if conf.error_pages is UNSET:
        conf.error_pages = {}
    args = list(node.args)
    uri = args.pop()
    overwrite: int | None = None
    if args and args[-1].startswith("="):
        o = args.pop()[1:]
        if o == "":
            overwrite = 0
        elif o.isdigit():
            overwrite = int(o)
        else:
            raise node.error(f'invalid value "={o}"')
    elif uri.startswith("="):
        raise node.error(f'invalid value "{uri}"')
    if not args:
        raise node.error('invalid number of arguments in "error_page" directive')
    cv = main.variables.compile(uri, node.file, node.line)
    page = ErrorPage(cv, overwrite, uri.startswith("@"))
    for code in args:
        if not code.isdigit():
            raise node.error(f'invalid value "{code}"')
        c = int(code)
        if c == 499:
            raise node.error(f'invalid value "{code}"')
        if c < 300 or c > 599:
            raise node.error(f'value "{code}" must be between 300 and 599')
        conf.error_pages[c] = page


def _internal(cf: Any, node: Node, conf: CoreLocConf) -> None:
    conf.internal = True


def _server_tokens(cf: Any, node: Node, conf: CoreLocConf) -> None:
    if conf.server_tokens is not UNSET:
        raise node.error('"server_tokens" directive is duplicate')
    v = node.args[0]
    if v not in ("on", "off", "build"):
        raise node.error(f'invalid value "{v}"')
    conf.server_tokens = v


def _http_error_log(cf: Any, node: Node, conf: CoreLocConf) -> None:
    from ..core.core_module import parse_error_log
    target = parse_error_log(cf, node)
    if conf.error_log is UNSET or conf.error_log is None:
        conf.error_log = logmod.ErrorLog([target])
    else:
        conf.error_log.targets.append(target)
        conf.error_log.max_level = max(t.level for t in conf.error_log.targets)
    cf.cycle.extra_logs = getattr(cf.cycle, "extra_logs", []) + [conf.error_log]


def set_size_value(attr: str) -> Any:
    """ngx_http_set_complex_value_size_slot: a size, or a string with
    variables evaluated per request (``size_value``)."""
    def setter(cf: Any, node: Node, conf: Any) -> None:
        if getattr(conf, attr) is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        cv = cf.extra["http"].variables.compile(node.args[0], node.file, node.line)
        if cv.const is None:
            setattr(conf, attr, cv)
            return
        n = values.parse_size(cv.const)
        if n is None:
            raise node.error(f'"{node.name}" directive invalid value')
        setattr(conf, attr, n)
    return setter


def _open_file_cache(cf: Any, node: Node, conf: CoreLocConf) -> None:
    from .open_file import cache_setting
    if conf.open_file_cache is not UNSET:
        raise node.error('"open_file_cache" directive is duplicate')
    conf.open_file_cache = cache_setting(cf, node)


def _disable_symlinks(cf: Any, node: Node, conf: CoreLocConf) -> None:
    """ngx_http_disable_symlinks: off | on | if_not_owner, [from=PART]."""
    if conf.disable_symlinks is not UNSET:
        raise node.error('"disable_symlinks" directive is duplicate')
    mode, frm = None, None
    for a in node.args:
        if a in ("off", "on", "if_not_owner"):
            if mode is not None:
                raise node.error(f'duplicate parameters "{mode} {a}"')
            mode = a
        elif a.startswith("from="):
            if frm is not None:
                raise node.error(f'invalid parameter "{a}"')
            frm = cf.extra["http"].variables.compile(a[5:], node.file, node.line)
        else:
            raise node.error(f'invalid parameter "{a}"')
    if mode is None:
        raise node.error(f'"{node.name}" must have "off", "on" or "if_not_owner" parameter')
    if mode == "off" and frm is not None:
        raise node.error('"from=" cannot be used with "off" parameter')
    conf.disable_symlinks = mode
    conf.disable_symlinks_from = frm


def _not_applicable(cf: Any, node: Node, conf: CoreLocConf) -> None:
    """directio, aio: accepted; Portico reads files through the page cache
    with sendfile/pread, so they change nothing (said once, at info level)."""
    if node.args[0] != "off":
        cf.cycle.info(f'"{node.name} {node.args[0]}" is not applicable in portico, ignored', node)


def _satisfy(cf: Any, node: Node, conf: CoreLocConf) -> None:
    set_enum("satisfy", {"all": "all", "any": "any"})(cf, node, conf)


class HttpCoreModule(Module):
    name = "core"
    nginx_name = "ngx_http_core_module"
    is_http = True
    main_conf = CoreMainConf
    srv_conf = CoreSrvConf
    loc_conf = CoreLocConf
    directives = [
        dir("http", frozenset({MAIN}), NOARGS, _http_block, "none", block=True),
        dir("server", H, NOARGS, _server_block, "none", block=True),
        dir("location", SL | {LOCATION}, (1, 2), _location_block, "none", block=True),
        dir("listen", S, MORE1, _listen, "none"),
        dir("server_name", S, MORE1, _server_name, "none"),
        dir("client_header_timeout", HS, TAKE1, set_msec("client_header_timeout"), "srv"),
        dir("client_header_buffer_size", HS, TAKE1, set_size("client_header_buffer_size"), "srv"),
        dir("large_client_header_buffers", HS, (2, 2), set_bufs("large_client_header_buffers"), "srv"),
        dir("ignore_invalid_headers", HS, TAKE1, set_flag("ignore_invalid_headers"), "srv"),
        dir("merge_slashes", HS, TAKE1, set_flag("merge_slashes"), "srv"),
        dir("underscores_in_headers", HS, TAKE1, set_flag("underscores_in_headers"), "srv"),
        dir("root", HSL | {"lif"}, TAKE1, _root),
        dir("alias", L, TAKE1, _root),
        dir("types", HSL, NOARGS, _types, block=True),
        dir("default_type", HSL, TAKE1, set_str("default_type")),
        dir("client_max_body_size", HSL, TAKE1, set_off_size("client_max_body_size")),
        dir("client_body_buffer_size", HSL, TAKE1, set_size("client_body_buffer_size")),
        dir("client_body_timeout", HSL, TAKE1, set_msec("client_body_timeout")),
        dir("client_body_temp_path", HSL, (1, 4), set_str("client_body_temp_path")),
        dir("client_body_in_file_only", HSL, TAKE1, set_str("client_body_in_file_only")),
        dir("client_body_in_single_buffer", HSL, TAKE1, ignore, "none"),
        dir("sendfile", HSL | {"lif"}, TAKE1, set_flag("sendfile")),
        dir("sendfile_max_chunk", HSL, TAKE1, set_size("sendfile_max_chunk")),
        dir("tcp_nopush", HSL, TAKE1, set_flag("tcp_nopush")),
        dir("tcp_nodelay", HSL, TAKE1, set_flag("tcp_nodelay")),
        dir("keepalive_timeout", HSL, TAKE12, _keepalive_timeout),
        dir("keepalive_requests", HSL, TAKE1, set_num("keepalive_requests")),
        dir("keepalive_time", HSL, TAKE1, set_msec("keepalive_time")),
        dir("keepalive_disable", HSL, (1, 2), _keepalive_disable),
        dir("send_timeout", HSL, TAKE1, set_msec("send_timeout")),
        dir("send_lowat", HSL, TAKE1, ignore, "none"),
        dir("lingering_close", HSL, TAKE1, set_enum("lingering_close", {"off": "off", "on": "on", "always": "always"})),
        dir("lingering_time", HSL, TAKE1, set_msec("lingering_time")),
        dir("lingering_timeout", HSL, TAKE1, set_msec("lingering_timeout")),
        dir("reset_timedout_connection", HSL, TAKE1, set_flag("reset_timedout_connection")),
        dir("error_page", HSL | {"lif"}, MORE2, _error_page),
        dir("recursive_error_pages", HSL, TAKE1, set_flag("recursive_error_pages")),
        dir("internal", L, NOARGS, _internal),
        dir("server_tokens", HSL, TAKE1, _server_tokens),
        dir("etag", HSL, TAKE1, set_flag("etag")),
        dir("if_modified_since", HSL, TAKE1, set_enum("if_modified_since", {"off": "off", "exact": "exact", "before": "before"})),
        dir("log_not_found", HSL, TAKE1, set_flag("log_not_found")),
        dir("log_subrequest", HSL, TAKE1, set_flag("log_subrequest")),
        dir("absolute_redirect", HSL, TAKE1, set_flag("absolute_redirect")),
        dir("port_in_redirect", HSL, TAKE1, set_flag("port_in_redirect")),
        dir("server_name_in_redirect", HSL, TAKE1, set_flag("server_name_in_redirect")),
        dir("msie_padding", HSL, TAKE1, set_flag("msie_padding")),
        dir("msie_refresh", HSL, TAKE1, set_flag("msie_refresh")),
        dir("chunked_transfer_encoding", HSL, TAKE1, set_flag("chunked_transfer_encoding")),
        dir("max_ranges", HSL, TAKE1, set_num("max_ranges")),
        dir("limit_rate", HSL | {"lif"}, TAKE1, set_size_value("limit_rate")),
        dir("limit_rate_after", HSL | {"lif"}, TAKE1, set_size_value("limit_rate_after")),
        dir("postpone_output", HSL, TAKE1, set_size("postpone_output")),
        dir("output_buffers", HSL, (2, 2), set_bufs("output_buffers")),
        dir("error_log", HSL, MORE1, _http_error_log),
        dir("satisfy", HSL, TAKE1, _satisfy),
        dir("resolver", HSL, MORE1, resolver_setter),
        dir("resolver_timeout", HSL, TAKE1, set_msec("resolver_timeout")),
        dir("directio", HSL, TAKE1, _not_applicable),
        dir("directio_alignment", HSL, TAKE1, ignore, "none"),
        dir("aio", HSL | {"lif"}, TAKE1, _not_applicable),
        dir("aio_write", HSL, TAKE1, _not_applicable),
        dir("read_ahead", HSL, TAKE1, ignore, "none"),
        dir("open_file_cache", HSL, (1, 2), _open_file_cache),
        dir("open_file_cache_valid", HSL, TAKE1, set_sec("open_file_cache_valid")),
        dir("open_file_cache_min_uses", HSL, TAKE1, set_num("open_file_cache_min_uses")),
        dir("open_file_cache_errors", HSL, TAKE1, set_flag("open_file_cache_errors")),
        dir("open_file_cache_events", HSL, TAKE1, ignore, "none"),
        dir("disable_symlinks", HSL, (1, 2), _disable_symlinks),
        dir("subrequest_output_buffer_size", HSL, TAKE1, ignore, "none"),
        dir("connection_pool_size", HS, TAKE1, ignore, "none"),
        dir("request_pool_size", HS, TAKE1, ignore, "none"),
        dir("variables_hash_max_size", H, TAKE1, ignore, "none"),
        dir("variables_hash_bucket_size", H, TAKE1, ignore, "none"),
        dir("server_names_hash_max_size", H, TAKE1, ignore, "none"),
        dir("server_names_hash_bucket_size", H, TAKE1, ignore, "none"),
        dir("types_hash_max_size", HSL, TAKE1, ignore, "none"),
        dir("types_hash_bucket_size", HSL, TAKE1, ignore, "none"),
        dir("auth_delay", HSL, TAKE1, ignore, "none"),
    ]


def _build_listens(cf: Any, main: HttpMain) -> None:
    """Group servers by socket; a wildcard on a port absorbs non-bind addresses."""
    by_key: dict[tuple[Any, ...], ListenSpec] = {}
    tables: dict[tuple[Any, ...], ServerTable] = {}
    opts_seen: dict[tuple[Any, ...], ListenOpt] = {}
    for srv in main.servers:
        for lo in srv.listens:
            t = tables.get(lo.key)
            if t is None:
                t = tables[lo.key] = ServerTable(lo.text)
            prev = opts_seen.get(lo.key)
            if prev is None:
                opts_seen[lo.key] = lo
            else:
                if lo.has_socket_opts and prev.has_socket_opts:
                    raise ConfError(f"duplicate listen options for {lo.text}", lo.file, lo.line)
                if lo.has_socket_opts:
                    lo.default_server = lo.default_server or prev.default_server
                    opts_seen[lo.key] = lo
                prev_merged = opts_seen[lo.key]
                prev_merged.ssl = prev_merged.ssl or lo.ssl or prev.ssl
                prev_merged.http2 = prev_merged.http2 or lo.http2 or prev.http2
            if lo.default_server:
                if t.default_marked:
                    raise ConfError(f"a duplicate default server for {lo.text}", lo.file, lo.line)
                t.default_marked = True
                t.default = srv
            t.add_server(srv)
    for key, t in tables.items():
        if t.default is None:
            t.default = t.servers[0]
        t.finalize(cf.cycle.warn)
    # wildcard absorption
    wildcard_ports: dict[tuple[int, int], tuple[Any, ...]] = {}
    for key, lo in opts_seen.items():
        if lo.wildcard:
            wildcard_ports[(lo.family, lo.port)] = key
    for key, lo in opts_seen.items():
        if lo.family != socket.AF_UNIX and not lo.wildcard and not lo.bind:
            wkey = wildcard_ports.get((lo.family, lo.port))
            if wkey is not None:
                spec = by_key.setdefault(wkey, ListenSpec(opts_seen[wkey]))
                spec.tables[lo.host] = tables[key]
                continue
        spec = by_key.setdefault(key, ListenSpec(lo))
        spec.tables[""] = tables[key]
    for key, spec in by_key.items():
        if "" not in spec.tables:
            spec.tables[""] = tables[key]
    main.listen_specs = list(by_key.values())
    cf.cycle.listens = main.listen_specs
    if any(spec.opt.ssl for spec in main.listen_specs):
        from .proto.tls import request_check
        main.request_checks.append(request_check)
