"""ngx_http_proxy_module: proxy_pass and the proxy_* directives.

Invariants:
- ``proxy_pass`` without variables is parsed once: its upstream (explicit
  or implicit) is found/created at configuration time, and ``$proxy_host``
  / ``$proxy_port`` are constants of the location.  With variables the URL
  is evaluated per request; its host is an upstream{} name, an IP literal,
  or a name looked up through the location's ``resolver`` (none: nginx's
  "no resolver defined to resolve X" and 502; see upstream/target.py).
- The headers sent upstream are compiled once per location
  (``ProxyLocConf.compiled``): proxy_set_header entries in order, then
  nginx's defaults not overridden (Host, Connection, Content-Length,
  Transfer-Encoding; TE, Keep-Alive, Expect, Upgrade cleared), constant
  lines pre-joined; an empty value drops the header.  The client's headers
  follow unless their name was set, as ngx_http_proxy_create_request.
- The URI sent follows nginx's rules (``upstream_uri``): with a URI part
  the matched location prefix is replaced; without one the client's
  unparsed URI is sent unless the URI was changed (rewrite / internal
  redirect), in which case the current URI (escaped) and args are sent.
- The per-request work is in ``portico/upstream/http_upstream.py``.
"""
from __future__ import annotations

from typing import Any

from ...conf.parser import Node
from ...core import pcre
from ...core.module import (HSL, LIF, LOCATION, MORE1, TAKE1, TAKE12, TAKE2, Conf, Module, UNSET, dir,
                            set_bufs, set_flag, set_msec, set_num, set_size)
from ...upstream import cookies, ssl_client
from ...upstream.block import split_host_port
from ..request import Request
from ..variables import set_captures
from .. import script
from .upstream import upstreams_of

L_IF = frozenset({LOCATION, LIF})
HSL_IF = HSL | {LIF}

# proxy_next_upstream flags (nginx's NGX_HTTP_UPSTREAM_FT_*)
FT_ERROR = 0x2
FT_TIMEOUT = 0x4
FT_INVALID_HEADER = 0x8
FT_HTTP_500 = 0x10
FT_HTTP_502 = 0x20
FT_HTTP_503 = 0x40
FT_HTTP_504 = 0x80
FT_HTTP_403 = 0x100
FT_HTTP_404 = 0x200
FT_HTTP_429 = 0x400
FT_NON_IDEMPOTENT = 0x4000
FT_NOLIVE = 0x40000000
FT_OFF = 0x80000000
NEXT_UPSTREAM = {"error": FT_ERROR, "timeout": FT_TIMEOUT, "invalid_header": FT_INVALID_HEADER,
                 "non_idempotent": FT_NON_IDEMPOTENT, "http_500": FT_HTTP_500, "http_502": FT_HTTP_502,
                 "http_503": FT_HTTP_503, "http_504": FT_HTTP_504, "http_403": FT_HTTP_403,
                 "http_404": FT_HTTP_404, "http_429": FT_HTTP_429, "updating": 0, "off": FT_OFF}
#: status -> flag, in nginx's ngx_http_upstream_next_errors order
NEXT_ERRORS = {500: FT_HTTP_500, 502: FT_HTTP_502, 503: FT_HTTP_503, 504: FT_HTTP_504,
               403: FT_HTTP_403, 404: FT_HTTP_404, 429: FT_HTTP_429}

DEFAULT_HIDE = ("date", "server", "x-pad", "x-accel-expires", "x-accel-redirect", "x-accel-limit-rate",
                "x-accel-buffering", "x-accel-charset")
DEFAULT_HEADERS = (("Host", "$proxy_host"), ("Connection", "close"),
                   ("Content-Length", "$proxy_internal_body_length"),
                   ("Transfer-Encoding", "$proxy_internal_chunked"),
                   ("TE", ""), ("Keep-Alive", ""), ("Expect", ""), ("Upgrade", ""))
