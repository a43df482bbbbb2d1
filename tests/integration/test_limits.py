"""limit_req and limit_conn on a live portico (and, for the differential
tests, on Debian's nginx with the same configuration).

Invariants of these tests:
- Rates are low (1r/m for counts) so that the few milliseconds a burst of
  requests takes cannot leak a request out of the bucket: counts are exact.
- Timing is only ever asserted as ordering or generous lower bounds (a
  delay can be late, never early); which requests were delayed is read
  from ``$limit_req_status`` in the access log.
- A request is held open for limit_conn by a WebDAV PUT whose body arrives
  in two parts: the request holds its unit from PREACCESS until it ends.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import threading
import time
from typing import Any, Callable

import pytest

from harness import Server, base_conf, children, free_port, have_nginx, parse_response, wait_for

needs_nginx = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")

FILES = {"html/a/f.txt": "file\n", "html/b/f.txt": "file\n", "html/c/f.txt": "file\n",
         "html/k/f.txt": "file\n", "html/m/f.txt": "file\n", "html/up/.keep": ""}
LOG_FORMAT = "log_format lim '$request_uri $status req=$limit_req_status conn=$limit_conn_status pid=$pid';"


def get(port: int, path: str, headers: str = "") -> tuple[int, float]:
    """(status, seconds until the response was complete) of one request on
    a new connection."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    return parse_response(data)[0], time.monotonic() - t0


def parallel(port: int, paths: list[str]) -> list[tuple[int, float]]:
    """Send every request at once, each on its own connection and thread."""
    out: list[Any] = [None] * len(paths)
    go = threading.Event()

    def one(i: int) -> None:
        go.wait()
        out[i] = get(port, paths[i])
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(30)
    return out


def access_lines(srv: Server, n: int) -> list[str]:
    assert wait_for(lambda: len(srv.log("lim.log").splitlines()) >= n), srv.log("lim.log")
    return srv.log("lim.log").splitlines()


def conf(port: int, http: str, locs: str, workers: int = 1) -> str:
    return base_conf(f"server {{ listen 127.0.0.1:{port}; root html;\n{locs}\n}}",
                     http_extra=LOG_FORMAT + "\naccess_log logs/lim.log lim;\n" + http, workers=workers)


# --- limit_req: counts, nodelay, status, log lines ------------------------------------------------

def test_burst_nodelay_counts_and_log(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
                      "location /a/ { limit_req zone=one burst=3 nodelay; limit_req_status 429; }"),
                 files=FILES)
    statuses = [get(port, "/a/f.txt")[0] for _ in range(7)]
    assert statuses == [200] * 4 + [429] * 3
    lines = access_lines(srv, 7)
    assert [ln.split()[2] for ln in lines] == ["req=PASSED"] * 4 + ["req=REJECTED"] * 3
    err = srv.log()
    assert len(re.findall(r'\[error\] \d+#\d+: \*\d+ limiting requests, excess: [34]\.\d{3} by zone "one", '
                          r'client: 127\.0\.0\.1, server: , request: "GET /a/f\.txt HTTP/1\.0"', err)) == 3, err


def test_no_burst_rejects_second_and_empty_key_is_free(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $http_x_key zone=k:1m rate=1r/m;",
                      "location /k/ { limit_req zone=k; }"), files=FILES)
    # no X-Key: the key is empty and never accounted
    assert [get(port, "/k/f.txt")[0] for _ in range(4)] == [200] * 4
    assert [get(port, "/k/f.txt", "X-Key: a\r\n")[0] for _ in range(2)] == [200, 503]
    # another key has a bucket of its own
    assert get(port, "/k/f.txt", "X-Key: b\r\n")[0] == 200
    lines = access_lines(srv, 7)
    assert [ln.split()[2] for ln in lines[:4]] == ["req=-"] * 4


