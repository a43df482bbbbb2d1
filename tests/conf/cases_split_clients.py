"""``split_clients`` configurations compared against ``nginx -t`` (see cases.py)."""
from __future__ import annotations

from .cases import EV, Case, srv


def _split(body: str, head: str = 'split_clients "${remote_addr}x" $s') -> str:
    """A split_clients block on line 3 of srv() and a location using it."""
    return srv('location / {\nreturn 200 "' + head.split()[-1] + '";\n}', f"{head} {{ {body} }}")


CASES: list[Case] = [
    Case("ok_split_basic", _split("0.5% a; 2% b; * c;")),
    Case("ok_split_exactly_100", _split("50% a; 50.00% b;")),
    Case("ok_split_empty", _split("")),
    Case("ok_split_decimals", _split("33.33% a; 33.3% b; .5% c; 1.% d;")),
    Case("ok_split_star_only", _split("* all;")),
    Case("ok_split_extra_words_ignored", _split("10% a b;")),
    Case("ok_split_constant_key", _split("10% a;", "split_clients constant $s")),
    Case("ok_split_changeable_var", _split("10% a;", "split_clients x $args")),
    Case("err_split_over_100", _split("50% a; 60% b;")),
    Case("err_split_star_then_more", _split("* a; 10% b;")),
    Case("err_split_over_100_line_of_brace", srv("return 200;", "split_clients x $s {\n10% a;\n95% b;\n}")),
    Case("err_split_zero", _split("0% a;")),
    Case("err_split_no_percent_sign", _split("10 a;")),
    Case("err_split_three_decimals", _split("10.123% a;")),
    Case("err_split_two_dots", _split("1.2.3% a;")),
    Case("err_split_dot_only", _split(".% a;")),
    Case("err_split_percent_only", _split("% a;")),
    Case("err_split_sign", _split("+5% a;")),
    Case("err_split_target_not_variable", _split("10% a;", "split_clients x s")),
    Case("err_split_target_dollar_only", _split("10% a;", "split_clients x $")),
    Case("err_split_key_bad_variable", _split("10% a;", "split_clients $ $s")),
    Case("err_split_duplicate_core_variable", _split("10% a;", "split_clients x $uri")),
    Case("err_split_key_unknown_variable", _split("10% a;", "split_clients $nope $s")),
    Case("err_split_nested_block", _split("10% a {}")),
    Case("err_split_args_count", EV + "http {\nsplit_clients x { }\n}\n"),
    Case("err_split_not_in_server", srv("split_clients x $s { }\nreturn 200;")),
]
