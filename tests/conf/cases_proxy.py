"""ngx_http_proxy_module and upstream{} configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text.
Only loopback literal addresses (and localhost) are used, so nothing
needs DNS.
"""
from __future__ import annotations

from .cases import Case, loc, srv

UP = "upstream b {\nserver 127.0.0.1:9001 weight=5 max_fails=3 fail_timeout=5s;\nserver 127.0.0.1:9002 backup;\n}\n"

#: nginx checks these while merging and names the line of http{}'s closing
#: brace; Portico checks at the directive / location (HttpMain keeps no end line)
_MERGE_LINE = "merge-time error line: portico/http/core_module.py keeps no http{} end line"

CASES: list[Case] = [
    Case("ok_proxy_pass_addr", loc("proxy_pass http://127.0.0.1:9000;")),
    Case("ok_proxy_pass_uri", loc("proxy_pass http://127.0.0.1:9000/x/;")),
    Case("ok_proxy_pass_upstream", srv("location / {\nproxy_pass http://b/;\n}", http=UP)),
    Case("ok_proxy_pass_upstream_defined_later",
         "events {}\nhttp {\nserver {\nlisten 127.0.0.1:8080;\nlocation / {\nproxy_pass http://later;\n}\n}\n"
         "upstream later {\nserver 127.0.0.1:9001;\n}\n}\n"),
    Case("ok_proxy_pass_unix", loc("proxy_pass http://unix:/tmp/portico-test.sock:/x;")),
    Case("ok_proxy_pass_variables", loc("proxy_pass http://$host$request_uri;")),
    Case("ok_proxy_pass_regex_with_variables", srv("location ~ ^/a {\nproxy_pass http://127.0.0.1:9000/$uri;\n}")),
    Case("ok_proxy_pass_regex_no_uri", srv("location ~ ^/a {\nproxy_pass http://127.0.0.1:9000;\n}")),
    Case("err_proxy_pass_regex_uri", srv("location ~ ^/a {\nproxy_pass http://127.0.0.1:9000/x;\n}")),
    Case("err_proxy_pass_named_uri", srv("location @n {\nproxy_pass http://127.0.0.1:9000/;\n}")),
    Case("err_proxy_pass_if_uri", loc("if ($arg_a) {\nproxy_pass http://127.0.0.1:9000/x;\n}")),
    Case("ok_proxy_pass_if", loc("if ($arg_a) {\nproxy_pass http://127.0.0.1:9000;\n}")),
    Case("err_proxy_pass_duplicate", loc("proxy_pass http://127.0.0.1:9000;\nproxy_pass http://127.0.0.1:9001;")),
    Case("err_proxy_pass_bad_prefix", loc("proxy_pass ftp://127.0.0.1;")),
    Case("err_proxy_pass_bad_port", loc("proxy_pass http://127.0.0.1:99999;")),
    Case("err_proxy_pass_in_server", srv("proxy_pass http://127.0.0.1:9000;")),
    Case("err_proxy_pass_upstream_port", srv("location / {\nproxy_pass http://b:8080;\n}", http=UP)),
    Case("ok_proxy_headers_and_timeouts", loc(
        "proxy_set_header Host $host;\nproxy_set_header X-Real-IP $remote_addr;\n"
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\nproxy_http_version 1.1;\n"
        "proxy_connect_timeout 5s;\nproxy_read_timeout 30;\nproxy_send_timeout 1m;\n"
        "proxy_hide_header X-A;\nproxy_pass_header Server;\nproxy_pass_request_headers on;\n"
        "proxy_pass_request_body off;\nproxy_method POST;\nproxy_set_body x;\n"
        "proxy_redirect http://a/ /b/;\nproxy_redirect ~^http://c/(.*)$ /d/$1;\n"
        "proxy_next_upstream error timeout http_502 non_idempotent;\nproxy_next_upstream_tries 3;\n"
        "proxy_next_upstream_timeout 10s;\nproxy_buffering off;\nproxy_request_buffering off;\n"
        "proxy_buffer_size 8k;\nproxy_buffers 16 8k;\nproxy_busy_buffers_size 16k;\n"
        "proxy_max_temp_file_size 0;\nproxy_temp_file_write_size 16k;\nproxy_intercept_errors on;\n"
        "proxy_ignore_client_abort on;\nproxy_pass http://127.0.0.1:9000;")),
    Case("err_proxy_set_header_one_arg", loc("proxy_set_header X;")),
    Case("err_proxy_set_header_unknown_var", loc("proxy_set_header X $nope;")),
    Case("err_proxy_http_version", loc("proxy_http_version 2.0;")),
    Case("err_proxy_next_upstream_bad", loc("proxy_next_upstream http_418;")),
    Case("err_proxy_buffers_one", loc("proxy_buffers 1 4k;"), xfail=_MERGE_LINE),
    Case("err_proxy_busy_buffers_too_big", loc("proxy_busy_buffers_size 64k;\nproxy_pass http://127.0.0.1:9000;"),
         xfail=_MERGE_LINE),
    Case("err_proxy_read_timeout_bad", loc("proxy_read_timeout abc;")),
    Case("ok_upstream_full", srv("location / {\nproxy_pass http://u;\n}",
                                 http="upstream u {\nserver 127.0.0.1:9001 weight=2 max_conns=10;\n"
                                      "server 127.0.0.1:9002 down;\nserver localhost:9003 backup;\n"
                                      "server unix:/tmp/x.sock;\nkeepalive 16;\nkeepalive_requests 100;\n"
                                      "keepalive_timeout 30s;\nkeepalive_time 1h;\n}\n")),
    Case("err_upstream_duplicate", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1;\n}\n"
                                "upstream u {\nserver 127.0.0.1:2;\n}\n}\n"),
    Case("err_upstream_empty", "events {}\nhttp {\nupstream u {\n}\n}\n"),
    Case("err_upstream_bad_param", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1 foo=1;\n}\n}\n"),
    Case("err_upstream_weight_zero", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1 weight=0;\n}\n}\n"),
    Case("err_upstream_bad_fail_timeout", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1 fail_timeout=x;\n}\n}\n"),
    Case("err_upstream_bad_port", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:0;\n}\n}\n"),
    Case("err_upstream_in_server", srv("upstream u {\nserver 127.0.0.1:1;\n}")),
    Case("err_server_line_outside_upstream", loc("server 127.0.0.1:1;")),
    Case("err_keepalive_zero", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1;\nkeepalive 0;\n}\n}\n"),
    Case("err_keepalive_duplicate", "events {}\nhttp {\nupstream u {\nserver 127.0.0.1:1;\nkeepalive 1;\n"
                                    "keepalive 2;\n}\n}\n"),
    Case("err_upstream_no_args", "events {}\nhttp {\nupstream {\nserver 127.0.0.1:1;\n}\n}\n"),
    # proxy_cookie_domain / _path / _flags
    Case("ok_proxy_cookie_rules", loc(
        "proxy_cookie_domain backend.example $host;\nproxy_cookie_domain ~\\.(?P<sl>[a-z]+)\\.example$ $sl.org;\n"
        "proxy_cookie_path /one/ /;\nproxy_cookie_path ~*^/two(.*)$ /2$1;\n"
        "proxy_cookie_flags sid secure httponly samesite=lax;\nproxy_cookie_flags ~ nosecure;\n"
        "proxy_cookie_flags $arg_c $arg_f;")),
    Case("ok_proxy_cookie_off", loc("proxy_cookie_domain off;\nproxy_cookie_path off;\nproxy_cookie_flags off;")),
    Case("err_proxy_cookie_domain_off_twice", loc("proxy_cookie_domain off;\nproxy_cookie_domain off;")),
    Case("err_proxy_cookie_domain_after_off", loc("proxy_cookie_domain off;\nproxy_cookie_domain a b;")),
    Case("err_proxy_cookie_path_off_after_rule", loc("proxy_cookie_path /a /b;\nproxy_cookie_path off;")),
    Case("err_proxy_cookie_path_bad_one_arg", loc("proxy_cookie_path /a;")),
    Case("err_proxy_cookie_path_bad_regex", loc("proxy_cookie_path ~(a /b;")),
    Case("err_proxy_cookie_domain_three_args", loc("proxy_cookie_domain a b c;")),
    Case("ok_proxy_cookie_flags_unknown_flag", loc("proxy_cookie_flags sid secure bogus;")),
    Case("err_proxy_cookie_flags_one_arg", loc("proxy_cookie_flags sid;")),
    Case("err_proxy_cookie_flags_too_many", loc("proxy_cookie_flags a secure httponly samesite=lax nosecure;")),
]