def test_log_level_and_dry_run(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
                      "location /a/ { limit_req zone=one; limit_req_dry_run on; limit_req_log_level notice; }\n"
                      "location /b/ { limit_req zone=one burst=5; limit_req_dry_run on; limit_req_log_level notice; }"),
                 files=FILES)
    assert [get(port, "/a/f.txt")[0] for _ in range(3)] == [200] * 3
    # excess is now 1: a burst location would delay; dry run passes at once
    st, took = get(port, "/b/f.txt")
    assert st == 200
    lines = access_lines(srv, 4)
    assert [ln.split()[2] for ln in lines] == ["req=PASSED", "req=REJECTED_DRY_RUN", "req=REJECTED_DRY_RUN",
                                               "req=DELAYED_DRY_RUN"]
    err = srv.log()
    assert len(re.findall(r'\[notice\] .*limiting requests, dry run, excess: [01]\.\d{3} by zone "one"', err)) == 2, err
    # delays are logged one level lower than limits
    assert re.search(r'\[info\] .*delaying request, dry run, excess: [01]\.\d{3}, by zone "one"', err), err


# --- limit_req: delays ---------------------------------------------------------------------------

def test_burst_delays_requests(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=two:1m rate=4r/s;",
                      "location /a/ { limit_req zone=two burst=3; }"), files=FILES)
    res = parallel(port, ["/a/f.txt"] * 5)
    codes = sorted(c for c, _ in res)
    assert codes == [200, 200, 200, 200, 503]
    times = sorted(t for c, t in res if c == 200)
    lines = access_lines(srv, 5)
    kinds = sorted(ln.split()[2] for ln in lines)
    assert kinds == ["req=DELAYED"] * 3 + ["req=PASSED", "req=REJECTED"]
    # at 4r/s the three delayed requests wait 250, 500 and 750 ms (less the
    # few ms the burst took to arrive): lower bounds only
    assert times[1] >= 0.15 and times[2] >= 0.4 and times[3] >= 0.6, times
    assert times[0] < times[3]
    err = srv.log()
    assert len(re.findall(r'\[warn\] .*delaying request, excess: \d\.\d{3}, by zone "two"', err)) == 3, err


def test_two_stage_delay(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=two:1m rate=2r/s;",
                      "location /a/ { limit_req zone=two burst=4 delay=2; }"), files=FILES)
    res = parallel(port, ["/a/f.txt"] * 6)
    assert sorted(c for c, _ in res) == [200] * 5 + [503]
    lines = access_lines(srv, 6)
    kinds = sorted(ln.split()[2] for ln in lines)
    # excess 0, 1, 2 pass at once (delay=2), 3 and 4 wait, 5 is over the burst
    assert kinds == ["req=DELAYED"] * 2 + ["req=PASSED"] * 3 + ["req=REJECTED"]
    times = sorted(t for c, t in res if c == 200)
    # the two delayed ones wait ~500 and ~1000 ms
    assert times[3] >= 0.3 and times[4] >= 0.7, times
    assert max(times[:3]) < times[4]


def test_delayed_request_whose_client_resets(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=two:1m rate=1r/s;",
                      "location /a/ { limit_req zone=two burst=5; }"), files=FILES)
    assert get(port, "/a/f.txt")[0] == 200
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /a/f.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.2)
    # close with RST while the request waits for its ~1 s delay
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    lines = access_lines(srv, 2)
    assert lines[1].split()[1] == "499" and lines[1].split()[2] == "req=DELAYED", lines
    time.sleep(1.2)  # the timer fired: it must not have resumed the dead request
    assert len(srv.log("lim.log").splitlines()) == 2
    assert "[alert]" not in srv.log() and "internal error" not in srv.log()
    assert get(port, "/a/f.txt")[0] == 200  # excess 1 - 1.x s of leak + 1: no delay left to speak of


def test_delayed_request_whose_client_half_closes(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=two:1m rate=2r/s;",
                      "location /a/ { limit_req zone=two burst=5; }"), files=FILES)
    assert get(port, "/a/f.txt")[0] == 200
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /a/f.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.1)
    s.shutdown(socket.SHUT_WR)  # FIN while the request waits ~500 ms
    lines = access_lines(srv, 2)
    s.close()
    assert lines[1].split()[1:3] == ["499", "req=DELAYED"], lines
    assert re.search(r"\[info\] .*client prematurely closed connection, client: 127\.0\.0\.1", srv.log())