PAGE = 4096


class ProxyVars:
    """nginx's ngx_http_proxy_vars_t: what proxy_pass names."""
    __slots__ = ("schema", "host_header", "port", "uri")

    def __init__(self, schema: str, host_header: str, port: str, uri: str) -> None:
        self.schema = schema
        self.host_header = host_header
        self.port = port
        self.uri = uri


class Compiled:
    """Per-location header program (once per Cycle)."""
    __slots__ = ("parts", "skip")

    def __init__(self, parts: list[Any], skip: frozenset[str]) -> None:
        self.parts = parts  # str (constant lines) or (name, ComplexValue)
        self.skip = skip  # lower-case names not copied from the client


class ProxyLocConf(Conf):
    upstream: Any = None  # UpstreamBlock for a static proxy_pass
    url: Any = None  # ComplexValue for proxy_pass with variables
    url_text: str = ""
    vars: Any = None  # ProxyVars of a static proxy_pass
    location: str = ""  # the location prefix a URI part replaces
    headers_source: Any = None  # list[(name, value text)]
    compiled: Any = None
    pass_request_headers: bool = True
    pass_request_body: bool = True
    hide: Any = None  # list of proxy_hide_header names
    pass_: Any = None  # list of proxy_pass_header names
    hide_set: Any = None  # frozenset, computed at merge
    http_version: str = "1.0"
    method: Any = None  # ComplexValue
    body: Any = None  # ComplexValue of proxy_set_body
    redirect: Any = None  # "default" | "off" | list of rules
    redirects: Any = None  # compiled rules
    connect_timeout: float = 60.0
    send_timeout: float = 60.0
    read_timeout: float = 60.0
    next_upstream: int = FT_ERROR | FT_TIMEOUT
    next_upstream_tries: int = 0
    next_upstream_timeout: float = 0.0
    buffering: bool = True
    request_buffering: bool = True
    buffer_size: int = PAGE
    buffers: tuple = (8, PAGE)
    busy_buffers_size: Any = None
    max_temp_file_size: Any = None
    temp_file_write_size: Any = None
    temp_path: str = "proxy_temp"
    ignore_client_abort: bool = False
    intercept_errors: bool = False
    ignore_headers: Any = None
    cookie_domains: Any = None  # list of cookies.Rule, None (off / unset)
    cookie_paths: Any = None
    cookie_flags: Any = None  # list of cookies.FlagRule
    rewrite_cookies: bool = False  # computed at merge
    stream_body: bool = False  # computed at merge: request_buffering off applies
    tls: bool = False  # proxy_pass https:// (part of proxy_pass: not inherited)
    ssl_verify: bool = False
    ssl_trusted_certificate: str = ""
    ssl_verify_depth: int = 1
    ssl_server_name: bool = False
    ssl_name: Any = None  # ComplexValue; None = the proxy_pass host
    ssl_certificate: str = ""
    ssl_certificate_key: str = ""
    ssl_password_file: str = ""
    ssl_protocols: Any = None  # tuple of names; None = nginx's default
    ssl_ciphers: str = "DEFAULT"
    ssl_session_reuse: bool = True
    ssl_crl: str = ""
    ssl_conf_commands: Any = None
    ssl_ctx: Any = None  # built in postconfiguration

    def merge(self, parent: Conf | None) -> None:
        # proxy_pass itself is not inherited (it is the location's handler)
        own_up, own_url, own_vars, own_loc = self.upstream, self.url, self.vars, self.location
        own_tls = self.tls
        super().merge(parent)
        self.tls = own_tls if own_tls is not UNSET else False
        self.ssl_ctx = None
        self.upstream = own_up if own_up is not UNSET else None
        self.url = own_url if own_url is not UNSET else None
        self.vars = own_vars if own_vars is not UNSET else None
        self.location = own_loc if own_loc is not UNSET else ""
        if self.busy_buffers_size is None:
            self.busy_buffers_size = 2 * max(self.buffer_size, self.buffers[1])
        if self.max_temp_file_size is None:
            self.max_temp_file_size = 1024 * 1024 * 1024
        if self.temp_file_write_size is None:
            self.temp_file_write_size = 2 * max(self.buffer_size, self.buffers[1])
        hide = set(DEFAULT_HIDE) | {h.lower() for h in (self.hide or ())}
        hide -= {h.lower() for h in (self.pass_ or ())}
        self.hide_set = frozenset(hide)
        if self.next_upstream & FT_OFF:
            self.next_upstream = FT_OFF
        self.rewrite_cookies = bool(self.cookie_domains or self.cookie_paths or self.cookie_flags)
        self.stream_body = not self.request_buffering and self.body is None and self.pass_request_body


