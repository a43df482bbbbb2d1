"""TLS on listen ... ssl: the transport (portico/http/proto/tls.py) with real
clients: Python ssl sockets, openssl s_client and curl.

What is shown: HTTPS requests (keep-alive, pipelining, a large file read
slowly), SNI choosing the certificate and the server, 497 for plain HTTP on
an https port (and error_page 497), client certificates (400 as nginx for a
missing or bad one), session resumption with s_client -sess_out/-sess_in on
every worker and after a reload, and bad input: garbage after a handshake
record, a client stalling mid-handshake.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import ssl
import subprocess
import time

import pytest

from harness import Server, base_conf, free_port, parse_response, read_until_close, wait_for
from pki import ca_cert, client_cert, server_cert


def _ctx(cert: tuple[str, str] | None = None, alpn: list[str] | None = None,
         check: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_cert())
    if not check:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_exchange(port: int, data: bytes, sni: str | None = "a.test", ctx: ssl.SSLContext | None = None,
                 timeout: float = 5.0) -> tuple[bytes, str | None]:
    """Send ``data`` over TLS and read until the server closes or goes quiet;
    (bytes read, the TLS version)."""
    ctx = ctx or _ctx(check=sni is not None)
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    s.sendall(data)
    got = read_until_close(s, (socket.timeout, ssl.SSLError, ConnectionResetError))
    version = s.version()
    s.close()
    return got, version


def _server_block(port: int, name: str, extra: str = "", default: bool = False) -> str:
    crt, key = server_cert(name)
    return f"""
    server {{
        listen 127.0.0.1:{port} ssl{' default_server' if default else ''};
        server_name {name};
        ssl_certificate {crt};
        ssl_certificate_key {key};
        {extra}
    }}"""


@pytest.fixture(scope="module")
def srv():
    port = free_port()
    blocks = _server_block(port, "a.test", """
        http2 on;
        error_page 497 =301 https://$host:$server_port$request_uri;
        location / { root html; }
        location = /who { return 200 "a $https $ssl_protocol $ssl_server_name $server_name $ssl_session_reused\\n"; }
        location = /plain497 { return 200 "never"; }
        location = /proto { return 200 "$server_protocol $http2 $ssl_alpn_protocol $https\\n"; }
    """, default=True) + _server_block(port, "b.test", """
        location = /who { return 200 "b $https $ssl_server_name $server_name\\n"; }
    """)
    big = os.urandom(3 * 1024 * 1024 + 17)
    s = Server(base_conf(blocks), files={"html/index.html": "hello tls\n", "html/big.bin": big})
    s.port = port  # type: ignore[attr-defined]
    s.big = big  # type: ignore[attr-defined]
    s.start()
    yield s
    s.cleanup()


def test_https_get_and_variables(srv):
    data, version = tls_exchange(srv.port, b"GET /who HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    status, headers, body, _ = parse_response(data)
    assert status == 200
    assert version == "TLSv1.3"
    assert body.decode().split() == ["a", "on", version, "a.test", "a.test", "."]


def test_sni_selects_certificate_and_server(srv):
    for name in ("a.test", "b.test"):
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s = _ctx().wrap_socket(raw, server_hostname=name)  # verifies the name against the certificate
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        assert cn == name
        s.sendall(f"GET /who HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        status, _, body, _ = parse_response(data)
        assert status == 200
        assert body.decode().split()[0] == name[0]
    # no SNI: the default server's certificate
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s = _ctx(check=False).wrap_socket(raw)
    der = s.getpeercert(binary_form=True)
    s.close()
    with open(server_cert("a.test")[0]) as f:
        assert ssl.DER_cert_to_PEM_cert(der).strip() == f.read().strip()


def test_keepalive_and_pipelining(srv):
    reqs = b"".join(b"GET /who HTTP/1.1\r\nHost: a.test\r\n\r\n" for _ in range(5))
    data, _ = tls_exchange(srv.port, reqs + b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    bodies = []
    rest = data
    for _ in range(6):
        status, headers, body, rest = parse_response(rest)
        assert status == 200
        bodies.append(body)
    assert bodies[-1] == b"hello tls\n"
    assert all(b.startswith(b"a on ") for b in bodies[:5])
    assert rest == b""


def test_large_file_slow_reader(srv):
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s = _ctx().wrap_socket(raw, server_hostname="a.test")
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    data = b""
    n = 0
    while chunk := s.recv(16384):
        data += chunk
        n += 1
        if n % 50 == 0:
            time.sleep(0.01)  # a slow client: the server must wait, not buffer or drop
    s.close()
    status, headers, body, _ = parse_response(data)
    assert status == 200
    assert int(headers["content-length"]) == len(srv.big)
    assert hashlib.sha256(body).digest() == hashlib.sha256(srv.big).digest()


def test_plain_http_on_https_port(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /plain497?x=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, headers, body, _ = parse_response(data)
    # error_page 497 =301 https://...: the redirect to https, then close
    assert status == 301
    assert headers["location"] == f"https://a.test:{srv.port}/plain497?x=1"
    assert headers["connection"] == "close"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET /who HTTP/1.1\r\nHost: b.test\r\n\r\n")  # b.test has no error_page 497
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, headers, body, _ = parse_response(data)
    assert status == 400
    assert b"<center>The plain HTTP request was sent to HTTPS port</center>" in body
    assert "client sent plain HTTP request to HTTPS port while reading client request headers" in srv.log()


def test_curl_https(srv):
    out = subprocess.run(["curl", "-sS", "--cacert", ca_cert(), "--resolve", f"b.test:{srv.port}:127.0.0.1",
                          f"https://b.test:{srv.port}/who", "-o", "-", "-w", "%{http_code} %{ssl_verify_result}"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "b on b.test b.test\n200 0"


def test_http2_over_tls_by_alpn(srv):
    """ALPN h2 on a.test (http2 on), HTTP/1.1 on b.test (no http2)."""
    def curl(name: str, path: str) -> bytes:
        out = subprocess.run(["curl", "-sS", "--http2", "--cacert", ca_cert(), "--resolve",
                              f"{name}:{srv.port}:127.0.0.1", f"https://{name}:{srv.port}{path}",
                              "-w", "|%{http_version}"], capture_output=True, timeout=20)
        assert out.returncode == 0, out.stderr
        return out.stdout
    assert curl("a.test", "/proto") == b"HTTP/2.0 h2 h2 on\n|2"
    assert curl("a.test", "/big.bin") == srv.big + b"|2"  # flow control over TLS, 3 MB
    assert curl("b.test", "/who") == b"b on b.test b.test\n|1.1"
    # many streams on one TLS connection (curl multiplexes parallel transfers)
    urls = [f"https://a.test:{srv.port}/who" for _ in range(20)]
    out = subprocess.run(["curl", "-sS", "--http2", "--parallel", "--parallel-max", "20", "--cacert", ca_cert(),
                          "--resolve", f"a.test:{srv.port}:127.0.0.1", *urls],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("a on TLSv1.3 a.test a.test") == 20


def test_garbage_handshake_and_stalled_client(srv):
    # a handshake record header followed by garbage: closed, nothing else affected
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x20" + b"\xff" * 32)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # a client that stalls mid-handshake keeps its socket, others are served
    stalled = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never completes
    data, _ = tls_exchange(srv.port, b"GET /who HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    assert parse_response(data)[0] == 200
    stalled.close()
    log = srv.log()
    assert "Traceback" not in log and "[alert]" not in log and "[crit]" not in log
    assert re.search(r"\[info\] .*SSL_do_handshake\(\) failed .* while SSL handshaking, client: 127\.0\.0\.1", log)


def test_handshake_timeout():
    port = free_port()
    s = Server(base_conf(_server_block(port, "a.test", "client_header_timeout 1s;")))
    try:
        s.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"\x16\x03\x01\x02\x00\x01")
            t0 = time.monotonic()
            assert c.recv(100) == b""  # closed by the server
            assert time.monotonic() - t0 < 9
    finally:
        s.cleanup()


def test_ssl_buffer_size_limits_records():
    """ssl_buffer_size 1k: application data leaves in records of at most 1 KB
    (seen on the wire by a memory-BIO client)."""
    port = free_port()
    s = Server(base_conf(_server_block(port, "a.test", "ssl_buffer_size 1k; root html;")),
               files={"html/f.bin": os.urandom(10000)})
    try:
        s.start()
        ctx = _ctx()
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="a.test")
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        wire = b""
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(out.read())
                inc.write(raw.recv(65536))
        obj.write(b"GET /f.bin HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        raw.sendall(out.read())
        while chunk := raw.recv(65536):
            wire += chunk
        raw.close()
        sizes = []
        i = 0
        while i + 5 <= len(wire):
            rtype, length = wire[i], int.from_bytes(wire[i + 3:i + 5], "big")
            if rtype == 0x17:
                sizes.append(length)
            i += 5 + length
        inc.write(wire)
        body = b""
        try:
            while d := obj.read(65536):
                body += d
        except (ssl.SSLZeroReturnError, ssl.SSLWantReadError):
            pass
        assert parse_response(body)[0] == 200 and len(parse_response(body)[2]) == 10000
        # TLS 1.3 adds 17 bytes per record (content type + AEAD tag)
        assert max(sizes) <= 1024 + 17 + 256, sizes
        assert len(sizes) >= 10
    finally:
        s.cleanup()


# --- client certificates -------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls():
    port = free_port()
    block = _server_block(port, "a.test", f"""
        ssl_client_certificate {ca_cert()};
        ssl_verify_client on;
        location / {{ return 200 "$ssl_client_verify|$ssl_client_s_dn\\n"; }}
    """)
    s = Server(base_conf(block))
    s.port = port  # type: ignore[attr-defined]
    s.start()
    yield s
    s.cleanup()


def test_client_certificate_good_missing_bad(mtls):
    req = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    data, _ = tls_exchange(mtls.port, req, ctx=_ctx(cert=client_cert("alice")))
    status, _, body, _ = parse_response(data)
    assert status == 200
    assert body == b"SUCCESS|CN=alice,O=Portico Tests\n"
    data, _ = tls_exchange(mtls.port, req)  # the handshake completes; the request is refused
    status, headers, body, _ = parse_response(data)
    assert status == 400
    assert b"No required SSL certificate was sent" in body
    data, _ = tls_exchange(mtls.port, req, ctx=_ctx(cert=client_cert("mallory", ca="rogue")))
    status, _, body, _ = parse_response(data)
    assert status == 400
    assert b"The SSL certificate error" in body
    log = mtls.log()
    assert "client sent no required SSL certificate while reading client request headers" in log
    assert "client SSL certificate verify error:" in log


# --- session resumption ----------------------------------------------------------------


def _s_client(port: int, sess_flag: str, path: str, extra: list[str]) -> str:
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "a.test",
         "-CAfile", ca_cert(), sess_flag, path, "-ign_eof", *extra],
        input=b"GET /pid HTTP/1.0\r\nHost: a.test\r\n\r\n", capture_output=True, timeout=20)
    return out.stdout.decode("latin-1")


@pytest.mark.parametrize("mode", ["tickets-tls13", "cache-tls12"])
def test_resumption_across_workers_and_reload(mode, tmp_path):
    port = free_port()
    extra = ["-tls1_3"] if mode == "tickets-tls13" else ["-tls1_2", "-no_ticket"]
    block = _server_block(port, "a.test", """
        ssl_session_cache shared:SSL:1m;
        location = /pid { return 200 "pid=$pid reused=$ssl_session_reused\\n"; }
    """)
    s = Server(base_conf(block, workers=2))
    try:
        s.start()
        sess = str(tmp_path / "sess.pem")
        first = _s_client(port, "-sess_out", sess, extra)
        assert "reused=.\n" in first, first[-500:]
        pids = set()
        for _ in range(16):
            out = _s_client(port, "-sess_in", sess, extra)
            assert "Reused," in out, out[-800:]
            m = re.search(r"pid=(\d+) reused=r", out)
            assert m, out[-500:]
            pids.add(m.group(1))
            if len(pids) == 2:
                break
        assert len(pids) == 2  # resumed on both workers
        old = set(pids)
        s.kill(signal.SIGHUP)
        assert wait_for(lambda: "reused=r" in (o := _s_client(port, "-sess_in", sess, extra))
                        and re.search(r"pid=(\d+)", o).group(1) not in old, timeout=15)
    finally:
        s.cleanup()


def test_s_client_sni_and_client_certificate(srv, mtls):
    """openssl s_client: the certificate chosen by -servername verifies, and
    a client certificate given with -cert/-key is accepted."""
    for name in ("a.test", "b.test"):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-servername", name,
                              "-CAfile", ca_cert(), "-verify_return_error", "-verify_hostname", name, "-ign_eof"],
                             input=f"GET /who HTTP/1.0\r\nHost: {name}\r\n\r\n".encode(), capture_output=True,
                             timeout=20).stdout.decode("latin-1")
        assert re.search(rf"subject=.*CN ?= ?{re.escape(name)}", out), out[:800]
        assert "Verify return code: 0 (ok)" in out
        assert f"\n{name[0]} on " in out  # the server SNI chose answered
    crt, key = client_cert("alice")
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{mtls.port}", "-servername", "a.test",
                          "-CAfile", ca_cert(), "-cert", crt, "-key", key, "-ign_eof"],
                         input=b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", capture_output=True,
                         timeout=20).stdout.decode("latin-1")
    assert "SUCCESS|CN=alice,O=Portico Tests" in out, out[-800:]
