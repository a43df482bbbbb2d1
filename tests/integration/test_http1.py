"""HTTP/1.x protocol behaviour of a live portico: keep-alive, pipelining,
bodies, limits, timeouts, large files, unix and IPv6 listeners.

Every test starts a real server on loopback and talks raw HTTP to it.
"""
from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest

from harness import base_conf, free_port, parse_response, raw_request, wait_for

BIG = os.urandom(1024 * 1024 + 123)


def conf(port: int, extra: str = "", server_extra: str = "", main_extra: str = "") -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        {server_extra}
        location / {{ }}
        location /ret {{ return 200 "ret $request_method $uri $args"; }}
        location /internal-only {{ internal; }}
        location = /err {{ return 500; }}
        error_page 500 /50x.html;
        {extra}
    }}""", main_extra=main_extra)


FILES = {"html/a.txt": "hello\n", "html/big.bin": BIG, "html/50x.html": "oops\n",
         "html/dir/index.html": "index\n"}


def read_responses(sock: socket.socket, n: int, timeout: float = 5.0) -> list[tuple[int, dict[str, str], bytes]]:
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < n:
        try:
            status, headers, body, rest = parse_response(buf)
            if "content-length" in headers and len(body) < int(headers["content-length"]):
                raise ValueError("partial")
            out.append((status, headers, body))
            buf = rest
            continue
        except (ValueError, IndexError):
            pass
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
    return out


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_keepalive_reuses_connection_and_counts_requests(server):
    port = free_port()
    server(conf(port, server_extra="keepalive_requests 3;"), files=FILES)
    s = connect(port)
    for i in range(3):
        s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        (status, headers, body), = read_responses(s, 1)
        assert status == 200 and body == b"hello\n"
        assert headers["connection"] == ("keep-alive" if i < 2 else "close")
    assert s.recv(10) == b""  # closed after keepalive_requests


def test_pipelined_requests_answered_in_order(server):
    port = free_port()
    server(conf(port), files=FILES)
    s = connect(port)
    s.sendall(b"GET /ret?1 HTTP/1.1\r\nHost: x\r\n\r\n"
              b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /ret?3 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = b""
    while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"ret GET /ret 3"):
        chunk = s.recv(65536)
        assert chunk
        data += chunk
    first = data.index(b"ret GET /ret 1")
    head = data.index(b"Content-Length: 6")
    third = data.index(b"ret GET /ret 3")
    assert first < head < third
    assert data.count(b"hello") == 0  # HEAD has no body


def test_http10_keepalive_and_default_close(server):
    port = free_port()
    server(conf(port), files=FILES)
    out = raw_request(port, b"GET /a.txt HTTP/1.0\r\n\r\n")
    status, headers, body, _ = parse_response(out)
    assert status == 200 and headers["connection"] == "close" and body == b"hello\n"
    s = connect(port)
    s.sendall(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    (status, headers, body), = read_responses(s, 1)
    assert headers["connection"] == "keep-alive"
    s.sendall(b"GET /a.txt HTTP/1.0\r\n\r\n")
    (status, headers, body), = read_responses(s, 1)
    assert status == 200 and headers["connection"] == "close"


def test_request_bodies_are_discarded_and_connection_kept(server):
    port = free_port()
    server(conf(port), files=FILES)
    s = connect(port)
    s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
              b"GET /ret HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
              b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    rs = read_responses(s, 3)
    assert [r[0] for r in rs] == [200, 200, 200]
    assert rs[1][2] == b"ret GET /ret " and rs[2][2] == b"hello\n"


def test_client_max_body_size_413(server):
    port = free_port()
    srv = server(conf(port, server_extra="client_max_body_size 10;"), files=FILES)
    out = raw_request(port, b"POST /ret HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890")
    status, headers, body, _ = parse_response(out)
    assert status == 413 and headers["connection"] == "close"
    assert b"413 Request Entity Too Large" in body
    # a chunked body is only measured while a handler reads it; `return`
    # discards it, so nginx (and portico) answer 200 here
    out = raw_request(port, b"POST /ret HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n")
    assert parse_response(out)[0] == 200
    time.sleep(0.2)
    assert "client intended to send too large body: 11 bytes" in srv.log()


@pytest.mark.parametrize("req,status,reason", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, None),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 400, b"Request Header Or Cookie Too Large"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, None),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, None),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, None),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, None),
    (b"GET /../x HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    (b"FOO BAR BAZ\r\n\r\n", 400, None),
    (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, None),
], ids=["414", "494", "no-host", "two-hosts", "cl+te", "te-gzip", "dotdot", "garbage", "bad-host"])
def test_malformed_requests(server, req, status, reason):
    port = free_port()
    server(conf(port), files=FILES)
    out = raw_request(port, req)
    st, headers, body, _ = parse_response(out)
    assert st == status
    assert headers["connection"] == "close"
    if reason:
        assert reason in body


@pytest.mark.parametrize("req,reason", [
    (b"GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
     'client sent duplicate host header: "host: y", previous value: "Host: x"'),
    (b"GET http://x/ HTTP/1.1\r\nHost: a/b\r\n\r\n", "client sent invalid host header"),
], ids=["two-hosts", "absolute-form-bad-host"])
def test_refused_header_lines_are_logged_as_nginx_does(server, req, reason):
    port = free_port()
    srv = server(conf(port), files=FILES)
    st, _, _, _ = parse_response(raw_request(port, req))
    assert st == 400
    assert wait_for(lambda: reason + " while reading client request headers" in srv.log())


def test_expect_100_continue(server):
    port = free_port()
    server(conf(port, extra="location /echo { return 200 \"$request_body\"; }"), files=FILES)
    s = connect(port)
    s.sendall(b"POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    time.sleep(0.2)
    s.sendall(b"abc")
    s.settimeout(3)
    data = b""
    while b"\r\n\r\n" not in data.split(b"HTTP/1.1 405", 1)[-1] or b"405" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert b"405 Not Allowed" in data  # POST to a static file


def test_keepalive_timeout_closes_idle(server):
    port = free_port()
    server(conf(port, server_extra="keepalive_timeout 1;"), files=FILES)
    s = connect(port)
    s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_responses(s, 1)[0][0] == 200
    t0 = time.monotonic()
    s.settimeout(5)
    assert s.recv(10) == b""
    assert 0.7 < time.monotonic() - t0 < 3.0


def test_client_header_timeout(server):
    port = free_port()
    server(conf(port, server_extra="client_header_timeout 1;"), files=FILES)
    s = connect(port)
    s.sendall(b"GET / HTTP/1.1\r\nHost")
    t0 = time.monotonic()
    s.settimeout(5)
    assert s.recv(100) == b""  # nginx closes without a response
    assert time.monotonic() - t0 < 3.0


def test_static_put_is_405_without_waiting_for_the_body(server):
    port = free_port()
    server(conf(port, server_extra="client_body_timeout 1;"), files=FILES)
    s = connect(port)
    s.sendall(b"PUT /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    s.settimeout(5)
    data = s.recv(4096)
    # static answers 405 at once and discards the body; connection closes after lingering
    assert b"405" in data


def test_big_file_sendfile_and_plain_are_identical(server):
    for sendfile in ("on", "off"):
        port = free_port()
        server(conf(port, server_extra=f"sendfile {sendfile};"), files=FILES)
        s = connect(port)
        for _ in range(2):
            s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            (status, headers, body), = read_responses(s, 1)
            assert status == 200
            assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()


def test_slow_reader_gets_whole_file(server):
    port = free_port()
    server(conf(port, server_extra="sendfile on;"), files=FILES)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(1.0)  # the server must wait for the socket, not spin or drop
    data = b""
    s.settimeout(10)
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    status, headers, body, _ = parse_response(data)
    assert status == 200 and body == BIG


def test_internal_location_and_error_page(server):
    port = free_port()
    server(conf(port), files=FILES)
    assert parse_response(raw_request(port, b"GET /internal-only HTTP/1.0\r\n\r\n"))[0] == 404
    status, headers, body, _ = parse_response(raw_request(port, b"GET /err HTTP/1.0\r\n\r\n"))
    assert status == 500 and body == b"oops\n"


def test_unix_and_ipv6_listeners(server, tmp_path):
    port = free_port()
    sock_path = str(tmp_path / "p.sock")
    server(base_conf(f"""
        server {{ listen unix:{sock_path}; listen [::1]:{port}; return 200 "addr $server_addr"; }}"""),
           files=FILES)
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = s.recv(4096)
    assert b"200 OK" in data
    try:
        s6 = socket.create_connection(("::1", port), timeout=3)
    except OSError:
        pytest.skip("no IPv6 loopback")
    s6.close()
    data = raw_request(port, b"GET / HTTP/1.0\r\n\r\n", host="::1")
    assert b"addr ::1" in data


def test_virtual_server_selection(server):
    port = free_port()
    blocks = "".join(f"""
        server {{ listen 127.0.0.1:{port}{' default_server' if n == 'dflt' else ''}; server_name {names};
                  return 200 "{n}"; }}"""
                     for n, names in [("first", "first.test"), ("exact", "www.example.com"),
                                      ("head", "*.example.com"), ("tail", "www.example.*"),
                                      ("rx", "~^(?<sub>[a-z]+)\\.rx\\.test$"), ("dflt", "dflt.test")])
    server(base_conf(blocks), files=FILES)

    def get(host: str) -> bytes:
        return parse_response(raw_request(port, f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()))[2]
    assert get("www.example.com") == b"exact"
    assert get("a.example.com") == b"head"
    assert get("www.example.org") == b"tail"
    assert get("abc.rx.test") == b"rx"
    assert get("WWW.EXAMPLE.COM.") == b"exact"
    assert get("unknown.test") == b"dflt"


# --- request bodies, read for real by the dav module's PUT ----------------------------

def dav_conf(port: int, extra: str = "") -> str:
    # the workers write into html/, which the test (maybe root) owns: as
    # root, nginx (and portico) would otherwise run them as nobody
    main = "user root;" if os.geteuid() == 0 else ""
    return conf(port, main_extra=main, server_extra=f"""
        client_body_temp_path tmp_body;
        dav_methods PUT DELETE MKCOL;
        create_full_put_path on;
        dav_access user:rw group:r all:r;
        {extra}""")


def test_put_content_length_and_chunked_bodies(server):
    port = free_port()
    srv = server(dav_conf(port, "client_body_buffer_size 1k;"), files=FILES)
    body = os.urandom(200_000)
    req = (b"PUT /up/new.bin HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(body)).encode()
           + b"\r\n\r\n" + body)
    status, headers, _, _ = parse_response(raw_request(port, req + b"GET /up/new.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert status == 201 and headers["location"] == f"http://x:{port}/up/new.bin"
    with open(srv.path("html/up/new.bin"), "rb") as f:
        assert f.read() == body
    assert oct(os.stat(srv.path("html/up/new.bin")).st_mode & 0o777) == "0o644"
    chunks = b"".join(b"%x\r\n" % len(body[i:i + 7000]) + body[i:i + 7000] + b"\r\n"
                      for i in range(0, len(body), 7000))
    out = raw_request(port, b"PUT /up/new.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert parse_response(out)[0] == 204
    with open(srv.path("html/up/new.bin"), "rb") as f:
        assert f.read() == body
    assert os.listdir(srv.path("tmp_body")) == []  # temp files renamed or removed


def test_put_expect_continue_gets_100(server):
    port = free_port()
    srv = server(dav_conf(port), files=FILES)
    s = connect(port)
    s.sendall(b"PUT /e.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    s.settimeout(3)
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"abc")
    (status, headers, body), = read_responses(s, 1)
    assert status == 201
    with open(srv.path("html/e.txt"), "rb") as f:
        assert f.read() == b"abc"


def test_chunked_body_over_client_max_body_size_is_413(server):
    port = free_port()
    srv = server(dav_conf(port, "client_max_body_size 10;"), files=FILES)
    out = raw_request(port, b"PUT /x.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n")
    assert parse_response(out)[0] == 413
    assert not os.path.exists(srv.path("html/x.txt"))
    time.sleep(0.2)
    assert "client intended to send too large chunked body: 16 bytes" in srv.log()


def test_client_body_timeout_408(server):
    port = free_port()
    srv = server(dav_conf(port, "client_body_timeout 1;"), files=FILES)
    s = connect(port)
    s.sendall(b"PUT /slow.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    t0 = time.monotonic()
    s.settimeout(5)
    assert s.recv(4096) == b""  # nginx closes without a response
    assert time.monotonic() - t0 < 3.5
    time.sleep(0.3)
    assert '"PUT /slow.txt HTTP/1.1" 408' in srv.log("access.log")
    assert "client timed out" in srv.log()
    assert not os.path.exists(srv.path("html/slow.txt"))


def test_delete_and_mkcol(server):
    port = free_port()
    srv = server(dav_conf(port), files=FILES)

    def req(method: str, uri: str) -> int:
        return parse_response(raw_request(port, f"{method} {uri} HTTP/1.0\r\n\r\n".encode()))[0]
    assert req("MKCOL", "/col/") == 201
    assert req("MKCOL", "/col/") == 405
    assert req("MKCOL", "/nocol") == 409
    assert req("DELETE", "/a.txt") == 204
    assert req("DELETE", "/a.txt") == 404
    assert req("DELETE", "/col") == 409
    assert req("DELETE", "/col/") == 204
    assert not os.path.exists(srv.path("html/col"))


def test_tcp_nopush_and_nodelay_off_still_serve_whole_files(server):
    port = free_port()
    server(conf(port, server_extra="sendfile on; tcp_nopush on; tcp_nodelay off;"), files=FILES)
    s = connect(port)
    for _ in range(2):
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        (status, headers, body), = read_responses(s, 1)
        assert status == 200 and body == BIG


def test_send_timeout_drops_a_reader_that_stops(server):
    port = free_port()
    huge = b"z" * (48 * 1024 * 1024)  # more than loopback socket buffers hold
    srv = server(conf(port, server_extra="send_timeout 1; sendfile on;"), files=dict(FILES, **{"html/huge.bin": huge}))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(3.0)  # never read: the server must give up after send_timeout
    got = 0
    s.settimeout(5)
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    assert got < len(huge)
    assert "client timed out (110: Connection timed out) while sending response to client" in srv.log()


def test_parked_idle_connections_come_back_and_time_out(server):
    """An idle keep-alive connection is parked after a second (its transport
    released); it must answer the next request as before, keep its place in
    stub_status, and still end at keepalive_timeout."""
    port = free_port()
    srv = server(conf(port, server_extra="keepalive_timeout 3s; keepalive_requests 5;",
                      extra="location = /st { stub_status; }"), files=FILES)
    s = connect(port)
    s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_responses(s, 1)[0][0] == 200
    time.sleep(1.8)  # parked by now
    st = parse_response(raw_request(port, b"GET /st HTTP/1.0\r\n\r\n"))[2].decode()
    assert "Active connections: 2 " in st and "Waiting: 1 " in st, st
    for i in range(3):
        s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        (status, headers, body), = read_responses(s, 1)
        assert status == 200 and body == b"hello\n"
        # keepalive_requests counts across the park: the 5th request closes
        assert headers["connection"] == ("keep-alive" if i < 3 else "close")
        time.sleep(1.4)
    s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    (status, headers, body), = read_responses(s, 1)
    assert headers["connection"] == "close"
    s2 = connect(port)
    s2.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_responses(s2, 1)[0][0] == 200
    t0 = time.monotonic()
    s2.settimeout(8)
    try:
        data = s2.recv(10)
    except socket.timeout:
        raise AssertionError(srv.log()[-3000:])
    assert data == b""  # parked, then closed at keepalive_timeout
    assert 2.0 < time.monotonic() - t0 < 5.0
    time.sleep(0.3)
    st = parse_response(raw_request(port, b"GET /st HTTP/1.0\r\n\r\n"))[2].decode()
    assert "Active connections: 1 " in st and "Waiting: 0 " in st, st
    assert "[alert]" not in srv.log()


# Packets that llhttp parsed into one whole bodiless GET/HEAD are answered
# the next time without the parser (h1.py's _WHOLE): the second and later
# sendings of each packet below must be answered exactly as the first.
REPEATED = [
    b"GET /ret?a=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\nX-Y: 1\r\n\r\n",
    b"HEAD /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET http://other/ret?abs HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /ret?cl0 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
    # two requests in one packet: never taken for one
    b"GET /ret?p1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /ret?p2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    # refused: never kept, refused every time
    b"GET /ret?nohost HTTP/1.1\r\n\r\n",
    b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
]


def _answers(port: int, packet: bytes, times: int) -> list[bytes]:
    """Send ``packet`` ``times`` times on one connection (a new one once
    the server closes); each sending's whole answer, Date lines removed."""
    out = []
    n = packet.count(b"\r\n\r\n")
    s = None
    for _ in range(times):
        if s is None:
            s = connect(port)
        s.sendall(packet)
        got = _read_answers(s, n, packet.startswith(b"HEAD "))
        out.append(b"".join(got))
        if any(b"\r\nConnection: close\r\n" in a for a in got):
            s.close()
            s = None
    if s is not None:
        s.close()
    return out


