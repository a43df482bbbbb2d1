"""Reloads under load lose nothing: ``portico -s reload`` twenty times (and
one reload with a broken configuration) while keep-alive clients keep two
workers busy; zero failed requests, zero connection resets.

Invariants:
- The load is bounded in time (``LOAD_SECONDS`` plus the reloads' pacing)
  and in count (``MAX_REQUESTS``); only loopback is used.
- A client retries a request only on a keep-alive connection that was
  reused and that the server closed before sending any byte of the
  response (RFC 9112 section 9.3.1 allows it; it is what nginx's own
  upstream module and browsers do).  Retries are counted and reported;
  everything else (reset, truncated or wrong response, timeout, refused
  connection) is a failure.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from typing import Callable

from harness import children, wait_for, Server, base_conf, free_port

CLIENTS = 6
RELOADS = 20
RELOAD_EVERY = 1.0  # seconds between reloads: ~20 s of load
MAX_REQUESTS = 1_000_000
READ_TIMEOUT = 10.0


def conf(port: int, version: int, broken: bool = False) -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        {'this_is_not_a_directive on;' if broken else ''}
        location /v {{ return 200 "v{version}"; }}
        location = /pid {{ return 200 "$pid"; }}
    }}""", workers=2, http_extra="access_log off;")


class EmptyClose(Exception):
    """The server closed the connection before any byte of the response."""


class Truncated(Exception):
    pass


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0          # logical requests issued
        self.ok = 0            # complete 200 responses with a good body
        self.retries = 0       # resent after an empty close of a reused keep-alive connection
        self.resets = 0        # ECONNRESET / EPIPE seen anywhere
        self.server_closes = 0  # responses with Connection: close
        self.connections = 0
        self.failures: list[str] = []
        self.versions: Counter[str] = Counter()

    def fail(self, what: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            else:
                self.failures.append("...")


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            if not buf:
                raise EmptyClose()
            raise Truncated(f"EOF inside the header after {len(buf)} bytes")
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "-1"))
    if n < 0:
        raise Truncated(f"no Content-Length: {head!r}")
    while len(body) < n:
        b = sock.recv(65536)
        if not b:
            raise Truncated(f"EOF inside the body after {len(body)} of {n} bytes")
        body += b
    if len(body) != n:
        raise Truncated(f"{len(body) - n} extra bytes after the body")
    return status, headers, body


def client(idx: int, port: int, stop: threading.Event, st: Stats) -> None:
    sock: socket.socket | None = None
    reused = False
    rid = 0
    while not stop.is_set():
        with st.lock:
            if st.sent >= MAX_REQUESTS:
                return
            st.sent += 1
        rid += 1
        req = f"GET /v?c={idx}&r={rid} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode()
        retried = False
        while True:
            if sock is None:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT)
                except OSError as e:
                    st.fail(f"connect: {e!r}")
                    break
                reused = False
                with st.lock:
                    st.connections += 1
            try:
                sock.sendall(req)
                status, headers, body = read_response(sock)
            except EmptyClose:
                sock.close()
                sock = None
                if reused and not retried:
                    retried = True
                    with st.lock:
                        st.retries += 1
                    continue
                st.fail(f"empty close on a {'reused' if reused else 'fresh'} connection"
                        f"{' (after a retry)' if retried else ''}")
                break
            except OSError as e:
                sock.close()
                sock = None
                if e.errno in (errno.ECONNRESET, errno.EPIPE):
                    with st.lock:
                        st.resets += 1
                st.fail(f"{e!r}")
                break
            except Truncated as e:
                sock.close()
                sock = None
                st.fail(f"truncated: {e}")
                break
            if status != 200 or not re.fullmatch(rb"v\d+", body):
                st.fail(f"bad response {status} {body[:80]!r}")
            else:
                with st.lock:
                    st.ok += 1
                    st.versions[body.decode()] += 1
            if headers.get("connection", "").lower() == "close":
                with st.lock:
                    st.server_closes += 1
                sock.close()
                sock = None
            else:
                reused = True
            break
    if sock is not None:
        sock.close()


def fetch(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        return read_response(s)[2]


def test_reload_under_load_loses_nothing(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port, 0))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    assert wait_for(lambda: fetch(port, "/v") == b"v0")

    st = Stats()
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(i, port, stop, st), daemon=True) for i in range(CLIENTS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    reload_times: list[float] = []
    broken_at = RELOADS // 2
    try:
        time.sleep(0.5)
        for i in range(1, RELOADS + 1):
            if i == broken_at:
                # a broken configuration in the middle: `-s reload` refuses it
                # (it parses the file first), a bare HUP makes the master log
                # [emerg] and keep the old workers
                s.write_conf(conf(port, i, broken=True))
                r = s.run("-s", "reload")
                assert r.returncode == 1 and "[emerg] unknown directive" in r.stderr
                before = children(master)
                os.kill(master, signal.SIGHUP)
                assert wait_for(lambda: "this_is_not_a_directive" in s.log(), 5)
                assert re.search(r'\[emerg\] \d+#\d+: unknown directive "this_is_not_a_directive" in '
                                 + re.escape(s.conf_path) + r":\d+", s.log())
                time.sleep(0.2)
                assert sorted(children(master)) == sorted(before)
            s.write_conf(conf(port, i))
            t = time.monotonic()
            r = s.run("-s", "reload")
            reload_times.append(time.monotonic() - t)
            assert (r.returncode, r.stderr) == (0, ""), r.stderr
            time.sleep(max(0.0, RELOAD_EVERY - (time.monotonic() - t)))
        # the last configuration is served by the last workers
        assert wait_for(lambda: fetch(port, "/v") == f"v{RELOADS}".encode(), 5)
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(READ_TIMEOUT + 5)
    elapsed = time.monotonic() - t0

    log = s.log()
    exited = len(re.findall(r"worker process \d+ exited with code 0", log))
    print(f"\nreload under load: {elapsed:.1f} s, {CLIENTS} keep-alive clients, {RELOADS} reloads "
          f"(+1 broken): sent={st.sent} ok={st.ok} failures={len(st.failures)} resets={st.resets} "
          f"retries={st.retries} server_closes={st.server_closes} connections={st.connections} "
          f"req/s={st.ok / elapsed:.0f} old_workers_exited={exited} "
          f"reload_cmd_max={max(reload_times):.2f}s versions={len(st.versions)}")
    assert not any(t.is_alive() for t in threads)
    assert st.failures == [], st.failures[:10]
    assert st.resets == 0
    assert st.ok == st.sent
    assert st.ok > 1000
    assert len(st.versions) >= RELOADS // 2  # the reloads took effect along the way
    assert f"v{RELOADS}" in st.versions
    # every old generation exits; no worker died
    assert wait_for(lambda: len(children(master)) == 2, 15)
    assert wait_for(lambda: len(re.findall(r"worker process \d+ exited with code 0", s.log())) == 2 * RELOADS, 15)
    assert "[alert]" not in s.log()
    assert "this_is_not_a_directive" in s.log()
