"""ngx_http_sub_module and ngx_http_charset_filter_module configurations
compared against ``nginx -t``.

Invariant: ids start with ``ok_`` or ``err_`` by nginx's outcome; the
shared runner (test_conf_diff.py) compares outcome and ``[emerg]`` text
(with FILE:LINE).  The koi-win map is inlined where a real table is needed.
"""
from __future__ import annotations

import os

from .cases import EV, Case, loc, srv

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _shipped(name: str) -> str:
    """One of nginx's map files as the repository ships it in conf/."""
    with open(os.path.join(_REPO, "conf", name)) as f:
        return f.read()


_MAP = "charset_map koi8-r windows-1251 {\nC1 E0;\nC2 E1;\n}\n"
_UMAP = "charset_map koi8-r utf-8 {\nC1 D0B0;\n}\n"


def _http(body: str, server: str = "return 200;") -> str:
    """``body`` at http level (from line 3), then a server."""
    return f"events {{}}\nhttp {{\n{body}\nserver {{\nlisten 127.0.0.1:8080;\n{server}\n}}\n}}\n"


CASES: list[Case] = [
    # --- sub_filter ---------------------------------------------------------------------
    Case("ok_sub_filter_pairs", loc("sub_filter a b;\nsub_filter C $uri;\nsub_filter_once off;\n"
                                    "sub_filter_last_modified on;")),
    Case("ok_sub_filter_all_levels", srv("sub_filter x y;\nlocation / {\nsub_filter z w;\n}",
                                         http="sub_filter_types text/plain;\nsub_filter a b;")),
    Case("ok_sub_filter_var_in_search", loc("sub_filter $arg_s x;")),
    Case("ok_sub_filter_empty_replacement", loc('sub_filter a "";')),
    Case("err_sub_filter_empty_search", loc('sub_filter "" b;')),
    Case("err_sub_filter_one_arg", loc("sub_filter a;")),
    Case("err_sub_filter_three_args", loc("sub_filter a b c;")),
    Case("err_sub_filter_unknown_var", loc("sub_filter a $nosuchvar;")),
    Case("err_sub_filter_unknown_var_in_search", loc("sub_filter $nosuchvar b;")),
    Case("err_sub_filter_in_if", loc("if ($uri) {\nsub_filter a b;\n}")),
    Case("err_sub_filter_in_main", "sub_filter a b;\n" + EV),
    Case("ok_sub_filter_255_patterns", loc("".join(f"sub_filter p{i} r;\n" for i in range(255)))),
    Case("err_sub_filter_256_patterns", loc("".join(f"sub_filter p{i} r;\n" for i in range(256)))),
    Case("ok_sub_filter_types_star", loc("sub_filter_types *;\nsub_filter_types text/plain;")),
    Case("ok_sub_filter_types_repeat", loc("sub_filter_types text/plain;\nsub_filter_types text/css;")),
    Case("ok_sub_filter_types_duplicate_warns", loc("sub_filter_types text/html TEXT/PLAIN text/plain;")),
    Case("err_sub_filter_types_no_args", loc("sub_filter_types;")),
    Case("err_sub_filter_once_bad", loc("sub_filter_once yes;")),
    Case("err_sub_filter_once_dup", loc("sub_filter_once on;\nsub_filter_once off;")),
    Case("err_sub_filter_last_modified_args", loc("sub_filter_last_modified on off;")),
    Case("ok_sub_filter_once_uppercase", loc("sub_filter_once OFF;")),
    # --- charset, source_charset, override_charset ---------------------------------------
    Case("ok_charset_plain", loc("charset utf-8;")),
    Case("ok_charset_off_nested", srv("charset koi8-r;\nlocation / {\ncharset off;\n}")),
    Case("ok_charset_in_if", loc("if ($arg_a) {\ncharset utf-8;\nsource_charset utf-8;\n"
                                 "override_charset on;\n}")),
    Case("ok_charset_same_source", loc("charset UTF-8;\nsource_charset utf-8;")),
    Case("ok_charset_variable", loc("charset $arg_cs;\nsource_charset $arg_src;")),
    Case("err_charset_unknown_variable", loc("charset $nosuch;")),
    Case("err_charset_duplicate", loc("charset utf-8;\ncharset koi8-r;")),
    Case("err_source_charset_duplicate", loc("source_charset utf-8;\nsource_charset utf-8;")),
    Case("err_charset_no_args", loc("charset;")),
    Case("err_charset_two_args", loc("charset a b;")),
    Case("err_charset_in_main", "charset utf-8;\n" + EV),
    Case("err_charset_in_server_if", srv("if ($uri) {\ncharset utf-8;\n}")),
    Case("err_override_charset_bad", loc("override_charset maybe;")),
    Case("ok_charset_types", loc("charset_types text/css application/json;\ncharset_types *;")),
    Case("err_charset_types_in_if", loc("if ($uri) {\ncharset_types text/css;\n}")),
    # a recoding location needs a charset_map; the error names no file
    Case("err_charset_no_map", loc("charset koi8-r;\nsource_charset windows-1251;")),
    Case("err_charset_no_map_inherited", srv("location / {\n}", http="charset utf-8;\nsource_charset koi8-r;")),
    Case("ok_charset_no_map_without_servers", EV + "http {\ncharset utf-8;\nsource_charset koi8-r;\n}\n"),
    Case("ok_charset_map_either_direction", _http(_MAP, "charset koi8-r;\nsource_charset windows-1251;")),
    Case("ok_charset_map_utf8", _http(_UMAP, "charset utf-8;\nsource_charset KOI8-R;")),
    # "off" is only a keyword for "charset": here it is a charset's name
    Case("err_source_charset_off_is_a_name", loc("charset utf-8;\nsource_charset off;")),
    Case("ok_charset_off_name_with_map", _http("charset_map off utf-8 {\n}",
                                               "charset utf-8;\nsource_charset off;")),
    # --- charset_map ----------------------------------------------------------------------
    Case("err_charset_map_same", _http("charset_map a A {\n}")),
    Case("err_charset_map_duplicate", _http(_MAP + "charset_map windows-1251 koi8-r {\n}")),
    # nginx compares a new map with the first one only
    Case("ok_charset_map_duplicate_not_first", _http("charset_map a b {\n}\n" + _MAP
                                                     + "charset_map koi8-r windows-1251 {\n}")),
    Case("err_charset_map_in_server", srv("charset_map a b {\n}")),
    Case("err_charset_map_no_block", _http("charset_map a b;")),
    Case("err_charset_map_one_arg", _http("charset_map a {\n}")),
    Case("err_charset_map_bad_key", _http("charset_map a b {\nG1 E0;\n}")),
    Case("err_charset_map_key_too_big", _http("charset_map a b {\n100 E0;\n}")),
    Case("err_charset_map_value_too_big", _http("charset_map a b {\nC1 1E0;\n}")),
    Case("err_charset_map_three_params", _http("charset_map a b {\nC1 E0 E1;\n}")),
    Case("err_charset_map_one_param", _http("charset_map a b {\nC1;\n}")),
    Case("err_charset_map_nested_block", _http("charset_map a b {\nC1 {\n}\n}")),
    Case("ok_charset_map_lowercase_hex", _http("charset_map a b {\nc1 e0;\nff 3F;\n}")),
    Case("err_charset_map_hex_prefix", _http("charset_map a b {\n0xC1 E0;\n}")),
    Case("err_charset_map_empty_key", _http('charset_map a b {\n"" E0;\n}')),
    Case("ok_charset_map_utf8_three_bytes", _http("charset_map a utf-8 {\n80 E282AC;\n9A c2a0;\n}")),
    Case("err_charset_map_utf8_four_bytes", _http("charset_map a utf-8 {\n80 F09F9880;\n}")),
    Case("err_charset_map_utf8_odd_length", _http("charset_map a utf-8 {\n80 D0B;\n}")),
    Case("err_charset_map_utf8_ascii", _http("charset_map a utf-8 {\n80 41;\n}")),
    Case("err_charset_map_utf8_incomplete", _http("charset_map a utf-8 {\n80 D0;\n}")),
    Case("err_charset_map_utf8_overlong", _http("charset_map a utf-8 {\n80 C0AF;\n}")),
    Case("err_charset_map_utf8_empty", _http('charset_map a utf-8 {\n80 "";\n}')),
    Case("ok_charset_map_utf8_trailing_byte", _http("charset_map a utf-8 {\n80 D0B0B0;\n}")),
    Case("ok_charset_map_utf8_lenient_continuation", _http("charset_map a utf-8 {\n80 D0FF;\n}")),
    Case("ok_charset_map_shipped_files", _http("include koi-win;\ninclude koi-utf;\ninclude win-utf;",
                                               "charset utf-8;\nsource_charset windows-1251;"),
         {n: _shipped(n) for n in ("koi-win", "koi-utf", "win-utf")}),
]
