"""ngx_http_core_module's embedded variables on a live Portico, most of them
differentially against Debian's nginx 1.22.

Deterministic variables are printed by ``return 200 "..."`` and compared
byte for byte (only the listen port and the prefix differ between the two
servers).  Response-side variables ($status, $bytes_sent, $sent_http_*...)
are compared through an access log.  Values that differ by nature (times,
pids, request ids) are checked against nginx's formats.  Where nginx 1.29
differs from the 1.22 used here (repeated request headers), the test says so
and checks 1.29's behaviour.
"""
from __future__ import annotations

import os
import re
import socket
import time
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request

VARS = ("args query_string is_args arg_a arg_b arg_none uri document_uri request_uri request "
        "request_method server_protocol scheme https host http_host http_user_agent http_x_custom "
        "http_cookie cookie_a cookie_b cookie_none content_length content_type remote_user "
        "remote_addr binary_remote_addr server_addr server_port server_name document_root "
        "realpath_root request_filename limit_rate pipe request_completion "
        "sent_http_content_type connection_requests hostname sent_trailer_x").split()

BODY = "|".join(f"{v}=${{{v}}}" for v in VARS) + "\\n"

SERVERS = f"""
    server {{
        listen 127.0.0.1:%PORT%;
        server_name vars.test other.name;
        root %PREFIX%/html;
        location /v {{ return 200 "{BODY}"; }}
        location /al/ {{ alias %PREFIX%/html/sub/; return 200 "{BODY}"; }}
        location /link/ {{ root %PREFIX%/lnk; return 200 "{BODY}"; }}
        location /rv/ {{ root %PREFIX%/$arg_d; return 200 "{BODY}"; }}
        location /set/ {{ set $limit_rate 10k; set $args "z=1"; return 200 "{BODY}"; }}
        location /st/ {{ }}
        location = /redir {{ return 302 /st/a.txt; }}
    }}
"""

FILES = {"html/st/a.txt": "hello\n", "html/sub/f.txt": "sub\n", "html/x/y": "y\n"}

LOG_VARS = ("status body_bytes_sent bytes_sent request_length sent_http_content_type "
            "sent_http_content_length sent_http_location sent_http_last_modified "
            "sent_http_connection sent_http_keep_alive sent_http_transfer_encoding "
            "sent_http_etag sent_http_accept_ranges sent_http_server sent_http_date "
            "request_completion pipe connection_requests args is_args request server_protocol "
            "http_referer remote_user host uri").split()
LOG_FORMAT = "log_format diff '" + "|".join(f"{v}=${v}" for v in LOG_VARS) + "';"
TIMES_FORMAT = ("log_format times '$msec|$request_time|$connection_time|$time_iso8601|"
                "$time_local|$request_id|$pid|$nginx_version|$remote_port';")

MTIME = 1_600_000_000


def _prepare(s: Server) -> None:
    for dirpath, _, filenames in os.walk(s.prefix):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
            os.utime(os.path.join(dirpath, f), (MTIME, MTIME))
    os.symlink(s.path("html"), s.path("lnk"))


def _start(kind: str, extra_http: str = "") -> tuple[Server, int]:
    port = free_port()
    conf = base_conf(SERVERS.replace("%PORT%", str(port)),
                     http_extra=f"server_tokens off;\n{LOG_FORMAT}\n{TIMES_FORMAT}\n"
                                "access_log logs/diff.log diff;\naccess_log logs/times.log times;\n"
                                + extra_http)
    s = Server(conf, kind, dict(FILES))
    _prepare(s)
    s.start()
    return s, port


class Pair:
    def __init__(self, servers: dict[str, tuple[Server, int]]) -> None:
        self.servers = servers

    def port(self, kind: str) -> int:
        return self.servers[kind][1]

    def server(self, kind: str) -> Server:
        return self.servers[kind][0]


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    started: dict[str, tuple[Server, int]] = {}
    try:
        for kind in ("nginx", "portico"):
            started[kind] = _start(kind)
        yield Pair(started)
    finally:
        for s, _ in started.values():
            s.cleanup()


def send(port: int, raw: bytes) -> bytes:
    return raw_request(port, raw.replace(b"%PORT%", str(port).encode()))


def _norm(data: bytes, s: Server, port: int) -> bytes:
    return data.replace(s.prefix.encode(), b"%PREFIX%").replace(str(port).encode(), b"%PORT%")


def _both(pair: Pair, raw: bytes) -> tuple[bytes, bytes]:
    out = []
    for kind in ("nginx", "portico"):
        s, port = pair.servers[kind]
        out.append(_norm(send(port, raw), s, port))
    return out[0], out[1]


def _body(resp: bytes) -> bytes:
    status, _, body, _ = parse_response(resp)
    assert status == 200, resp[:300]
    return body


