"""ngx_http_access_module (allow/deny) configurations compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text
(with FILE:LINE).  Warnings ("low address bits ...") are compared by
tests/integration/test_access_realip.py.
"""
from __future__ import annotations

from .cases import EV, Case, loc, srv

CASES: list[Case] = [
    # --- accepted forms ------------------------------------------------------------------
    Case("ok_access_forms", loc("allow 127.0.0.1;\ndeny 10.0.0.0/8;\nallow ::1;\n"
                                "deny 2001:db8::/32;\nallow unix:;\ndeny all;")),
    Case("ok_access_all_levels", "events {}\nhttp {\nallow 10.0.0.1;\nserver {\nlisten 127.0.0.1:8080;\n"
                                 "deny 10.0.0.2;\nlocation / {\nallow all;\n}\n}\n}\n"),
    Case("ok_access_low_bits_only_warn", loc("allow 10.0.0.1/8;\ndeny fe80::1/64;")),
    Case("ok_access_empty_octets", loc("allow 1..2.3;")),
    Case("ok_access_trailing_dot", loc("allow 1.2.3.;")),
    Case("ok_access_leading_zeros", loc("deny 001.002.003.004/08;")),
    Case("ok_access_zero_prefix", loc("deny 0.0.0.0/0;\nallow ::/0;")),
    Case("ok_access_mapped_v6", loc("allow ::ffff:1.2.3.4;\ndeny ::ffff:0:0/96;")),
    Case("ok_access_v6_with_v4_tail", loc("allow 1:2:3:4:5:6:1.2.3.4;")),
    Case("ok_access_v6_uppercase", loc("allow 2001:DB8::ABCD;")),
    Case("ok_access_prefix_leading_zero", loc("allow 10.0.0.0/008;")),
    Case("ok_access_repeated", loc("allow all;\nallow all;\ndeny all;")),
    # --- refused addresses -------------------------------------------------------------------
    Case("err_access_broadcast_is_inaddr_none", loc("allow 255.255.255.255;")),
    Case("err_access_three_octets", loc("allow 1.2.3;")),
    Case("err_access_five_octets", loc("deny 1.2.3.4.5;")),
    Case("err_access_octet_256", loc("deny 1.2.3.256;")),
    Case("err_access_prefix_too_long", loc("allow 1.2.3.4/33;")),
    Case("err_access_v6_prefix_too_long", loc("allow ::1/129;")),
    Case("err_access_empty_prefix", loc("allow 1.2.3.4/;")),
    Case("err_access_signed_prefix", loc("allow 1.2.3.4/+8;")),
    Case("err_access_hex_prefix", loc("allow 1.2.3.4/0x8;")),
    Case("err_access_uppercase_all", loc("allow ALL;")),
    Case("err_access_uppercase_unix", loc("deny UNIX:;")),
    Case("err_access_unix_path", loc("deny unix:/tmp/s.sock;")),
    Case("err_access_hostname", loc("allow localhost;")),
    Case("err_access_zone_id", loc("allow fe80::1%eth0;")),
    Case("err_access_brackets", loc("allow [::1];")),
    Case("err_access_two_double_colons", loc("allow 1::2::3;")),
    Case("err_access_nine_groups", loc("allow 1:2:3:4:5:6:7:8:9;")),
    Case("err_access_seven_groups", loc("allow 1:2:3:4:5:6:7;")),
    Case("err_access_long_group", loc("allow 12345::1;")),
    Case("err_access_v4_tail_too_late", loc("allow 1:2:3:4:5:6:7:1.2.3.4;")),
    Case("err_access_empty_string", loc('allow "";')),
    Case("err_access_second_of_several", loc("allow 10.0.0.0/8;\ndeny 10.0.0.0/x;")),
    # --- arity and contexts -------------------------------------------------------------------
    Case("err_access_no_args", loc("allow;")),
    Case("err_access_two_args", loc("deny 1.2.3.4 5.6.7.8;")),
    Case("err_access_in_main", "allow all;\n" + EV),
    Case("err_access_in_if", loc("if ($uri) {\ndeny all;\n}")),
    Case("err_access_block", loc("allow all {\n}")),
    Case("err_access_in_server_if", srv("if ($uri) {\nallow all;\n}")),
]
