#!/usr/bin/env python3
"""Static-file benchmark: Portico and Debian's nginx, same config, side by side.

Cases (the bar Portico must meet is in brackets):

1. ``small``: a 100-byte file over keep-alive, ``wrk -t1 -c50 -d8s --latency``,
   with ``worker_processes 1`` and then 2, access_log on        [req/s >= 0.6x nginx]
2. ``big``: a 1 MiB file, same wrk, ``sendfile on``             [req/s >= 0.9x nginx]
3. ``idle``: 10,000 idle keep-alive connections (each has done one request),
   server memory (PSS of master + workers) after minus before  [bytes/conn <= 3x nginx]

Usage: ``python3 bench/static.py [--quick] [--json FILE] [--only small,big,idle]
[--workers 1,2] [--conns N] [--duration S]``.  See bench/README.md.

Invariants:
- Loopback only; every server lives in its own temporary prefix (tests/harness.py)
  and is stopped and removed at the end, also on errors and on Ctrl-C.
- Every load run is bounded: wrk ``-d`` is at most 10 s, and a watchdog
  stops the whole script after ``--budget`` seconds (default 340).
- Both servers get the identical config text; only the listen port differs.
- After every run the script reports what a human should look at: wrk socket
  errors and non-2xx/3xx answers, access-log status codes and line counts,
  new error.log lines at warn level or worse, and workers that died or were
  respawned.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import resource
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import children, stat_fields, Server, free_port, have_nginx  # noqa: E402

WRK = shutil.which("wrk") or "/usr/bin/wrk"
KINDS = ("nginx", "portico")
SMALL = b"0123456789" * 10          # 100 bytes
BIG_SIZE = 1 << 20                  # 1 MiB

BARS = {  # case key -> (comparison, portico/nginx ratio)
    "small_rps": (">=", 0.6),
    "big_rps": (">=", 0.9),
    "idle_bytes": ("<=", 3.0),
}


class Budget(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- config ----------------------------------------------------------------------------------

def snapshot_portico(dest_root: str, tries: int = 4) -> str:
    """Copy portico/ to ``dest_root`` and make ``-m portico`` run that copy.

    Other people edit the working tree while a benchmark runs; a frozen copy
    keeps every server of one run on the same code.  A copy that does not
    import (caught mid-edit) is retaken a few seconds later, and then the
    committed version (git HEAD) is used.  Returns where the copy came from."""
    import hashlib
    # workers started as root run as "nobody" and import some modules late:
    # they must be able to read the copy (mkdtemp makes it 0700)
    os.chmod(dest_root, 0o755)
    for attempt in range(tries + 1):
        dst = os.path.join(dest_root, "portico")
        shutil.rmtree(dst, ignore_errors=True)
        if attempt < tries:
            source = "working tree"
            shutil.copytree(os.path.join(REPO, "portico"), dst,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            # last resort: the committed version
            head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                  capture_output=True, text=True).stdout.strip()
            source = f"git {head}"
            arch = subprocess.run(["git", "-C", REPO, "archive", "HEAD", "portico"], capture_output=True)
            subprocess.run(["tar", "-x", "-C", dest_root], input=arch.stdout, check=True)
        p = subprocess.run([sys.executable, "-c", "import portico.cli, portico.http.proto.h1, portico.modules"],
                           cwd=dest_root, capture_output=True, text=True, timeout=60)
        if p.returncode == 0:
            h = hashlib.sha1()
            for base, dirs, files in sorted(os.walk(dst)):
                dirs.sort()
                for name in sorted(files):
                    with open(os.path.join(base, name), "rb") as f:
                        h.update(name.encode() + f.read())
            # `python3 -m portico` puts the cwd first on sys.path: run from the copy.
            os.chdir(dest_root)
            return f"{source} (sha1 of sources {h.hexdigest()[:12]})"
        log(f"portico snapshot of the {source} does not import (attempt {attempt + 1}): "
            f"{p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
        if attempt < tries - 1:
            time.sleep(5)
    raise RuntimeError("could not take an importable snapshot of portico/")


def make_conf(port: int, workers: int, keepalive_timeout: str = "75s") -> str:
    return f"""