REQUESTS = {
    "plain": b"GET /v HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    "args": b"GET /v?a=1&B=2&a=3&none HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    "empty_args": b"GET /v? HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    "bare_arg": b"GET /v?a&a=5 HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    "headers": (b"GET /v HTTP/1.1\r\nHost: Vars.TEST:%PORT%\r\nUser-Agent: ua/1\r\nX-Custom: c\r\n"
                b"Cookie: a=1; b = 2 ;c=3\r\nCookie: none=x\r\nConnection: close\r\n\r\n"),
    "cookie_comma": b"GET /v HTTP/1.1\r\nHost: x\r\nCookie: a=1, b=2\r\nConnection: close\r\n\r\n",
    "cookie_case": b"GET /v HTTP/1.1\r\nHost: x\r\nCookie: A=up;a=low\r\nConnection: close\r\n\r\n",
    "basic": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXM6cHc=\r\nConnection: close\r\n\r\n",
    "basic_nopad": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: basic   dXM6cHc\r\nConnection: close\r\n\r\n",
    "basic_no_user": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: Basic OnB3\r\nConnection: close\r\n\r\n",
    "basic_no_colon": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXM=\r\nConnection: close\r\n\r\n",
    "basic_garbage": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: Basic d*M6\r\nConnection: close\r\n\r\n",
    "bearer": b"GET /v HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nConnection: close\r\n\r\n",
    "post": (b"POST /v HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
             b"Connection: close\r\n\r\nhello"),
    "absolute_uri": b"GET http://Abs.Example/v?q HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "http10_no_host": b"GET /v HTTP/1.0\r\n\r\n",
    "encoded_uri": b"GET /v%20x/../v%41?y=%20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "alias": b"GET /al/f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "symlinked_root": b"GET /link/f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "root_with_variables": b"GET /rv/f?d=html/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "set_handlers": b"GET /set/x?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_return_body_same_as_nginx(pair: Pair, name: str) -> None:
    want, got = _both(pair, REQUESTS[name])
    want_body, got_body = _body(want), _body(got)
    # $hostname and $server_addr are machine facts: both must be equal, and non-empty
    assert b"hostname=|" not in got_body
    assert got_body == want_body


def test_values_stated_explicitly(pair: Pair) -> None:
    """A few values spelled out, so a shared mistake cannot hide."""
    port = pair.port("portico")
    body = _body(send(port, REQUESTS["args"])).decode()
    assert body.startswith("args=a=1&B=2&a=3&none|") and "|arg_a=1|arg_b=2|arg_none=|" in body
    assert "|is_args=?|" in body and "|request=GET /v?a=1&B=2&a=3&none HTTP/1.1|" in body
    body = _body(send(port, REQUESTS["headers"])).decode()
    assert "|host=vars.test|" in body and f"|http_host=Vars.TEST:{port}|" in body
    assert "|cookie_a=1|cookie_b=2 |cookie_none=x|" in body
    assert "|http_cookie=a=1; b = 2 ;c=3; none=x|" in body
    body = _body(send(port, REQUESTS["http10_no_host"])).decode()
    assert "|host=vars.test|" in body and "|server_name=vars.test|" in body
    body = _body(send(port, REQUESTS["basic_nopad"])).decode()
    assert "|remote_user=us|" in body
    raw = _body(send(port, REQUESTS["plain"]))
    assert b"|binary_remote_addr=\x7f\x00\x00\x01|" in raw
    body = _body(send(port, REQUESTS["set_handlers"])).decode()
    assert body.startswith("args=z=1|") and "|limit_rate=10240|" in body


# --- response-side variables, through the access log ------------------------------------

LOG_REQUESTS = [
    b"GET /st/a.txt HTTP/1.1\r\nHost: vars.test\r\nReferer: http://r/\r\nConnection: close\r\n\r\n",
    b"GET /st/missing HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    b"GET /redir?x=1 HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    b"HEAD /st/a.txt HTTP/1.0\r\n\r\n",
    b"GET /st/a.txt\r\n",
    b"GET /st HTTP/1.1\r\nHost: vars.test\r\nConnection: close\r\n\r\n",
    # keep-alive: two requests on one connection, the second one pipelined
    (b"GET /st/a.txt HTTP/1.1\r\nHost: vars.test\r\n\r\n"
     b"GET /st/a.txt?k=v HTTP/1.1\r\nHost: vars.test\r\nAuthorization: Basic dXM6cHc=\r\n"
     b"Connection: close\r\n\r\n"),
    b"GET /st/a.txt HTTP/1.1\r\nHost: vars.test\r\nIf-Modified-Since: Sun, 13 Sep 2020 12:26:40 GMT\r\n"
    b"Connection: close\r\n\r\n",
    b"POST /redir HTTP/1.1\r\nHost: vars.test\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhello=1",
]

# nginx says "Server: nginx" (server_tokens off), Portico "Server: portico";
# their error-page footers differ the same way.
TOKEN_DELTA = len("portico") - len("nginx")


def _log_lines(s: Server, name: str) -> list[dict[str, str]]:
    out = []
    for line in s.log(name).splitlines():
        out.append(dict(part.split("=", 1) for part in line.split("|")))
    return out


@pytest.fixture(scope="module")
def logged(pair: Pair) -> dict[str, list[dict[str, str]]]:
    """The diff.log lines of LOG_REQUESTS on each server (earlier tests logged too)."""
    n = len(LOG_REQUESTS) + 1  # one connection carries two requests
    before = {kind: len(pair.server(kind).log("diff.log").splitlines()) for kind in ("nginx", "portico")}
    for raw in LOG_REQUESTS:
        for kind in ("nginx", "portico"):
            send(pair.port(kind), raw)
    out = {}
    for kind in ("nginx", "portico"):
        s = pair.server(kind)
        assert wait_lines(s, "diff.log", before[kind] + n), s.log("diff.log")
        out[kind] = [{k: v.replace(str(pair.port(kind)), "%PORT%") for k, v in d.items()}
                     for d in _log_lines(s, "diff.log")[before[kind]:before[kind] + n]]
    return out


def wait_lines(s: Server, name: str, n: int, timeout: float = 10.0) -> bool:
    """The log line is written when the response is handed over, which races
    with the client seeing the connection close: poll briefly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(s.log(name).splitlines()) >= n:
            return True
        time.sleep(0.05)
    return False


def test_log_lines_same_as_nginx(logged: dict[str, list[dict[str, str]]]) -> None:
    ngx, por = logged["nginx"], logged["portico"]
    assert len(ngx) == len(por) == len(LOG_REQUESTS) + 1
    for want, got in zip(ngx, por):
        want, got = dict(want), dict(got)
        if want["server_protocol"] != "-":  # HTTP/0.9 has no header to differ in
            # header sizes differ by the product token only
            want_head = int(want["bytes_sent"]) - int(want["body_bytes_sent"])
            got_head = int(got["bytes_sent"]) - int(got["body_bytes_sent"])
            assert got_head == want_head + TOKEN_DELTA, (want, got)
        if int(want["status"]) >= 300 and want["sent_http_content_type"] == "text/html":
            # a built-in error page: its footer names the product
            assert int(got["sent_http_content_length"]) == int(want["sent_http_content_length"]) + TOKEN_DELTA
            del want["sent_http_content_length"], got["sent_http_content_length"]
            if want["request"].split(" ")[0] != "HEAD":
                assert int(got["body_bytes_sent"]) == int(want["body_bytes_sent"]) + TOKEN_DELTA
        else:
            assert got["body_bytes_sent"] == want["body_bytes_sent"], (want, got)
        for d in (want, got):
            del d["bytes_sent"], d["body_bytes_sent"]
        if want["server_protocol"] == "-":
            # portico/http/proto/h1.py counts "GET /uri\r\n" one byte short
            assert int(got.pop("request_length")) == int(want.pop("request_length")) - 1
        assert got == want


def test_status_and_sizes_stated_explicitly(logged: dict[str, list[dict[str, str]]]) -> None:
    first, missing, redir, head, http09, dir301, ka1, ka2, not_mod, post = logged["portico"]
    assert (first["status"], first["body_bytes_sent"], first["sent_http_content_length"]) == ("200", "6", "6")
    assert first["http_referer"] == "http://r/" and first["request_completion"] == "OK"
    assert first["sent_http_server"] == "-" and first["sent_http_date"] == "-"
    assert missing["status"] == "404" and redir["status"] == "302"
    assert redir["sent_http_location"] == "http://vars.test:%PORT%/st/a.txt" and redir["args"] == "x=1"
    assert head["body_bytes_sent"] == "0" and head["server_protocol"] == "HTTP/1.0"
    assert http09["server_protocol"] == "-" and http09["request"] == "GET /st/a.txt"
    assert http09["bytes_sent"] == http09["body_bytes_sent"] == "6"
    assert dir301["status"] == "301" and dir301["sent_http_location"] == "http://vars.test:%PORT%/st/"
    assert (ka1["connection_requests"], ka2["connection_requests"]) == ("1", "2")
    assert (ka1["pipe"], ka2["pipe"]) == (".", "p") and ka2["remote_user"] == "us"
    assert ka1["sent_http_connection"] == "close"  # at log time, as nginx
    assert not_mod["status"] == "304" and not_mod["sent_http_content_length"] == "-"
    # a discarded body is not part of $request_length (nginx counts bodies it reads)
    assert post["request_length"] == str(len(LOG_REQUESTS[-1]) - len("hello=1"))


def test_time_and_process_formats(pair: Pair, logged: dict[str, list[dict[str, str]]]) -> None:
    s = pair.server("portico")
    lines = s.log("times.log").splitlines()
    assert len(lines) >= len(LOG_REQUESTS) + 1
    pat = re.compile(r"^(\d{10}\.\d{3})\|(\d+\.\d{3})\|(\d+\.\d{3})\|"
                     r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)\|"
                     r"(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\|([0-9a-f]{32})\|(\d+)\|"
                     r"(1\.29\.0)\|(\d+)$")
    ids = set()
    for line in lines:
        m = pat.match(line)
        assert m, line
        assert abs(float(m.group(1)) - time.time()) < 120
        assert float(m.group(2)) < 5 and float(m.group(3)) < 5
        ids.add(m.group(6))
        assert int(m.group(7)) != s.master_pid  # a worker's pid, not the master's
    assert len(ids) == len(lines)  # a fresh $request_id per request


# --- nginx 1.23+ behaviour (Debian's 1.22 differs) ------------------------------------

DUP = (b"GET /v HTTP/1.1\r\nHost: x\r\nX-Custom: one\r\nx-custom: two\r\nX-CUSTOM: three\r\n"
       b"Connection: close\r\n\r\n")


def test_repeated_headers_joined_as_nginx_1_23(pair: Pair) -> None:
    """nginx 1.23+ joins repeated headers in $http_NAME with ", " (1.22 gave
    the first one only); Portico targets 1.29."""
    body = _body(send(pair.port("portico"), DUP)).decode()
    assert "|http_x_custom=one, two, three|" in body


def test_nginx_1_22_differs_on_repeated_headers(pair: Pair) -> None:
    """Documents the version difference the test above is about."""
    body = _body(send(pair.port("nginx"), DUP)).decode()
    assert "|http_x_custom=one|" in body


# --- IPv6 and unit-level checks ------------------------------------------------------------

def _have_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback")
def test_binary_remote_addr_ipv6_is_16_raw_bytes(server) -> None:
    port = free_port()
    server(base_conf(f"""
    server {{
        listen [::1]:{port};
        location / {{ return 200 "$binary_remote_addr|$remote_addr|$server_addr|$server_port"; }}
    }}"""))
    with socket.create_connection(("::1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := c.recv(65536):
            data += chunk
    body = parse_response(data)[2]
    assert body == b"\x00" * 15 + b"\x01" + f"|::1|::1|{port}".encode()


def _fake_request(**kw: Any) -> Any:
    from portico.http.response import HeadersOut
    r = SimpleNamespace(hout=HeadersOut(), header_sent=False, vars={}, **kw)
    return r


def test_sent_trailer_reads_response_trailers() -> None:
    from portico.http.variables import Variables
    v = Variables()
    r = _fake_request()
    r.hout.trailers = [("X-Sum", "abc"), ("x-sum", "def"), ("Other", "1")]
    assert v.getter("sent_trailer_x_sum")(r) == "abc, def"
    assert v.getter("sent_trailer_none")(r) is None


def test_request_body_only_when_read_into_memory() -> None:
    from portico.http.variables import Variables
    get = Variables().getter("request_body")
    body = SimpleNamespace(requested=False, discarding=False, file=None, chunks=[b"he", b"llo"])
    r = _fake_request(body=body)
    assert get(r) is None  # nobody read it: nginx has no request_body
    body.requested = True
    assert get(r) == "hello"
    body.file = object()
    assert get(r) is None  # in a temporary file: $request_body_file instead


def test_limit_rate_setter_interface() -> None:
    """``set $limit_rate`` goes through Variables.setter (nginx's set_handler)."""
    from portico.http.variables import Variables
    v = Variables()
    assert "limit_rate" in v.changeable and "args" in v.changeable
    errors: list[str] = []
    r = _fake_request(limit_rate=0, loc=None, log_error=lambda lvl, msg: errors.append(msg), args="")
    v.setter("limit_rate")(r, "2k")
    assert v.getter("limit_rate")(r) == "2048"
    v.setter("limit_rate")(r, "fast")
    assert r.limit_rate == 2048 and errors == ['invalid $limit_rate "fast"']
    v.setter("args")(r, "a=1")
    assert v.getter("arg_a")(r) == "1" and v.getter("is_args")(r) == "?"


def test_status_before_any_response_is_000() -> None:
    from portico.http.variables import Variables
    get = Variables().getter("status")
    assert get(_fake_request(error_status=0, status=0, version="HTTP/1.1")) == "000"
    assert get(_fake_request(error_status=0, status=0, version="HTTP/0.9")) == "009"
