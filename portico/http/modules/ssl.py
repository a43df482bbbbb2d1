"""ngx_http_ssl_module: HTTPS servers (directives, contexts, $ssl_* variables,
client certificate checks at request time).

Invariants:
- The conf lives at the server{} level (directives are allowed in http{}
  and server{} only); it is declared as a loc conf so that the transport
  reads ``server.root.conf.ssl`` (``buffer_size`` ...), and merges
  http -> server with nginx's defaults.
- postconfiguration builds, in server order and with nginx's errors, the
  context of every server that has ``ssl_certificate`` or
  ``ssl_reject_handshake on`` (nginx does it in its merge); init_cycle,
  once the listen sockets are grouped, applies nginx's ``no
  "ssl_certificate" is defined for the "listen ... ssl"`` check and sets on
  every ServerTable of an ``ssl`` address ``table.ssl_ctx`` (the default
  server's context, SNI callback installed) and ``table.ssl_tls``.  All of
  this runs in the master before fork: workers share contexts, hence
  OpenSSL's ticket keys.
- A context announces ``h2`` in ALPN when its address has ``listen ...
  http2`` or the server has ``http2 on``; a server reachable both ways gets
  one context per variant.
- Variables read only ``conn.ssl_object`` (None on plain connections).
- ``check_request(r)`` is nginx's ngx_http_process_request check plus the
  421 rule of ngx_http_set_virtual_server; it only reads the handshake.
"""
from __future__ import annotations

import os
from typing import Any

from ...conf.errors import ConfError
from ...conf.parser import Node, parse
from ...core import log as logmod
from ...core import values
from ...core.module import (HTTP, SERVER, MORE1, TAKE1, TAKE2, Conf, Factory, Module, UNSET, dir, set_enum,
                            set_flag, set_num, set_sec, set_size, set_str)
from ...core.shm.declare import note_cycle, previous_cycle, shared_memory_add
from ...core.shm.zone import MIN_ZONE_SIZE
from ...tls import info as tlsinfo
from ...tls import openssl as osl
from ...tls.context import (DFLT_BUILTIN_SCACHE, NO_BUILTIN_SCACHE, NO_SCACHE, NONE_SCACHE, PROTOCOLS,
                            Builder, build)
from ...tls.sessions import SharedSessionCache, random_ticket_key
from ...tls.sni import DynamicCerts, TableTls, sni_callback

HS = frozenset({HTTP, SERVER})
SESSION_TAG = "ssl_session_cache"
OCSP_TAG = "ssl_ocsp_cache"


class SslConf(Conf):
    certificates: Any = None  # list[str] | None
    certificate_keys: Any = None
    passwords: Any = None  # list[bytes] | None
    dhparam: str = ""
    ecdh_curve: str = "auto"
    protocols: frozenset = frozenset({"TLSv1.2", "TLSv1.3"})
    ciphers: str = "HIGH:!aNULL:!MD5"
    buffer_size: int = 16384
    verify: int = 0  # 0 off, 1 on, 2 optional, 3 optional_no_ca
    verify_depth: int = 1
    client_certificate: str = ""
    trusted_certificate: str = ""
    prefer_server_ciphers: bool = False
    builtin_session_cache: int = NONE_SCACHE
    shm_zone: Any = None  # (name, size) | None
    session_timeout: float = 300.0
    session_tickets: bool = True
    session_ticket_keys: Any = None  # list[str] | None
    crl: str = ""
    ocsp: int = 0
    ocsp_responder: str = ""
    ocsp_cache: Any = None
    stapling: bool = False
    stapling_file: str = ""
    stapling_responder: str = ""
    stapling_verify: bool = False
    early_data: bool = False
    conf_commands: Any = None  # list[(key, value)] | None
    reject_handshake: bool = False
    certificate_values: Any = None  # [(cert ComplexValue, key ComplexValue)] when paths have variables


class SslMainConf(Conf):
    # id(server) -> {h2: context}; filled by postconfiguration and init_cycle
    contexts: dict = Factory(dict)  # type: ignore[assignment]
    caches: dict = Factory(dict)  # type: ignore[assignment]  # zone name -> SharedSessionCache
    zone_keys: dict = Factory(dict)  # type: ignore[assignment]  # zone name -> 80-byte ticket key
    builder: Any = None


# --- directive setters -------------------------------------------------------------------------