def _read_answers(s: socket.socket, n: int, head: bool) -> list[bytes]:
    """``n`` whole answers (without their Date line); ``head``: no bodies."""
    buf = b""
    out: list[bytes] = []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            lines = buf[:end].split(b"\r\n")
            cl = [int(ln.split(b":")[1]) for ln in lines if ln.lower().startswith(b"content-length:")]
            size = end + 4 + (0 if head or not cl else cl[0])
            if len(buf) >= size:
                out.append(b"\r\n".join(ln for ln in lines if not ln.startswith(b"Date: "))
                           + buf[end:size])
                buf = buf[size:]
                continue
        data = s.recv(65536)
        assert data, (n, out, buf)
        buf += data
    return out


def test_repeated_packets_are_answered_as_the_first(server):
    port = free_port()
    text = conf(port, server_extra="access_log logs/m.log m;").replace(
        "http {", "http {\n    log_format m '$request|$request_length|$status|$http_x_y|"
                  "$connection_requests|$host|$server_protocol';", 1)
    srv = server(text, files=FILES)
    for packet in REPEATED:
        answers = _answers(port, packet, 4)
        assert len(set(answers)) == 1, (packet, answers)
    want = sum(4 * p.count(b"\r\n\r\n") for p in REPEATED)
    assert wait_for(lambda: len(srv.log("m.log").splitlines()) == want)
    lines = srv.log("m.log").splitlines()
    fields = [ln.split("|") for ln in lines]
    # the first packet: the same line each time, but for the connection's
    # request count
    assert [f[4] for f in fields[:4]] == ["1", "2", "3", "4"]
    assert len({tuple(f[:4] + f[5:]) for f in fields[:4]}) == 1
    assert fields[0][:4] == ["GET /ret?a=1 HTTP/1.1", str(len(REPEATED[0])), "200", "1"]
    assert {f[2] for f in fields} == {"200", "400"}
    assert sum(1 for f in fields if f[0] == "GET /ret?p2 HTTP/1.1") == 4