# --- proxy_pass -----------------------------------------------------------------------

def parse_url(text: str) -> tuple[str, str, int, bool, str] | str:
    """(schema, host, port, no_port, uri) of ``http://host[:port][/uri]``, or an error."""
    low = text[:8].lower()
    if low.startswith("http://"):
        schema, rest, default = "http://", text[7:], 80
    elif low.startswith("https://"):
        schema, rest, default = "https://", text[8:], 443
    else:
        return "invalid URL prefix"
    if rest.lower().startswith("unix:"):
        path, colon, uri = rest[5:].partition(":")
        if not path:
            return "no path in the unix domain socket"
        return schema, "unix:" + path, 0, True, uri
    cut = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if 0 <= i < cut:
            cut = i
    hostport, uri = rest[:cut], rest[cut:]
    if uri.startswith("?"):
        uri = "/" + uri
    host, port, no_port, err = split_host_port(hostport, default)
    if err:
        return err
    return schema, host, port, no_port, uri


def make_vars(schema: str, host: str, port: int, no_port: bool, hostport_text: str, uri: str) -> ProxyVars:
    if host.startswith("unix:"):
        return ProxyVars(schema, "localhost", "", uri)
    if no_port:
        return ProxyVars(schema, host, "443" if schema == "https://" else "80", uri)
    return ProxyVars(schema, hostport_text, str(port), uri)


