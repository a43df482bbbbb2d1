"""nginx's modules and the directives nginx documents for each (data only).

Written from the module reference pages on nginx.org (https://nginx.org/en/docs/)
and used by ``portico.docs_gen`` to produce ``docs/modules.md``.

Invariants:
- ``MODULES`` lists open-source nginx modules by their source name
  (``ngx_http_upstream_hash_module``, not the documentation page that also
  describes it), grouped by ``family``: core, http, stream, mail.  Within a
  family a directive name appears in one module, except names that exist in
  several contexts, which are told apart by ``upstream`` (the directive lives
  in ``upstream {}``: ``server``, ``keepalive_timeout``...).
- ``build`` is how nginx's configure treats the module within its family:
  "always" (cannot be left out), "default" (built unless ``--without-...``)
  or "optional" (needs ``--with-...``).  Stream and mail need ``--with-stream``
  / ``--with-mail`` first.
- ``commercial`` names directives documented on an open-source module's page
  that only exist in nginx's commercial subscription; modules that exist only
  in the subscription (api, auth_jwt, keyval, zone_sync, ...) and the
  separately distributed njs modules are left out, except those Portico
  implements (upstream_hc), whose directives are all ``commercial``.
- ``notes`` holds short per-directive facts (obsolete, documented elsewhere,
  undocumented).  Directive order follows the documentation (alphabetical).
- The only third-party entries are the brotli and zstd modules Portico
  implements (google/ngx_brotli, tokers/zstd-nginx-module); their notes say so.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CORE, HTTP, STREAM, MAIL = "core", "http", "stream", "mail"
FAMILIES = (CORE, HTTP, STREAM, MAIL)
FAMILY_TITLES = {CORE: "Core and events", HTTP: "HTTP", STREAM: "Stream (TCP/UDP)", MAIL: "Mail"}
BUILDS = ("always", "default", "optional")


@dataclass(frozen=True)
class CatalogModule:
    name: str
    family: str
    build: str
    directives: tuple[str, ...]
    commercial: frozenset[str] = frozenset()
    upstream: frozenset[str] = frozenset()
    notes: dict[str, str] = field(default_factory=dict)


def _m(name: str, family: str, build: str, directives: str, commercial: str = "", upstream: str = "",
       notes: dict[str, str] | None = None) -> CatalogModule:
    return CatalogModule(name, family, build, tuple(directives.split()), frozenset(commercial.split()),
                         frozenset(upstream.split()), dict(notes or {}))


_OBSOLETE = "obsolete"
_ELSEWHERE = "documented with the core functionality (error_log)"
_THIRD_PARTY = "third-party module ({}), not part of nginx"

# directive families shared by the fastcgi, scgi and uwsgi modules ({p} = prefix)
_CGI_COMMON = """
{p}_bind {p}_buffer_size {p}_buffering {p}_buffers {p}_busy_buffers_size {p}_cache
{p}_cache_background_update {p}_cache_bypass {p}_cache_key {p}_cache_lock {p}_cache_lock_age
{p}_cache_lock_timeout {p}_cache_max_range_offset {p}_cache_methods {p}_cache_min_uses
{p}_cache_path {p}_cache_purge {p}_cache_revalidate {p}_cache_use_stale {p}_cache_valid
{p}_connect_timeout {p}_force_ranges {p}_hide_header {p}_ignore_client_abort {p}_ignore_headers
{p}_intercept_errors {p}_limit_rate {p}_max_temp_file_size {p}_next_upstream
{p}_next_upstream_timeout {p}_next_upstream_tries {p}_no_cache {p}_param {p}_pass {p}_pass_header
{p}_pass_request_body {p}_pass_request_headers {p}_read_timeout {p}_request_buffering
{p}_send_timeout {p}_socket_keepalive {p}_store {p}_store_access {p}_temp_file_write_size
{p}_temp_path
"""

_UPSTREAM_SSL = """
{p}_ssl_certificate {p}_ssl_certificate_key {p}_ssl_ciphers {p}_ssl_conf_command {p}_ssl_crl
{p}_ssl_name {p}_ssl_password_file {p}_ssl_protocols {p}_ssl_server_name {p}_ssl_session_reuse
{p}_ssl_trusted_certificate {p}_ssl_verify {p}_ssl_verify_depth
"""


def _cgi(prefix: str, extra: str, drop: str = "") -> str:
    names = set((_CGI_COMMON.format(p=prefix) + extra).split()) - set(drop.split())
    return " ".join(sorted(names))


MODULES: tuple[CatalogModule, ...] = (
    # --- core and events ------------------------------------------------------------------
    _m("ngx_core_module", CORE, "always", """
        daemon debug_points env load_module lock_file master_process pcre_jit pid timer_resolution user
        worker_cpu_affinity worker_priority worker_processes worker_rlimit_core worker_rlimit_nofile
        worker_shutdown_timeout working_directory"""),
    _m("ngx_errlog_module", CORE, "always", "error_log"),
    _m("ngx_conf_module", CORE, "always", "include"),
    _m("ngx_events_module", CORE, "always", "events"),
    _m("ngx_event_core_module", CORE, "always", """
        accept_mutex accept_mutex_delay debug_connection multi_accept use worker_connections"""),
    _m("ngx_epoll_module", CORE, "always", "worker_aio_requests",
       notes={"worker_aio_requests": "Linux (epoll) builds"}),
    _m("ngx_thread_pool_module", CORE, "optional", "thread_pool"),
    _m("ngx_openssl_module", CORE, "optional", "ssl_engine"),
    _m("ngx_google_perftools_module", CORE, "optional", "google_perftools_profiles"),

    # --- http -----------------------------------------------------------------------------
    _m("ngx_http_core_module", HTTP, "always", """
        absolute_redirect aio aio_write alias auth_delay chunked_transfer_encoding
        client_body_buffer_size client_body_in_file_only client_body_in_single_buffer
        client_body_temp_path client_body_timeout client_header_buffer_size client_header_timeout
        client_max_body_size connection_pool_size default_type directio directio_alignment
        disable_symlinks early_hints error_log error_page etag http if_modified_since
        ignore_invalid_headers internal keepalive_disable keepalive_min_timeout keepalive_requests
        keepalive_time keepalive_timeout large_client_header_buffers limit_except limit_rate
        limit_rate_after lingering_close lingering_time lingering_timeout listen location
        log_not_found log_subrequest max_ranges merge_slashes msie_padding msie_refresh
        open_file_cache open_file_cache_errors open_file_cache_events open_file_cache_min_uses
        open_file_cache_valid output_buffers port_in_redirect postpone_output read_ahead
        recursive_error_pages request_pool_size reset_timedout_connection resolver resolver_timeout
        root satisfy send_lowat send_timeout sendfile sendfile_max_chunk server server_name
        server_name_in_redirect server_names_hash_bucket_size server_names_hash_max_size
        server_tokens subrequest_output_buffer_size tcp_nodelay tcp_nopush try_files types
        types_hash_bucket_size types_hash_max_size underscores_in_headers variables_hash_bucket_size
        variables_hash_max_size""",
       notes={"error_log": _ELSEWHERE,
              "open_file_cache_events": "exists in nginx's source but is not documented"}),
    _m("ngx_http_access_module", HTTP, "default", "allow deny"),
    _m("ngx_http_addition_module", HTTP, "optional", "add_after_body add_before_body addition_types"),
    _m("ngx_http_auth_basic_module", HTTP, "default", "auth_basic auth_basic_user_file"),
    _m("ngx_http_auth_request_module", HTTP, "optional", "auth_request auth_request_set"),
    _m("ngx_http_autoindex_module", HTTP, "default",
       "autoindex autoindex_exact_size autoindex_format autoindex_localtime"),
    _m("ngx_http_browser_module", HTTP, "default",
       "ancient_browser ancient_browser_value modern_browser modern_browser_value"),
    _m("ngx_http_charset_module", HTTP, "default",
       "charset charset_map charset_types override_charset source_charset"),
    _m("ngx_http_dav_module", HTTP, "optional", "create_full_put_path dav_access dav_methods min_delete_depth"),
    _m("ngx_http_empty_gif_module", HTTP, "default", "empty_gif"),
    _m("ngx_http_fastcgi_module", HTTP, "default",
       _cgi("fastcgi", "fastcgi_catch_stderr fastcgi_index fastcgi_keep_conn fastcgi_send_lowat "
                       "fastcgi_split_path_info"),
       commercial="fastcgi_cache_purge"),
    _m("ngx_http_flv_module", HTTP, "optional", "flv"),
    _m("ngx_http_geo_module", HTTP, "default", "geo"),
    _m("ngx_http_geoip_module", HTTP, "optional",
       "geoip_city geoip_country geoip_org geoip_proxy geoip_proxy_recursive"),
    _m("ngx_http_grpc_module", HTTP, "default", " ".join(sorted((
        "grpc_bind grpc_buffer_size grpc_connect_timeout grpc_hide_header grpc_ignore_headers "
        "grpc_intercept_errors grpc_next_upstream grpc_next_upstream_timeout grpc_next_upstream_tries "
        "grpc_pass grpc_pass_header grpc_read_timeout grpc_send_timeout grpc_set_header "
        "grpc_socket_keepalive " + _UPSTREAM_SSL.format(p="grpc")).split()))),
    _m("ngx_http_gunzip_module", HTTP, "optional", "gunzip gunzip_buffers"),
    _m("ngx_http_gzip_module", HTTP, "default", """
        gzip gzip_buffers gzip_comp_level gzip_disable gzip_hash gzip_http_version gzip_min_length
        gzip_no_buffer gzip_proxied gzip_types gzip_vary gzip_window postpone_gzipping""",
       notes={d: "exists in nginx's source but is not documented"
              for d in ("gzip_hash", "gzip_no_buffer", "gzip_window", "postpone_gzipping")}),
    _m("ngx_http_gzip_static_module", HTTP, "optional", "gzip_static"),
    # third-party modules that Portico implements: google/ngx_brotli and
    # tokers/zstd-nginx-module (nginx builds them with --add-module)
    _m("ngx_http_brotli_filter_module", HTTP, "optional", """
        brotli brotli_buffers brotli_comp_level brotli_min_length brotli_types brotli_window""",
       notes={"brotli": _THIRD_PARTY.format("google/ngx_brotli"),
              "brotli_buffers": "deprecated and unused in ngx_brotli"}),
    _m("ngx_http_brotli_static_module", HTTP, "optional", "brotli_static",
       notes={"brotli_static": _THIRD_PARTY.format("google/ngx_brotli")}),
    _m("ngx_http_headers_module", HTTP, "always",
       "add_header add_header_inherit add_trailer add_trailer_inherit expires"),
    _m("ngx_http_image_filter_module", HTTP, "optional", """
        image_filter image_filter_buffer image_filter_interlace image_filter_jpeg_quality
        image_filter_sharpen image_filter_transparency image_filter_webp_quality"""),
    _m("ngx_http_index_module", HTTP, "always", "index"),
    _m("ngx_http_limit_conn_module", HTTP, "default", """
        limit_conn limit_conn_dry_run limit_conn_log_level limit_conn_status limit_conn_zone"""),
    _m("ngx_http_limit_req_module", HTTP, "default", """
        limit_req limit_req_dry_run limit_req_log_level limit_req_status limit_req_zone"""),
    _m("ngx_http_log_module", HTTP, "always", "access_log log_format open_log_file_cache"),
    _m("ngx_http_map_module", HTTP, "default", "map map_hash_bucket_size map_hash_max_size"),
    _m("ngx_http_memcached_module", HTTP, "default", """
        memcached_bind memcached_buffer_size memcached_connect_timeout memcached_gzip_flag
        memcached_next_upstream memcached_next_upstream_timeout memcached_next_upstream_tries
        memcached_pass memcached_read_timeout memcached_send_timeout memcached_socket_keepalive"""),
    _m("ngx_http_mirror_module", HTTP, "default", "mirror mirror_request_body"),
    _m("ngx_http_mp4_module", HTTP, "optional", """
        mp4 mp4_buffer_size mp4_limit_rate mp4_limit_rate_after mp4_max_buffer_size
        mp4_start_key_frame""", commercial="mp4_limit_rate mp4_limit_rate_after"),
    _m("ngx_http_perl_module", HTTP, "optional", "perl perl_modules perl_require perl_set"),
    _m("ngx_http_proxy_module", HTTP, "default", _cgi("proxy", """
        proxy_cache_convert_head proxy_cookie_domain proxy_cookie_flags proxy_cookie_path
        proxy_headers_hash_bucket_size proxy_headers_hash_max_size proxy_http_version proxy_method
        proxy_redirect proxy_send_lowat proxy_set_body proxy_set_header """
        + _UPSTREAM_SSL.format(p="proxy"), drop="proxy_param"),
       commercial="proxy_cache_purge"),
    _m("ngx_http_random_index_module", HTTP, "optional", "random_index"),
    _m("ngx_http_realip_module", HTTP, "optional", "real_ip_header real_ip_recursive set_real_ip_from"),
    _m("ngx_http_referer_module", HTTP, "default",
       "referer_hash_bucket_size referer_hash_max_size valid_referers"),
    _m("ngx_http_rewrite_module", HTTP, "default",
       "break if return rewrite rewrite_log set uninitialized_variable_warn"),
    _m("ngx_http_scgi_module", HTTP, "default", _cgi("scgi", ""), commercial="scgi_cache_purge"),
    _m("ngx_http_secure_link_module", HTTP, "optional", "secure_link secure_link_md5 secure_link_secret"),
    _m("ngx_http_slice_module", HTTP, "optional", "slice"),
    _m("ngx_http_split_clients_module", HTTP, "default", "split_clients"),
    _m("ngx_http_ssi_module", HTTP, "default", """
        ssi ssi_last_modified ssi_min_file_chunk ssi_silent_errors ssi_types ssi_value_length"""),
    _m("ngx_http_ssl_module", HTTP, "optional", """
        ssl ssl_buffer_size ssl_certificate ssl_certificate_key ssl_ciphers ssl_client_certificate
        ssl_conf_command ssl_crl ssl_dhparam ssl_early_data ssl_ecdh_curve ssl_ocsp ssl_ocsp_cache
        ssl_ocsp_responder ssl_password_file ssl_prefer_server_ciphers ssl_protocols
        ssl_reject_handshake ssl_session_cache ssl_session_ticket_key ssl_session_tickets
        ssl_session_timeout ssl_stapling ssl_stapling_file ssl_stapling_responder ssl_stapling_verify
        ssl_trusted_certificate ssl_verify_client ssl_verify_depth""",
       notes={"ssl": _OBSOLETE + ": use the ssl parameter of listen"}),
    _m("ngx_http_stub_status_module", HTTP, "optional", "stub_status"),
    _m("ngx_http_sub_module", HTTP, "optional",
       "sub_filter sub_filter_last_modified sub_filter_once sub_filter_types"),
    _m("ngx_http_upstream_module", HTTP, "always",
       "least_time ntlm queue resolver resolver_timeout server state sticky sticky_cookie_insert upstream",
       commercial="least_time ntlm queue state sticky sticky_cookie_insert",
       upstream="least_time ntlm queue resolver resolver_timeout server state sticky sticky_cookie_insert"),
    # subscription-only, listed because Portico implements it (active health checks)
    _m("ngx_http_upstream_hc_module", HTTP, "optional", "health_check match",
       commercial="health_check match"),
    _m("ngx_http_upstream_hash_module", HTTP, "default", "hash", upstream="hash"),
    _m("ngx_http_upstream_ip_hash_module", HTTP, "default", "ip_hash", upstream="ip_hash"),
    _m("ngx_http_upstream_keepalive_module", HTTP, "default",
       "keepalive keepalive_requests keepalive_time keepalive_timeout",
       upstream="keepalive keepalive_requests keepalive_time keepalive_timeout"),
    _m("ngx_http_upstream_least_conn_module", HTTP, "default", "least_conn", upstream="least_conn"),
    _m("ngx_http_upstream_random_module", HTTP, "default", "random", upstream="random"),
    _m("ngx_http_upstream_zone_module", HTTP, "default", "zone", upstream="zone"),
    _m("ngx_http_userid_module", HTTP, "default", """
        userid userid_domain userid_expires userid_flags userid_mark userid_name userid_p3p userid_path
        userid_service"""),
    _m("ngx_http_uwsgi_module", HTTP, "default",
       _cgi("uwsgi", "uwsgi_modifier1 uwsgi_modifier2 " + _UPSTREAM_SSL.format(p="uwsgi")),
       commercial="uwsgi_cache_purge"),
    _m("ngx_http_v2_module", HTTP, "optional", """
        http2 http2_body_preread_size http2_chunk_size http2_idle_timeout http2_max_concurrent_pushes
        http2_max_concurrent_streams http2_max_field_size http2_max_header_size http2_max_requests
        http2_pool_size http2_push http2_push_preload http2_recv_buffer_size http2_recv_timeout
        http2_streams_index_size""",
       notes={d: _OBSOLETE for d in (
           "http2_idle_timeout http2_max_concurrent_pushes http2_max_field_size http2_max_header_size "
           "http2_max_requests http2_push http2_push_preload http2_recv_timeout http2_pool_size").split()}),
    _m("ngx_http_v3_module", HTTP, "optional", """
        http3 http3_hq http3_max_concurrent_streams http3_stream_buffer_size
        quic_active_connection_id_limit quic_bpf quic_gso quic_host_key quic_retry"""),
    _m("ngx_http_xslt_module", HTTP, "optional", """
        xml_entities xslt_last_modified xslt_param xslt_string_param xslt_stylesheet xslt_types"""),
    _m("ngx_http_zstd_filter_module", HTTP, "optional", """
        zstd zstd_buffers zstd_comp_level zstd_dict_file zstd_min_length zstd_types""",
       notes={"zstd": _THIRD_PARTY.format("tokers/zstd-nginx-module")}),
    _m("ngx_http_zstd_static_module", HTTP, "optional", "zstd_static",
       notes={"zstd_static": _THIRD_PARTY.format("tokers/zstd-nginx-module")}),

    # --- stream ---------------------------------------------------------------------------
    _m("ngx_stream_core_module", STREAM, "always", """
        listen preread_buffer_size preread_timeout proxy_protocol_timeout resolver resolver_timeout
        server server_name stream tcp_nodelay variables_hash_bucket_size variables_hash_max_size"""),
    _m("ngx_stream_access_module", STREAM, "default", "allow deny"),
    _m("ngx_stream_geo_module", STREAM, "default", "geo"),
    _m("ngx_stream_geoip_module", STREAM, "optional", "geoip_city geoip_country geoip_org"),
    _m("ngx_stream_limit_conn_module", STREAM, "default",
       "limit_conn limit_conn_dry_run limit_conn_log_level limit_conn_zone"),
    _m("ngx_stream_log_module", STREAM, "always", "access_log log_format open_log_file_cache"),
    _m("ngx_stream_map_module", STREAM, "default", "map map_hash_bucket_size map_hash_max_size"),
    _m("ngx_stream_pass_module", STREAM, "default", "pass"),
    _m("ngx_stream_proxy_module", STREAM, "always", " ".join(sorted((
        "proxy_bind proxy_buffer_size proxy_connect_timeout proxy_download_rate proxy_half_close "
        "proxy_next_upstream proxy_next_upstream_timeout proxy_next_upstream_tries proxy_pass "
        "proxy_protocol proxy_requests proxy_responses proxy_session_drop proxy_socket_keepalive "
        "proxy_ssl proxy_timeout proxy_upload_rate " + _UPSTREAM_SSL.format(p="proxy")).split())),
       commercial="proxy_session_drop"),
    _m("ngx_stream_realip_module", STREAM, "optional", "set_real_ip_from"),
    _m("ngx_stream_return_module", STREAM, "default", "return"),
    _m("ngx_stream_set_module", STREAM, "default", "set"),
    _m("ngx_stream_split_clients_module", STREAM, "default", "split_clients"),
    _m("ngx_stream_ssl_module", STREAM, "optional", """
        ssl_alpn ssl_certificate ssl_certificate_key ssl_ciphers ssl_client_certificate
        ssl_conf_command ssl_crl ssl_dhparam ssl_ecdh_curve ssl_handshake_timeout ssl_password_file
        ssl_prefer_server_ciphers ssl_protocols ssl_reject_handshake ssl_session_cache
        ssl_session_ticket_key ssl_session_tickets ssl_session_timeout ssl_trusted_certificate
        ssl_verify_client ssl_verify_depth"""),
    _m("ngx_stream_ssl_preread_module", STREAM, "optional", "ssl_preread"),
    _m("ngx_stream_upstream_module", STREAM, "always", "least_time server state upstream",
       commercial="least_time state", upstream="least_time server state"),
    _m("ngx_stream_upstream_hash_module", STREAM, "default", "hash", upstream="hash"),
    _m("ngx_stream_upstream_least_conn_module", STREAM, "default", "least_conn", upstream="least_conn"),
    _m("ngx_stream_upstream_random_module", STREAM, "default", "random", upstream="random"),
    _m("ngx_stream_upstream_zone_module", STREAM, "default", "zone", upstream="zone"),

    # --- mail -----------------------------------------------------------------------------
    _m("ngx_mail_core_module", MAIL, "always", """
        listen mail max_errors protocol resolver resolver_timeout server server_name timeout"""),
    _m("ngx_mail_auth_http_module", MAIL, "always",
       "auth_http auth_http_header auth_http_pass_client_cert auth_http_timeout"),
    _m("ngx_mail_proxy_module", MAIL, "always", """
        proxy_buffer proxy_pass_error_message proxy_protocol proxy_smtp_auth proxy_timeout xclient"""),
    _m("ngx_mail_realip_module", MAIL, "always", "set_real_ip_from"),
    _m("ngx_mail_ssl_module", MAIL, "optional", """
        ssl ssl_certificate ssl_certificate_key ssl_ciphers ssl_client_certificate ssl_conf_command
        ssl_crl ssl_dhparam ssl_ecdh_curve ssl_password_file ssl_prefer_server_ciphers ssl_protocols
        ssl_session_cache ssl_session_ticket_key ssl_session_tickets ssl_session_timeout
        ssl_trusted_certificate ssl_verify_client ssl_verify_depth starttls""",
       notes={"ssl": _OBSOLETE + ": use the ssl parameter of listen"}),
    _m("ngx_mail_imap_module", MAIL, "default", "imap_auth imap_capabilities imap_client_buffer"),
    _m("ngx_mail_pop3_module", MAIL, "default", "pop3_auth pop3_capabilities"),
    _m("ngx_mail_smtp_module", MAIL, "default",
       "smtp_auth smtp_capabilities smtp_client_buffer smtp_greeting_delay"),
)


def family_of(module_name: str) -> str:
    """The family of an nginx module, from its name."""
    for fam in (HTTP, STREAM, MAIL):
        if module_name.startswith(f"ngx_{fam}_"):
            return fam
    return CORE


def by_name() -> dict[str, CatalogModule]:
    return {m.name: m for m in MODULES}
