"""``map`` configurations compared against ``nginx -t`` (see cases.py)."""
from __future__ import annotations

from .cases import EV, Case, srv

_K47 = "k" * 47  # one byte too long for the default 64-byte map_hash bucket


def _map(body: str, head: str = "map $uri $m") -> str:
    """A map on line 3 of srv() and a location using it."""
    return srv('location / {\nreturn 200 "' + head.split()[-1] + '";\n}', f"{head} {{ {body} }}")


CASES: list[Case] = [
    Case("ok_map_basic", _map("default d; /a a; ~^/b b; ~*^/C c;")),
    Case("ok_map_empty_block", _map("")),
    Case("ok_map_hostnames", _map("hostnames; *.a.com w; .b.com d; www.c.* t; exact.com e;", "map $host $m")),
    Case("ok_map_volatile", _map("volatile; default x;")),
    Case("ok_map_value_with_variables", _map("default $uri-$args; ~^/(?<n>x)(y) $n$2;")),
    Case("ok_map_escaped_keys", _map("\\default d; \\~x t; \"\" empty;")),
    Case("ok_map_defined_twice", srv("return 200 $m;", "map $uri $m { a 1; }\nmap $args $m { b 2; }")),
    Case("ok_map_changeable_core_var", _map("a 1;", "map $uri $args")),
    Case("ok_map_header_family_var", _map("a 1;", "map $uri $http_x_custom")),
    Case("ok_map_used_before_defined", srv("return 200 $later;", "map $uri $first { default $later; }\n"
                                            "map $uri $later { default x; }")),
    Case("ok_map_hash_sizes", _map("a 1;", "map_hash_max_size 4096;\nmap_hash_bucket_size 128;\nmap $uri $m")),
    Case("ok_map_key_fits_bucket", _map("k" * 46 + " 1;")),
    Case("ok_map_long_key_bigger_bucket", _map(_K47 + " 1;", "map_hash_bucket_size 65;\nmap $uri $m")),
    Case("ok_map_possessive_regex", _map("~a*+ 1;")),
    Case("ok_map_include", _map("include maps/*.map;"), files={"maps/a.map": "/a 1;\n/b 2;\n"}),
    Case("ok_map_wildcards_without_hostnames", _map("*.a.com 1; a.*.b 2; * 3;")),
    Case("ok_map_changeable_core_var_mixed_case", _map("a 1;", "map $uri $Args")),
    Case("ok_map_hash_not_optimal_warns", _map("a 1; b 2; c 3; d 4; e 5; f 6; g 7;", "map_hash_max_size 1;\nmap $uri $m")),
    Case("err_map_duplicate_core_variable_mixed_case", _map("a 1;", "map $uri $URI")),
    Case("err_map_hash_bucket_size_too_large", _map("a 1;", "map_hash_bucket_size 65473;\nmap $uri $m")),
    Case("err_map_conflict_case_insensitive", _map("a 1; A 2;")),
    Case("err_map_conflict_shows_lowercase", _map("Foo 1; FOO 2;")),
    Case("err_map_duplicate_default", _map("default 1; default 2;")),
    Case("err_map_one_word", _map("a;")),
    Case("err_map_three_words", _map("a 1 2;")),
    Case("err_map_hostnames_with_value", _map("hostnames 1; a 1 2;")),
    Case("err_map_wildcard_conflicts_dot", _map("hostnames; *.a.com 1; .a.com 2;")),
    Case("err_map_exact_conflicts_dot", _map("hostnames; a.com 1; .a.com 2;")),
    Case("err_map_dot_conflicts_exact", _map("hostnames; .a.com 2; A.com 1;")),
    Case("err_map_tail_conflict", _map("hostnames; www.A.* 1; www.a.* 2;")),
    Case("err_map_bad_wildcard_middle", _map("hostnames; a.*.com 1;")),
    Case("err_map_bad_wildcard_star", _map("hostnames; * 1;")),
    Case("err_map_bad_wildcard_double_dot", _map("hostnames; a..com 1;")),
    Case("err_map_bad_wildcard_two_stars", _map("hostnames; *.a.* 1;")),
    Case("err_map_regex_missing_paren", _map("~(a 1;")),
    Case("err_map_regex_unmatched_paren", _map("~a) 1;")),
    Case("err_map_regex_multiple_repeat", _map("~a** 1;")),
    Case("err_map_regex_unterminated_class", _map("~*[a 1;")),
    Case("err_map_target_not_variable", _map("a 1;", "map $uri m")),
    Case("err_map_target_dollar_only", _map("a 1;", "map $uri $")),
    Case("err_map_source_bad_variable", _map("a 1;", "map $ $m")),
    Case("err_map_duplicate_core_variable", _map("a 1;", "map $uri $uri")),
    Case("err_map_duplicate_http_host", _map("a 1;", "map $uri $http_host")),
    Case("err_map_duplicate_remote_addr", _map("a 1;", "map $uri $remote_addr")),
    Case("err_map_value_bad_variable", _map("a $;")),
    Case("err_map_value_unknown_variable", _map("a $nonexistent;")),
    Case("err_map_source_unknown_variable", _map("a 1;", "map $nonexistent $m")),
    Case("err_map_nested_block", _map("a {}")),
    Case("err_map_not_in_server", srv("map $uri $m { }\nreturn 200;")),
    Case("err_map_args_count", EV + "http {\nmap $uri { }\n}\n"),
    Case("err_map_no_block", EV + "http {\nmap $uri $m;\n}\n"),
    Case("err_map_key_too_long_for_bucket", _map(_K47 + " 1;")),
    Case("err_map_hash_max_size_zero", _map("a 1;", "map_hash_max_size 0;\nmap $uri $m")),
    Case("err_map_hash_bucket_size_zero", _map("a 1;", "map_hash_bucket_size 0;\nmap $uri $m")),
    Case("err_map_hash_size_after_map", srv("return 200;", "map $uri $m { }\nmap_hash_bucket_size 128;")),
    Case("err_map_hash_size_duplicate", srv("return 200;", "map_hash_max_size 1;\nmap_hash_max_size 2;")),
    Case("err_map_hash_size_invalid", srv("return 200;", "map_hash_max_size x;")),
    Case("err_map_include_missing", _map("include nope.map;")),
    Case("err_map_error_in_include", _map("include bad.map;"), files={"bad.map": "a 1;\na 2;\n"}),
    Case("err_map_multiline_error_line", srv("return 200;", "map $uri $m {\n  a 1;\n  b 2;\n  c;\n}")),
]
