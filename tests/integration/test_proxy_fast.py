"""The proxy fast path (portico/upstream/proxy_fast.py) against the generic
upstream path: which locations get a plan, byte-for-byte equal answers,
upstream requests and log lines on two servers that differ only in that
one cannot have a plan (``allow 127.0.0.1``), and the hand-over to the
generic path on a timeout and on a client that leaves.

The fast path says at debug level when it replayed a header, so the tests
know it ran (and that the other server never used it).
"""
from __future__ import annotations

import socket
import time

from backends import Backend
from harness import Server, base_conf, free_port, loaded_cycle, parse_response, raw_request, wait_for
from portico.upstream.proxy_fast import ProxyPlan

REPLAYED = "upstream header replayed by the fast path"
LOG = ("$status $body_bytes_sent $bytes_sent $request_length $upstream_addr $upstream_status "
       "$upstream_bytes_sent $upstream_bytes_received $upstream_response_length $upstream_http_etag "
       "$upstream_http_x_multi $sent_http_content_type $sent_http_etag $sent_http_x_multi $proxy_host "
       "$proxy_port $proxy_add_x_forwarded_for \"$request\"")
KA = 'proxy_http_version 1.1; proxy_set_header Connection "";'

ELIGIBILITY = """
worker_processes 1; error_log logs/error.log; pid logs/nginx.pid;
events { worker_connections 64; }
http {
    upstream ka { server 127.0.0.1:9; keepalive 4; }
    upstream noka { server 127.0.0.1:9; }
    server {
        listen 127.0.0.1:9;
        location /plain { proxy_pass http://ka; }
        location /uri { proxy_pass http://ka/other/; }
        location /vars { proxy_set_header X-Real-IP $remote_addr; proxy_pass http://ka; }
        location ~ ^/regex { proxy_pass http://ka; }
        location /noka { proxy_pass http://noka; }
        location /literal { proxy_pass http://127.0.0.1:9; }
        location /variable { proxy_pass http://ka$request_uri; }
        location /https { proxy_pass https://ka; }
        location /method { proxy_method POST; proxy_pass http://ka; }
        location /body { proxy_set_body x; proxy_pass http://ka; }
        location /allow { allow 127.0.0.1; proxy_pass http://ka; }
        location /rewrite { rewrite ^ /plain; proxy_pass http://ka; }
        location /add_header { add_header X-A b; proxy_pass http://ka; }
        location /rate { limit_rate 10k; proxy_pass http://ka; }
        location /gzip { gzip on; proxy_pass http://ka; }
        location /static { root html; }
    }
}
"""
PLANNED = {"/plain", "/uri", "/vars", "^/regex"}


def test_plans_only_where_nothing_else_acts() -> None:
    with loaded_cycle(ELIGIBILITY) as cycle:
        got = {loc.name: isinstance(loc.conf.fast_plan, ProxyPlan)
               for loc in cycle.http.all_locations() if loc.name not in ("", "/")}
    assert got == {name: name in PLANNED for name in got}, got
    assert len(got) == 16


def _exchange(port: int, reqs: list[bytes]) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """Send the requests one by one on one connection (a new one after a
    response that closes it); status, headers but Date, body of each."""
    out = []
    s: socket.socket | None = None
    for req in reqs:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        buf = b""
        head_only = req.startswith(b"HEAD ")
        while True:
            d = s.recv(65536)
            if d:
                buf += d
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head = buf[:i].decode("latin-1").split("\r\n")
                hdrs = [tuple(ln.split(": ", 1)) for ln in head[1:]]
                cl = [int(v) for k, v in hdrs if k.lower() == "content-length"]
                need = i + 4 + (0 if head_only or not cl else cl[0])
                if (cl or head_only) and len(buf) >= need:
                    break
            if not d:
                break
        status, headers, body, _ = parse_response(buf)
        pairs = [(k, v) for k, v in (tuple(ln.split(": ", 1)) for ln in
                                     buf[:buf.find(b"\r\n\r\n")].decode("latin-1").split("\r\n")[1:])
                 if k != "Date"]
        out.append((status, pairs, body))
        if headers.get("connection", "").lower() == "close":
            s.close()
            s = None
    if s is not None:
        s.close()
    return out