def _str_array(attr: str) -> Any:
    def setter(cf: Any, node: Node, conf: SslConf) -> None:
        if getattr(conf, attr) is UNSET:
            setattr(conf, attr, [])
        getattr(conf, attr).append(node.args[0])
    return setter


def _protocols(cf: Any, node: Node, conf: SslConf) -> None:
    """ngx_conf_set_bitmask_slot: a repeated directive adds to the set."""
    names = {n.lower(): n for n in PROTOCOLS}
    got: set[str] = set() if conf.protocols is UNSET else set(conf.protocols)
    for a in node.args:
        name = names.get(a.lower())
        if name is None:
            raise node.error(f'invalid value "{a}"')
        if name in got:
            cf.cycle.warn(f'duplicate value "{a}"', node)
        got.add(name)
    conf.protocols = frozenset(got)


def _password_file(cf: Any, node: Node, conf: SslConf) -> None:
    """ngx_ssl_read_password_file: one password per line, empty lines skipped."""
    if conf.passwords is not UNSET:
        raise node.error('"ssl_password_file" directive is duplicate')
    path = node.args[0]
    full = path if os.path.isabs(path) else os.path.join(cf.cycle.conf_prefix, path)
    try:
        with open(full, "rb") as f:
            data = f.read()
    except OSError as e:
        raise node.error(f'open() "{full}" failed ({e.errno}: {e.strerror})') from None
    pwds: list[bytes] = []
    for line in data.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) >= 4096:
            raise node.error(f'too long line in "{full}"')
        if line:
            pwds.append(line)
    conf.passwords = pwds or [b""]


def _shared_zone(node: Node, value: str) -> tuple[str, int] | None:
    rest = value[7:]
    name, sep, size_text = rest.partition(":")
    if not name or not sep:
        return None
    size = values.parse_size(size_text)
    if size is None:
        return None
    return name, size


def _session_cache(cf: Any, node: Node, conf: SslConf) -> None:
    for a in node.args:
        if a == "off":
            conf.builtin_session_cache = NO_SCACHE
        elif a == "none":
            conf.builtin_session_cache = NONE_SCACHE
        elif a == "builtin":
            conf.builtin_session_cache = DFLT_BUILTIN_SCACHE
        elif a.startswith("builtin:") and len(a) > 8:
            n = a[8:]
            if not n.isdigit():
                raise node.error(f'invalid session cache "{a}"')
            conf.builtin_session_cache = int(n)
        elif a.startswith("shared:") and len(a) > 7:
            z = _shared_zone(node, a)
            if z is None:
                raise node.error(f'invalid session cache "{a}"')
            if z[1] < MIN_ZONE_SIZE:
                raise node.error(f'session cache "{a}" is too small')
            shared_memory_add(cf.cycle, node, z[0], z[1], SESSION_TAG)
            conf.shm_zone = z
        else:
            raise node.error(f'invalid session cache "{a}"')
    if conf.shm_zone not in (UNSET, None) and conf.builtin_session_cache is UNSET:
        conf.builtin_session_cache = NO_BUILTIN_SCACHE


def _ocsp_cache(cf: Any, node: Node, conf: SslConf) -> None:
    if conf.ocsp_cache is not UNSET:
        raise node.error('"ssl_ocsp_cache" directive is duplicate')
    a = node.args[0]
    if a == "off":
        conf.ocsp_cache = None
        return
    z = _shared_zone(node, a) if a.startswith("shared:") and len(a) > 7 else None
    if z is None:
        raise node.error(f'invalid OCSP cache "{a}"')
    if z[1] < MIN_ZONE_SIZE:
        raise node.error(f'OCSP cache "{a}" is too small')
    shared_memory_add(cf.cycle, node, z[0], z[1], OCSP_TAG)
    conf.ocsp_cache = z


def _conf_command(cf: Any, node: Node, conf: SslConf) -> None:
    if conf.conf_commands is UNSET:
        conf.conf_commands = []
    conf.conf_commands.append((node.args[0], node.args[1]))


def _ocsp(cf: Any, node: Node, conf: SslConf) -> None:
    set_enum("ocsp", {"off": 0, "on": 1, "leaf": 2})(cf, node, conf)


def _verify(cf: Any, node: Node, conf: SslConf) -> None:
    set_enum("verify", {"off": 0, "on": 1, "optional": 2, "optional_no_ca": 3})(cf, node, conf)


# --- variables ------------------------------------------------------------------------------------

