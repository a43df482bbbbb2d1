"""The configuration corpus compared against ``nginx -t``.

Invariants:
- Every case is small and self-contained: ``conf`` is written as
  ``DIR/nginx.conf`` and ``files`` (paths relative to DIR) next to it.
- Cases use only loopback addresses and never need root or the network.
- ``xfail`` names a known Portico bug in a file outside ``portico/conf``,
  ``core/module.py`` and ``core/values.py``; such cases must keep failing
  (strict), so a fix elsewhere shows up as an XPASS to be cleaned up.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    id: str
    conf: str
    files: dict[str, str] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    xfail: str | None = None


EV = "events {}\n"


def srv(body: str, http: str = "") -> str:
    """A server on 127.0.0.1:8080; ``body`` starts on line 5 (``http`` extra on line 3)."""
    return f"events {{}}\nhttp {{\n{http}\nserver {{\nlisten 127.0.0.1:8080;\n{body}\n}}\n}}\n"


def loc(body: str) -> str:
    """A ``location /`` inside srv(); ``body`` starts on line 6."""
    return srv(f"location / {{\n{body}\n}}")


CASES: list[Case] = [
    # --- the minimal valid configurations ---------------------------------------------
    Case("ok_minimal", EV),
    Case("ok_server", srv("return 200;")),
    Case("ok_crlf", "events {\r\n}\r\nhttp {\r\n server {\r\n listen 127.0.0.1:8080;\r\n }\r\n}\r\n"),
    Case("ok_empty_events_inline", "events{}http{server{listen 127.0.0.1:8080;}}"),
    Case("ok_quoted_directive_name", '"worker_processes" 2;\n' + EV),
    # --- quoting and escapes ------------------------------------------------------------
    Case("ok_dq_escaped_quote", loc('return 200 "a\\"b";')),
    Case("ok_sq", loc("return 200 'x';")),
    Case("ok_sq_dq_mix", loc("add_header 'X-A' \"v'1\";")),
    Case("ok_escapes_tn", loc('return 200 "a\\tb\\nc\\r";')),
    Case("ok_backslash_kept_regex", srv("location ~ ^/a\\d+\\.html$ {\nreturn 200;\n}")),
    Case("ok_backslash_semicolon_in_word", loc("return 200 a\\;b;")),
    Case("ok_backslash_space_unquoted", loc("return 200 a\\ b;")),
    Case("err_quote_then_paren_starts_word", loc('return 200 "a")b;')),
    Case("ok_quote_inside_word", loc('default_type a"b";')),
    Case("ok_multiline_quoted", loc('return 200 "line1\nline2";')),
    Case("err_line_counts_escaped_newline", loc('return 200 "a\\\nb";\nfoo;')),
    Case("err_text_after_quote", loc('return 200 "a"b;')),
    Case("err_two_quotes_adjacent", loc('return 200 "a""b";')),
    Case("err_comment_after_quote", loc('return 200 "a"#c\n;')),
    Case("err_unterminated_dq", loc('return 200 "abc;\n')),
    Case("err_unterminated_sq_no_newline", EV + "worker_processes 'abc"),
    Case("err_after_multiline_quote_line", 'worker_rlimit_nofile "1\n\n\n";\n' + EV),
    Case("err_backslash_newline_unquoted_line", "worker_rlimit_nofile x\\\ny;\n" + EV),
    Case("err_empty_quoted_directive_name", EV + '"" 1;\n'),
    Case("err_backslash_at_eof", EV + "worker_processes \\"),
    Case("ok_braces_and_semicolons_in_quotes", loc('return 200 "};{#";')),
    Case("err_unquoted_close_brace_is_part_of_word", srv("location / {\nreturn 200 a}\n}")),
    Case("ok_no_space_before_brace", EV + "http{server{listen 127.0.0.1:8080;location /a{return 204;}}}"),
    Case("ok_tabs_and_blank_lines", "\t\n\nworker_processes\t2 ;\n\t" + EV),
    Case("ok_comment_at_eof_no_newline", EV + "# the end"),
    Case("err_comment_then_unterminated", EV + "worker_processes 1 # no semicolon here\n"),
    Case("err_lone_cr_is_not_a_newline", "\r\rworker_rlimit_nofile x;\n" + EV),
    # --- comments -----------------------------------------------------------------------
    Case("ok_comment_in_word", loc("return 200 a#b;")),
    Case("ok_comment_eats_semicolon", "worker_processes 1 # ;\n;\n" + EV),
    Case("ok_comment_after_block", EV + "# }\nhttp { # {\n}\n"),
    Case("err_comment_in_word_value", "worker_rlimit_nofile 1#2;\n" + EV),
    Case("err_comment_hides_brace", EV + "http { # }\n"),
    Case("ok_only_comments_then_events", "# a\n  # b\n" + EV + "#"),
    # --- ${var} inside words ------------------------------------------------------------
    Case("ok_braced_var_unquoted", loc("return 200 x${uri}y;")),
    Case("ok_braced_var_quoted", loc('return 200 "x${uri}y";')),
    Case("err_braced_var_space", loc("return 200 a${u ri};")),
    Case("err_braced_var_unclosed", loc('return 200 "a${uri";')),
    Case("err_dollar_brace_is_not_block", EV + "worker_rlimit_nofile ${x};"),
    Case("err_unknown_variable_in_return", loc("return 200 $nosuchvar;")),
    Case("err_unknown_braced_variable", loc('return 200 "${nosuch}";')),
    Case("err_invalid_variable_name", loc('return 200 "a$";')),
    # --- ; { } edge cases -----------------------------------------------------------------
    Case("err_missing_semicolon_eof", EV + "worker_processes 1"),
    Case("err_missing_semicolon_eof_newline", EV + "worker_processes 1\n"),
    Case("err_missing_semicolon_before_brace", "events {\nworker_connections 10\n}\n"),
    Case("err_missing_close_brace", "events {\n\n"),
    Case("err_missing_close_brace_no_newline", "events {"),
    Case("err_missing_close_brace_nested", srv("location / {\n").rstrip("}\n")),
    Case("err_extra_close_brace", EV + "}\n"),
    Case("err_unexpected_open_brace", EV + "{\n}\n"),
    Case("err_unexpected_semicolon", EV + ";\n"),
    Case("err_semicolon_after_block", EV + "http {\n};\n"),
    Case("err_simple_directive_with_block", "worker_processes 1 {\n}\n" + EV),
    Case("err_block_directive_with_semicolon", "events;\n"),
    Case("err_block_directive_multiline_head", "events\n\n{ foo; }\n"),
    Case("err_unknown_directive", EV + "foo bar;\n"),
    Case("err_unknown_directive_block", EV + "foo {\n}\n"),
    Case("err_unknown_directive_multiline", EV + "foo\nbar\n;\n"),
    Case("err_syntax_after_unknown", EV + "foo;\n}\n"),
    Case("err_unknown_before_syntax_error_later", EV + "http {\nfoo;\n\n\"a\"b\n}\n"),
    # --- contexts and argument counts ----------------------------------------------------
    Case("err_wrong_context_listen", "listen 80;\n" + EV),
    Case("err_wrong_context_worker_connections", "worker_connections 10;\n" + EV),
    Case("err_wrong_context_events_in_http", EV + "http {\nevents {}\n}\n"),
    Case("err_wrong_context_alias_in_server", srv("alias /tmp/;")),
    Case("err_nargs_none", "worker_processes;\n" + EV),
    Case("err_nargs_too_many", "worker_processes 1 2;\n" + EV),
    Case("err_nargs_flag", "daemon on off;\n" + EV),
    Case("err_nargs_location", srv("location {\n}")),
    Case("err_nargs_location_three", srv("location = /a b {\n}")),
    Case("err_nargs_events_with_arg", "events x {\n}\n"),
    Case("err_nargs_multiline_reports_terminator_line", "worker_processes\n1\n2\n;\n" + EV),
    Case("err_nargs_more2", srv("error_page /x;")),
    # --- values -----------------------------------------------------------------------
    Case("err_flag_value", "daemon yes;\n" + EV),
    Case("ok_flag_case_insensitive", "daemon ON;\nmaster_process Off;\n" + EV),
    Case("err_flag_value_http", srv("sendfile maybe;")),
    Case("err_size_suffix", srv("client_header_buffer_size 10x;")),
    Case("err_size_giga_not_allowed", srv("client_header_buffer_size 1g;")),
    Case("ok_offset_giga", srv("client_max_body_size 1G;")),
    Case("err_offset_negative", srv("client_max_body_size -1;")),
    Case("err_size_empty_quoted", srv('client_body_buffer_size "";')),
    Case("err_time_unit", srv("send_timeout 10x;")),
    Case("ok_time_combined", srv('send_timeout "1h 30m";\nclient_body_timeout 1d2h3m4s5ms;')),
    Case("err_time_order", srv("send_timeout 1m1h;")),
    Case("err_time_year_in_msec_slot", srv("send_timeout 1y;")),
    Case("ok_time_ms", srv("send_timeout 500ms;")),
    Case("err_keepalive_header_ms", srv("keepalive_timeout 65 10ms;")),
    Case("err_keepalive_timeout_value", srv("keepalive_timeout abc;")),
    Case("err_number", srv("keepalive_requests abc;")),
    Case("err_number_negative", srv("keepalive_requests -5;")),
    Case("err_worker_processes_value", "worker_processes lots;\n" + EV),
    Case("ok_worker_processes_auto", "worker_processes auto;\n" + EV),
    Case("err_worker_connections_value", "events {\nworker_connections many;\n}\n"),
    Case("err_enum_value", srv("lingering_close sometimes;")),
    Case("err_enum_value_satisfy", srv("satisfy some;")),
    Case("err_bufs_count", srv("large_client_header_buffers x 8k;")),
    Case("err_bufs_zero", srv("output_buffers 2 0;")),
    Case("err_server_tokens_value", srv("server_tokens maybe;")),
    Case("err_error_log_level", "error_log stderr loud;\n" + EV),
    # --- duplicates ---------------------------------------------------------------------
    Case("err_duplicate_flag", srv("sendfile on;\nsendfile off;")),
    Case("err_duplicate_size", srv("client_max_body_size 1m;\nclient_max_body_size 2m;")),
    Case("err_duplicate_core", "worker_processes 1;\nworker_processes 2;\n" + EV),
    Case("err_duplicate_events", EV + EV),
    Case("err_duplicate_http", EV + "http {\n}\nhttp {\n}\n"),
    Case("err_duplicate_root", loc("root /a;\nroot /b;")),
    Case("err_root_then_alias", loc("root /a;\nalias /b/;")),
    Case("ok_duplicate_at_different_levels", srv("sendfile on;\nlocation / {\nsendfile off;\n}",
                                                  http="sendfile off;")),
    # --- include ------------------------------------------------------------------------
    Case("ok_include_glob_no_match", EV + "include nothing/*.conf;\n"),
    Case("ok_include_glob_match", EV + "include conf.d/*.conf;\n",
         {"conf.d/a.conf": "worker_processes 2;\n", "conf.d/b.conf": "# empty\n"}),
    Case("err_include_missing", EV + "\ninclude missing.conf;\n"),
    Case("err_include_missing_absolute", EV + "include /nonexistent/portico/x.conf;\n"),
    Case("err_include_nargs", EV + "include a b;\n"),
    Case("err_include_with_block", EV + "include a {\n}\n"),
    Case("ok_include_nested_relative", EV + "include sub/a.conf;\n",
         {"sub/a.conf": "\ninclude sub/b.conf;\n", "sub/b.conf": "worker_processes 2;\n"}),
    Case("err_include_nested_relative_to_including_file", EV + "include sub/a.conf;\n",
         {"sub/a.conf": "\ninclude b.conf;\n", "sub/b.conf": "worker_processes 2;\n"}),
    Case("err_in_included_file_line", EV + "include sub/a.conf;\n",
         {"sub/a.conf": "\n\nworker_processes 2;\nbogus;\n"}),
    Case("err_included_file_unterminated", EV + "include a.conf;\nworker_processes 1;\n",
         {"a.conf": "worker_processes 2\n"}),
    Case("err_included_file_unbalanced_brace", "include a.conf;\n}\n", {"a.conf": "events {\n"}),
    Case("err_after_include_line_in_parent", "include a.conf;\nfoo;\n" + EV, {"a.conf": "\n\n\n"}),
    Case("ok_include_inside_http", EV + "http {\ninclude h.conf;\n}\n",
         {"h.conf": "server {\nlisten 127.0.0.1:8080;\n}\n"}),
    # --- events / http ----------------------------------------------------------------
    Case("err_events_missing", "http {\n}\n"),
    Case("err_empty_file", ""),
    Case("ok_events_directives", "events {\nworker_connections 64;\nmulti_accept on;\n}\n"),
    # --- locations --------------------------------------------------------------------
    Case("err_duplicate_location", srv("location /a {\n}\nlocation /a {\n}")),
    Case("err_duplicate_location_exact", srv("location = /a {\n}\nlocation =/a {\n}")),
    Case("ok_prefix_and_exact_same_uri", srv("location /a {\n}\nlocation = /a {\n}")),
    Case("ok_duplicate_named_location", srv("location @a {\n}\nlocation @a {\n}")),
    Case("err_invalid_location_modifier", srv("location ~~ /a {\n}")),
    Case("ok_location_modifiers", srv("location = /a {\n}\nlocation ^~ /b {\n}\nlocation ~* \\.png$ {\n}\n"
                                      "location ~ \\.gif$ {\n}\nlocation @n {\n}\nlocation ^~/c {\n}")),
    Case("err_location_outside", srv("location /a {\nlocation /b {\n}\n}")),
    Case("err_location_inside_exact", srv("location = /a {\nlocation /a/b {\n}\n}")),
    Case("err_named_location_nested", srv("location /a {\nlocation @n {\n}\n}")),
    Case("err_alias_in_named_location", srv("location @n {\nalias /tmp/;\n}")),
    # --- listen -------------------------------------------------------------------------
    Case("err_listen_bad_port", srv("listen 127.0.0.1:99999;")),
    Case("err_listen_port_word", srv("listen 127.0.0.1:http;")),
    Case("err_listen_invalid_parameter", srv("listen 127.0.0.2:8080 fast;")),
    Case("err_listen_duplicate_same_server", srv("listen 127.0.0.1:8080;")),
    Case("err_listen_duplicate_default_server",
         EV + "http {\nserver {\nlisten 127.0.0.1:8080 default_server;\n}\nserver {\n"
              "listen 127.0.0.1:8080 default_server;\n}\n}\n"),
    Case("err_listen_duplicate_options",
         EV + "http {\nserver {\nlisten 127.0.0.1:8080 backlog=10;\n}\nserver {\n"
              "listen 127.0.0.1:8080 backlog=20;\n}\n}\n"),
    Case("ok_listen_forms", EV + "http {\nserver {\nlisten 127.0.0.1:8081;\nlisten [::1]:8081;\n"
                                 "listen 127.0.0.1:8082 default_server;\n}\n}\n"),
    # --- error_page ---------------------------------------------------------------------
    Case("err_error_page_code_low", srv("error_page 200 /x;")),
    Case("err_error_page_code_high", srv("error_page 600 /x;")),
    Case("err_error_page_499", srv("error_page 499 /x;")),
    Case("err_error_page_not_number", srv("error_page abc /x;")),
    Case("err_error_page_bad_overwrite", srv("error_page 404 =abc /x;")),
    Case("ok_error_page_forms", srv("error_page 404 /404.html;\nerror_page 500 502 = @fallback;\n"
                                    "error_page 403 =200 /x;\nlocation @fallback {\n}")),
    # --- rewrite / return / misc modules ------------------------------------------------
    Case("err_return_code_word", loc("return abc;")),
    Case("err_return_code_big", loc("return 1000;")),
    Case("ok_return_forms", loc("return 301 /x;") + "", ),
    Case("ok_return_url", loc("return http://example.com/;")),
    Case("err_log_format_nargs", srv("", http="log_format main;")),
    Case("err_access_log_unknown_format", srv("access_log logs/a.log nosuchformat;")),
    Case("err_expires_value", loc("expires soon;")),
    Case("err_add_header_nargs", loc("add_header X;")),
    Case("err_types_nested_block", srv("types {\ntext/html html {\n}\n}")),
    Case("ok_types", srv("types {\ntext/html html htm;\nimage/png png;\n}")),
    # --- more modules -------------------------------------------------------------------
    Case("ok_access_log_flush_ms", srv("access_log logs/a.log combined buffer=4k flush=500ms;")),
    Case("err_access_log_flush_year", srv("access_log logs/a.log combined buffer=4k flush=1y;")),
    Case("ok_expires_forms", loc("expires 1y;\nadd_header X-A b always;")),
    Case("ok_expires_epoch", loc("expires epoch;")),
    Case("err_expires_ms", loc("expires 10ms;")),
    Case("ok_index_stub_status", srv("index a.html b.html;\nlocation = /s {\nstub_status;\n}")),
    Case("ok_return_redirect_no_url", loc("return 301;")),
    Case("ok_http_error_log", srv("error_log logs/e.log warn;")),
    Case("ok_open_file_cache", srv("open_file_cache max=10 inactive=20s;")),
    Case("ok_server_name_star_inside", srv("server_name a*b;")),
    Case("ok_listen_unix", EV + "http {\nserver {\nlisten unix:/tmp/portico-conf-test.sock;\n}\n}\n"),
    Case("ok_include_in_types", srv("types {\ninclude t.conf;\n}"), {"t.conf": "text/html html;\n"}),
    Case("err_include_glob_file_error", EV + "include d/*.conf;\n", {"d/a.conf": "\n\nbad;\n"}),
    Case("err_include_error_inside_block", EV + "http {\ninclude h.conf;\n}\n",
         {"h.conf": "server {\nlisten 127.0.0.1:8080;\nlisten 127.0.0.1:8080;\n}\n"}),
    Case("err_unexpected_brace_in_included_file", EV + "http {\ninclude h.conf;\n}\n", {"h.conf": "}\n"}),
    Case("err_location_head_multiline", srv("location\n~~\n/a\n{\n}")),
    Case("err_wrong_context_server_in_main", EV + "server {\n}\n"),
    Case("err_directive_in_main_after_http", EV + "http {\n}\nsendfile on;\n"),
    Case("ok_worker_rlimit_and_timeouts", "worker_rlimit_nofile 1024;\nworker_shutdown_timeout 10s;\n" + EV),
    Case("err_worker_rlimit_overflow", "worker_rlimit_nofile 99999999999999999999;\n" + EV),
    Case("err_time_overflow", srv("send_timeout 9999999999999999999;")),
    Case("ok_time_spaces", srv('send_timeout "1m 30";\nclient_body_timeout " 5";')),
    Case("err_time_unit_only", srv("send_timeout s;")),
    # --- -g ---------------------------------------------------------------------------
    Case("ok_global_param", EV, extra=("-g", "worker_processes 2;")),
    Case("err_global_param_unknown", EV, extra=("-g", "foo 1;")),
    Case("err_global_param_unterminated", EV, extra=("-g", "worker_processes 2")),
    Case("err_global_param_block", EV, extra=("-g", "events {}")),
    Case("err_global_param_duplicate_in_file", "worker_processes 1;\n" + EV, extra=("-g", "worker_processes 2;")),
]


# Per-area corpora live beside this file (cases_<area>.py, each a CASES list
# built with Case/srv/loc from here); they are appended in this fixed order.
def _extend() -> None:
    import importlib
    for area in ("rewrite", "map", "geo", "split_clients", "access", "realip", "try_files", "autoindex", "limits", "sub_charset", "compression", "proxy", "ssl"):
        try:
            mod = importlib.import_module(f"{__package__}.cases_{area}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.cases_{area}":
                raise
            continue
        CASES.extend(mod.CASES)


_extend()
