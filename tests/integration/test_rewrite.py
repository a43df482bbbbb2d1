"""ngx_http_rewrite_module on a live portico: what the differential corpus
cannot see — error-log lines (rewrite loops, rewrite_log, uninitialized
variables), file tests against a changing tree, and set handlers.

Routing itself (statuses, Locations, bodies) is compared with nginx in
tests/differential/test_routing_diff.py.
"""
from __future__ import annotations

import os
import re
import time

from harness import base_conf, free_port, parse_response, raw_request, wait_for


def get(port: int, path: str, headers: str = "") -> tuple[int, dict[str, str], bytes]:
    status, hdrs, body, _ = parse_response(raw_request(
        port, f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n".encode()))
    return status, hdrs, body


def test_rewrite_loop_ends_in_500_with_the_log_line(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location /loop/ {{ rewrite ^/loop/(.*)$ /loop/$1 last; }}
        location /ping-pong/a {{ rewrite ^ /ping-pong/b last; }}
        location /ping-pong/b {{ rewrite ^ /ping-pong/a last; }}
    }}"""))
    # raw_request gives up after 5 s, so a hang fails here rather than blocking
    assert get(port, "/loop/x")[0] == 500
    assert get(port, "/ping-pong/a")[0] == 500
    assert wait_for(lambda: srv.log().count("rewrite or internal redirection cycle") >= 2, 5)
    log = srv.log()
    assert re.search(r'\[error\] \d+#\d+: \*\d+ rewrite or internal redirection cycle while processing '
                     r'"/loop/x", client: 127\.0\.0\.1, server: , request: "GET /loop/x HTTP/1\.1", host: "t"', log)
    # ten hops from /ping-pong/a end on /ping-pong/b, as with nginx
    assert 'while processing "/ping-pong/b", client: 127.0.0.1, server: , request: "GET /ping-pong/a' in log


def test_rewrite_log_writes_notice_lines(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        rewrite_log on;
        location / {{
            rewrite ^/nomatch$ /x;
            rewrite ^/(a)(.*)$ /b$2?k=$1 last;
            rewrite ^/r/(.*)$ http://example.com/$1 redirect;
        }}
        location /b {{ return 200 "$uri $args"; }}
    }}"""))
    assert get(port, "/a1?z=2")[2] == b"/b1 k=a&z=2"
    status, hdrs, _ = get(port, "/r/q")
    assert status == 302 and hdrs["location"] == "http://example.com/q"
    assert wait_for(lambda: "rewritten redirect" in srv.log(), 5)
    log = srv.log()
    assert '[notice]' in log
    assert '"^/nomatch$" does not match "/a1"' in log
    assert '"^/(a)(.*)$" matches "/a1"' in log
    assert 'rewritten data: "/b1", args: "k=a&z=2"' in log
    assert 'rewritten redirect: "http://example.com/q"' in log


def test_rewrite_log_off_is_silent(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ rewrite ^/(.*)$ /b/$1 last; }}
        location /b/ {{ return 200 "$uri"; }}
    }}"""))
    assert get(port, "/x")[2] == b"/b/x"
    time.sleep(0.2)
    assert "rewritten data" not in srv.log()


def test_uninitialized_variable_warning(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location /warn {{ return 200 "[$later]"; }}
        location /quiet {{ uninitialized_variable_warn off; return 200 "[$later]"; }}
        location /set {{ set $later v; return 200 "[$later]"; }}
    }}"""))
    assert get(port, "/quiet")[2] == b"[]"
    time.sleep(0.2)
    assert "uninitialized" not in srv.log()
    assert get(port, "/warn")[2] == b"[]"
    assert get(port, "/set")[2] == b"[v]"
    assert wait_for(lambda: 'using uninitialized "later" variable' in srv.log(), 5)
    assert srv.log().count("using uninitialized") == 1
    assert '[warn]' in srv.log()


def test_maintenance_switch_follows_the_file(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root html;
        if (-f $document_root/maintenance.on) {{ return 503; }}
        location / {{ return 200 "live"; }}
    }}"""), files={"html/index.html": "i"})
    assert get(port, "/")[0] == 200
    flag = srv.path("html/maintenance.on")
    with open(flag, "w"):
        pass
    assert get(port, "/")[0] == 503
    os.unlink(flag)
    assert get(port, "/")[0] == 200


def test_file_tests_exec_and_dir(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root html;
        location / {{
            if (-x $request_filename) {{ return 200 "exec"; }}
            if (-d $request_filename) {{ return 200 "dir"; }}
            if (-e $request_filename) {{ return 200 "exists"; }}
            return 200 "none";
        }}
    }}"""), files={"html/run.sh": "#!/bin/sh\n", "html/plain.txt": "p", "html/sub/x": "x"})
    os.chmod(srv.path("html/run.sh"), 0o755)
    os.chmod(srv.path("html/plain.txt"), 0o644)
    assert get(port, "/run.sh")[2] == b"exec"
    assert get(port, "/plain.txt")[2] == b"exists"
    assert get(port, "/sub")[2] == b"exec"  # a directory has its x bit: nginx says exec too
    assert get(port, "/none")[2] == b"none"


def test_set_limit_rate_and_args(server):
    port = free_port()
    srv = server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        location /bad {{ set $limit_rate "fast"; return 200 "ok"; }}
        location /args {{ set $args "x=1"; return 200 "$args $arg_x"; }}
    }}"""))
    assert get(port, "/args?y=2")[2] == b"x=1 1"
    assert get(port, "/bad")[0] == 200
    assert wait_for(lambda: 'invalid $limit_rate "fast"' in srv.log(), 5)


def test_if_in_location_switches_configuration(server):
    port = free_port()
    server(base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root html;
        location / {{
            if ($arg_alt) {{ root alt; }}
        }}
    }}"""), files={"html/f.txt": "main\n", "alt/f.txt": "alternative\n"})
    assert get(port, "/f.txt")[2] == b"main\n"
    assert get(port, "/f.txt?alt=1")[2] == b"alternative\n"
    assert get(port, "/f.txt?alt=0")[2] == b"main\n"  # "0" is false
