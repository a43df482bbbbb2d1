"""HTTP/2 (prior-knowledge h2c) on a live portico: the protocol-neutral
request model over a second protocol, nginx's limits and error handling.

A raw ``h2`` client (h2client.py) drives frames directly; curl with
``--http2-prior-knowledge`` checks the features users see.  Most tests share
one server (module fixture); those that change limits start their own.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from typing import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from backends import Backend
from .test_http2_support import PREFACE, Client
from harness import Server, base_conf, free_port, wait_for

BIG = os.urandom(300_000)
FILES = {"html/index.html": "hello h2\n", "html/big.bin": BIG, "html/text.txt": "abc " * 2000,
         "html/dav/.keep": ""}

SERVER = """
    server {{
        listen 127.0.0.1:{port};
        http2 on;
        server_name localhost;
        root html;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 10;
        location = /vars {{ return 200 "$http2|$server_protocol|$request|$http_host|$host\\n"; }}
        location = /cookie {{ return 200 "$http_cookie|$cookie_a|$cookie_b\\n"; }}
        location = /hdr {{ return 200 "$http_x_one|$http_x_two\\n"; }}
        location = /old {{ rewrite ^ /index.html permanent; }}
        location = /trailer {{ add_trailer X-Sum "s-$uri"; return 200 "body\\n"; }}
        location /dav/ {{ dav_methods PUT DELETE; client_body_temp_path tmp; client_max_body_size 1m; }}
        location /px/ {{ proxy_pass http://127.0.0.1:{backend}/; }}
    }}
    server {{
        listen 127.0.0.1:{port};
        server_name other;
        return 200 "other\\n";
    }}
    server {{
        listen 127.0.0.1:{port};
        http2 on;
        server_name third;
        return 200 "third\\n";
    }}"""


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    b = Backend("echo")
    yield b
    b.close()


@pytest.fixture(scope="module")
def srv(backend: Backend) -> Iterator[tuple[Server, int]]:
    port = free_port()
    # the dav location writes into html/, which the test (maybe root) owns
    main = "user root;" if os.geteuid() == 0 else ""
    s = Server(base_conf(SERVER.format(port=port, backend=backend.port), main_extra=main), files=FILES)
    s.start()
    yield s, port
    s.cleanup()


def no_trouble(s: Server) -> None:
    log = s.log()
    assert "Traceback" not in log and "[alert]" not in log and "[crit]" not in log, log[-3000:]


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-s", "--http2-prior-knowledge", *args], capture_output=True, timeout=20)


# --- requests and responses -----------------------------------------------------------------

def test_static_headers_in_nginx_order(srv: tuple[Server, int]) -> None:
    s, port = srv
    c = Client(port)
    st = c.get("/index.html")
    assert st.status == 200 and st.data == b"hello h2\n"
    names = [k for k, _ in st.headers]
    assert names == [b":status", b"server", b"date", b"content-type", b"content-length",
                     b"last-modified", b"etag", b"accept-ranges"]
    assert st.header("content-type") == "text/html"
    c.close()
    assert wait_for(lambda: '"GET /index.html HTTP/2.0" 200 9 ' in s.log("access.log"))


def test_variables_and_host_from_authority(srv: tuple[Server, int]) -> None:
    _, port = srv
    c = Client(port)
    st = c.get("/vars?a=1", authority="localhost:8")
    assert st.data == b"h2c|HTTP/2.0|GET /vars?a=1 HTTP/2.0|localhost:8|localhost\n"
    # :authority picks the virtual server
    assert c.get("/x", authority="third").data == b"third\n"
    # a Host header alone does too
    assert c.get("/x", pseudo=[(":method", "GET"), (":path", "/x"), (":scheme", "http")],
                 headers=[("host", "third")]).data == b"third\n"
    # a server without http2: 421, as nginx
    assert c.get("/x", authority="other").status == 421
    c.close()


def test_many_concurrent_streams(srv: tuple[Server, int]) -> None:
    _, port = srv
    c = Client(port)
    sids = [c.request("/big.bin" if i % 5 == 0 else "/index.html") for i in range(60)]
    assert c.wait(c.done(*sids), 15)
    for i, sid in enumerate(sids):
        st = c.streams[sid]
        assert st.status == 200 and st.reset is None
        assert st.data == (BIG if i % 5 == 0 else b"hello h2\n")
    c.close()


def test_flow_control_small_client_window(srv: tuple[Server, int]) -> None:
    """The server never sends past the client's window: with a 1000-byte
    window and no acknowledgement, exactly 1000 bytes arrive; each window
    update lets exactly that much more through."""
    _, port = srv
    c = Client(port, window=1000, auto_ack=False)
    sid = c.request("/big.bin")
    st = c.streams[sid]
    c.wait(lambda: len(st.data) >= 1000, 3)
    time.sleep(0.3)
    c.pump(0.2)
    assert len(st.data) == 1000 and not st.ended
    got = 1000
    while not st.ended:
        c.open_window(sid, 50_000)
        got = min(got + 50_000, len(BIG))
        assert c.wait(lambda: len(st.data) >= got or st.ended, 5)
        assert len(st.data) <= got
    assert hashlib.md5(st.data).digest() == hashlib.md5(BIG).digest()
    c.close()


def test_cookies_joined_and_headers(srv: tuple[Server, int]) -> None:
    _, port = srv
    c = Client(port)
    st = c.get("/cookie", headers=[("cookie", "a=1"), ("x-any", "y"), ("cookie", "b=2")])
    assert st.data == b"a=1; b=2|1|2\n"
    c.close()


def test_trailers_and_rewrite(srv: tuple[Server, int]) -> None:
    _, port = srv
    c = Client(port)
    st = c.get("/trailer")
    assert st.data == b"body\n" and st.trailers == [(b"x-sum", b"s-/trailer")]
    assert st.header("content-length") == "5"  # no chunked filter over HTTP/2 (nginx)
    st = c.get("/old")
    assert st.status == 301 and st.header("location") == f"http://localhost:{port}/index.html"
    c.close()


def test_request_body_upload(srv: tuple[Server, int]) -> None:
    """A body larger than the preread window (64k) streams in as the server
    reopens the window; the stored file is the body."""
    s, port = srv
    body = os.urandom(200_000)
    c = Client(port)
    sid = c.request("/dav/up.bin", method="PUT", headers=[("content-length", str(len(body)))], body=body)
    assert c.wait(c.done(sid), 10)
    assert c.streams[sid].status == 201
    with open(s.path("html/dav/up.bin"), "rb") as f:
        assert f.read() == body
    # without Content-Length (END_STREAM ends the body)
    sid = c.request("/dav/up2.bin", method="PUT", body=b"x" * 70_000)
    assert c.wait(c.done(sid), 10)
    assert c.streams[sid].status == 201 and os.path.getsize(s.path("html/dav/up2.bin")) == 70_000
    # too large: 413
    sid = c.request("/dav/big.bin", method="PUT", headers=[("content-length", "2000000")], end=False)
    assert c.wait(c.done(sid), 5)
    assert c.streams[sid].status == 413
    c.close()
    no_trouble(s)


def test_rst_stream_cancels_request(srv: tuple[Server, int]) -> None:
    """RST_STREAM while the request body is awaited: the request ends, logged
    499; the connection and its other streams go on."""
    s, port = srv
    c = Client(port)
    sid = c.request("/dav/cancel.bin", method="PUT", headers=[("content-length", "100")], end=False)
    c.pump(0.3)
    c.c.reset_stream(sid, 8)
    c.flush()
    assert wait_for(lambda: '"PUT /dav/cancel.bin HTTP/2.0" 499' in s.log("access.log"))
    assert f"client canceled stream {sid}" in s.log()
    assert c.get("/index.html").data == b"hello h2\n"
    c.close()


def test_invalid_requests_answer_400(srv: tuple[Server, int]) -> None:
    s, port = srv
    c = Client(port)
    st = c.get("/", pseudo=[(":method", "GET"), (":path", "/")])
    assert st.status == 400
    st = c.get("/", headers=[("X-Upper", "1")])
    assert st.status == 400
    st = c.get("/", headers=[("connection", "keep-alive")])
    assert st.status == 400
    st = c.get("/", pseudo=[(":method", "GET"), (":path", "/"), (":scheme", "http"), (":bad", "1")])
    assert st.status == 400
    st = c.get("/", pseudo=[(":method", "GET"), (":path", "/"), (":scheme", "http")])  # no host
    assert st.status == 400
    st = c.get("/", method="TRACE")
    assert st.status == 405
    assert c.get("/index.html").status == 200  # the connection is fine
    c.close()
    log = s.log()
    for msg in ("client sent no :scheme header", 'client sent invalid header name: "X-Upper"',
                'client sent "Connection" header', 'client sent unknown pseudo-header ":bad"',
                'client sent neither ":authority" nor "Host" header', "client sent TRACE method"):
        assert msg in log, msg


def test_proxy_over_h2(srv: tuple[Server, int], backend: Backend) -> None:
    _, port = srv
    c = Client(port)
    st = c.get("/px/echo?q=1", headers=[("x-test", "v")])
    assert st.status == 200
    assert st.data.startswith(b"GET /echo?q=1 HTTP/1.0\r\n") and b"x-test: v" in st.data
    c.close()


# --- bad input: connection errors ------------------------------------------------------------

def test_oversized_header_field_goaway(srv: tuple[Server, int]) -> None:
    s, port = srv
    c = Client(port)
    c.request("/", headers=[("x-big", "a" * 9000)])
    assert c.wait(lambda: c.goaway is not None and c.closed, 5)
    assert c.goaway[0] == 11  # ENHANCE_YOUR_CALM
    assert "client sent too large header field" in s.log()
    c2 = Client(port)
    assert c2.get("/index.html").status == 200  # others unaffected
    c2.close()
    # many fields past 4 x 8k in total
    c = Client(port)
    c.request("/", headers=[(f"x-h{i}", "b" * 4000) for i in range(10)])
    assert c.wait(lambda: c.goaway is not None and c.closed, 5)
    assert c.goaway[0] == 11 and "client sent too large header while" in s.log()
    no_trouble(s)


def test_garbage_after_preface(srv: tuple[Server, int]) -> None:
    s, port = srv
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        # an unknown frame type is skipped (nginx too); DATA on stream 0 is not
        sock.sendall(PREFACE + b"\x00\x00\x04\x99junk" + b"\x00\x00\x08\x00\x00\x00\x00\x00\x00garbage!")
        data = b""
        try:
            while True:
                b = sock.recv(65536)
                if not b:
                    break
                data += b
        except (socket.timeout, ConnectionResetError):
            pass
    # our SETTINGS first, then a GOAWAY (type 7) with an error code
    i = data.find(b"\x07\x00\x00\x00\x00\x00")
    assert i > 0, data
    code = int.from_bytes(data[i + 10:i + 14], "big")
    assert code in (1, 6)  # PROTOCOL_ERROR / FRAME_SIZE_ERROR
    no_trouble(s)


def test_preface_split_across_packets(srv: tuple[Server, int]) -> None:
    """nginx waits for the whole preface; a first packet of "P" or "PRI *"
    is not HTTP/1 yet."""
    s, port = srv
    for cut in (1, 5, 23):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/index.html"), (":scheme", "http"),
                              (":authority", "localhost")], end_stream=True)
        data = conn.data_to_send()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data[:cut])
            time.sleep(0.05)  # let the first part arrive on its own
            sock.sendall(data[cut:])
            status = None
            while status is None:
                chunk = sock.recv(65536)
                assert chunk, cut
                for ev in conn.receive_data(chunk):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers)[b":status"]
        assert status == b"200", cut
    no_trouble(s)


def test_flow_control_violation_resets_stream(srv: tuple[Server, int]) -> None:
    """DATA beyond the stream's window: nginx resets that stream with
    FLOW_CONTROL_ERROR; the connection survives."""
    s, port = srv
    c = Client(port)
    sid = c.request("/dav/v.bin", method="PUT", end=False)
    c.pump(0.2)
    # bypass the client's own flow control: a raw 70000-byte DATA frame
    payload = b"z" * 70_000
    frame = len(payload).to_bytes(3, "big") + b"\x00\x00" + sid.to_bytes(4, "big") + payload
    c.raw(frame)
    assert c.wait(lambda: c.streams[sid].reset is not None, 5)
    assert c.streams[sid].reset == 3
    assert "client violated flow control for stream" in s.log()
    no_trouble(s)


# --- limits and shutdown (own servers) ------------------------------------------------------

def own(server_block: str, files: dict | None = None, http_extra: str = "") -> tuple[Server, int]:
    port = free_port()
    s = Server(base_conf(server_block.format(port=port), http_extra=http_extra), files=files or FILES)
    s.start()
    return s, port


def test_max_concurrent_streams_refused() -> None:
    s, port = own("""server {{ listen 127.0.0.1:{port}; http2 on; http2_max_concurrent_streams 2;
                       root html; }}""")
    try:
        c = Client(port, window=0, auto_ack=False)  # responses stay in progress
        assert c.wait(lambda: c.remote_max_streams == 2, 3)
        a, b = c.request("/big.bin"), c.request("/big.bin")
        c.wait(lambda: bool(c.streams[a].headers and c.streams[b].headers), 3)
        third = c.request("/index.html")
        assert c.wait(lambda: c.streams[third].reset is not None, 3)
        assert c.streams[third].reset == 7  # REFUSED_STREAM
        assert "concurrent streams exceeded 2" in s.log()
        c.open_window(a, 400_000)
        assert c.wait(c.done(a), 5) and c.streams[a].data == BIG
        # a slot is free again (the client's initial window is 0: open it)
        sid = c.request("/index.html")
        c.open_window(sid, 1000)
        assert c.wait(c.done(sid), 5) and c.streams[sid].data == b"hello h2\n"
        c.close()
        no_trouble(s)
    finally:
        s.cleanup()


def test_keepalive_requests_goaway() -> None:
    s, port = own("""server {{ listen 127.0.0.1:{port} http2; keepalive_requests 2; root html; }}""")
    try:
        c = Client(port)
        assert c.get("/index.html").status == 200
        assert c.get("/index.html").status == 200
        assert c.wait(lambda: c.goaway is not None, 3)
        assert c.goaway == (0, 3)
        assert c.wait(lambda: c.closed, 5)
        c.close()
        # listen ... http2 logs nginx's deprecation warning
        out = s.run("-t")
        assert re.search(r'\[warn\] the "listen \.\.\. http2" directive is deprecated, use the "http2" '
                         r'directive instead in \S+nginx.conf:\d+', out.stderr), out.stderr
    finally:
        s.cleanup()


def test_graceful_stop_goaway_while_stream_completes() -> None:
    s, port = own("""server {{ listen 127.0.0.1:{port}; http2 on; root html; }}""")
    try:
        c = Client(port, window=0, auto_ack=False)
        sid = c.request("/big.bin")
        assert c.wait(lambda: bool(c.streams[sid].headers), 3)
        s.kill(signal.SIGQUIT)
        assert c.wait(lambda: c.goaway is not None, 5)
        assert c.goaway == (0, sid)
        c.open_window(sid, 400_000)
        assert c.wait(c.done(sid), 10)
        assert c.streams[sid].data == BIG
        assert c.wait(lambda: c.closed, 5)
        assert s.proc is not None
        s.proc.wait(10)
        assert '"GET /big.bin HTTP/2.0" 200 300000' in s.log("access.log")
        no_trouble(s)
    finally:
        s.cleanup()


def test_idle_timeout_goaway() -> None:
    s, port = own("""server {{ listen 127.0.0.1:{port}; http2 on; keepalive_timeout 1; root html; }}""")
    try:
        c = Client(port)
        assert c.get("/index.html").status == 200
        assert c.wait(lambda: c.closed, 5)
        assert c.goaway is not None and c.goaway[0] == 0
    finally:
        s.cleanup()


def test_h2c_off_keeps_http1() -> None:
    s, port = own("""server {{ listen 127.0.0.1:{port}; root html; }}""")
    try:
        r = curl(f"http://127.0.0.1:{port}/index.html")
        assert r.returncode != 0 or b"hello h2" not in r.stdout
        r = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/index.html"], capture_output=True, timeout=10)
        assert r.stdout == b"hello h2\n"
    finally:
        s.cleanup()


def test_obsolete_directives_warn() -> None:
    s = Server(base_conf("""server { listen 127.0.0.1:1; http2 on; http2_idle_timeout 3m;
                            http2_max_requests 10; http2_push /x; http2_chunk_size 16k; }"""))
    try:
        out = s.run("-t").stderr
        assert '[warn] the "http2_idle_timeout" directive is obsolete, use the "keepalive_timeout" directive instead' in out
        assert '[warn] the "http2_max_requests" directive is obsolete, use the "keepalive_requests" directive instead' in out
        assert '[warn] the "http2_push" directive is obsolete, ignored' in out
        assert "test is successful" in out
    finally:
        s.cleanup()


# --- curl --------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_features(srv: tuple[Server, int]) -> None:
    s, port = srv
    base = f"http://localhost:{port}"
    r = curl("-D-", f"{base}/big.bin", "-o", "/dev/null")
    assert r.stdout.startswith(b"HTTP/2 200")
    r = curl("-r", "10-19", "-D-", f"{base}/big.bin")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/2 206") and b"content-range: bytes 10-19/300000" in head
    assert body == BIG[10:20]
    r = curl("-H", "Accept-Encoding: gzip", "-D-", f"{base}/text.txt")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head and gzip.decompress(body) == b"abc " * 2000
    r = curl("-D-", f"{base}/old")
    assert r.stdout.startswith(b"HTTP/2 301") and f"location: {base}/index.html".encode() in r.stdout
    r = curl(f"{base}/px/from-curl")
    assert r.stdout.startswith(b"GET /from-curl HTTP/1.0")
    r = curl("-d", "posted", f"{base}/px/p")
    assert r.stdout.startswith(b"POST /p HTTP/1.0") and r.stdout.endswith(b"posted")
    assert wait_for(lambda: re.search(r'"GET /big.bin HTTP/2.0" 206 10 "-" "curl/', s.log("access.log")))
    no_trouble(s)


def test_limit_rate_paces_h2_data() -> None:
    """limit_rate over HTTP/2 as over HTTP/1: 300 KB at 100k cannot arrive
    in less than 2 s (a lower bound only), and the body is intact."""
    port = free_port()
    big = bytes(range(256)) * 1200
    s = Server(base_conf(f"""server {{ listen 127.0.0.1:{port}; http2 on; root html;
        location /slow/ {{ alias html/; limit_rate 100k; }} }}"""), files={"html/big.bin": big})
    try:
        s.start()
        t0 = time.monotonic()
        out = curl(f"http://127.0.0.1:{port}/slow/big.bin")
        elapsed = time.monotonic() - t0
        assert out.returncode == 0 and out.stdout == big
        assert elapsed >= 1.9
        no_trouble(s)
    finally:
        s.cleanup()