def test_multiple_limits_account_each(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;\n"
                            "limit_req_zone $server_port zone=all:1m rate=1r/m;",
                      "location /a/ { limit_req zone=one burst=5 nodelay; limit_req zone=all burst=2 nodelay; }\n"
                      "location /b/ { limit_req zone=all burst=2 nodelay; }"), files=FILES)
    assert [get(port, "/a/f.txt")[0] for _ in range(4)] == [200, 200, 200, 503]
    # the "all" zone was charged by /a/: it is full for /b/ too
    assert get(port, "/b/f.txt")[0] == 503
    err = srv.log()
    assert 'by zone "all"' in err and 'by zone "one"' not in err


# --- state across workers and reloads -----------------------------------------------------------------

def test_state_shared_between_workers(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(conf(port, "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
                      "location /a/ { limit_req zone=one burst=5 nodelay; }", workers=2), files=FILES)
    codes: list[int] = []
    for _ in range(3):  # batches of parallel connections: the kernel spreads them
        codes += [c for c, _ in parallel(port, ["/a/f.txt"] * 4)]
    assert sorted(codes) == [200] * 6 + [503] * 6
    pids = {ln.split()[-1] for ln in access_lines(srv, 12)}
    assert 1 <= len(pids) <= 2


def test_zone_survives_reload_and_key_change_is_refused(server: Callable[..., Server]) -> None:
    port = free_port()
    c1 = conf(port, "limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;",
              "location /a/ { limit_req zone=one burst=2 nodelay; }")
    srv = server(c1, files=FILES)
    assert [get(port, "/a/f.txt")[0] for _ in range(4)] == [200, 200, 200, 503]
    workers0 = set(_workers(srv))
    srv.write_conf(c1.replace("burst=2", "burst=3"))
    srv.kill(signal.SIGHUP)
    assert wait_for(lambda: _workers(srv) and not set(_workers(srv)) & workers0), srv.log()
    # excess is ~3 after the reload: one more fits in burst=3, then no more
    assert [get(port, "/a/f.txt")[0] for _ in range(2)] == [200, 503]
    workers1 = set(_workers(srv))
    srv.write_conf(c1.replace("$binary_remote_addr zone", "$remote_addr zone"))
    srv.kill(signal.SIGHUP)
    assert wait_for(lambda: 'limit_req "one" uses the "$remote_addr" key while previously it used '
                            'the "$binary_remote_addr" key' in srv.log()), srv.log()
    time.sleep(0.3)
    assert set(_workers(srv)) == workers1  # the old workers keep serving
    assert get(port, "/a/f.txt")[0] == 503


def _workers(srv: Server) -> list[int]:
    return children(srv.master_pid)


# --- limit_conn -------------------------------------------------------------------------------------

def _put_open(port: int, path: str, first: bytes, total: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n"
              f"Connection: close\r\n\r\n".encode() + first)
    return s


def _status_of(s: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return int(data.split(b" ", 2)[1])


def _conn_conf(port: int, extra: str = "") -> str:
    return conf(port, "limit_conn_zone $binary_remote_addr zone=addr:1m;",
                f"location /up/ {{ dav_methods PUT; limit_conn addr 1; {extra} }}\n"
                "location /m/ { limit_conn addr 1; }")


def test_limit_conn_counts_concurrent_requests(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(_conn_conf(port), files=FILES, start=False)
    os.chmod(srv.path("html/up"), 0o777)
    srv.start()
    a = _put_open(port, "/up/a", b"12345", 10)
    time.sleep(0.3)
    b = _put_open(port, "/up/b", b"xy", 2)
    assert _status_of(b) == 503
    b.close()
    # another location on the same zone is limited too while A is open
    assert get(port, "/m/f.txt")[0] == 503
    a.sendall(b"67890")
    assert _status_of(a) == 201
    a.close()
    assert wait_for(lambda: get(port, "/m/f.txt")[0] == 200, timeout=3)
    lines = access_lines(srv, 4)
    assert [ln.split()[3] for ln in lines[:3]] == ["conn=REJECTED", "conn=REJECTED", "conn=PASSED"]
    err = srv.log()
    assert len(re.findall(r'\[error\] .*limiting connections by zone "addr", client: 127\.0\.0\.1', err)) == 2


def test_limit_conn_released_when_client_goes_away(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(_conn_conf(port), files=FILES, start=False)
    os.chmod(srv.path("html/up"), 0o777)
    srv.start()
    a = _put_open(port, "/up/a", b"123", 10)
    time.sleep(0.3)
    assert get(port, "/m/f.txt")[0] == 503
    a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    a.close()
    assert wait_for(lambda: get(port, "/m/f.txt")[0] == 200, timeout=3)
    assert srv.log().count("limiting connections") >= 1


def test_limit_conn_status_and_dry_run(server: Callable[..., Server]) -> None:
    port = free_port()
    srv = server(_conn_conf(port, "limit_conn_status 429; limit_conn_log_level warn;").replace(
        "location /m/ { limit_conn addr 1; }",
        "location /m/ { limit_conn addr 1; limit_conn_dry_run on; }"), files=FILES, start=False)
    os.chmod(srv.path("html/up"), 0o777)
    srv.start()
    a = _put_open(port, "/up/a", b"1", 2)
    time.sleep(0.3)
    b = _put_open(port, "/up/b", b"x", 1)
    assert _status_of(b) == 429
    b.close()
    assert get(port, "/m/f.txt")[0] == 200  # dry run: counted as rejected, served
    a.sendall(b"2")
    assert _status_of(a) == 201
    a.close()
    lines = access_lines(srv, 3)
    assert [ln.split()[3] for ln in lines] == ["conn=REJECTED", "conn=REJECTED_DRY_RUN", "conn=PASSED"]
    err = srv.log()
    assert re.search(r'\[warn\] .*limiting connections by zone "addr"', err), err
    assert re.search(r'\[error\] .*limiting connections, dry run, by zone "addr"', err), err


# --- differential: the same statuses as nginx --------------------------------------------------------

def _sequence(server: Callable[..., Server], kind: str, http: str, locs: str, paths: list[str]) -> list[int]:
    port = free_port()
    srv = server(conf(port, http, locs), kind=kind, files=FILES)
    try:
        return [get(port, p)[0] for p in paths]
    finally:
        srv.stop()


@needs_nginx
@pytest.mark.parametrize("http,locs,paths", [
    ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;",
     "location /a/ { limit_req zone=one burst=3 nodelay; }", ["/a/f.txt"] * 7),
    ("limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;\n"
     "limit_req_zone $server_port zone=all:1m rate=1r/m;",
     "location /a/ { limit_req zone=one burst=5 nodelay; limit_req zone=all burst=2 nodelay; }\n"
     "location /b/ { limit_req zone=all burst=4 nodelay; limit_req zone=one burst=1 nodelay; "
     "limit_req_status 429; }",
     ["/a/f.txt", "/b/f.txt", "/a/f.txt", "/b/f.txt", "/a/f.txt", "/b/f.txt", "/a/f.txt", "/c/f.txt"]),
    ("limit_req_zone $uri zone=u:1m rate=1r/m;",
     "location / { limit_req zone=u burst=1 nodelay; }",
     ["/a/f.txt", "/b/f.txt", "/a/f.txt", "/a/f.txt", "/b/f.txt", "/b/f.txt", "/c/f.txt"]),
], ids=["one_zone", "two_zones", "uri_key"])
def test_same_statuses_as_nginx(server: Callable[..., Server], http: str, locs: str, paths: list[str]) -> None:
    ours = _sequence(server, "portico", http, locs, paths)
    theirs = _sequence(server, "nginx", http, locs, paths)
    assert ours == theirs
    assert 503 in ours or 429 in ours  # the sequence really hits a limit
