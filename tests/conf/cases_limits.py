"""limit_req / limit_conn configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text
(with FILE:LINE, or none for nginx's "zero size shared memory zone").
"""
from __future__ import annotations

from .cases import Case, loc, srv

Z = "limit_req_zone $binary_remote_addr zone=one:10m rate=1r/s;"
C = "limit_conn_zone $binary_remote_addr zone=addr:10m;"


def h(body: str) -> str:
    """``body`` directly in http{} (line 3)."""
    return srv("", http=body)


CASES: list[Case] = [
    # --- limit_req_zone ------------------------------------------------------------------
    Case("ok_limits_req_zone_forms", h(Z + "\nlimit_req_zone $uri zone=two:1M rate=30r/m;\n"
                                       "limit_req_zone $host zone=three:32k rate=5;\n"
                                       'limit_req_zone "" zone=four:10m rate=1r/s;')),
    Case("ok_limits_req_zone_params_any_order", h("limit_req_zone $binary_remote_addr rate=5r/s zone=one:10m;")),
    Case("ok_limits_req_zone_unused", h(Z)),
    Case("err_limits_req_zone_sync_is_plus_only", h(Z.replace(";", " sync;"))),
    Case("err_limits_req_zone_too_small", h("limit_req_zone $binary_remote_addr zone=one:1k rate=1r/s;")),
    Case("err_limits_req_zone_too_small_bytes", h("limit_req_zone $binary_remote_addr zone=one:32767 rate=1r/s;")),
    Case("err_limits_req_zone_bad_size", h("limit_req_zone $binary_remote_addr zone=one:10x rate=1r/s;")),
    Case("err_limits_req_zone_g_size", h("limit_req_zone $binary_remote_addr zone=one:1g rate=1r/s;")),
    Case("err_limits_req_zone_no_size", h("limit_req_zone $binary_remote_addr zone=one rate=1r/s;")),
    Case("err_limits_req_zone_two_colons", h("limit_req_zone $binary_remote_addr zone=a:b:10m rate=1r/s;")),
    Case("err_limits_req_zone_empty_name", h("limit_req_zone $binary_remote_addr zone=:10m rate=1r/s;")),
    Case("err_limits_req_zone_rate_zero", h("limit_req_zone $binary_remote_addr zone=one:10m rate=0r/s;")),
    Case("err_limits_req_zone_rate_per_hour", h("limit_req_zone $binary_remote_addr zone=one:10m rate=1r/h;")),
    Case("err_limits_req_zone_rate_upper", h("limit_req_zone $binary_remote_addr zone=one:10m rate=1R/S;")),
    Case("err_limits_req_zone_rate_empty", h("limit_req_zone $binary_remote_addr zone=one:10m rate=;")),
    Case("err_limits_req_zone_rate_no_number", h("limit_req_zone $binary_remote_addr zone=one:10m rate=r/m;")),
    Case("err_limits_req_zone_rate_negative", h("limit_req_zone $binary_remote_addr zone=one:10m rate=-1r/s;")),
    Case("err_limits_req_zone_no_zone", h("limit_req_zone $binary_remote_addr rate=1r/s foo=1;")),
    Case("err_limits_req_zone_unknown_param", h("limit_req_zone $binary_remote_addr rate=5r/s foo;")),
    Case("err_limits_req_zone_upper_param", h("limit_req_zone $binary_remote_addr ZONE=one:10m rate=1r/s;")),
    Case("err_limits_req_zone_two_args", h("limit_req_zone $binary_remote_addr rate=5r/s;")),
    Case("err_limits_req_zone_unknown_variable", h("limit_req_zone $no_such_thing zone=one:10m rate=1r/s;")),
    Case("err_limits_req_zone_in_server", srv(Z)),
    Case("err_limits_req_zone_bound_twice", h(Z + "\nlimit_req_zone $uri zone=one:10m rate=2r/s;")),
    Case("err_limits_req_zone_size_conflict", h(Z + "\nlimit_req_zone $uri zone=one:20m rate=2r/s;")),
    Case("err_limits_zone_different_use", h(Z + "\nlimit_conn_zone $uri zone=one:10m;")),
    Case("err_limits_zone_different_use_ref", h(C + "\nlimit_req zone=addr;")),
    Case("err_limits_zone_different_use_ref_first", h("limit_conn one 1;\n" + Z)),
    # --- limit_req -----------------------------------------------------------------------
    Case("ok_limits_req_all_levels", "events {}\nhttp {\n" + Z + "\nlimit_req_zone $uri zone=two:10m rate=1r/m;\n"
         "limit_req zone=one;\nserver {\nlisten 127.0.0.1:8080;\nlimit_req zone=one burst=5 nodelay;\n"
         "location / {\nlimit_req zone=one burst=5 delay=2;\nlimit_req zone=two burst=1;\n}\n}\n}\n"),
    Case("ok_limits_req_before_its_zone", h("limit_req zone=one burst=2;\n" + Z)),
    Case("ok_limits_req_nodelay_and_delay", loc("limit_req zone=one nodelay delay=3;").replace("http {\n", "http {\n" + Z)),
    Case("ok_limits_req_delay_over_burst", h(Z + "\nlimit_req zone=one burst=5 delay=7;")),
    Case("err_limits_req_unknown_zone", loc("limit_req zone=two;").replace("http {\n", "http {\n" + Z)),
    Case("err_limits_req_unknown_zone_first_named", h("limit_req zone=one;\nlimit_req zone=two;")),
    Case("err_limits_req_empty_zone", h(Z + "\nlimit_req zone=;")),
    Case("err_limits_req_duplicate", h(Z + "\nlimit_req zone=one;\nlimit_req zone=one burst=2;")),
    Case("err_limits_req_burst_zero", h(Z + "\nlimit_req zone=one burst=0;")),
    Case("err_limits_req_burst_plus", h(Z + "\nlimit_req zone=one burst=+5;")),
    Case("err_limits_req_burst_word", h(Z + "\nlimit_req zone=one burst=abc;")),
    Case("err_limits_req_delay_zero", h(Z + "\nlimit_req zone=one delay=0;")),
    Case("err_limits_req_no_zone", h(Z + "\nlimit_req burst=3;")),
    Case("err_limits_req_unknown_param", h(Z + "\nlimit_req zone=one foo;")),
    Case("err_limits_req_nodelay_upper", h(Z + "\nlimit_req zone=one NODELAY;")),
    Case("err_limits_req_four_args", h(Z + "\nlimit_req zone=one burst=5 burst=2 nodelay;")),
    Case("err_limits_req_in_if", loc("if ($uri) {\nlimit_req zone=one;\n}").replace("http {\n", "http {\n" + Z)),
    # --- limit_req_status / _log_level / _dry_run -----------------------------------------------
    Case("ok_limits_req_side_directives", loc("limit_req_status 429;\nlimit_req_log_level NOTICE;\n"
                                              "limit_req_dry_run on;")),
    Case("err_limits_req_status_low", loc("limit_req_status 399;")),
    Case("err_limits_req_status_high", loc("limit_req_status 600;")),
    Case("err_limits_req_status_word", loc("limit_req_status abc;")),
    Case("err_limits_req_status_duplicate", loc("limit_req_status 429;\nlimit_req_status 500;")),
    Case("err_limits_req_log_level_debug", loc("limit_req_log_level debug;")),
    Case("err_limits_req_log_level_crit", loc("limit_req_log_level crit;")),
    Case("err_limits_req_log_level_duplicate", loc("limit_req_log_level warn;\nlimit_req_log_level info;")),
    Case("err_limits_req_dry_run_bad", loc("limit_req_dry_run maybe;")),
    # --- limit_conn_zone / limit_conn ------------------------------------------------------------
    Case("ok_limits_conn_all_levels", "events {}\nhttp {\n" + C + "\nlimit_conn_zone $server_name zone=srv:1m;\n"
         "limit_conn addr 10;\nserver {\nlisten 127.0.0.1:8080;\nlimit_conn addr 5;\nlimit_conn srv 100;\n"
         "location / {\nlimit_conn addr 1;\nlimit_conn_status 429;\nlimit_conn_log_level info;\n"
         "limit_conn_dry_run on;\n}\n}\n}\n"),
    Case("ok_limits_conn_before_its_zone", h("limit_conn addr 65535;\n" + C)),
    Case("err_limits_conn_unknown_zone", h("limit_conn one 1;")),
    Case("err_limits_conn_zero", h(C + "\nlimit_conn addr 0;")),
    Case("err_limits_conn_too_many", h(C + "\nlimit_conn addr 65536;")),
    Case("err_limits_conn_word", h(C + "\nlimit_conn addr abc;")),
    Case("err_limits_conn_duplicate", h(C + "\nlimit_conn addr 1;\nlimit_conn addr 2;")),
    Case("err_limits_conn_one_arg", h(C + "\nlimit_conn addr;")),
    Case("err_limits_conn_zone_one_arg", h("limit_conn_zone $binary_remote_addr;")),
    Case("err_limits_conn_zone_unknown_param", h("limit_conn_zone $binary_remote_addr foo;")),
    Case("err_limits_conn_zone_no_size", h("limit_conn_zone $binary_remote_addr zone=one;")),
    Case("err_limits_conn_zone_too_small", h("limit_conn_zone $binary_remote_addr zone=one:1k;")),
    Case("err_limits_conn_zone_bound_twice", h(C + "\nlimit_conn_zone $uri zone=addr:10m;")),
    Case("err_limits_conn_zone_in_location", loc(C)),
    Case("err_limits_conn_status_high", loc("limit_conn_status 600;")),
    Case("err_limits_conn_log_level_duplicate", loc("limit_conn_log_level warn;\nlimit_conn_log_level info;")),
    Case("err_limits_conn_dry_run_bad", loc("limit_conn_dry_run yes;")),
]