worker_processes {workers};
worker_rlimit_nofile 20000;
daemon off;
master_process on;
pid logs/nginx.pid;
error_log logs/error.log info;

events {{
    worker_connections 20000;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    sendfile on;
    keepalive_timeout {keepalive_timeout};

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root %PREFIX%/html;
    }}
}}
"""


def start_server(kind: str, workers: int, keepalive_timeout: str = "75s") -> tuple[Server, int]:
    port = free_port()
    files = {"html/small.txt": SMALL, "html/big.bin": os.urandom(BIG_SIZE)}
    srv = Server(make_conf(port, workers, keepalive_timeout), kind=kind, files=files)
    try:
        srv.start()
        drain_output(srv)
        wait_ready(srv, port, workers)
    except BaseException:
        srv.cleanup()
        raise
    return srv, port


def drain_output(srv: Server) -> None:
    """Read the server's stdout/stderr pipes in the background (a full pipe would
    block it) and keep the first 64 KiB of each in ``srv.bench_output``."""
    srv.bench_output = {"stdout": bytearray(), "stderr": bytearray()}  # type: ignore[attr-defined]
    proc = srv.proc
    assert proc is not None

    def pump(name: str, stream: Any) -> None:
        buf = srv.bench_output[name]  # type: ignore[attr-defined]
        try:
            while True:
                b = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
                if not b:
                    return
                if len(buf) < 65536:
                    buf += b[:65536 - len(buf)]
        except (OSError, ValueError):
            return
    for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        if stream is not None:
            threading.Thread(target=pump, args=(name, stream), daemon=True).start()


def server_output(srv: Server) -> str:
    out = getattr(srv, "bench_output", None)
    if not out:
        return ""
    return (bytes(out["stdout"]) + bytes(out["stderr"])).decode("utf-8", "replace")


def finish(srv: Server) -> str:
    """Stop the server, remove its prefix; what it printed on stdout/stderr."""
    try:
        srv.stop()
        time.sleep(0.1)
        return server_output(srv)
    finally:
        srv.cleanup()


def wait_ready(srv: Server, port: int, workers: int, timeout: float = 15.0) -> None:
    """Every worker forked and both files served with the right length."""
    deadline = time.monotonic() + timeout
    while len(children(srv.master_pid)) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{srv.kind}: {workers} workers did not start; error.log:\n{srv.log()[-2000:]}")
        time.sleep(0.05)
    for path, size in (("/small.txt", len(SMALL)), ("/big.bin", BIG_SIZE)):
        while True:
            try:
                status, length = http_get(port, path)
            except OSError as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{srv.kind} GET {path} failed: {e!r}; error.log:\n"
                                       f"{srv.log()[-2000:]}{server_output(srv)[-2000:]}") from None
                time.sleep(0.05)
                continue
            if status == 200 and length == size:
                break
            raise RuntimeError(f"{srv.kind} GET {path}: status {status}, body {length} bytes")


def http_get(port: int, path: str) -> tuple[int, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), len(body)


# --- processes and memory --------------------------------------------------------------------

def tree(srv: Server) -> list[int]:
    m = srv.master_pid
    return [m] + children(m)


def mem_kb(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB from smaps_rollup; RSS from status when rollup is missing."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = pss = int(line.split()[1])
    return pss, rss


def tree_mem(srv: Server) -> tuple[int, int, list[int]]:
    pids = tree(srv)
    pss = rss = 0
    for p in pids:
        a, b = mem_kb(p)
        pss += a
        rss += b
    return pss * 1024, rss * 1024, pids


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for p in pids:
        fields = stat_fields(p)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def nofile_limit(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return line.split()[3]
    except OSError:
        pass
    return "?"


# --- logs --------------------------------------------------------------------------------------

_ERR_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] \d+#\d+: (?:\*\d+ )?")
_BAD_LEVELS = ("warn", "error", "crit", "alert", "emerg")


class LogWatch:
    """New lines of access.log and error.log since the last ``mark()``."""

    def __init__(self, srv: Server) -> None:
        self.srv = srv
        self.mark()

    def _size(self, name: str) -> int:
        try:
            return os.path.getsize(self.srv.path(f"logs/{name}"))
        except OSError:
            return 0

    def mark(self) -> None:
        self.acc = self._size("access.log")
        self.err = self._size("error.log")

    def _read(self, name: str, off: int) -> bytes:
        try:
            with open(self.srv.path(f"logs/{name}"), "rb") as f:
                f.seek(off)
                return f.read()
        except OSError:
            return b""

    def access_statuses(self) -> tuple[int, dict[str, int]]:
        data = self._read("access.log", self.acc)
        codes: collections.Counter[str] = collections.Counter()
        lines = 0
        for line in data.splitlines():
            lines += 1
            # combined: ... "request" STATUS BYTES "referer" "ua"
            m = re.search(rb'" (\d{3}) ', line)
            codes[m.group(1).decode() if m else "?"] += 1
        return lines, dict(codes)

    def error_summary(self) -> dict[str, int]:
        """Distinct messages at warn level or worse (and the odd info line), counted."""
        data = self._read("error.log", self.err).decode("utf-8", "replace")
        out: collections.Counter[str] = collections.Counter()
        for line in data.splitlines():
            m = _ERR_PREFIX.match(line)
            if not m:
                out["[raw] " + line[:200]] += 1  # tracebacks and other unprefixed output
                continue
            level = m.group(1)
            msg = line[m.end():]
            msg = re.sub(r", client: .*$", "", msg)
            msg = re.sub(r"\b\d+\.\d+\.\d+\.\d+\b", "ADDR", msg)
            msg = re.sub(r"\b\d{2,}\b", "N", msg)
            if level in _BAD_LEVELS:
                out[f"[{level}] {msg[:200]}"] += 1
            elif level == "info":
                out[f"[info] {msg[:200]}"] += 1
        return dict(out)


def workers_changed(before: list[int], srv: Server) -> str | None:
    if srv.proc is None or srv.proc.poll() is not None:
        return f"master exited with {srv.proc.returncode if srv.proc else '?'}"
    now = tree(srv)
    if set(now) != set(before):
        gone = sorted(set(before) - set(now))
        new = sorted(set(now) - set(before))
        return f"worker pids changed: gone {gone}, new {new}"
    return None


# --- wrk ------------------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(url: str, duration: int) -> dict[str, Any]:
    duration = min(int(duration), 10)
    cmd = [WRK, "-t1", "-c50", f"-d{duration}s", "--latency", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    out = p.stdout + p.stderr
    res: dict[str, Any] = {"cmd": " ".join(cmd), "rc": p.returncode}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    res["p99_ms"] = float(m.group(1)) * _UNIT[m.group(2)] if m else None
    m = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    res["p50_ms"] = float(m.group(1)) * _UNIT[m.group(2)] if m else None
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    if m:
        mult = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}.get(m.group(2), 1)
        res["bytes_per_s"] = float(m.group(1)) * mult
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx_3xx"] = int(m.group(1)) if m else 0
    res["raw"] = out
    return res


# --- idle keep-alive connections ----------------------------------------------------------------

class NoFile:
    """Raise RLIMIT_NOFILE of this (client) process for the block, then restore it."""

    def __init__(self, need: int) -> None:
        self.need = need

    def __enter__(self) -> "NoFile":
        self.old = resource.getrlimit(resource.RLIMIT_NOFILE)
        soft, hard = self.old
        if soft < self.need:
            want_hard = hard if hard == resource.RLIM_INFINITY or hard >= self.need else self.need
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (self.need, want_hard))
            except (ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.old)
        except (ValueError, OSError):
            pass


def _response_complete(buf: bytes) -> int | None:
    """Status when ``buf`` holds one whole Content-Length response, else None."""
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return None
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
    if m is None or len(body) < int(m.group(1)):
        return None
    return int(head.split(b" ", 2)[1])


def open_idle(port: int, n: int, batch: int = 500, timeout: float = 90.0) -> tuple[list[socket.socket], dict[str, int]]:
    """``n`` keep-alive connections, each after one full request/response."""
    req = b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench-idle\r\n\r\n"
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    fails: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + timeout
    for start in range(0, n, batch):
        pending: dict[int, list[Any]] = {}
        for _ in range(min(batch, n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, 115):  # EINPROGRESS
                fails[f"connect: {os.strerror(err)}"] += 1
                s.close()
                continue
            pending[s.fileno()] = [s, "connect", b""]
            sel.register(s, selectors.EVENT_WRITE)
        while pending:
            if time.monotonic() > deadline:
                for s, _, _ in pending.values():
                    sel.unregister(s)
                    s.close()
                fails["timed out"] += len(pending)
                pending.clear()
                break
            for key, _ in sel.select(1.0):
                st = pending[key.fd]
                s = st[0]
                fail = None
                if st[1] == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail = f"connect: {os.strerror(err)}"
                    else:
                        s.send(req)
                        st[1] = "read"
                        sel.modify(s, selectors.EVENT_READ)
                else:
                    try:
                        b = s.recv(65536)
                    except OSError as e:
                        b = None
                        fail = f"recv: {e.strerror}"
                    if b == b"":
                        fail = "closed by server before the response"
                    elif b:
                        st[2] += b
                        status = _response_complete(st[2])
                        if status is not None:
                            sel.unregister(s)
                            del pending[key.fd]
                            if status != 200:
                                fails[f"status {status}"] += 1
                            if b"connection: close" in st[2].lower():
                                fails["server answered Connection: close"] += 1
                                s.close()
                            else:
                                done.append(s)
                            continue
                if fail:
                    sel.unregister(s)
                    del pending[key.fd]
                    s.close()
                    fails[fail] += 1
    sel.close()
    return done, dict(fails)


def still_open(socks: list[socket.socket]) -> int:
    """How many connections the server has not closed (nothing readable, no HUP)."""
    alive = 0
    for i in range(0, len(socks), 1000):
        p = select.poll()
        chunk = socks[i:i + 1000]
        for s in chunk:
            p.register(s, select.POLLIN | select.POLLHUP | select.POLLERR | select.POLLRDHUP)
        ready = {fd for fd, _ in p.poll(0)}
        alive += sum(1 for s in chunk if s.fileno() not in ready)
    return alive


def close_all(socks: list[socket.socket]) -> None:
    linger = struct.pack("ii", 1, 0)  # RST: no TIME_WAIT pile-up on the client side
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            s.close()
        except OSError:
            pass


def idle_case(kind: str, n: int, settle: float, cpu_window: float) -> dict[str, Any]:
    srv, port = start_server(kind, 1, keepalive_timeout="300s")
    res: dict[str, Any] = {}
    try:
        watch = LogWatch(srv)
        # warm up: a few connections and requests so lazy one-time allocations
        # (imports, first buffers, log file) are in the baseline
        with NoFile(4096):
            warm, _ = open_idle(port, 100, batch=100)
            close_all(warm)
        time.sleep(settle)
        pids_before = tree(srv)
        before_pss, before_rss, _ = tree_mem(srv)
        t0 = time.monotonic()
        with NoFile(n + 1024):
            socks, fails = open_idle(port, n)
            open_s = time.monotonic() - t0
            time.sleep(settle)
            pids = tree(srv)
            c0 = cpu_ticks(pids)
            time.sleep(cpu_window)
            c1 = cpu_ticks(pids)
            after_pss, after_rss, _ = tree_mem(srv)
            alive = still_open(socks)
            close_all(socks)
        time.sleep(settle)
        closed_pss, _, _ = tree_mem(srv)
        hz = os.sysconf("SC_CLK_TCK")
        res.update({
            "connections": n, "opened": len(socks), "alive": alive, "failures": fails,
            "open_seconds": round(open_s, 2),
            "pss_before": before_pss, "pss_after": after_pss, "pss_after_close": closed_pss,
            "rss_before": before_rss, "rss_after": after_rss,
            "bytes_per_conn": (after_pss - before_pss) / alive if alive else None,
            "rss_bytes_per_conn": (after_rss - before_rss) / alive if alive else None,
            "idle_cpu_percent": round(100.0 * (c1 - c0) / hz / cpu_window, 1),
            "worker_nofile_limit": nofile_limit(children(srv.master_pid)[0]) if children(srv.master_pid) else "?",
            "workers_changed": workers_changed(pids_before, srv),
        })
        res["access_log_lines"], res["access_statuses"] = watch.access_statuses()
        res["error_log"] = watch.error_summary()
        return res
    finally:
        out = finish(srv)
        if out.strip():
            res["server_output"] = out[-4000:]


# --- load cases ---------------------------------------------------------------------------------

def load_cases(workers: int, cases: list[str], duration: int, warmup: int,
               rounds: int) -> dict[str, dict[str, Any]]:
    """Each case ``rounds`` times, nginx and Portico alternating (who goes first
    swaps every round).  The reported run is the best req/s of the rounds
    (the one least disturbed by other load on the machine); every run is kept
    in ``runs`` and checked for errors."""
    servers: dict[str, tuple[Server, int]] = {}
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    try:
        for kind in KINDS:
            servers[kind] = start_server(kind, workers)
        for case in cases:
            path = "/small.txt" if case == "small" else "/big.bin"
            for rnd in range(rounds):
                for kind in (KINDS if rnd % 2 == 0 else KINDS[::-1]):
                    srv, port = servers[kind]
                    url = f"http://127.0.0.1:{port}{path}"
                    if warmup:
                        run_wrk(url, warmup)
                    watch = LogWatch(srv)
                    pids = tree(srv)
                    log(f"  {case} w{workers} {kind} round {rnd + 1}/{rounds}: wrk -d{duration}s {url}")
                    r = run_wrk(url, duration)
                    time.sleep(0.3)  # let the last log lines land
                    r["access_log_lines"], r["access_statuses"] = watch.access_statuses()
                    r["error_log"] = watch.error_summary()
                    r["workers_changed"] = workers_changed(pids, srv)
                    r["workers"] = workers
                    r["round"] = rnd + 1
                    r["loadavg"] = os.getloadavg()[0]
                    runs[f"{case}_w{workers}_{kind}"].append(r)
                    log(f"    {r['rps']:,.0f} req/s, p99 {fmt(r['p99_ms'], 'ms')}, errors {r['socket_errors']}, "
                        f"non-2xx/3xx {r['non_2xx_3xx']}, log {r['access_statuses']}")
    finally:
        for kind, (srv, _) in servers.items():
            out = finish(srv)
            if out.strip():
                results[f"output_w{workers}_{kind}"] = {"server_output": out[-4000:]}
    for key, rs in runs.items():
        best = dict(max(rs, key=lambda r: r["rps"]))
        best["runs"] = rs
        best["all_rps"] = [round(r["rps"]) for r in rs]
        results[key] = best
    return results


# --- report -------------------------------------------------------------------------------------

def fmt(v: Any, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "rps":
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:.2f}ms"
    if unit == "bytes":
        return f"{v:,.0f}B"
    if unit == "MiB":
        return f"{v / (1 << 20):.1f}MiB"
    return str(v)


def build_table(res: dict[str, Any], workers_list: list[int]) -> list[tuple[str, str, str, str, str]]:
    rows = []

    def add(label: str, a: Any, b: Any, unit: str, bar_key: str | None = None) -> None:
        ratio = (b / a) if (a and b is not None and unit) else None
        bar = ""
        if bar_key and ratio is not None:
            op, lim = BARS[bar_key]
            ok = ratio >= lim if op == ">=" else ratio <= lim
            bar = f"{op}{lim}x {'PASS' if ok else 'FAIL'}"
        rows.append((label, fmt(a, unit), fmt(b, unit), f"{ratio:.2f}x" if ratio is not None else "-", bar))

    for case, name in (("small", "100B keepalive"), ("big", "1MiB sendfile")):
        for w in workers_list:
            n = res.get(f"{case}_w{w}_nginx")
            p = res.get(f"{case}_w{w}_portico")
            if not n or not p:
                continue
            add(f"{name} w{w} req/s", n["rps"], p["rps"], "rps", f"{case}_rps")
            add(f"{name} w{w} p99", n["p99_ms"], p["p99_ms"], "ms")
    n, p = res.get("idle_nginx"), res.get("idle_portico")
    if n and p:
        add(f"idle conns ({n['alive']}/{p['alive']} open)", n["connections"], p["connections"], "")
        add("idle bytes/conn (PSS)", n["bytes_per_conn"], p["bytes_per_conn"], "bytes", "idle_bytes")
        add("idle bytes/conn (RSS)", n["rss_bytes_per_conn"], p["rss_bytes_per_conn"], "bytes")
        add("idle PSS before", n["pss_before"], p["pss_before"], "MiB")
        add("idle PSS with conns", n["pss_after"], p["pss_after"], "MiB")
        add("idle PSS after close", n["pss_after_close"], p["pss_after_close"], "MiB")
        rows.append(("idle CPU% while held", f"{n['idle_cpu_percent']}%", f"{p['idle_cpu_percent']}%", "-", ""))
    return rows


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    w0 = max([len("case")] + [len(r[0]) for r in rows]) + 2
    print(f"{'case':<{w0}}{'nginx':>14} {'portico':>14} {'ratio':>8}  bar")
    for label, a, b, ratio, bar in rows:
        print(f"{label:<{w0}}{a:>14} {b:>14} {ratio:>8}  {bar}")


def _strip_raw(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_raw(x) for k, x in v.items() if k != "raw"}
    if isinstance(v, list):
        return [_strip_raw(x) for x in v]
    return v


def observations(res: dict[str, Any]) -> list[str]:
    """Everything a human should look at, one line each."""
    notes = []
    for key, r in sorted(res.items()):
        if not isinstance(r, dict) or key in ("meta",):
            continue
        runs = r.get("runs") or [r]
        if len(runs) > 1:
            rps = [x["rps"] for x in runs]
            spread = (max(rps) - min(rps)) / max(rps) if max(rps) else 0
            notes.append(f"{key}: req/s per round {[round(x) for x in rps]}"
                         f"{'  (spread %.0f%%: noisy machine?)' % (100 * spread) if spread > 0.15 else ''}")
        errlog: collections.Counter[str] = collections.Counter()
        for x in runs:
            tag = f"{key} round {x['round']}" if "round" in x else key
            errs = {k: v for k, v in (x.get("socket_errors") or {}).items() if v}
            if errs:
                notes.append(f"{tag}: wrk socket errors {errs}")
            if x.get("non_2xx_3xx"):
                notes.append(f"{tag}: wrk counted {x['non_2xx_3xx']} non-2xx/3xx responses")
            odd = {k: v for k, v in (x.get("access_statuses") or {}).items() if k != "200"}
            if odd:
                notes.append(f"{tag}: access.log statuses other than 200: {odd}")
            if "requests" in x and x.get("access_log_lines") is not None:
                diff = x["access_log_lines"] - x["requests"]
                if abs(diff) > 100:
                    notes.append(f"{tag}: access.log has {x['access_log_lines']} lines for {x['requests']} "
                                 f"wrk responses ({diff:+d})")
            if x.get("workers_changed"):
                notes.append(f"{tag}: {x['workers_changed']}")
            if x.get("rc"):
                notes.append(f"{tag}: wrk exited {x['rc']}: {x.get('raw', '')[-300:]}")
            errlog.update(x.get("error_log") or {})
        for msg, cnt in sorted(errlog.items(), key=lambda kv: -kv[1]):
            notes.append(f"{key}: error.log x{cnt}: {msg}")
        if r.get("failures"):
            notes.append(f"{key}: idle connection failures {r['failures']}")
        if "alive" in r and r["alive"] != r["connections"]:
            notes.append(f"{key}: only {r['alive']} of {r['connections']} idle connections still open at measurement")
        if r.get("worker_nofile_limit", "20000") != "20000":
            notes.append(f"{key}: worker 'Max open files' = {r['worker_nofile_limit']} "
                         f"(config says worker_rlimit_nofile 20000)")
        if r.get("server_output"):
            notes.append(f"{key}: server printed on stdout/stderr:\n      "
                         + r["server_output"].strip().replace("\n", "\n      "))
    return notes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s runs, no warm-up, 2000 idle connections")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--only", default="small,big,idle", help="comma list of cases: small,big,idle")
    ap.add_argument("--workers", default="1,2", help="worker_processes values for the load cases")
    ap.add_argument("--duration", type=int, default=None, help="wrk -d seconds (max 10)")
    ap.add_argument("--conns", type=int, default=None, help="idle connections (default 10000)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="runs per load case and server, best kept (default 2, --quick 1)")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="run portico/ from the working tree instead of a copy taken at start")
    ap.add_argument("--budget", type=int, default=340, help="abort the whole run after this many seconds")
    args = ap.parse_args()

    if not have_nginx():
        print("nginx not found", file=sys.stderr)
        return 2
    if not os.path.exists(WRK):
        print("wrk not found", file=sys.stderr)
        return 2
    duration = min(args.duration or (2 if args.quick else 8), 10)
    warmup = 0 if args.quick else 1
    rounds = args.rounds or (1 if args.quick else 2)
    conns = args.conns or (2000 if args.quick else 10000)
    cases = [c.strip() for c in args.only.split(",") if c.strip()]
    workers_list = [int(w) for w in args.workers.split(",") if w.strip()]

    def on_alarm(signum: int, frame: Any) -> None:
        raise Budget(f"time budget of {args.budget}s exhausted")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(args.budget)

    t0 = time.monotonic()
    snap_root = tempfile.mkdtemp(prefix="portico-bench-src-")
    try:
        return run_all(args, cases, workers_list, duration, warmup, rounds, conns, snap_root, t0)
    finally:
        os.chdir(REPO)
        shutil.rmtree(snap_root, ignore_errors=True)


def run_all(args: Any, cases: list[str], workers_list: list[int], duration: int, warmup: int,
            rounds: int, conns: int, snap_root: str, t0: float) -> int:
    res: dict[str, Any] = {"meta": {"duration": duration, "warmup": warmup, "conns": conns,
                                    "cpus": os.cpu_count(), "nginx": subprocess.run(
                                        ["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
                                    "python": sys.version.split()[0], "rounds": rounds,
                                    "loadavg_start": os.getloadavg()[0]}}
    try:
        if args.no_snapshot:
            os.chdir(REPO)
            res["meta"]["portico_source"] = "working tree"
        else:
            res["meta"]["portico_source"] = "snapshot of " + snapshot_portico(snap_root)
        log(f"portico: {res['meta']['portico_source']}")
        load = [c for c in cases if c in ("small", "big")]
        if load:
            for w in workers_list:
                log(f"load cases, worker_processes {w}")
                res.update(load_cases(w, load, duration, warmup, rounds))
        if "idle" in cases:
            for kind in KINDS:
                log(f"idle case: {conns} keep-alive connections to {kind}")
                r = idle_case(kind, conns, settle=1.0, cpu_window=2.0)
                res[f"idle_{kind}"] = r
                log(f"    opened {r['opened']} in {r['open_seconds']}s, alive {r['alive']}, "
                    f"{fmt(r['bytes_per_conn'], 'bytes')}/conn, failures {r['failures']}")
    except Budget as e:
        log(f"ABORTED: {e}; printing what finished")
        res["meta"]["aborted"] = str(e)
    finally:
        signal.alarm(0)
    res["meta"]["elapsed_s"] = round(time.monotonic() - t0, 1)

    rows = build_table(res, workers_list)
    print()
    print_table(rows)
    notes = observations(res)
    if notes:
        print("\nobservations:")
        for n in notes:
            print("  " + n)
    print(f"\nportico: {res['meta'].get('portico_source')}; elapsed {res['meta']['elapsed_s']}s; "
          f"wrk -t1 -c50 -d{duration}s --latency, best of {rounds}"
          f"{', 1s warm-up per run' if warmup else ''}; {os.cpu_count()} CPUs; "
          f"load average at start {res['meta']['loadavg_start']:.2f}")
    if args.json:
        out = _strip_raw(res)
        out["table"] = [dict(zip(("case", "nginx", "portico", "ratio", "bar"), r)) for r in rows]
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