def _var(fn: Any) -> Any:
    def get(r: Any) -> str | None:
        obj = getattr(r.conn, "ssl_object", None)
        if obj is None:
            return None
        v = fn(obj)
        return v if v else None
    return get


# --- building contexts -----------------------------------------------------------------------------

def _server_h2(srv: Any) -> bool:
    h2 = getattr(srv.root.conf, "http2", None)
    return bool(getattr(h2, "enable", False))


def _http_end(cycle: Any) -> tuple[str | None, int | None]:
    """Where nginx's configuration parser stands after http{}: its closing
    brace (read again; only on the error paths that need it)."""
    try:
        parsed = parse(cycle.conf_file, cycle.conf_prefix)
        for node in parsed.nodes:
            if node.name == "http" and node.block is not None:
                for _ in node.block:
                    pass
                return node.file, node.end_line if node.end_line is not None else node.line
    except ConfError:
        pass
    return None, None


class _HandshakeConn:
    """The connection as variables see it while certificates are chosen
    (nginx evaluates ``ssl_certificate $var`` with a fake request)."""
    ssl = True
    client_addr = ""
    client_port = 0
    server_addr = ""
    server_port = 0
    id = 0
    requests = 0

    def __init__(self, obj: Any) -> None:
        self.ssl_object = obj


