"""Configuration corpus for autoindex, random_index and empty_gif, compared
against ``nginx -t`` by test_conf_diff.py.

Invariants: ids start ``ok_``/``err_`` as nginx -t's outcome; srv() bodies
start on line 5 and loc() bodies on line 6 (see cases.py).
"""
from __future__ import annotations

from .cases import EV, Case, loc, srv

CASES: list[Case] = [
    # --- autoindex ------------------------------------------------------------------------
    Case("ok_autoindex_on", loc("autoindex on;")),
    Case("ok_autoindex_off", loc("autoindex off;")),
    Case("ok_autoindex_upper_case_flag", loc("autoindex ON;")),
    Case("ok_autoindex_http_level", srv("", http="autoindex on;")),
    Case("ok_autoindex_server_level", srv("autoindex on;")),
    Case("ok_autoindex_nested_location", srv("location /a/ {\nlocation /a/b/ {\nautoindex on;\n}\n}")),
    Case("ok_autoindex_alias_regex", srv("location ~ ^/r/ {\nalias /tmp/;\nautoindex on;\n}")),
    Case("err_autoindex_bad_value", loc("autoindex yes;")),
    Case("err_autoindex_no_args", loc("autoindex;")),
    Case("err_autoindex_two_args", loc("autoindex on off;")),
    Case("err_autoindex_duplicate", loc("autoindex on;\nautoindex off;")),
    Case("err_autoindex_in_if", loc("if ($arg_a) {\nautoindex on;\n}")),
    Case("err_autoindex_in_server_if", srv("if ($arg_a) {\nautoindex on;\n}")),
    Case("err_autoindex_in_limit_except", loc("limit_except GET {\nautoindex on;\n}"),
         xfail="limit_except is not implemented yet (http core)"),
    Case("err_autoindex_in_main", "autoindex on;\n" + EV),
    Case("err_autoindex_block", loc("autoindex on {\n}")),
    # --- autoindex_format ---------------------------------------------------------------
    Case("ok_autoindex_format_html", loc("autoindex on;\nautoindex_format html;")),
    Case("ok_autoindex_format_xml", loc("autoindex on;\nautoindex_format xml;")),
    Case("ok_autoindex_format_json", loc("autoindex on;\nautoindex_format json;")),
    Case("ok_autoindex_format_jsonp", loc("autoindex on;\nautoindex_format jsonp;")),
    Case("ok_autoindex_format_upper_case", loc("autoindex_format JSON;")),
    Case("ok_autoindex_format_without_autoindex", srv("autoindex_format xml;")),
    Case("ok_autoindex_format_http_level", srv("", http="autoindex_format jsonp;")),
    Case("err_autoindex_format_unknown", loc("autoindex_format yaml;")),
    Case("err_autoindex_format_empty", loc('autoindex_format "";')),
    Case("err_autoindex_format_variable", loc("autoindex_format $arg_f;")),
    Case("err_autoindex_format_two_args", loc("autoindex_format json xml;")),
    Case("err_autoindex_format_no_args", loc("autoindex_format;")),
    Case("err_autoindex_format_duplicate", loc("autoindex_format json;\nautoindex_format json;")),
    # --- autoindex_localtime / autoindex_exact_size ---------------------------------------
    Case("ok_autoindex_localtime_on", loc("autoindex on;\nautoindex_localtime on;")),
    Case("ok_autoindex_exact_size_off", loc("autoindex on;\nautoindex_exact_size off;")),
    Case("ok_autoindex_all_four_http", srv("", http="autoindex on;\nautoindex_format html;\n"
                                            "autoindex_localtime on;\nautoindex_exact_size off;")),
    Case("err_autoindex_localtime_bad", loc("autoindex_localtime 1;")),
    Case("err_autoindex_localtime_duplicate", loc("autoindex_localtime on;\nautoindex_localtime on;")),
    Case("err_autoindex_exact_size_bad", loc("autoindex_exact_size human;")),
    Case("err_autoindex_exact_size_no_args", loc("autoindex_exact_size;")),
    Case("err_autoindex_exact_size_duplicate", srv("autoindex_exact_size on;\nautoindex_exact_size off;")),
    Case("err_autoindex_exact_size_in_if", loc("if ($arg_a) {\nautoindex_exact_size off;\n}")),
    # --- random_index ---------------------------------------------------------------------
    Case("ok_random_index_on", loc("random_index on;")),
    Case("ok_random_index_off", loc("random_index off;")),
    Case("ok_random_index_with_autoindex", loc("random_index on;\nautoindex on;")),
    Case("err_random_index_server", srv("random_index on;")),
    Case("err_random_index_http", srv("", http="random_index on;")),
    Case("err_random_index_bad_value", loc("random_index yes;")),
    Case("err_random_index_no_args", loc("random_index;")),
    Case("err_random_index_duplicate", loc("random_index on;\nrandom_index on;")),
    Case("err_random_index_in_if", loc("if ($arg_a) {\nrandom_index on;\n}")),
    # --- empty_gif ------------------------------------------------------------------------
    Case("ok_empty_gif", srv("location = /1.gif {\nempty_gif;\n}")),
    Case("ok_empty_gif_twice", loc("empty_gif;\nempty_gif;")),
    Case("ok_empty_gif_with_autoindex", loc("empty_gif;\nautoindex on;")),
    Case("err_empty_gif_arg", loc("empty_gif on;")),
    Case("err_empty_gif_server", srv("empty_gif;")),
    Case("err_empty_gif_http", srv("", http="empty_gif;")),
    Case("err_empty_gif_in_if", loc("if ($arg_a) {\nempty_gif;\n}")),
    Case("err_empty_gif_block", loc("empty_gif {\n}")),
]