def _conf(fast: int, slow: int, fixed: Backend, echo: Backend, big: Backend, e404: Backend) -> str:
    locs = f"""
        location /fixed/ {{ {KA} proxy_pass http://fixed; }}
        location /echo/ {{ {KA} proxy_pass http://echo; }}
        location /echovars/ {{ {KA} proxy_set_header X-Real-IP $remote_addr;
                              proxy_set_header X-Uri $request_uri; proxy_pass http://echo/mapped/; }}
        location /big/ {{ {KA} proxy_pass http://big; }}
        location /missing/ {{ {KA} proxy_pass http://e404; }}
        location /old/ {{ proxy_pass http://fixed; }}
    """
    return base_conf(
        f"""server {{ listen 127.0.0.1:{fast}; server_name fast; {locs} }}
            server {{ listen 127.0.0.1:{slow}; server_name slow; allow 127.0.0.1; {locs} }}""",
        http_extra=f"""log_format cmp '$server_name {LOG}';
            access_log logs/cmp.log cmp;
            error_log logs/error.log debug;
            keepalive_requests 5;
            upstream fixed {{ server {fixed.addr}; keepalive 4; }}
            upstream echo {{ server {echo.addr}; keepalive 4; }}
            upstream big {{ server {big.addr}; keepalive 4; }}
            upstream e404 {{ server {e404.addr}; keepalive 4; }}""")


def test_fast_and_generic_paths_answer_alike() -> None:
    fixed = Backend("fixed", name="fixed", body=b"fixed body\n" * 3, headers=[
        ("Content-Type", "text/html"), ("ETag", '"abc"'), ("Last-Modified", "Thu, 01 Jan 2015 00:00:00 GMT"),
        ("Cache-Control", "max-age=60"), ("X-Multi", "one"), ("X-Multi", "two"), ("Vary", "Accept"),
        ("Content-Encoding", "identity"), ("X-Pad", "hidden"), ("Keep-Alive", "timeout=5"),
        ("Set-Cookie", "a=b; Path=/")])
    echo = Backend("echo", name="echo")
    big = Backend("big", name="big", size=300_000)
    e404 = Backend("fixed", name="e404", status=404, body=b"not here\n")
    fast, slow = free_port(), free_port()
    srv = Server(_conf(fast, slow, fixed, echo, big, e404))
    try:
        srv.start()
        host = b"Host: example.test\r\n"
        reqs = []
        for uri in (b"/fixed/a", b"/echo/b?x=1", b"/echovars/c%20d?y", b"/big/e", b"/missing/f", b"/old/g"):
            reqs += [b"GET " + uri + b" HTTP/1.1\r\n" + host + b"Accept: */*\r\n\r\n"] * 3
            reqs += [b"HEAD " + uri + b" HTTP/1.1\r\n" + host + b"\r\n"] * 2
            reqs += [b"GET " + uri + b" HTTP/1.0\r\n" + host + b"\r\n"]
            reqs += [b"GET " + uri + b" HTTP/1.0\r\n" + host + b"Connection: keep-alive\r\n\r\n"] * 2
            reqs += [b"GET " + uri + b" HTTP/1.1\r\n" + host + b"X-Forwarded-For: 10.0.0.1\r\n"
                     b"X-Real-IP: 1.2.3.4\r\nConnection: close\r\n\r\n"]
            reqs += [b"GET " + uri + b" HTTP/1.1\r\n" + host + b"User-Agent: t\r\nAccept: */*\r\n\r\n"] * 3
        got_fast = _exchange(fast, reqs)
        got_slow = _exchange(slow, reqs)
        assert len(got_fast) == len(reqs)
        for i, (a, b) in enumerate(zip(got_fast, got_slow)):
            assert a == b, (reqs[i], a, b)
        statuses = {a[0] for a in got_fast}
        assert statuses == {200, 404}
        # what the echo backend saw: the same request bytes from both servers
        assert len(echo.heads) == 2 * 2 * 12
        assert echo.heads[:24] == echo.heads[24:]
        assert echo.heads[12].startswith(b"GET /mapped/c%20d?y HTTP/1.1\r\nX-Real-IP: 127.0.0.1\r\n"
                                         b"X-Uri: /echovars/c%20d?y\r\nHost: echo\r\n")
        assert wait_for(lambda: len(srv.log("cmp.log").splitlines()) == 2 * len(reqs))
        lines = srv.log("cmp.log").splitlines()
        fast_lines = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("fast ")]
        slow_lines = [ln.split(" ", 1)[1] for ln in lines if ln.startswith("slow ")]
        assert fast_lines == slow_lines
        assert any(r'\x22abc\x22' in ln and "one, two" in ln for ln in fast_lines)
        err = srv.log()
        replayed = [ln for ln in err.splitlines() if REPLAYED in ln]
        # learnt after the first 200 of /fixed/ and /echo*/: most of them replayed
        assert len(replayed) >= 20, len(replayed)
        assert all("server: fast" in ln for ln in replayed)
        assert not any("[error]" in ln or "[alert]" in ln for ln in err.splitlines())
    finally:
        srv.cleanup()
        for b in (fixed, echo, big, e404):
            b.close()