class SslModule(Module):
    name = "ssl"
    nginx_name = "ngx_http_ssl_module"
    is_http = True
    loc_conf = SslConf
    main_conf = SslMainConf
    directives = [
        dir("ssl_certificate", HS, TAKE1, _str_array("certificates")),
        dir("ssl_certificate_key", HS, TAKE1, _str_array("certificate_keys")),
        dir("ssl_password_file", HS, TAKE1, _password_file),
        dir("ssl_dhparam", HS, TAKE1, set_str("dhparam")),
        dir("ssl_ecdh_curve", HS, TAKE1, set_str("ecdh_curve")),
        dir("ssl_protocols", HS, MORE1, _protocols),
        dir("ssl_ciphers", HS, TAKE1, set_str("ciphers")),
        dir("ssl_buffer_size", HS, TAKE1, set_size("buffer_size")),
        dir("ssl_verify_client", HS, TAKE1, _verify),
        dir("ssl_verify_depth", HS, TAKE1, set_num("verify_depth")),
        dir("ssl_client_certificate", HS, TAKE1, set_str("client_certificate")),
        dir("ssl_trusted_certificate", HS, TAKE1, set_str("trusted_certificate")),
        dir("ssl_prefer_server_ciphers", HS, TAKE1, set_flag("prefer_server_ciphers")),
        dir("ssl_session_cache", HS, (1, 2), _session_cache),
        dir("ssl_session_tickets", HS, TAKE1, set_flag("session_tickets")),
        dir("ssl_session_ticket_key", HS, TAKE1, _str_array("session_ticket_keys")),
        dir("ssl_session_timeout", HS, TAKE1, set_sec("session_timeout")),
        dir("ssl_crl", HS, TAKE1, set_str("crl")),
        dir("ssl_ocsp", HS, TAKE1, _ocsp, status="partial"),
        dir("ssl_ocsp_responder", HS, TAKE1, set_str("ocsp_responder"), status="partial"),
        dir("ssl_ocsp_cache", HS, TAKE1, _ocsp_cache, status="partial"),
        dir("ssl_stapling", HS, TAKE1, set_flag("stapling"), status="partial"),
        dir("ssl_stapling_file", HS, TAKE1, set_str("stapling_file"), status="partial"),
        dir("ssl_stapling_responder", HS, TAKE1, set_str("stapling_responder"), status="partial"),
        dir("ssl_stapling_verify", HS, TAKE1, set_flag("stapling_verify"), status="partial"),
        dir("ssl_early_data", HS, TAKE1, set_flag("early_data"), status="partial"),
        dir("ssl_conf_command", HS, TAKE2, _conf_command),
        dir("ssl_reject_handshake", HS, TAKE1, set_flag("reject_handshake")),
    ]

    def preconfiguration(self, http: Any) -> None:
        for name, fn in tlsinfo.GETTERS.items():
            # nginx's ssl variables are NGX_HTTP_VAR_CHANGEABLE
            http.variables.add(f"ssl_{name}", _var(fn), changeable=True)

    # --- postconfiguration: nginx's merge-time context creation ---------------------------------
    def postconfiguration(self, http: Any) -> None:
        cycle = http.cycle
        note_cycle(cycle)
        if any(lo.ssl for srv in http.servers for lo in srv.listens):
            http.request_checks.append(check_request)  # run by Engine.start, before the phases
        for srv in http.servers:
            sc: SslConf = srv.root.conf.ssl
            if sc.certificates:
                keys = sc.certificate_keys or []
                if len(keys) < len(sc.certificates):
                    raise ConfError(f'no "ssl_certificate_key" is defined for certificate '
                                    f'"{sc.certificates[-1]}"')
                if any("$" in p for p in sc.certificates + keys[:len(sc.certificates)]):
                    sc.certificate_values = [
                        (http.variables.compile(c, srv.file, srv.line), http.variables.compile(k, srv.file, srv.line))
                        for c, k in zip(sc.certificates, keys)]
                    if all(not c.has_vars and not k.has_vars for c, k in sc.certificate_values):
                        sc.certificate_values = None
            elif not sc.reject_handshake:
                continue
            h2 = _server_h2(srv) or any(lo.http2 for lo in srv.listens)
            self._context(http, srv, h2)

    def _builder(self, http: Any) -> Builder | None:
        mc: SslMainConf = http.main["ssl"]
        if mc.builder is not None:
            return mc.builder
        b = osl.load()
        if b is None:
            raise ConfError(f"TLS is not available: {osl.unavailable_reason}")
        cycle = http.cycle

        def session_cache(name: str, size: int) -> SharedSessionCache:
            c = mc.caches.get(name)
            if c is None:
                c = mc.caches[name] = SharedSessionCache(b, name, size, lambda n: _zone_of(cycle, n))
            return c

        def ticket_key_for_zone(cache: SharedSessionCache) -> bytes:
            key = mc.zone_keys.get(cache.name)
            if key is None:
                key = _previous_ticket_key(cycle, b, cache) or random_ticket_key()
                mc.zone_keys[cache.name] = key
            return key

        mc.builder = Builder(b, cycle.conf_prefix, lambda m: cycle.warn(m), lambda m: cycle.info(m),
                             session_cache, ticket_key_for_zone, lambda: _http_end(cycle))
        return mc.builder

    def _context(self, http: Any, srv: Any, h2: bool) -> Any:
        """The context of ``srv`` announcing h2 or not (built once per variant)."""
        mc: SslMainConf = http.main["ssl"]
        variants = mc.contexts.setdefault(id(srv), {})
        ctx = variants.get(h2)
        if ctx is None:
            bld = self._builder(http)
            assert bld is not None
            ctx = build(srv.root.conf.ssl, bld, h2)
            ctx.sni_callback = sni_callback
            variants[h2] = ctx
        return ctx

    # --- init_cycle: the listen check and the tables -------------------------------------------------
    def init_cycle(self, cycle: Any) -> None:
        http = cycle.http
        if http is None:
            return
        for spec in http.listen_specs:
            for table in spec.tables.values():
                own = [lo for srv in table.servers for lo in srv.listens if lo.text == table.addr_text]
                if not any(lo.ssl for lo in own):
                    continue
                self._check_certificates(table)
                h2 = any(lo.http2 for lo in own)
                self._wire(http, table, h2)

    @staticmethod
    def _check_certificates(table: Any) -> None:
        default = table.default
        sc: SslConf = default.root.conf.ssl
        if sc.certificates:
            return
        msg = 'no "ssl_certificate" is defined for the "listen ... ssl" directive'
        if not sc.reject_handshake:
            raise ConfError(msg, default.file, default.line)
        for srv in table.servers:
            s: SslConf = srv.root.conf.ssl
            if not s.certificates and not s.reject_handshake:
                raise ConfError(msg, srv.file, srv.line)

    def _wire(self, http: Any, table: Any, h2_listen: bool) -> None:
        tls = TableTls(table)
        for srv in table.servers:
            sc: SslConf = srv.root.conf.ssl
            tls.reject[id(srv)] = bool(sc.reject_handshake)
            tls.verify[id(srv)] = sc.verify
            if not sc.certificates and not sc.reject_handshake:
                tls.contexts[id(srv)] = None
                continue
            h2 = h2_listen or _server_h2(srv)
            tls.contexts[id(srv)] = self._context(http, srv, h2)
            if sc.certificate_values:
                tls.dynamic[id(srv)] = self._dynamic(http, srv, h2)
        table.ssl_tls = tls
        table.ssl_ctx = tls.contexts[id(table.default)]

    def _dynamic(self, http: Any, srv: Any, h2: bool) -> DynamicCerts:
        sc: SslConf = srv.root.conf.ssl
        bld = self._builder(http)
        assert bld is not None

        def evaluate(obj: Any) -> tuple[tuple[str, str], ...]:
            from ..request import Request
            r = Request(_HandshakeConn(obj), http, "GET", "/", "/", "", "HTTP/1.1", [], {}, "")
            r.server = srv
            r.loc = srv.root.conf
            return tuple((bld.full(c.eval(r)), bld.full(k.eval(r))) for c, k in sc.certificate_values)

        def make(obj: Any, pairs: tuple[tuple[str, str], ...]) -> Any:
            try:
                ctx = build(sc, bld, h2, certificates=list(pairs))
            except ConfError as e:
                http.cycle.log.log(logmod.ERROR, e.message)
                return None
            ctx.sni_callback = sni_callback
            return ctx
        return DynamicCerts(make, evaluate)

    # --- workers ---------------------------------------------------------------------------------------
    def init_worker(self, worker: Any) -> None:
        """Store the zone's ticket key if no process did yet (the master made it)."""
        http = worker.cycle.http
        if http is None:
            return
        mc: SslMainConf = http.main["ssl"]
        for name, key in mc.zone_keys.items():
            cache = mc.caches.get(name)
            if cache is not None:
                try:
                    cache.store_ticket_key(key)
                except Exception as e:  # a worker must start even if the zone is odd
                    worker.cycle.log.log(logmod.ALERT, f'ssl session cache "{name}": {e!r}')


