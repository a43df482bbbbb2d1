"""Configuration corpus for try_files and the variable syntax of the core
module, compared against ``nginx -t`` by test_conf_diff.py.

Invariants: ids start ``ok_``/``err_`` as nginx -t's outcome; srv() bodies
start on line 5 and loc() bodies on line 6 (see cases.py).
"""
from __future__ import annotations

from .cases import Case, loc, srv

# every embedded variable of ngx_http_core_module that nginx 1.22 and 1.29 share
_CORE_VARS = (
    "arg_name args binary_remote_addr body_bytes_sent bytes_sent connection connection_requests "
    "connection_time content_length content_type cookie_name document_root document_uri host "
    "hostname http_user_agent http_x_custom https is_args limit_rate msec nginx_version pid pipe "
    "query_string realpath_root remote_addr remote_port remote_user request request_body "
    "request_body_file request_completion request_filename request_id request_length "
    "request_method request_time request_uri scheme sent_http_content_type sent_http_x_custom "
    "sent_trailer_x_custom server_addr server_name server_port server_protocol status "
    "time_iso8601 time_local uri"
).split()

CASES: list[Case] = [
    # --- try_files ---------------------------------------------------------------------
    Case("ok_try_files_wordpress", loc("try_files $uri $uri/ /index.php?$args;")),
    Case("ok_try_files_laravel", loc("try_files $uri $uri/ /index.php?$query_string;")),
    Case("ok_try_files_server_level", srv("try_files $uri =404;")),
    Case("ok_try_files_named", srv("location / {\ntry_files $uri @back;\n}\nlocation @back {\nreturn 200;\n}")),
    Case("ok_try_files_missing_named_is_runtime", loc("try_files $uri @nowhere;")),
    Case("ok_try_files_code_999", loc("try_files $uri =999;")),
    Case("ok_try_files_code_zero_is_a_uri", loc("try_files $uri =0;")),
    Case("ok_try_files_leading_zero_code", loc("try_files $uri =0404;")),
    Case("ok_try_files_trailing_slash_last", loc("try_files $uri $uri/;")),
    Case("ok_try_files_capture", srv("location ~ ^/(.*)$ {\ntry_files /$1 =404;\n}")),
    Case("ok_try_files_empty_candidate", loc('try_files "" =404;')),
    Case("ok_try_files_alias", srv("location /i/ {\nalias /tmp/;\ntry_files $uri =404;\n}")),
    Case("err_try_files_one_arg", loc("try_files $uri;")),
    Case("err_try_files_duplicate", loc("try_files a b;\ntry_files c d;")),
    Case("err_try_files_code_1000", loc("try_files $uri =1000;")),
    Case("err_try_files_code_empty", loc("try_files $uri =;")),
    Case("err_try_files_code_alpha", loc("try_files $uri =xxx;")),
    Case("err_try_files_code_negative", loc("try_files $uri =-1;")),
    Case("err_try_files_code_variable", loc("try_files $uri =$status;")),
    Case("err_try_files_in_http", srv("", http="try_files a b;")),
    Case("err_try_files_in_if", loc("if ($uri) {\ntry_files a b;\n}")),
    Case("err_try_files_unknown_variable", loc("try_files $nosuch =404;")),
    Case("err_try_files_bad_variable", loc('try_files "a$" =404;')),
    Case("err_try_files_unclosed_bracket", loc('try_files "${uri" =404;')),
    # --- variable names -----------------------------------------------------------------
    Case("ok_vars_all_core", loc('return 200 "' + "".join(f"${{{v}}}" for v in _CORE_VARS) + '";')),
    Case("ok_vars_case_insensitive", loc('return 200 "$URI $Request_Method $HTTP_HOST $Arg_X";')),
    Case("ok_vars_capture_then_text", srv('location ~ ^/(a)$ {\nreturn 200 "$1abc";\n}')),
    Case("ok_vars_named_capture_any_case", srv('location ~ ^/(?<Cap>a)$ {\nreturn 200 "$cap $CAP";\n}')),
    Case("err_vars_unknown_upper", loc("return 200 $NOSUCH;")),
    Case("err_vars_braced_digit", loc('return 200 "${1}";')),
    Case("err_vars_dollar_zero", loc('return 200 "$0";')),
    Case("err_vars_braced_dash", loc('return 200 "${b-c}";')),
    Case("err_vars_empty_braces", loc('return 200 "${}";')),
    Case("err_vars_non_ascii_name", loc('return 200 "$\u00e9";')),
    Case("err_vars_log_format_unknown", srv("", http="log_format x '$nosuch';")),
]
