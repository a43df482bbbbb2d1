"""ngx_http_rewrite_module configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text.
"""
from __future__ import annotations

from .cases import Case, loc, srv

CASES: list[Case] = [
    Case("ok_rewrite_flags", loc("rewrite ^/a /b last;\nrewrite ^/b /c break;\n"
                                 "rewrite ^/c /d redirect;\nrewrite ^/d /e permanent;\nrewrite ^/e /f;")),
    Case("ok_rewrite_server_level", srv("rewrite ^/(.*)$ /x/$1 last;")),
    Case("ok_rewrite_named_capture", srv("rewrite ^/(?<a>\\w+)$ /x/$a;")),
    Case("err_rewrite_bad_regex", srv("rewrite ^(foo /x;")),
    Case("err_rewrite_bad_flag", loc("rewrite ^/(.*) /x bogus;")),
    Case("err_rewrite_one_arg", loc("rewrite ^/x;")),
    Case("err_rewrite_four_args", loc("rewrite ^ /x last extra;")),
    Case("err_rewrite_empty_replacement", loc('rewrite ^ "" last;')),
    Case("err_rewrite_in_http", "events {}\nhttp {\nrewrite ^ /x;\n}\n"),
    Case("err_rewrite_unknown_variable", loc("rewrite ^ /$nosuchvar;")),
    Case("ok_set_args_limit_rate", loc("set $args a=1;\nset $limit_rate 1k;")),
    Case("ok_set_then_use_earlier", srv("location /a {\nreturn 200 $later;\n}\nlocation /b {\nset $later 1;\n}")),
    Case("err_set_builtin_uri", srv("set $uri x;")),
    Case("err_set_builtin_request_method", srv("set $request_method x;")),
    Case("err_set_no_dollar", srv("set x 1;")),
    Case("err_set_one_arg", srv("set $x;")),
    Case("ok_if_forms", loc("if ($uri) { }\nif ($uri = /x) { }\nif ($uri != /x) { }\n"
                            "if ($uri ~ ^/x) { }\nif ($uri ~* ^/x) { }\nif ($uri !~ ^/x) { }\n"
                            "if ($uri !~* ^/x) { }\nif (-f /x) { }\nif (!-f /x) { }\nif (-d /x) { }\n"
                            "if (!-d /x) { }\nif (-e /x) { }\nif (!-e /x) { }\nif (-x /x) { }\n"
                            "if (!-x /x) { }\nif ( $uri ) { }\nif ($uri ~ \"x\") { }")),
    Case("ok_if_server_level", srv("if ($request_method = POST) { return 405; }")),
    Case("ok_if_directives_inside", loc("if ($uri) {\nroot /tmp;\nadd_header X-A 1;\nset $a 1;\nbreak;\n}")),
    Case("err_if_unknown_variable", srv("if ($a) { }")),
    Case("err_if_missing_rhs", srv("if ($uri = ) { }")),
    Case("err_if_double_equals", srv("if ($uri == a) { }")),
    Case("err_if_bad_file_op", srv("if (-q /x) {}")),
    Case("err_if_file_op_two_args", srv("if (-f /x /y) {}")),
    Case("err_if_bad_regex", srv('if ($uri ~ "(x") {}')),
    Case("err_if_not_variable", srv("if (uri) {}")),
    Case("err_if_no_close_paren", srv("if ($uri {}")),
    Case("err_if_no_open_paren", srv("if $uri) {}")),
    Case("err_if_nested", loc("if ($uri) {\nif ($uri) {}\n}")),
    Case("err_if_root_in_server_if", srv("if ($uri) {\nroot /x;\n}")),
    Case("err_if_alias", loc("if ($uri) {\nalias /y;\n}")),
    Case("err_if_no_block", srv("if ($uri);")),
    Case("err_break_with_arg", srv("break 1;")),
    Case("err_rewrite_log_duplicate", srv("rewrite_log on;\nrewrite_log off;")),
    Case("err_rewrite_log_bad_value", srv("rewrite_log yes;")),
    Case("ok_uninitialized_variable_warn", "events {}\nhttp {\nuninitialized_variable_warn off;\n"
                                           "server {\nlisten 127.0.0.1:8080;\n}\n}\n"),
]
