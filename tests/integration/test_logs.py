"""access_log and log_format on a live portico: the predefined combined
format, escaping (default, json, none), if=, buffer= and flush=, off, several
logs, and error_log levels."""
from __future__ import annotations

import re
import time

from harness import base_conf, free_port, parse_response, raw_request


def conf(port: int, http_extra: str, server_extra: str = "") -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        root html;
        {server_extra}
        location / {{ }}
        location /nolog {{ access_log off; return 204; }}
    }}""", http_extra=http_extra)


FILES = {"html/a.txt": "hello\n"}


def get(port: int, path: str, headers: str = "") -> int:
    return parse_response(raw_request(port, f"GET {path} HTTP/1.0\r\n{headers}\r\n".encode()))[0]


def test_combined_is_byte_compatible(server):
    port = free_port()
    srv = server(conf(port, ""), files=FILES)
    get(port, "/a.txt?x=1", "Referer: http://r/\r\nUser-Agent: ua \"q\"\r\n")
    time.sleep(0.2)
    line = srv.log("access.log").strip().splitlines()[-1]
    m = re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                     r'"GET /a\.txt\?x=1 HTTP/1\.0" 200 6 "http://r/" "ua \\x22q\\x22"', line)
    assert m, line


def test_escape_json_and_none_and_missing_values(server):
    port = free_port()
    http_extra = r"""
        log_format js escape=json '{"u":"$uri","ua":"$http_user_agent","ref":"$http_referer","s":$status}';
        log_format raw escape=none '$http_user_agent|$http_referer';
        access_log logs/js.log js;
        access_log logs/raw.log raw;
    """
    srv = server(conf(port, http_extra), files=FILES)
    raw_request(port, b"GET /a.txt HTTP/1.0\r\nUser-Agent: a\"b\\c\x01d\xe9\r\n\r\n")
    time.sleep(0.2)
    # nginx: json escapes ", \ and controls (\u0001) and passes other bytes
    # through; none writes bytes as they came and nothing for a missing value
    with open(srv.path("logs/js.log"), "rb") as f:
        assert f.read().splitlines()[-1] == b'{"u":"/a.txt","ua":"a\\"b\\\\c\\u0001d\xe9","ref":"","s":200}'
    with open(srv.path("logs/raw.log"), "rb") as f:
        assert f.read().splitlines()[-1] == b'a"b\\c\x01d\xe9|'
    # the default escaping: \xXX, upper-case, for every byte outside 0x20-0x7e
    assert srv.log("access.log").strip().endswith('"-" "a\\x22b\\x5Cc\\x01d\\xE9"')


def test_if_condition_buffer_and_off(server):
    port = free_port()
    http_extra = """
        log_format st '$status $uri';
    """
    server_extra = """
        access_log logs/cond.log st if=$arg_log;
        access_log logs/buf.log st buffer=64k flush=1s;
    """
    srv = server(conf(port, http_extra, server_extra), files=FILES)
    get(port, "/a.txt")
    get(port, "/a.txt?log=1")
    get(port, "/a.txt?log=0")
    get(port, "/nolog")
    time.sleep(0.3)
    assert srv.log("cond.log").splitlines() == ["200 /a.txt"]
    assert srv.log("buf.log") == ""  # still buffered
    time.sleep(1.6)
    get(port, "/a.txt")  # a write after the flush time flushes too
    time.sleep(0.3)
    assert srv.log("buf.log").splitlines()[:3] == ["200 /a.txt", "200 /a.txt", "200 /a.txt"]
    assert "/nolog" not in srv.log("buf.log")


def test_error_log_levels_and_format(server):
    port = free_port()
    srv = server(conf(port, "", "error_log logs/srv-warn.log warn;"), files=FILES)
    assert get(port, "/missing") == 404
    time.sleep(0.2)
    line = [l for l in srv.log("srv-warn.log").splitlines() if "missing" in l][0]
    assert re.fullmatch(
        r'\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#\d+: \*\d+ open\(\) "[^"]+/html/missing" failed '
        r'\(2: No such file or directory\), client: 127\.0\.0\.1, server: , request: "GET /missing HTTP/1\.0"',
        line), line
    assert "start worker process" in srv.log("error.log")


def test_unbuffered_line_is_written_before_the_response(server):
    """Without buffer=, nginx writes the line as the request ends.  Portico
    writes the lines of one loop iteration together (core/deferred.py), but
    before that iteration's responses: whoever has a response finds its
    line, with no wait, even with many clients in the same iteration."""
    import socket
    port = free_port()
    srv = server(conf(port, ""), files=FILES)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
    try:
        for rnd in range(5):
            for i, s in enumerate(socks):
                s.sendall(f"GET /a.txt?c={i}&r={rnd} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            for i, s in enumerate(socks):
                buf = b""
                while not buf.endswith(b"hello\n"):
                    data = s.recv(4096)
                    assert data, "connection closed"
                    buf += data
                assert buf.startswith(b"HTTP/1.1 200 OK")
                # read at once, no retry
                assert f'"GET /a.txt?c={i}&r={rnd} HTTP/1.1" 200 6 ' in srv.log("access.log")
    finally:
        for s in socks:
            s.close()
    # a response the connection closes after is written at once, not at the
    # end of the iteration: its line goes first all the same (a refused
    # request is logged with its 400 too)
    for i in range(20):
        req = (f"GET /a.txt?close={i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" if i % 2
               else f"GET /a.txt?nohost={i} HTTP/1.1\r\n\r\n")
        assert raw_request(port, req.encode())
        assert f"{'close' if i % 2 else 'nohost'}={i} HTTP/1.1\" {200 if i % 2 else 400} " in srv.log("access.log")
