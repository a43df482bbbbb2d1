"""The list of compiled-in modules, in nginx's order, and build facts for -V.

Invariant: ``registry()`` returns a fresh Registry each call (a Cycle owns
its directive objects), listing modules in the order nginx initialises them,
which fixes phase-handler and filter registration order.
"""
from __future__ import annotations

from .core.module import Module, Registry


def all_modules() -> list[Module]:
    from .core.core_module import CoreModule
    from .http.core_module import HttpCoreModule
    from .http.modules.dav import DavModule
    from .http.modules.headers import HeadersModule
    from .http.modules.log import LogModule
    from .http.modules.range import RangeModule
    from .http.modules.rewrite import RewriteModule
    from .http.modules.static import IndexModule, StaticModule
    from .http.modules.stub_status import StubStatusModule
    from .http.modules.access import AccessModule
    from .http.modules.geo import GeoModule
    from .http.modules.map import MapModule
    from .http.modules.realip import RealIpModule
    from .http.modules.split_clients import SplitClientsModule
    from .http.modules.try_files import TryFilesModule
    from .http.modules.addition import AdditionModule
    from .http.modules.autoindex import AutoindexModule
    from .http.modules.brotli import BrotliModule
    from .http.modules.charset import CharsetModule
    from .http.modules.empty_gif import EmptyGifModule
    from .http.modules.gunzip import GunzipModule
    from .http.modules.gzip import GzipModule
    from .http.modules.gzip_static import GzipStaticModule
    from .http.modules.limit_conn import LimitConnModule
    from .http.modules.limit_req import LimitReqModule
    from .http.modules.random_index import RandomIndexModule
    from .http.modules.sub import SubModule
    from .http.modules.zstd import ZstdModule
    from .http.modules.proxy import ProxyModule
    from .http.modules.ssl import SslModule
    from .http.modules.upstream import UpstreamKeepaliveModule, UpstreamModule, UpstreamZoneModule
    from .http.modules.upstream_hc import UpstreamHcModule
    from .http.modules.http2 import Http2Module
    from .http.modules.upstream_methods import (UpstreamHashModule, UpstreamIpHashModule,
                                                UpstreamLeastConnModule, UpstreamRandomModule)
    # nginx's ngx_modules[] order (auto/modules): it fixes phase-handler order
    # (filters are ordered by phases.HEADER_ORDER / BODY_ORDER instead)
    return [CoreModule(), HttpCoreModule(), LogModule(), UpstreamModule(), Http2Module(), StaticModule(), GzipStaticModule(),
            DavModule(), AutoindexModule(), IndexModule(), RandomIndexModule(), TryFilesModule(),
            AccessModule(), LimitConnModule(), LimitReqModule(), RealIpModule(), GeoModule(), MapModule(),
            SplitClientsModule(), RewriteModule(), SslModule(), ProxyModule(), EmptyGifModule(), StubStatusModule(),
            HeadersModule(), RangeModule(), GzipModule(), BrotliModule(), ZstdModule(), CharsetModule(),
            SubModule(), AdditionModule(), GunzipModule(), UpstreamHashModule(), UpstreamIpHashModule(),
            UpstreamLeastConnModule(), UpstreamRandomModule(), UpstreamKeepaliveModule(),
            UpstreamZoneModule(), UpstreamHcModule()]


def registry() -> Registry:
    reg = Registry()
    for m in all_modules():
        reg.add(m)
    return reg


#: nginx's HTTP modules that its configure builds by default, by module name
DEFAULT_HTTP_MODULES = (
    "charset", "gzip", "ssi", "userid", "access", "auth_basic", "mirror", "autoindex", "geo", "map",
    "split_clients", "referer", "rewrite", "proxy", "fastcgi", "uwsgi", "scgi", "grpc", "memcached",
    "limit_conn", "limit_req", "empty_gif", "browser", "upstream_hash", "upstream_ip_hash",
    "upstream_least_conn", "upstream_random", "upstream_keepalive", "upstream_zone",
)

#: optional nginx modules (``--with-...``) and the Portico module that provides each
OPTIONAL_HTTP_MODULES = (
    "ssl", "v2", "v3", "realip", "addition", "xslt", "image_filter", "geoip", "sub", "dav", "flv",
    "mp4", "gunzip", "gzip_static", "auth_request", "random_index", "secure_link", "degradation",
    "slice", "stub_status", "perl",
)


def configure_arguments() -> str:
    mods = all_modules()
    # by Portico name, and by nginx's (ngx_http_v2_module is --with-http_v2_module)
    have = {m.name for m in mods} | {m.nginx_name[9:-7] for m in mods if m.nginx_name.startswith("ngx_http_")}
    args = []
    for name in OPTIONAL_HTTP_MODULES:
        if name in have:
            args.append(f"--with-http_{name}_module")
    for name in DEFAULT_HTTP_MODULES:
        if name not in have:
            args.append(f"--without-http_{name}_module")
    args.append("--without-http-cache")
    return " ".join(args)
