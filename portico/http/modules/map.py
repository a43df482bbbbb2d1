"""ngx_http_map_module: ``map $source $variable { ... }``.

Invariants:
- Everything is built once, when the ``map`` block is read: the source is a
  compiled ComplexValue, exact keys live in one dict (lower-cased, as
  nginx's ``ngx_hash_add_key`` lower-cases them), ``hostnames`` wildcards in
  two suffix/prefix dicts, regexes in a tuple in configuration order, and
  every value is either a constant string or a compiled ComplexValue.  A
  request costs one source evaluation, one ASCII lower-casing and dict
  look-ups; a regex is only tried when no exact or wildcard key matched.
- Match order is nginx's ``ngx_http_map_find``: exact key, then (with
  ``hostnames``) the longest leading wildcard, then the longest trailing
  wildcard, then the regexes in order (only for a non-empty source), then
  ``default`` (or the empty string).  With ``hostnames`` one trailing dot of
  the source is ignored.
- A matching regex with groups replaces ``r.captures`` (``$1``...) and adds
  its named groups to ``r.named`` before the value is evaluated, as nginx's
  ``ngx_http_regex_exec`` does; so ``~^(?<x>.+)$  $x.example`` works.
- The variable is changeable (``set`` may override it) and cached for the
  request unless the block says ``volatile``.
- Errors carry nginx's exact wording; hash-building failures
  (``map_hash_bucket_size`` too small for a key, ``map_hash_max_size: 0``)
  are reported without FILE:LINE, as nginx logs them.

The helpers ``variable_name``, ``check_new_variable``, ``new_variable`` and
``source_getter`` are shared with the geo and split_clients modules, which define their variables the same way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...conf.errors import ConfError
from ...conf.parser import Node
from ...core import pcre
from ...core.module import HTTP, TAKE1, TAKE2, Conf, Module, UNSET, dir, set_num
from ..variables import ComplexValue, set_captures

if TYPE_CHECKING:
    from ..request import Request

H = frozenset({HTTP})

# Variables nginx 1.22 defines without NGX_HTTP_VAR_CHANGEABLE (found by
# running ``nginx -t`` on ``map $uri $NAME {}`` for every name it knows):
# map, geo and split_clients may not redefine them ("the duplicate ...").
NGINX_FIXED_VARS = frozenset("""
binary_remote_addr body_bytes_sent bytes_sent connection connection_requests
connection_time connections_active connections_reading connections_waiting
connections_writing content_length content_type date_gmt date_local
document_root document_uri fastcgi_path_info fastcgi_script_name gzip_ratio
host hostname http2 http_cookie http_host http_referer http_user_agent
http_via http_x_forwarded_for https is_args limit_conn_status
limit_req_status msec nginx_version pid pipe proxy_add_x_forwarded_for
proxy_protocol_addr proxy_protocol_port proxy_protocol_server_addr
proxy_protocol_server_port query_string realip_remote_addr
realip_remote_port realpath_root remote_addr remote_port remote_user request
request_body request_body_file request_completion request_filename
request_id request_length request_method request_time request_uri scheme
secure_link secure_link_expires sent_http_cache_control sent_http_connection
sent_http_content_length sent_http_content_type sent_http_keep_alive
sent_http_last_modified sent_http_link sent_http_location
sent_http_transfer_encoding server_addr server_name server_port
server_protocol slice_range status tcpinfo_rcv_space tcpinfo_rtt
tcpinfo_rttvar tcpinfo_snd_cwnd time_iso8601 time_local uid_got uid_set
upstream_addr upstream_bytes_received upstream_bytes_sent
upstream_cache_status upstream_connect_time upstream_header_time
upstream_response_length upstream_response_time upstream_status uri
""".split())

# nginx lower-cases ASCII only (ngx_tolower); str.lower() would also fold
# non-ASCII letters, so non-ASCII strings go through this table.
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def ascii_lower(s: str) -> str:
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


# --- shared with geo and split_clients -------------------------------------------

def variable_name(node: Node, text: str) -> str:
    """The name in ``$name`` (nginx's checks in the map/geo/split_clients blocks)."""
    if not text.startswith("$"):
        raise node.error(f'invalid variable name "{text}"')
    name = text[1:]
    if not name:
        raise node.error('invalid variable name "$"')
    return name


def check_new_variable(main: Any, node: Node, name: str) -> None:
    """nginx's ngx_http_add_variable(..., CHANGEABLE): an existing variable
    that is not changeable cannot be redefined."""
    low = name.lower()  # nginx compares variable names case-insensitively here
    if low in NGINX_FIXED_VARS:
        raise node.error(f'the duplicate "{name}" variable')
    vs = main.variables
    key = name if name in vs.vars else low
    g = vs.vars.get(key)
    if g is None or key in vs.changeable:
        return
    # names cached from a prefix family ($http_x, $arg_x...) and named
    # captures are not fixed variables in nginx
    if any(low.startswith(p) for p, _ in vs.prefixes):
        return
    if getattr(g, "__qualname__", "").startswith("_named_capture_getter"):
        return
    raise node.error(f'the duplicate "{name}" variable')


def new_variable(main: Any, name: str, getter: Callable[["Request"], "str | None"],
                 volatile: bool = False) -> None:
    """Define ``$name`` as nginx's map/geo/split_clients do: changeable, and
    cached for the request unless volatile."""
    main.variables.add(name, getter, changeable=True, cacheable=not volatile)


def source_getter(main: Any, node: Node, name: str) -> Callable[["Request"], "str | None"]:
    """The getter of ``$name`` (nginx's ngx_http_get_variable_index): unknown
    names are reported once the http block is read."""
    if not all(c.isascii() and (c.isalnum() or c == "_") for c in name):
        # no variable can have this name: nginx reports it after the http
        # block, without a line
        raise ConfError(f'unknown "{name}" variable')
    return main.variables.lookup(name, node.file, node.line)


# --- conf --------------------------------------------------------------------------

class MapMainConf(Conf):
    hash_max_size: int = 2048
    hash_bucket_size: int = 64


_CACHELINE = 64  # ngx_cacheline_size on x86-64
_PTR = 8


def _align(n: int, a: int) -> int:
    return (n + a - 1) & ~(a - 1)


def _elt_size(key: bytes) -> int:
    """NGX_HASH_ELT_SIZE: value pointer + u_short len + the key, aligned."""
    return _PTR + _align(len(key) + 2, _PTR)


def _hash_key(key: bytes) -> int:
    k = 0
    for c in key:
        k = (k * 31 + c) & 0xFFFFFFFFFFFFFFFF
    return k


def _hash_init(cf: Any, names: list[bytes], max_size: int, bucket_size: int, exact: bool) -> None:
    """nginx's ngx_hash_init checks for one hash of ``names`` (map_hash).

    The optimal-size search (a warning only) is run for the exact-key hash;
    the wildcard hashes are checked for the per-element limits only."""
    if max_size == 0:
        raise ConfError(f"could not build map_hash, you should increase map_hash_max_size: {max_size}")
    if bucket_size > 65536 - _CACHELINE:
        raise ConfError(f"could not build map_hash, too large map_hash_bucket_size: {bucket_size}")
    for key in names:
        if bucket_size < _elt_size(key) + _PTR:
            raise ConfError(f"could not build map_hash, you should increase map_hash_bucket_size: {bucket_size}")
    if not exact:
        return
    usable = bucket_size - _PTR
    sizes = [(_hash_key(k), _elt_size(k)) for k in names]
    start = len(names) // (usable // (2 * _PTR)) or 1
    if max_size > 10000 and names and max_size // len(names) < 100:
        start = max_size - 1000
    for size in range(start, max_size + 1):
        test = [0] * size
        for h, sz in sizes:
            i = h % size
            test[i] += sz
            if test[i] > usable:
                break
        else:
            return
    cf.cycle.warn(f"could not build optimal map_hash, you should increase either map_hash_max_size: "
                  f"{max_size} or map_hash_bucket_size: {bucket_size}; ignoring map_hash_bucket_size")


# --- the map itself ----------------------------------------------------------------

_OK, _DECLINED, _BUSY = 0, 1, 2


class _Keys:
    """ngx_hash_keys_arrays_t: exact and wildcard keys with nginx's conflicts."""

    def __init__(self) -> None:
        self.exact: dict[str, Any] = {}
        self.exact_names: set[str] = set()  # also ".example.com" bodies
        self.head: dict[str, tuple[Any, bool]] = {}  # suffix -> (value, matches the bare name)
        self.tail: dict[str, Any] = {}  # prefix ("www.example") -> value

    def add(self, node: Node, key: str, value: Any, wildcard: bool) -> None:
        rc, shown = self._add(key, value, wildcard)
        if rc == _DECLINED:
            raise node.error(f'invalid hostname or wildcard "{key}"')
        if rc == _BUSY:
            raise node.error(f'conflicting parameter "{shown}"')

    def _add(self, key: str, value: Any, wildcard: bool) -> tuple[int, str]:
        if wildcard:
            stars = key.count("*")
            if stars > 1 or ".." in key or "\0" in key:
                return _DECLINED, key
            if len(key) > 1 and key[0] == ".":
                body = ascii_lower(key[1:])
                shown = "." + body
                if body in self.exact_names or body in self.head:
                    return _BUSY, shown
                self.exact_names.add(body)
                self.head[body] = (value, True)
                return _OK, shown
            if len(key) > 2 and key.startswith("*."):
                body = ascii_lower(key[2:])
                if body in self.head:
                    return _BUSY, "*." + body
                self.head[body] = (value, False)
                return _OK, key
            if len(key) > 2 and key.endswith(".*"):
                body = ascii_lower(key[:-2])
                if body in self.tail:
                    return _BUSY, body + ".*"
                self.tail[body] = value
                return _OK, key
            if stars:
                return _DECLINED, key
        low = ascii_lower(key)
        if low in self.exact_names:
            return _BUSY, low
        self.exact_names.add(low)
        self.exact[low] = value
        return _OK, low


class MapVar:
    """One map's compiled tables and its per-request getter."""

    __slots__ = ("source", "exact", "head", "tail", "regexes", "default", "hostnames", "get")

    def __init__(self, source: ComplexValue, keys: _Keys, regexes: list[tuple[Any, Any]],
                 default: Any, hostnames: bool) -> None:
        self.source = source
        self.exact = keys.exact
        self.head = keys.head
        self.tail = keys.tail
        self.regexes = tuple(regexes)
        self.default = default
        self.hostnames = hostnames
        self.get = self._build()

    def _build(self) -> Callable[["Request"], str]:
        src = self.source
        exact = self.exact
        has_wc = bool(self.head or self.tail)
        head_find, tail_find = self._head_find, self._tail_find
        regexes = self.regexes
        default = self.default
        hostnames = self.hostnames

        def render(r: "Request", v: Any) -> str:
            return v if isinstance(v, str) else v.eval(r)

        def get(r: "Request") -> str:
            val = src.const if src.const is not None else src.eval(r)
            if hostnames and val.endswith("."):
                val = val[:-1]
            low = val.lower() if val.isascii() else val.translate(_ASCII_LOWER)
            v = exact.get(low)
            if v is not None:
                return render(r, v)
            if val and has_wc:
                v = head_find(low)
                if v is None:
                    v = tail_find(low)
                if v is not None:
                    return render(r, v)
            if val:
                for rx, rv in regexes:
                    m = rx.search(val)
                    if m is None:
                        continue
                    set_captures(r, rx, m)
                    return render(r, rv)
            return render(r, default)
        return get

    def _head_find(self, host: str) -> Any:
        """The longest "*.suffix" / ".suffix" matching ``host`` (ngx_hash_find_wc_head)."""
        head = self.head
        e = head.get(host)
        if e is not None and e[1]:
            return e[0]
        i = host.find(".")
        while i >= 0:
            e = head.get(host[i + 1:])
            if e is not None:
                return e[0]
            i = host.find(".", i + 1)
        return None

    def _tail_find(self, host: str) -> Any:
        """The longest "prefix.*" matching ``host`` (ngx_hash_find_wc_tail):
        whole labels, and a dot must follow the prefix in ``host``."""
        tail = self.tail
        i = host.rfind(".")
        while i > 0:
            v = tail.get(host[:i])
            if v is not None:
                return v
            i = host.rfind(".", 0, i)
        return None


def _map_block(cf: Any, node: Node, mcf: MapMainConf) -> None:
    main = cf.extra["http"]
    # the first map fixes the hash sizes: a later map_hash_* is "duplicate"
    if mcf.hash_max_size is UNSET:
        mcf.hash_max_size = 2048
    if mcf.hash_bucket_size is UNSET:
        mcf.hash_bucket_size = _CACHELINE
    else:
        mcf.hash_bucket_size = _align(mcf.hash_bucket_size, _CACHELINE)
    variables = main.variables
    source = variables.compile(node.args[0], node.file, node.line)
    name = variable_name(node, node.args[1])
    check_new_variable(main, node, name)

    keys = _Keys()
    regexes: list[tuple[Any, Any]] = []
    values: dict[str, Any] = {}
    default: Any = None
    hostnames = volatile = False
    for entry in node.block or []:
        if entry.block is not None:
            raise entry.error('unexpected "{"')
        words = [entry.name, *entry.args]
        if len(words) == 1 and words[0] == "hostnames":
            hostnames = True
            continue
        if len(words) == 1 and words[0] == "volatile":
            volatile = True
            continue
        if len(words) != 2:
            raise entry.error("invalid number of the map parameters")
        key, text = words
        value = values.get(text)
        if value is None:
            cv = variables.compile(text, entry.file, entry.line)
            value = values[text] = cv.const if cv.const is not None else cv
        if key == "default":
            if default is not None:
                raise entry.error("duplicate default map parameter")
            default = value
            continue
        if key.startswith("~"):
            pattern = key[1:]
            caseless = pattern.startswith("*")
            if caseless:
                pattern = pattern[1:]
            try:
                rx = pcre.compile(pattern, caseless)
            except pcre.PcreError as e:
                raise entry.error(e.message) from None
            if rx.groupindex:
                variables.declare_named_captures(list(rx.groupindex))
            regexes.append((rx, value))
            continue
        if key.startswith("\\"):
            key = key[1:]
        keys.add(entry, key, value, hostnames)

    max_size, bucket_size = mcf.hash_max_size, mcf.hash_bucket_size
    if keys.exact:
        _hash_init(cf, [k.encode("utf-8", "surrogateescape") for k in keys.exact],
                   max_size, bucket_size, exact=True)
    for wc in (keys.head, keys.tail):
        if wc:
            labels = {lab.encode("utf-8", "surrogateescape") for k in wc for lab in k.split(".")}
            _hash_init(cf, sorted(labels), max_size, bucket_size, exact=False)

    mv = MapVar(source, keys, regexes, default if default is not None else "", hostnames)
    new_variable(main, name, mv.get, volatile)


class MapModule(Module):
    name = "map"
    nginx_name = "ngx_http_map_module"
    is_http = True
    main_conf = MapMainConf
    directives = [
        dir("map", H, TAKE2, _map_block, "main", block=True),
        dir("map_hash_max_size", H, TAKE1, set_num("hash_max_size"), "main"),
        dir("map_hash_bucket_size", H, TAKE1, set_num("hash_bucket_size"), "main"),
    ]