def test_hand_over_on_timeout_and_on_a_client_leaving() -> None:
    be = Backend("fixed", name="be", body=b"ok\n")
    port = free_port()
    srv = Server(base_conf(
        f"""server {{ listen 127.0.0.1:{port};
              location / {{ {KA} proxy_read_timeout 1s; proxy_pass http://be; }} }}""",
        http_extra=f"""upstream be {{ server {be.addr}; keepalive 4; }}
            access_log logs/a.log;
            error_log logs/error.log debug;"""))
    try:
        srv.start()
        req = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        for _ in range(3):  # the pool gets a connection, the header is learnt
            st, _, body, _ = parse_response(raw_request(port, req))
            assert (st, body) == (200, b"ok\n")
        assert wait_for(lambda: REPLAYED in srv.log())
        be.mode, be.delay = "slow", 3.0
        t = time.monotonic()
        st, _, _, _ = parse_response(raw_request(port, req))
        assert st == 504
        assert time.monotonic() - t < 2.9  # the deadline, not the backend, ended it
        assert wait_for(lambda: "upstream timed out (110: Connection timed out) while reading response "
                                "header from upstream" in srv.log())
        # a client that leaves while its request is with the upstream: 499
        be.mode = "fixed"
        assert parse_response(raw_request(port, req))[0] == 200  # a pooled connection again
        be.mode = "slow"
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /gone HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        s.close()
        assert wait_for(lambda: '"GET /gone HTTP/1.1" 499' in srv.log("a.log"))
        assert wait_for(lambda: "client prematurely closed connection, so upstream connection is closed too"
                        in srv.log())
    finally:
        srv.cleanup()
        be.close()


def test_a_connect_that_completes_after_the_client_left_is_closed() -> None:
    """The client leaves while the upstream connect is pending (the
    backend's accept queue is full, so the SYN waits for a retransmit):
    when the connect completes later, Portico closes that connection."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    lsn.listen(0)
    bport = lsn.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: the next SYN is dropped
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", bport))
        except BlockingIOError:
            pass
        fillers.append(c)
    time.sleep(0.2)
    mine = {c.getsockname() for c in fillers}
    port = free_port()
    srv = Server(base_conf(
        f"""server {{ listen 127.0.0.1:{port};
              location / {{ {KA} proxy_connect_timeout 20s; proxy_pass http://be; }} }}""",
        http_extra=f"""upstream be {{ server 127.0.0.1:{bport}; keepalive 4; }}
            access_log logs/a.log;"""))
    try:
        srv.start()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /left HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
        s.close()
        assert wait_for(lambda: '"GET /left HTTP/1.1" 499' in srv.log("a.log"))
        # free the queue; Portico's SYN is retransmitted and accepted
        lsn.settimeout(0.2)
        theirs = None
        deadline = time.monotonic() + 8
        while theirs is None and time.monotonic() < deadline:
            try:
                c, peer = lsn.accept()
            except socket.timeout:
                continue
            if peer in mine:
                c.close()
            else:
                theirs = c
        assert theirs is not None, "Portico's connect never arrived"
        theirs.settimeout(3)
        assert theirs.recv(100) == b""  # closed by Portico, nothing sent
        theirs.close()
    finally:
        srv.cleanup()
        lsn.close()
        for c in fillers:
            c.close()
