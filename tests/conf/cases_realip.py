"""ngx_http_realip_module configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text
(with FILE:LINE).  Names that are not addresses are resolved like nginx
(getaddrinfo), so only ``localhost`` and names that cannot exist are used.
"""
from __future__ import annotations

from .cases import EV, Case, loc, srv

CASES: list[Case] = [
    # --- set_real_ip_from ----------------------------------------------------------------
    Case("ok_realip_forms", loc("set_real_ip_from 127.0.0.1;\nset_real_ip_from 10.0.0.0/8;\n"
                                "set_real_ip_from ::1;\nset_real_ip_from 2001:db8::/32;\n"
                                "set_real_ip_from unix:;")),
    Case("ok_realip_all_levels", "events {}\nhttp {\nset_real_ip_from 10.0.0.1;\nreal_ip_header X-Forwarded-For;\n"
                                 "real_ip_recursive on;\nserver {\nlisten 127.0.0.1:8080;\n"
                                 "set_real_ip_from 10.0.0.2;\nreal_ip_header X-Real-IP;\nlocation / {\n"
                                 "set_real_ip_from 10.0.0.3;\nreal_ip_recursive off;\n}\n}\n}\n"),
    Case("ok_realip_low_bits_only_warn", loc("set_real_ip_from 10.1.1.1/8;")),
    Case("ok_realip_hostname", loc("set_real_ip_from localhost;")),
    # getaddrinfo accepts what ngx_inet_addr refuses: the name path takes them
    Case("ok_realip_broadcast_resolves", loc("set_real_ip_from 255.255.255.255;")),
    Case("ok_realip_short_dotted_resolves", loc("set_real_ip_from 127.1;")),
    Case("err_realip_unknown_host", loc("set_real_ip_from no-such-host.invalid;")),
    Case("err_realip_all_is_a_host_name", loc("set_real_ip_from all;")),
    Case("err_realip_unix_path", loc("set_real_ip_from unix:/tmp/s.sock;")),
    Case("err_realip_bad_prefix", loc("set_real_ip_from 10.0.0.0/33;")),
    Case("err_realip_empty", loc('set_real_ip_from "";')),
    Case("err_realip_from_no_args", loc("set_real_ip_from;")),
    Case("err_realip_from_two_args", loc("set_real_ip_from 10.0.0.1 10.0.0.2;")),
    Case("err_realip_from_in_if", loc("if ($uri) {\nset_real_ip_from 10.0.0.1;\n}")),
    Case("err_realip_from_in_main", "set_real_ip_from 10.0.0.1;\n" + EV),
    # --- real_ip_header ----------------------------------------------------------------------
    Case("ok_realip_header_keywords", srv("real_ip_header X-Forwarded-For;\nlocation / {\n"
                                          "real_ip_header proxy_protocol;\n}\nlocation /a {\n"
                                          "real_ip_header CF-Connecting-IP;\n}")),
    Case("ok_realip_header_lowercase_name", loc("real_ip_header x-real-ip;")),
    Case("err_realip_header_duplicate", loc("real_ip_header X-Real-IP;\nreal_ip_header X-Forwarded-For;")),
    Case("err_realip_header_duplicate_custom", loc("real_ip_header A;\nreal_ip_header B;")),
    Case("err_realip_header_no_args", loc("real_ip_header;")),
    Case("err_realip_header_two_args", loc("real_ip_header X-Real-IP X-Forwarded-For;")),
    # --- real_ip_recursive -------------------------------------------------------------------
    Case("ok_realip_recursive_case_insensitive", loc("real_ip_recursive ON;")),
    Case("err_realip_recursive_bad_value", loc("real_ip_recursive maybe;")),
    Case("err_realip_recursive_duplicate", loc("real_ip_recursive on;\nreal_ip_recursive off;")),
    Case("err_realip_recursive_no_args", loc("real_ip_recursive;")),
]
