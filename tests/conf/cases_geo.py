"""``geo`` configurations compared against ``nginx -t`` (see cases.py)."""
from __future__ import annotations

from .cases import EV, Case, srv


def _geo(body: str, head: str = "geo $g") -> str:
    """A geo block on line 3 of srv() and a location using it."""
    return srv('location / {\nreturn 200 "' + head.split()[-1] + '";\n}', f"{head} {{ {body} }}")


CASES: list[Case] = [
    Case("ok_geo_basic", _geo("default d; 10.0.0.0/8 a; 127.0.0.1 lo; ::1 v6; 2001:db8::/32 doc;")),
    Case("ok_geo_source_variable", _geo("default d; 10.0.0.0/8 a;", "geo $arg_ip $g")),
    Case("ok_geo_proxy", _geo("proxy 127.0.0.1; proxy ::1/128; proxy_recursive; 10.0.0.0/8 a;")),
    Case("ok_geo_ranges", _geo("ranges; default d; 10.0.0.0-10.0.0.255 a; 10.0.1.0-10.1.255.255 b;")),
    Case("ok_geo_ranges_nested_split", _geo("ranges; 0.0.0.0-1.0.0.0 a; 0.255.0.0-0.255.0.5 b;")),
    Case("ok_geo_ranges_after_proxy", _geo("proxy 127.0.0.1; ranges; 1.2.3.4-1.2.3.5 a;")),
    Case("ok_geo_duplicate_network_warns", _geo("1.2.3.4 a; 1.2.3.4 b;")),
    Case("ok_geo_duplicate_default_warns", _geo("default a; default b;")),
    Case("ok_geo_low_bits_warn", _geo("1.2.3.4/24 a;")),
    Case("ok_geo_delete", _geo("10.0.0.0/8 a; delete 10.0.0.0/8; delete 11.0.0.0/8;")),
    Case("ok_geo_ranges_delete", _geo("ranges; 1.0.0.0-1.0.0.9 a; delete 1.0.0.0-1.0.0.9; delete 2.0.0.0-2.0.0.1;")),
    Case("ok_geo_ranges_duplicate_warns", _geo("ranges; 1.2.3.0-1.2.3.9 a; 1.2.3.0-1.2.3.9 b;")),
    Case("ok_geo_inet_addr_quirks", _geo("01.2.3.4 a; 1..2.3 b; 1.2.3. c; 255.255.255.255 none;")),
    Case("ok_geo_v4_mapped", _geo("::ffff:1.2.3.4 a; ::ffff:10.0.0.0/104 b;")),
    Case("ok_geo_include", _geo("include geo/a.conf;"), files={"geo/a.conf": "10.0.0.0/8 a;\n"}),
    Case("ok_geo_empty", _geo("")),
    Case("err_geo_prefix_too_long", _geo("1.2.3.4/33 a;")),
    Case("err_geo_v6_prefix_too_long", _geo("::1/129 a;")),
    Case("err_geo_broadcast_with_prefix", _geo("255.255.255.255/32 a;")),
    Case("err_geo_bad_prefix_empty", _geo("1.2.3.4/ a;")),
    Case("err_geo_bad_prefix_sign", _geo("1.2.3.4/+1 a;")),
    Case("err_geo_bad_network", _geo("foo a;")),
    Case("err_geo_bad_v6", _geo("1:2:3:4:5:6:7:8:9 a;")),
    Case("err_geo_bad_octet", _geo("1.2.3.256 a;")),
    Case("err_geo_three_words", _geo("a b c;")),
    Case("err_geo_one_word", _geo("a;")),
    Case("err_geo_ranges_with_value", _geo("ranges 1;")),
    Case("err_geo_ranges_not_first", _geo("1.2.3.4 a; ranges;")),
    Case("err_geo_ranges_after_default", _geo("default a; ranges;")),
    Case("err_geo_bad_range", _geo("ranges; 1.2.3.4 a;")),
    Case("err_geo_range_reversed", _geo("ranges; 1.2.3.5-1.2.3.4 a;")),
    Case("err_geo_range_broadcast", _geo("ranges; 255.255.255.0-255.255.255.255 a;")),
    Case("err_geo_range_overlap", _geo("ranges; 1.2.3.0-1.2.3.9 a; 1.2.3.5-1.2.3.20 b;")),
    Case("err_geo_range_overlap_cover", _geo("ranges; 1.2.3.5-1.2.3.9 a; 1.2.3.0-1.2.3.20 b;")),
    Case("err_geo_range_overlap_across_blocks", _geo("ranges; 1.2.255.0-1.3.0.10 a; 1.3.0.5-1.3.0.6 b; 1.3.0.8-1.3.1.0 c;")),
    Case("err_geo_proxy_bad", _geo("proxy foo;")),
    Case("err_geo_target_not_variable", _geo("", "geo g")),
    Case("err_geo_source_and_target_not_variable", _geo("", "geo $a g")),
    Case("err_geo_source_dollar_only", _geo("", "geo $ $g")),
    Case("err_geo_source_unknown", _geo("", "geo $nonexistent $g")),
    Case("err_geo_source_impossible_name", _geo("", "geo $a-b $g")),
    Case("err_geo_duplicate_core_variable", _geo("", "geo $uri")),
    Case("err_geo_too_many_args", EV + "http {\ngeo $a $b $c { }\n}\n"),
    Case("err_geo_nested_block", _geo("1.2.3.4 a {}")),
    Case("err_geo_not_in_server", srv("geo $g { }\nreturn 200;")),
    Case("err_geo_error_in_include", _geo("include g.conf;"), files={"g.conf": "10.0.0.0/8 a;\nbad b;\n"}),
]