def _proxy_pass(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    core = cf.loc["core"]
    if conf.upstream is not UNSET or conf.url is not UNSET:
        raise node.error('"proxy_pass" directive is duplicate')
    conf.tls = not node.args[0].lower().startswith("http://")
    from ...upstream.target import proxy_handler
    core.handler = proxy_handler
    loc = cf.extra.get("location")
    text = node.args[0]
    main = cf.extra["http"]
    if "$" in text:
        conf.url = main.variables.compile(text, node.file, node.line)
        conf.url_text = text
        conf.upstream = None
        conf.location = ""
        return
    u = parse_url(text)
    if isinstance(u, str):
        if u == "invalid URL prefix":
            raise node.error("invalid URL prefix")
        raise node.error(f'{u} in upstream "{text.split("://", 1)[1]}"')
    schema, host, port, no_port, uri = u
    hostport = host if host.startswith("unix:") else text[len(schema):].split("/", 1)[0].split("?", 1)[0]
    ups = upstreams_of(cf)
    conf.upstream = ups.add(node, host, port, no_port, False)
    conf.url = None
    conf.url_text = text
    conf.vars = make_vars(schema, host, port, no_port, hostport, uri)
    conf.location = loc.name if loc is not None else ""
    if loc is not None and (loc.named or loc.regex is not None or loc.modifier == "if"):
        if uri:
            raise node.error('"proxy_pass" cannot have URI part in location given by regular expression, '
                             'or inside named location, or inside "if" statement, or inside "limit_except" block')
        conf.location = ""


def _set_header(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    if conf.headers_source is UNSET or conf.headers_source is None:
        conf.headers_source = []
    main = cf.extra["http"]
    main.variables.compile(node.args[1], node.file, node.line)  # check variables now
    conf.headers_source.append((node.args[0], node.args[1]))


def _list(attr: str) -> Any:
    def setter(cf: Any, node: Node, conf: ProxyLocConf) -> None:
        cur = getattr(conf, attr)
        if cur is UNSET or cur is None:
            cur = []
            setattr(conf, attr, cur)
        cur.append(node.args[0])
    return setter


def _http_version(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    if conf.http_version is not UNSET:
        raise node.error('"proxy_http_version" directive is duplicate')
    v = node.args[0]
    if v not in ("1.0", "1.1"):
        raise node.error(f'invalid value "{v}"')
    conf.http_version = v


def _str(attr: str) -> Any:
    def setter(cf: Any, node: Node, conf: ProxyLocConf) -> None:
        if getattr(conf, attr) is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        setattr(conf, attr, node.args[0])
    return setter


def _complex(attr: str) -> Any:
    def setter(cf: Any, node: Node, conf: ProxyLocConf) -> None:
        if getattr(conf, attr) is not UNSET:
            raise node.error(f'"{node.name}" directive is duplicate')
        setattr(conf, attr, cf.extra["http"].variables.compile(node.args[0], node.file, node.line))
    return setter


def _next_upstream(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    if conf.next_upstream is not UNSET:
        raise node.error('"proxy_next_upstream" directive is duplicate')
    mask = 0
    for a in node.args:
        f = NEXT_UPSTREAM.get(a)
        if f is None:
            raise node.error(f'invalid value "{a}"')
        if mask & f and f:
            raise node.error(f'duplicate value "{a}"')
        mask |= f
    conf.next_upstream = mask


def _redirect(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    main = cf.extra["http"]
    a = node.args
    if conf.redirect is UNSET or conf.redirect is None:
        conf.redirect = []
    if len(a) == 1:
        if a[0] == "off":
            if conf.redirect not in ([], "off"):
                raise node.error('invalid parameter "off"')
            conf.redirect = "off"
            return
        if a[0] != "default":
            raise node.error(f'invalid parameter "{a[0]}"')
        if conf.redirect == "off":
            raise node.error('invalid parameter "default"')
        conf.redirect.append(("default", None, None))
        return
    if conf.redirect == "off":
        raise node.error(f'invalid parameter "{a[0]}"')
    pattern, repl = a
    rcv = main.variables.compile(repl, node.file, node.line)
    if pattern.startswith("~"):
        caseless = pattern.startswith("~*")
        src = pattern[2:] if caseless else pattern[1:]
        try:
            rx = pcre.compile(src, caseless=caseless)
        except pcre.PcreError as e:
            raise node.error(e.message) from None
        if rx.groupindex:
            main.variables.declare_named_captures(list(rx.groupindex))
        conf.redirect.append(("regex", rx, rcv))
    else:
        conf.redirect.append(("prefix", main.variables.compile(pattern, node.file, node.line), rcv))


def _bufs_checked(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    set_bufs("buffers")(cf, node, conf)
    if conf.buffers[0] < 2:
        raise node.error('there must be at least 2 "proxy_buffers"')


def _temp_path(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    if conf.temp_path is not UNSET:
        raise node.error('"proxy_temp_path" directive is duplicate')
    conf.temp_path = node.args[0]


def _ignore_headers(cf: Any, node: Node, conf: ProxyLocConf) -> None:
    allowed = {"x-accel-redirect", "x-accel-expires", "x-accel-limit-rate", "x-accel-buffering",
               "x-accel-charset", "expires", "cache-control", "set-cookie", "vary"}
    for a in node.args:
        if a.lower() not in allowed:
            raise node.error(f'invalid value "{a}"')
    conf.ignore_headers = frozenset(a.lower() for a in node.args)


# --- per-location compilation -----------------------------------------------------------

def compile_headers(main: Any, conf: ProxyLocConf) -> Compiled:
    """ngx_http_proxy_init_headers: the set headers, then the defaults."""
    merged: list[tuple[str, str]] = list(conf.headers_source or [])
    names = {k.lower() for k, _ in merged}
    for k, v in DEFAULT_HEADERS:
        if k.lower() not in names:
            merged.append((k, v))
            names.add(k.lower())
    static_vars = conf.vars
    parts: list[Any] = []
    for k, v in merged:
        if v == "":
            continue
        # a static proxy_pass makes $proxy_host a constant of the location
        const = static_vars.host_header if v == "$proxy_host" and static_vars is not None else None
        cv = main.variables.compile(v) if const is None else None
        if const is None and cv.const is not None:
            const = cv.const
        if const is not None:
            line = f"{k}: {const}\r\n"
            if parts and isinstance(parts[-1], str):
                parts[-1] += line
            else:
                parts.append(line)
        else:
            parts.append((k, cv))
    return Compiled(parts, frozenset(names))


class Redirect:
    __slots__ = ("kind", "pattern", "repl")

    def __init__(self, kind: str, pattern: Any, repl: Any) -> None:
        self.kind = kind
        self.pattern = pattern
        self.repl = repl


def compile_redirects(main: Any, conf: ProxyLocConf) -> list[Redirect]:
    rules = conf.redirect
    if rules == "off":
        return []
    if rules is None or rules is UNSET:
        rules = [("default", None, None)]
    out: list[Redirect] = []
    for kind, pat, repl in rules:
        if kind == "default":
            if conf.vars is None or conf.url is not None:
                continue  # proxy_pass with variables: no default rule
            v = conf.vars
            if v.uri:
                out.append(Redirect("const", conf.url_text, conf.location))
            else:
                out.append(Redirect("const", conf.url_text + "/", "/"))
            continue
        out.append(Redirect(kind, pat, repl))
    return out


def rewrite_redirect(r: Request, rules: list[Redirect], value: str, start: int = 0) -> str:
    """ngx_http_proxy_rewrite_redirect: the first matching rule replaces the
    prefix of ``value[start:]`` it matches."""
    for rule in rules:
        if rule.kind == "const":
            pat = rule.pattern
            if value.startswith(pat, start):
                return value[:start] + rule.repl + value[start + len(pat):]
        elif rule.kind == "prefix":
            pat = rule.pattern.eval(r)
            if value.startswith(pat, start):
                return value[:start] + rule.repl.eval(r) + value[start + len(pat):]
        else:
            # ngx_http_proxy_rewrite_regex_handler: a match anywhere in the
            # rest of the value replaces all of it
            m = rule.pattern.search(value[start:] if start else value)
            if m is not None:
                set_captures(r, rule.pattern, m)
                return value[:start] + rule.repl.eval(r)
    return value


def finalize_location(main: Any, conf: ProxyLocConf) -> None:
    """Once per location per Cycle, after merge."""
    if conf.compiled is None or conf.compiled is UNSET:
        conf.compiled = compile_headers(main, conf)
    conf.redirects = compile_redirects(main, conf)


# --- variables ----------------------------------------------------------------------------

def _proxy_vars(r: Request) -> ProxyVars | None:
    return r.ctx.get("proxy_vars")


def _v_host(r: Request) -> str | None:
    v = _proxy_vars(r)
    return v.host_header if v is not None else None


def _v_port(r: Request) -> str | None:
    v = _proxy_vars(r)
    return v.port if v is not None else None


def _v_xff(r: Request) -> str | None:
    vals = [v for k, v in r.headers if k.lower() == "x-forwarded-for"]
    addr = r.conn.client_addr
    if not vals:
        return addr
    return ", ".join(vals) + ", " + addr


def _v_body_length(r: Request) -> str | None:
    n = r.ctx.get("proxy_body_length")
    return None if n is None or n < 0 else str(n)


def _v_chunked(r: Request) -> str | None:
    return "chunked" if r.ctx.get("proxy_chunked") else None


# --- module -------------------------------------------------------------------------------

class ProxyModule(Module):
    name = "proxy"
    nginx_name = "ngx_http_proxy_module"
    is_http = True
    loc_conf = ProxyLocConf
    directives = [
        dir("proxy_pass", L_IF, TAKE1, _proxy_pass),
        dir("proxy_set_header", HSL, TAKE2, _set_header),
        dir("proxy_pass_request_headers", HSL, TAKE1, set_flag("pass_request_headers")),
        dir("proxy_pass_request_body", HSL, TAKE1, set_flag("pass_request_body")),
        dir("proxy_hide_header", HSL, TAKE1, _list("hide")),
        dir("proxy_pass_header", HSL, TAKE1, _list("pass_")),
        dir("proxy_http_version", HSL, TAKE1, _http_version),
        dir("proxy_method", HSL, TAKE1, _complex("method")),
        dir("proxy_set_body", HSL, TAKE1, _complex("body")),
        dir("proxy_redirect", HSL, TAKE12, _redirect),
        dir("proxy_connect_timeout", HSL, TAKE1, set_msec("connect_timeout")),
        dir("proxy_send_timeout", HSL, TAKE1, set_msec("send_timeout")),
        dir("proxy_read_timeout", HSL, TAKE1, set_msec("read_timeout")),
        dir("proxy_next_upstream", HSL, MORE1, _next_upstream),
        dir("proxy_next_upstream_tries", HSL, TAKE1, set_num("next_upstream_tries")),
        dir("proxy_next_upstream_timeout", HSL, TAKE1, set_msec("next_upstream_timeout")),
        dir("proxy_buffering", HSL, TAKE1, set_flag("buffering")),
        dir("proxy_request_buffering", HSL, TAKE1, set_flag("request_buffering")),
        dir("proxy_buffer_size", HSL, TAKE1, set_size("buffer_size")),
        dir("proxy_buffers", HSL, (2, 2), _bufs_checked),
        dir("proxy_busy_buffers_size", HSL, TAKE1, set_size("busy_buffers_size")),
        dir("proxy_max_temp_file_size", HSL, TAKE1, set_size("max_temp_file_size")),
        dir("proxy_temp_file_write_size", HSL, TAKE1, set_size("temp_file_write_size")),
        dir("proxy_temp_path", HSL, (1, 4), _temp_path),
        dir("proxy_ignore_client_abort", HSL, TAKE1, set_flag("ignore_client_abort")),
        dir("proxy_intercept_errors", HSL, TAKE1, set_flag("intercept_errors")),
        dir("proxy_ignore_headers", HSL, MORE1, _ignore_headers),
        dir("proxy_ssl_verify", HSL, TAKE1, set_flag("ssl_verify")),
        dir("proxy_ssl_trusted_certificate", HSL, TAKE1, _str("ssl_trusted_certificate")),
        dir("proxy_ssl_verify_depth", HSL, TAKE1, set_num("ssl_verify_depth")),
        dir("proxy_ssl_server_name", HSL, TAKE1, set_flag("ssl_server_name")),
        dir("proxy_ssl_name", HSL, TAKE1, _complex("ssl_name")),
        dir("proxy_ssl_certificate", HSL, TAKE1, _str("ssl_certificate")),
        dir("proxy_ssl_certificate_key", HSL, TAKE1, _str("ssl_certificate_key")),
        dir("proxy_ssl_password_file", HSL, TAKE1, _str("ssl_password_file")),
        dir("proxy_ssl_protocols", HSL, MORE1, ssl_client.protocols),
        dir("proxy_ssl_ciphers", HSL, TAKE1, _str("ssl_ciphers")),
        dir("proxy_ssl_session_reuse", HSL, TAKE1, set_flag("ssl_session_reuse")),
        dir("proxy_ssl_crl", HSL, TAKE1, _str("ssl_crl")),
        dir("proxy_ssl_conf_command", HSL, TAKE2, ssl_client.conf_command),
        dir("proxy_cookie_domain", HSL, TAKE12, cookies.cookie_domain),
        dir("proxy_cookie_path", HSL, TAKE12, cookies.cookie_path),
        dir("proxy_cookie_flags", HSL, (1, 4), cookies.cookie_flags),
    ]

    def preconfiguration(self, http: Any) -> None:
        v = http.variables
        v.add("proxy_host", _v_host)
        v.add("proxy_port", _v_port)
        v.add("proxy_add_x_forwarded_for", _v_xff)
        v.add("proxy_internal_body_length", _v_body_length)
        v.add("proxy_internal_chunked", _v_chunked)

    def postconfiguration(self, http: Any) -> None:
        contexts: dict[Any, Any] = {}
        for loc in http.all_locations():
            conf = loc.confs_raw.get("proxy")
            if conf is not None:
                _check_buffers(conf, loc)
                finalize_location(http, conf)
                if conf.tls:
                    ssl_client.build(http.cycle, conf, contexts, (loc.file, loc.line))
                if conf.upstream is not None or conf.url is not None:
                    # created by the master for the worker user (prepare_paths)
                    http.temp_paths.add(http.cycle.full_path(conf.temp_path))


def _check_buffers(conf: ProxyLocConf, loc: Any) -> None:
    from ...conf.errors import ConfError
    size = max(conf.buffer_size, conf.buffers[1])
    if conf.busy_buffers_size < size:
        raise ConfError('"proxy_busy_buffers_size" must be equal to or greater than the maximum of the value '
                        'of "proxy_buffer_size" and one of the "proxy_buffers"', loc.file, loc.line)
    if conf.busy_buffers_size > (conf.buffers[0] - 1) * conf.buffers[1]:
        raise ConfError('"proxy_busy_buffers_size" must be less than the size of all "proxy_buffers" '
                        'minus one buffer', loc.file, loc.line)


def request_headers(r: Request, conf: ProxyLocConf) -> str:
    """The header lines of the request sent upstream, with the blank line
    that ends them (ngx_http_proxy_create_request after the request line):
    the compiled set headers and defaults, then the client's headers not
    set by name."""
    out = []
    comp: Compiled = conf.compiled
    for p in comp.parts:
        if p.__class__ is str:
            out.append(p)
        else:
            v = p[1].eval(r)
            if v:
                out.append(f"{p[0]}: {v}\r\n")
    if conf.pass_request_headers:
        skip = comp.skip
        for k, v in r.headers:
            if k.lower() not in skip:
                out.append(f"{k}: {v}\r\n")
    out.append("\r\n")
    return "".join(out)


def upstream_uri(r: Request, conf: ProxyLocConf, vars_: ProxyVars, dynamic: bool) -> str:
    """The URI in the upstream request line (ngx_http_proxy_create_request)."""
    vuri = vars_.uri
    if dynamic and vuri:
        return vuri
    if not vuri and not r.internal:
        return r.raw_uri
    loc_len = len(conf.location) if (r.valid_location and vuri) else 0
    tail = r.uri[loc_len:]
    if r.internal or script.uri_is_quoted(r):
        tail = escape_uri(tail)
    out = (vuri if r.valid_location else "") + tail
    if r.args:
        out += "?" + r.args
    return out


# ngx_escape_uri's NGX_ESCAPE_URI table: which bytes are escaped
_SAFE = frozenset(c for c in range(0x21, 0x7f) if c not in b"#%?")


def escape_uri(s: str) -> str:
    if all(c in _SAFE_STR for c in s):
        return s
    b = s.encode("utf-8", "surrogateescape")
    return "".join(chr(c) if c in _SAFE else f"%{c:02X}" for c in b)


_SAFE_STR = frozenset(chr(c) for c in _SAFE)
