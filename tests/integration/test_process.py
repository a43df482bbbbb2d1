"""Processes and signals of a live portico: master + workers, daemon, pid file,
start-up errors, HUP/QUIT/TERM/INT/USR1/CHLD, the error-log line format and
stub_status counters shared by several workers.

Invariants:
- Every test starts real ``portico`` processes on loopback ports in a
  temporary prefix and always stops them (the ``server`` fixture; a daemon
  started here is stopped by pid in a ``finally``).
- Process trees are read from /proc, never guessed from logs alone.
- Loads are small and bounded in count and time.
"""
from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest

from harness import stat_fields, wait_for, children, REPO, Server, base_conf, free_port, have_nginx, parse_response, raw_request

TS = r"\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}"
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))


# --- helpers ---------------------------------------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    fields = stat_fields(pid)
    return (fields[0], int(fields[1])) if fields is not None else None


def alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def get(port: int, path: str, host: str = "localhost") -> tuple[int, dict[str, str], bytes]:
    data = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    st, h, body, _ = parse_response(data)
    return st, h, body


def conf(port: int, extra: str = "", workers: int = 2, main_extra: str = "", http_extra: str = "") -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        location = /pid {{ return 200 "$pid"; }}
        location = /status {{ stub_status; }}
        location /v {{ return 200 "v1"; }}
        {extra}
    }}""", workers=workers, main_extra=main_extra, http_extra=http_extra)


STATUS_RE = re.compile(rb"Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) \n"
                       rb"Reading: (\d+) Writing: (\d+) Waiting: (\d+) \n")


def status(port: int) -> dict[str, int]:
    st, h, body = get(port, "/status")
    assert st == 200
    m = STATUS_RE.fullmatch(body)
    assert m, body
    return dict(zip(("active", "accepts", "handled", "requests", "reading", "writing", "waiting"),
                    map(int, m.groups())))


# --- master and workers ------------------------------------------------------------------------------

def test_two_workers_are_children_of_the_master(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert s.proc is not None and master == s.proc.pid
    assert wait_for(lambda: len(children(master)) == 2)
    kids = children(master)
    for k in kids:
        with open(f"/proc/{k}/cmdline", "rb") as f:
            assert b"portico" in f.read()
    pids = set()
    for _ in range(40):
        pids.add(int(get(port, "/pid")[2]))
        if pids == set(kids):
            break
    assert pids <= set(kids) and master not in pids
    log = s.log()
    for k in kids:
        assert re.search(rf"^{TS} \[notice\] {master}#{master}: start worker process {k}$", log, re.M)


def test_worker_processes_auto_is_the_cpu_count(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port).replace("worker_processes 2;", "worker_processes auto;"))
    ncpu = os.cpu_count() or 1
    assert wait_for(lambda: len(children(s.master_pid)) == ncpu)
    time.sleep(0.3)
    assert len(children(s.master_pid)) == ncpu


@pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")
def test_worker_processes_auto_matches_nginx(server: Callable[..., Server]) -> None:
    c = base_conf(f"server {{ listen 127.0.0.1:{free_port()}; return 200; }}").replace(
        "worker_processes 1;", "worker_processes auto;")
    n = server(c, kind="nginx")
    assert wait_for(lambda: len(children(n.master_pid)) >= 1)
    time.sleep(0.3)
    expected = len(children(n.master_pid))
    s = server(base_conf(f"server {{ listen 127.0.0.1:{free_port()}; return 200; }}").replace(
        "worker_processes 1;", "worker_processes auto;"))
    assert wait_for(lambda: len(children(s.master_pid)) == expected)


def test_master_process_off_serves_in_one_process(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port, workers=1).replace("master_process on;", "master_process off;"))
    pid = s.master_pid
    assert s.proc is not None and pid == s.proc.pid
    assert int(get(port, "/pid")[2]) == pid
    time.sleep(0.2)
    assert children(pid) == []
    st = status(port)
    assert st["accepts"] >= 2 and st["active"] == 1
    s.kill(signal.SIGQUIT)
    assert s.proc.wait(10) == 0
    assert not os.path.exists(s.pid_path)


def test_daemon_on(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port).replace("daemon off;", "daemon on;"), start=False)
    t0 = time.monotonic()
    r = s.run(timeout=15)
    took = time.monotonic() - t0
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
    assert took < 5
    # the command returned after the daemon wrote its pid file
    assert os.path.exists(s.pid_path)
    master = s.master_pid
    try:
        assert alive(master)
        st = proc_stat(master)
        assert st is not None
        with open(f"/proc/{master}/cmdline", "rb") as f:
            assert b"portico" in f.read()
        # a new session: the daemon is not a child of the command we ran
        assert os.getsid(master) == master
        assert wait_for(lambda: len(children(master)) == 2)
        assert get(port, "/v")[2] == b"v1"
        r = s.run("-s", "stop")
        assert r.returncode == 0
        assert wait_for(lambda: not alive(master), 10)
        assert wait_for(lambda: not os.path.exists(s.pid_path), 5)
        with pytest.raises(OSError):
            raw_request(port, b"GET / HTTP/1.0\r\n\r\n", timeout=1)
    finally:
        if alive(master):
            os.kill(master, signal.SIGKILL)


def test_daemon_start_failure_exits_1(server: Callable[..., Server]) -> None:
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        s = server(conf(port).replace("daemon off;", "daemon on;").replace(
            "pid logs/nginx.pid;", "pid /nonexistent-dir/x.pid;"), start=False)
        r = s.run(timeout=15)
        assert r.returncode == 1
        assert "Traceback" not in r.stderr
    finally:
        blocker.close()


def test_pid_file_written_after_bind_within_one_second(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port), start=False)
    t0 = time.monotonic()
    proc = subprocess.Popen(s.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        while not os.path.exists(s.pid_path) and time.monotonic() - t0 < 10:
            time.sleep(0.001)
        took = time.monotonic() - t0
        # the socket is listening as soon as the pid file exists
        c = socket.create_connection(("127.0.0.1", port), timeout=2)
        c.close()
        with open(s.pid_path) as f:
            assert int(f.read()) == proc.pid
        print(f"\npid file written {took * 1000:.0f} ms after start")
        assert took < 1.0
    finally:
        proc.terminate()
        proc.wait(10)


def test_port_in_use(server: Callable[..., Server]) -> None:
    port = free_port()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port))
    blocker.listen(1)
    try:
        s = server(conf(port), start=False)
        t0 = time.monotonic()
        r = s.run(timeout=20)
        took = time.monotonic() - t0
    finally:
        blocker.close()
    msg = f"bind() to 127.0.0.1:{port} failed (98: Address already in use)"
    assert r.returncode == 1
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.splitlines()
    # nginx tries five times, 500 ms apart, then gives up
    assert lines == [f"portico: [emerg] {msg}"] * 5 + ["portico: [emerg] still could not bind()"]
    assert 1.5 < took < 10
    log = s.log()
    assert len(re.findall(rf"^{TS} \[emerg\] \d+#\d+: {re.escape(msg)}$", log, re.M)) == 5
    assert re.search(rf"^{TS} \[emerg\] \d+#\d+: still could not bind\(\)$", log, re.M)
    assert not os.path.exists(s.pid_path)


@pytest.mark.parametrize("case", ["directive", "events", "pid_dir", "error_log_dir", "listen"])
def test_startup_errors_print_no_traceback(server: Callable[..., Server], case: str) -> None:
    port = free_port()
    c = conf(port)
    expect = {
        "directive": 'portico: [emerg] unknown directive "nonsense" in ',
        "events": 'portico: [emerg] no "events" section in configuration',
        "pid_dir": 'portico: [emerg] open() "/nonexistent-dir/x.pid" failed (2: No such file or directory)',
        "error_log_dir": 'portico: [emerg] open() "/nonexistent-dir/e.log" failed (2: No such file or directory)',
        "listen": 'portico: [emerg] host not found in "no-such-host.invalid:80" of the "listen" directive in ',
    }[case]
    if case == "directive":
        c = c.replace("events {", "nonsense;\nevents {")
    elif case == "events":
        c = c.replace("events { worker_connections 1024; }", "")
    elif case == "pid_dir":
        c = c.replace("pid logs/nginx.pid;", "pid /nonexistent-dir/x.pid;")
    elif case == "error_log_dir":
        c = c.replace("error_log logs/error.log info;", "error_log /nonexistent-dir/e.log;")
    elif case == "listen":
        c = c.replace("server_name localhost;", "listen no-such-host.invalid:80;")
    s = server(c, start=False)
    r = s.run(timeout=20)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stderr.startswith(expect), r.stderr
    assert not os.path.exists(s.pid_path)


# --- signals ----------------------------------------------------------------------------------------

def _reload_v2(s: Server, port: int) -> None:
    s.write_conf(conf(port).replace('return 200 "v1"', 'return 200 "v2"'))


def test_hup_reload_new_config_new_workers(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    old = set(children(master))
    assert get(port, "/v")[2] == b"v1"
    _reload_v2(s, port)
    s.kill(signal.SIGHUP)
    assert wait_for(lambda: len(set(children(master)) - old) == 2)
    new = set(children(master)) - old
    assert wait_for(lambda: not any(alive(p) and proc_stat(p)[1] == master for p in old), 10)  # type: ignore[index]
    assert set(children(master)) == new
    for _ in range(10):
        assert get(port, "/v")[2] == b"v2"
        assert int(get(port, "/pid")[2]) in new
    log = s.log()
    assert re.search(rf"\[notice\] {master}#{master}: signal 1 \(SIGHUP\) received from \d+, reconfiguring", log)
    for p in old:
        assert f"[notice] {p}#{p}: gracefully shutting down" in log
        assert f"worker process {p} exited with code 0" in log
    assert "[alert]" not in log and "[emerg]" not in log


def test_hup_with_broken_config_keeps_old_workers(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    old = children(master)
    good = conf(port)
    broken = good.replace("location /v {", "location /v {\n        bogus_directive 1;")
    s.write_conf(broken.replace('"v1"', '"v2"'))
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if "bogus_directive" in t)
    s.kill(signal.SIGHUP)
    assert wait_for(lambda: "bogus_directive" in s.log())
    assert re.search(rf'^{TS} \[emerg\] {master}#{master}: unknown directive "bogus_directive" in '
                     rf"{re.escape(s.conf_path)}:{line}$", s.log(), re.M), s.log()
    time.sleep(0.3)
    assert children(master) == old
    for _ in range(5):
        assert get(port, "/v")[2] == b"v1"
    # a later good reload works
    _reload_v2(s, port)
    s.kill(signal.SIGHUP)
    assert wait_for(lambda: get(port, "/v")[2] == b"v2")


def test_hup_with_unbindable_new_listen_keeps_old_workers(server: Callable[..., Server]) -> None:
    port, port2 = free_port(), free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    old = children(master)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port2))
    blocker.listen(1)
    try:
        s.write_conf(conf(port, extra=f"listen 127.0.0.1:{port2};").replace('"v1"', '"v2"'))
        s.kill(signal.SIGHUP)
        assert wait_for(lambda: "still could not bind()" in s.log(), 10)
    finally:
        blocker.close()
    assert f"bind() to 127.0.0.1:{port2} failed (98: Address already in use)" in s.log()
    assert children(master) == old
    assert get(port, "/v")[2] == b"v1"


BIG_SIZE = 24 * 1024 * 1024


def _slow_client(port: int) -> tuple[socket.socket, int, bytes]:
    """Start GET /big.bin with a tiny receive buffer; returns (socket,
    content-length, body bytes read so far)."""
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += c.recv(4096)
    head, _, body = buf.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    assert m and head.startswith(b"HTTP/1.1 200")
    return c, int(m.group(1)), body


@pytest.fixture(scope="module")
def big() -> bytes:
    return os.urandom(BIG_SIZE)


def test_quit_waits_for_in_flight_request(server: Callable[..., Server], big: bytes) -> None:
    port = free_port()
    s = server(conf(port), files={"html/big.bin": big})
    master = s.master_pid
    c, length, body = _slow_client(port)
    assert length == BIG_SIZE
    got = [body]
    n = len(body)
    s.kill(signal.SIGQUIT)
    # read slowly for a second: the transfer must still be going on
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        b = c.recv(4096)
        assert b
        got.append(b)
        n += len(b)
        time.sleep(0.005)
    assert n < length, "the transfer finished too fast to test anything"
    assert alive(master)
    assert len(children(master)) >= 1
    assert "gracefully shutting down" in s.log()
    # new connections are refused once the listeners are closed
    assert wait_for(lambda: _refused(port), 5)
    # the in-flight response completes
    c.settimeout(20)
    while n < length:
        b = c.recv(1 << 20)
        assert b, f"connection closed after {n} of {length} bytes"
        got.append(b)
        n += len(b)
    assert n == length
    assert hashlib.sha256(b"".join(got)).digest() == hashlib.sha256(big).digest()
    # the response began before QUIT (keep-alive); the worker closes the
    # connection once it is idle and then exits
    assert c.recv(10) == b""
    c.close()
    assert s.proc is not None and s.proc.wait(10) == 0
    assert not os.path.exists(s.pid_path)
    assert re.search(rf"\[notice\] {master}#{master}: exit$", s.log(), re.M)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_term_and_int_exit_quickly(server: Callable[..., Server], big: bytes, sig: int) -> None:
    port = free_port()
    s = server(conf(port), files={"html/big.bin": big})
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    kids = children(master)
    c, length, body = _slow_client(port)
    t0 = time.monotonic()
    s.kill(sig)
    assert s.proc is not None and s.proc.wait(10) == 0
    took = time.monotonic() - t0
    assert took < 2.0, took
    assert not any(alive(k) for k in kids)
    assert not os.path.exists(s.pid_path)
    # the slow client got cut off
    c.settimeout(5)
    n = len(body)
    try:
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            n += len(b)
    except ConnectionResetError:
        pass
    assert n < length
    c.close()


def test_usr1_reopens_logs(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    for i in range(4):
        get(port, f"/v?before={i}")
    access = s.path("logs/access.log")
    assert wait_for(lambda: open(access).read().count("before=") == 4)
    os.rename(access, access + ".1")
    os.rename(s.path("logs/error.log"), s.path("logs/error.log.1"))
    s.kill(signal.SIGUSR1)
    # master and both workers reopen; as nginx, each logs it before reopening,
    # so into the old file, and then writes to the new one
    old_log = s.path("logs/error.log.1")
    assert wait_for(lambda: open(old_log).read().count(": reopening logs") == 2, 5), open(old_log).read()
    assert "signal 10 (SIGUSR1) received from" in open(old_log).read()
    assert wait_for(lambda: os.path.exists(s.path("logs/error.log")), 5)
    for i in range(6):
        get(port, f"/v?after={i}")
    assert wait_for(lambda: os.path.exists(access) and open(access).read().count("after=") == 6)
    assert "after=" not in open(access + ".1").read()
    # a worker forked after the reopen (respawn) writes to the new files too
    victim = children(master)[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: len(children(master)) == 2 and victim not in children(master))
    for i in range(6):
        get(port, f"/v?respawn={i}")
    assert wait_for(lambda: open(access).read().count("respawn=") == 6)
    assert "respawn=" not in open(access + ".1").read()
    assert f"worker process {victim} exited on signal 9" in s.log()


def test_killed_worker_is_replaced(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    before = children(master)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    # /proc can list the replacement a moment before or after the victim goes
    assert wait_for(lambda: len(children(master)) == 2 and victim not in children(master)
                    and set(children(master)) - set(before))
    new = (set(children(master)) - set(before)).pop()
    log = s.log()
    assert re.search(rf"^{TS} \[alert\] {master}#{master}: worker process {victim} exited on signal 9$", log, re.M)
    assert re.search(rf"^{TS} \[notice\] {master}#{master}: start worker process {new}$", log, re.M)
    assert log.index(f"exited on signal 9") < log.index(f"start worker process {new}")
    for _ in range(20):
        assert get(port, "/v")[2] == b"v1"
    st = status(port)
    assert st["active"] == 1 and st["writing"] == 1 and st["reading"] == 0


def test_killed_worker_under_load_keeps_serving(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    stop = threading.Event()
    ok = [0]
    errors: list[str] = []

    def load() -> None:
        while not stop.is_set():
            try:
                if get(port, "/v")[0] == 200:
                    ok[0] += 1
            except (OSError, ValueError) as e:
                errors.append(repr(e))

    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(0.3)
        for _ in range(3):
            victim = children(master)[0]
            os.kill(victim, signal.SIGKILL)
            assert wait_for(lambda: len(children(master)) == 2 and victim not in children(master))
            time.sleep(0.2)
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(10)
    assert ok[0] > 50
    # a request in flight on the killed worker may fail; nothing after that
    assert len(errors) <= 3, errors
    assert get(port, "/v")[2] == b"v1"


def test_error_log_line_format(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    kids = children(master)
    st, _, _ = get(port, "/missing.html?x=1", host=f"localhost:{port}")
    assert st == 404
    pat = re.compile(
        rf'^(\d{{4}})/(\d{{2}})/(\d{{2}}) (\d{{2}}):(\d{{2}}):(\d{{2}}) \[error\] (\d+)#(\d+): \*(\d+) '
        rf'open\(\) "{re.escape(s.path("html/missing.html"))}" failed \(2: No such file or directory\), '
        rf'client: 127\.0\.0\.1, server: localhost, request: "GET /missing\.html\?x=1 HTTP/1\.1", '
        rf'host: "localhost:{port}"$', re.M)
    assert wait_for(lambda: pat.search(s.log()), 5), s.log()
    m = pat.search(s.log())
    assert m is not None
    pid, tid = int(m.group(7)), int(m.group(8))
    assert pid == tid and pid in kids
    assert int(m.group(9)) > 0
    t = time.localtime()
    assert int(m.group(1)) in (t.tm_year, t.tm_year - 1)


# --- stub_status across workers ---------------------------------------------------------------------

def _spread(port: int, n: int) -> set[int]:
    """n requests, each on its own connection, from 4 threads; the worker pids seen."""
    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda _: get(port, "/pid"), range(n)))
    assert all(r[0] == 200 for r in res)
    return {int(r[2]) for r in res}


def _settled_status(port: int) -> tuple[dict[str, int], int]:
    """Poll until only the status connection itself is active; (status, polls)."""
    polls = 0
    deadline = time.monotonic() + 5
    while True:
        st = status(port)
        polls += 1
        if st["active"] == 1 or time.monotonic() > deadline:
            return st, polls


def test_stub_status_sums_workers(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    N, pids = 0, set()
    for _ in range(10):  # a worker just forked may not accept yet
        pids |= _spread(port, 100)
        N += 100
        if pids == set(children(master)) and N >= 300:
            break
    assert pids == set(children(master)), "both workers should have served"
    st, polls = _settled_status(port)
    assert st["accepts"] == st["handled"] == N + polls
    assert st["requests"] == N + polls
    assert (st["active"], st["reading"], st["writing"], st["waiting"]) == (1, 0, 1, 0)
    # keep-alive connections held open show up as Waiting, on both workers
    socks = []
    for _ in range(6):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(b"GET /v HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        socks.append(c)
    idle = socket.create_connection(("127.0.0.1", port), timeout=5)  # no request yet: Reading
    time.sleep(0.2)
    st2 = status(port)
    assert st2["active"] == 8
    assert (st2["reading"], st2["writing"], st2["waiting"]) == (1, 1, 6)
    assert st2["active"] == st2["reading"] + st2["writing"] + st2["waiting"]
    assert st2["accepts"] == st["accepts"] + 8
    assert st2["requests"] == st["requests"] + 7
    for c in socks:
        c.close()
    idle.close()


def test_stub_status_survives_reload(server: Callable[..., Server]) -> None:
    port = free_port()
    s = server(conf(port))
    master = s.master_pid
    assert wait_for(lambda: len(children(master)) == 2)
    _spread(port, 100)
    before, _ = _settled_status(port)
    old = set(children(master))
    _reload_v2(s, port)
    s.kill(signal.SIGHUP)
    assert wait_for(lambda: not (set(children(master)) & old) and len(children(master)) == 2)
    _spread(port, 50)
    after, polls = _settled_status(port)
    assert after["accepts"] == before["accepts"] + 50 + polls
    assert after["handled"] == after["accepts"]
    assert after["requests"] == before["requests"] + 50 + polls
    assert (after["active"], after["reading"], after["writing"], after["waiting"]) == (1, 0, 1, 0)
    # and after a killed worker (gauges of the dead slot are reset)
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /v HTTP/1.1\r\nHost: localhost\r\n\r\n")
    c.recv(4096)
    for p in children(master):
        os.kill(p, signal.SIGKILL)
    assert wait_for(lambda: len(children(master)) == 2)
    c.close()
    final, polls2 = _settled_status(port)
    assert final["accepts"] >= after["accepts"] + 1
    assert (final["active"], final["reading"], final["writing"], final["waiting"]) == (1, 0, 1, 0)


@pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")
def test_stub_status_format_matches_nginx(server: Callable[..., Server]) -> None:
    pages = {}
    heads = {}
    for kind in ("nginx", "portico"):
        port = free_port()
        srv = server(base_conf(f"server {{ listen 127.0.0.1:{port}; location = /status {{ stub_status; }} }}",
                               workers=2), kind=kind)
        assert srv
        st, h, body = get(port, "/status")
        assert st == 200
        assert STATUS_RE.fullmatch(body), body
        pages[kind] = re.sub(rb"\d+", b"N", body)
        heads[kind] = (h.get("content-type"), sorted(h))
    assert pages["portico"] == pages["nginx"]
    assert heads["portico"] == heads["nginx"]


# --- shared zones in the master ------------------------------------------------------------------------

ZONE_SCRIPT = r'''
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from portico.core.cycle import Cycle
from portico.core.process.master import Master, WorkerProc, init_zones, STATUS_ZONE
cycle = Cycle(sys.argv[2], sys.argv[3])
cycle.load()
cycle.zones["limits"] = (8 * 4096 * 4, "limit_req")
cycle.open_logs()
init_zones(cycle, None)
m = Master(cycle)
zone = cycle.shm.get(STATUS_ZONE)
limits = cycle.shm.get("limits")
limits.data = "handle"
off = limits.alloc(64)
limits.buf[off] = 42
c = cycle.status_counters
slot = c.acquire_slot()
c.slot(slot).incr("accepts", 5)
c.slot(slot).incr("active", 3)
pid = os.fork()
if pid == 0:
    zone.lock.acquire()
    limits.lock.acquire()
    os.kill(os.getpid(), signal.SIGKILL)
m.workers[pid] = WorkerProc(pid, 0, cycle, slot, 0, exiting=True)
while m.workers:
    time.sleep(0.01)
    m._reap()
print("status lock free:", zone.lock.acquire(True, 1.0))
print("limits lock free:", limits.lock.acquire(True, 1.0))
zone.lock.release(); limits.lock.release()
print("totals:", c.total("accepts"), c.total("active"), c.in_use(slot))
# a reload with the same zones keeps them, their content and their handles
new = Cycle(sys.argv[2], sys.argv[3])
new.load()
new.zones["limits"] = (8 * 4096 * 4, "limit_req")
init_zones(new, cycle)
print("kept:", new.shm.get("limits") is limits, new.shm.get("limits").data,
      new.shm.get("limits").buf[off], new.status_counters is c)
# another size: a fresh zone, as nginx
third = Cycle(sys.argv[2], sys.argv[3])
third.load()
third.zones["limits"] = (8 * 4096 * 8, "limit_req")
init_zones(third, new)
print("resized fresh:", third.shm.get("limits") is not limits, third.shm.get("limits").data)
'''


def test_master_force_unlocks_zones_of_a_dead_worker_and_keeps_zones_on_reload(server: Callable[..., Server]) -> None:
    s = server(conf(free_port()), start=False)
    r = subprocess.run([sys.executable, "-c", ZONE_SCRIPT, REPO, s.conf_path, s.prefix],
                       capture_output=True, text=True, timeout=30, env=ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "status lock free: True",
        "limits lock free: True",
        "totals: 5 0 False",
        "kept: True handle 42 True",
        "resized fresh: True None",
    ]
    log = s.log()
    assert re.search(rf'\[alert\] \d+#\d+: shared memory zone "stub_status" was locked by \d+', log)
    assert re.search(rf'\[alert\] \d+#\d+: shared memory zone "limits" was locked by \d+', log)
    assert re.search(r"worker process \d+ exited on signal 9", log)


def test_workers_drop_root_apply_rlimit_and_env(server) -> None:
    """As root, workers run as `user` (nobody by default), get
    worker_rlimit_nofile, and see only TZ and `env` variables."""
    import pwd
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    port = free_port()
    srv = server(base_conf(f"server {{ listen 127.0.0.1:{port}; return 200 ok; }}",
                           main_extra="worker_rlimit_nofile 4321; env KEEP_ME; env SET_ME=1;"))
    time.sleep(0.3)
    kids = [int(p) for p in open(f"/proc/{srv.master_pid}/task/{srv.master_pid}/children").read().split()]
    assert kids
    for pid in kids:
        status = open(f"/proc/{pid}/status").read()
        uid = int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))
        assert uid == pwd.getpwnam("nobody").pw_uid
        limits = open(f"/proc/{pid}/limits").read()
        assert re.search(r"Max open files\s+4321\s+4321", limits)



def test_worker_environment_is_tz_plus_env_directives(tmp_path) -> None:
    """ngx_worker_process_init: a worker keeps TZ and the `env` variables only
    (checked in a forked child running the real init on a real Cycle)."""
    from portico.core.cycle import Cycle
    from portico.core.core_module import worker_process_init
    conf = tmp_path / "nginx.conf"
    conf.write_text("user root; env KEEP_ME; env SET_ME=1; events {}\n" if os.geteuid() == 0
                    else "env KEEP_ME; env SET_ME=1; events {}\n")
    cycle = Cycle(str(conf), str(tmp_path))
    cycle.load()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.environ.update(KEEP_ME="k", DROP_ME="d", TZ="UTC")
        worker_process_init(cycle)
        os.write(w, repr(sorted(os.environ.items())).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.waitpid(pid, 0)
    assert data.decode() == repr([("KEEP_ME", "k"), ("SET_ME", "1"), ("TZ", "UTC")])