def _zone_of(cycle: Any, name: str) -> Any:
    shm = getattr(cycle, "shm", None)  # made by the master after the configuration was read
    return shm.get(name) if shm is not None else None


def _previous_ticket_key(cycle: Any, b: osl.Bridge, cache: SharedSessionCache) -> bytes | None:
    """The key the running configuration keeps in a zone the new one reuses."""
    prev = previous_cycle(cycle)
    shm = getattr(prev, "shm", None) if prev is not None else None
    zone = shm.get(cache.name) if shm is not None else None
    if zone is None or zone.size != cache.size or zone.tag != SESSION_TAG:
        return None
    try:
        return SharedSessionCache(b, cache.name, cache.size, lambda n: zone).stored_ticket_key()
    except Exception:
        return None


# --- request time ------------------------------------------------------------------------------------

def check_request(r: Any) -> int:
    """0, or the status nginx answers before the phases on a TLS connection:
    421 (Host names another server than SNI and client verification is on),
    495 (certificate verify error), 496 (no required certificate)."""
    obj = getattr(r.conn, "ssl_object", None)
    if obj is None or r.server is None:
        return 0
    sni_srv = getattr(obj, "portico_sni_server", None)
    if sni_srv is not None and (r.host or "") != getattr(obj, "portico_sni", None):
        if r.server.root.conf.ssl.verify:
            r.log_error(logmod.INFO, "client attempted to request the server name "
                                     "different from the one that was negotiated")
            return 421
    sc: SslConf = r.server.root.conf.ssl
    if not sc.verify:
        return 0
    rc = tlsinfo.peer_verify_result(obj)
    if rc != 0 and (sc.verify != 3 or not _verify_error_optional(rc)):
        r.log_error(logmod.INFO, f"client SSL certificate verify error: ({rc}:"
                                 f"{tlsinfo.verify_error_string(rc)}) while reading client request headers")
        _forget_session(obj)
        return 495
    if sc.verify == 1 and not tlsinfo.peer_has_cert(obj):
        r.log_error(logmod.INFO, "client sent no required SSL certificate while reading client request headers")
        _forget_session(obj)
        return 496
    return 0


# X509_V_ERR_* that optional_no_ca tolerates (nginx's ngx_ssl_verify_error_optional)
_OPTIONAL_ERRORS = frozenset({
    18,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19,  # SELF_SIGNED_CERT_IN_CHAIN
    20,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    27,  # CERT_UNTRUSTED
    21,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
})


def _verify_error_optional(rc: int) -> bool:
    return rc in _OPTIONAL_ERRORS


def _forget_session(obj: Any) -> None:
    """ngx_ssl_remove_cached_session: a session with a bad certificate must not resume."""
    b = osl.load()
    if b is None:
        return
    sp = b.ssl_ptr(obj)
    sess = b.SSL_get_session(sp)
    if sess:
        b.SSL_CTX_remove_session(b.SSL_get_SSL_CTX(sp), sess)
