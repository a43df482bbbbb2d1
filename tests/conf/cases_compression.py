"""gzip, gzip_static and gunzip configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; only
directives Debian's nginx knows are used (brotli and zstd are third-party
modules it lacks; their checks live in tests/integration/test_compression.py).
"""
from __future__ import annotations

from .cases import EV, Case, loc, srv

CASES: list[Case] = [
    # --- gzip and its numbers ------------------------------------------------------------------
    Case("ok_gzip_all_directives", loc(
        "gzip on;\ngzip_comp_level 9;\ngzip_min_length 1k;\ngzip_buffers 16 8k;\ngzip_vary on;\n"
        "gzip_http_version 1.0;\ngzip_types text/css application/json;\ngzip_types *;\n"
        "gzip_window 8k;\ngzip_hash 32k;\npostpone_gzipping 4k;\ngzip_no_buffer on;")),
    Case("ok_gzip_in_if", loc("if ($arg_z) {\ngzip off;\n}")),
    Case("ok_gzip_levels", "events {}\nhttp {\ngzip on;\ngzip_comp_level 2;\nserver {\nlisten 127.0.0.1:8080;\n"
                           "gzip_comp_level 5;\nlocation / {\ngzip off;\n}\n}\n}\n"),
    Case("err_gzip_bad_flag", loc("gzip yes;")),
    Case("err_gzip_duplicate", loc("gzip on;\ngzip off;")),
    Case("err_gzip_no_args", loc("gzip;")),
    Case("err_gzip_in_main", "gzip on;\n" + EV),
    Case("err_gzip_comp_level_10", loc("gzip_comp_level 10;")),
    Case("err_gzip_comp_level_0", loc("gzip_comp_level 0;")),
    Case("err_gzip_comp_level_word", loc("gzip_comp_level fast;")),
    Case("err_gzip_comp_level_duplicate", loc("gzip_comp_level 1;\ngzip_comp_level 2;")),
    Case("err_gzip_min_length_negative", loc("gzip_min_length -1;")),
    Case("err_gzip_min_length_g", loc("gzip_min_length 1g;")),
    Case("err_gzip_buffers_one_arg", loc("gzip_buffers 4;")),
    Case("err_gzip_buffers_zero", loc("gzip_buffers 0 4k;")),
    Case("err_gzip_buffers_bad_size", loc("gzip_buffers 4 x;")),
    Case("err_gzip_window_not_pow2", loc("gzip_window 3k;")),
    Case("err_gzip_window_too_big", loc("gzip_window 64k;")),
    Case("err_gzip_hash_too_small", loc("gzip_hash 256;")),
    Case("err_gzip_memlevel_unknown", loc("gzip_memlevel 8;")),
    Case("err_postpone_gzipping_word", loc("postpone_gzipping x;")),
    Case("err_gzip_vary_bad", loc("gzip_vary maybe;")),
    # --- gzip_types -----------------------------------------------------------------------------------
    Case("ok_gzip_types_duplicate_html_warns", loc("gzip_types text/html text/plain text/plain;")),
    Case("ok_gzip_types_wildcard_then_more", loc("gzip_types * text/plain;\ngzip_types text/css;")),
    Case("ok_gzip_types_case", loc("gzip_types Text/CSS;")),
    Case("err_gzip_types_no_args", loc("gzip_types;")),
    # --- gzip_http_version, gzip_proxied, gzip_disable -----------------------------------------------
    Case("err_gzip_http_version_2", loc("gzip_http_version 2.0;")),
    Case("err_gzip_http_version_duplicate", loc("gzip_http_version 1.0;\ngzip_http_version 1.1;")),
    Case("ok_gzip_proxied_all", loc("gzip_proxied expired no-cache no-store private no_last_modified "
                                    "no_etag auth;")),
    Case("ok_gzip_proxied_off_any_case", loc("gzip_proxied OFF Any;")),
    Case("ok_gzip_proxied_repeats_warn", loc("gzip_proxied any;\ngzip_proxied any expired;")),
    Case("err_gzip_proxied_bad", loc("gzip_proxied expired nope;")),
    Case("err_gzip_proxied_no_args", loc("gzip_proxied;")),
    Case("ok_gzip_disable_forms", loc('gzip_disable msie6 "MSIE [1-6]\\." degradation;\ngzip_disable ^curl;')),
    Case("err_gzip_disable_bad_regex", loc("gzip_disable (;")),
    Case("err_gzip_disable_bad_regex_second", loc('gzip_disable msie6 "a[";')),
    Case("err_gzip_disable_no_args", loc("gzip_disable;")),
    # --- gzip_static, gunzip -------------------------------------------------------------------------
    Case("ok_gzip_static_modes", srv("gzip_static on;\nlocation /a {\ngzip_static always;\n}\n"
                                     "location /b {\ngzip_static OFF;\n}")),
    Case("err_gzip_static_bad", loc("gzip_static maybe;")),
    Case("err_gzip_static_duplicate", loc("gzip_static on;\ngzip_static off;")),
    Case("err_gzip_static_in_if", loc("if ($arg_z) {\ngzip_static on;\n}")),
    Case("err_gzip_static_two_args", loc("gzip_static on always;")),
    Case("ok_gunzip", loc("gunzip on;\ngunzip_buffers 16 8k;")),
    Case("err_gunzip_bad", loc("gunzip always;")),
    Case("err_gunzip_buffers_bad", loc("gunzip_buffers 4 x;")),
    Case("err_gunzip_buffers_three_args", loc("gunzip_buffers 4 4k 1;")),
]
