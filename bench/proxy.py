#!/usr/bin/env python3
"""Reverse-proxy benchmark: Portico and Debian's nginx proxying to the same
backend (a third, separate nginx answering ``return 200`` with 100 bytes),
``upstream { keepalive 32; }``, ``wrk -t1 -c50 -d5s --latency``.

Usage: ``python3 bench/proxy.py [--workers 1,2] [--duration 5] [--conns 50]``.
Prints requests/s and p99 for both and the ratio (bar: >= 0.5x nginx).

Invariants:
- Loopback only; each server in its own temporary prefix (tests/harness.py),
  always stopped and removed at the end.
- Both front servers get the identical config text; only the port differs.
- After each run the front servers' error logs are checked for lines at
  warn level or worse, and wrk's non-2xx count is shown.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from harness import Server, base_conf, free_port, have_nginx  # noqa: E402

WRK = shutil.which("wrk") or "/usr/bin/wrk"
BODY = "0123456789" * 10


def backend_conf(port: int) -> str:
    return base_conf(f"server {{ listen 127.0.0.1:{port}; access_log off;"
                     f" location / {{ return 200 '{BODY}'; }} }}", workers=1)


def front_conf(port: int, backend: int, workers: int) -> str:
    return base_conf(f"upstream be {{ server 127.0.0.1:{backend}; keepalive 32; }}\n"
                     f"server {{ listen 127.0.0.1:{port}; access_log off;\n"
                     f"  location / {{ proxy_http_version 1.1; proxy_set_header Connection \"\";"
                     f" proxy_pass http://be; }} }}", workers=workers)


def wrk(port: int, duration: int, conns: int) -> tuple[float, float, str]:
    out = subprocess.run([WRK, "-t1", f"-c{conns}", f"-d{duration}s", "--latency",
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = 0.0
    if m:
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.*)", out)
    note = (f"non-2xx {non2xx.group(1)} " if non2xx else "") + (f"socket errors {errs.group(1)}" if errs else "")
    return rps, p99, note


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    a = ap.parse_args()
    if not have_nginx():
        print("Debian's nginx is not installed")
        return 1
    bport = free_port()
    backend = Server(backend_conf(bport), "nginx")
    servers = [backend]
    try:
        backend.start()
        for w in [int(x) for x in a.workers.split(",")]:
            res = {}
            for kind in ("nginx", "portico"):
                port = free_port()
                s = Server(front_conf(port, bport, w), kind)
                servers.append(s)
                s.start()
                wrk(port, 1, a.conns)  # warm-up: fill the keepalive pools
                res[kind] = wrk(port, a.duration, a.conns)
                bad = [ln for ln in s.log().splitlines() if re.search(r"\[(warn|error|crit|alert|emerg)\]", ln)]
                s.cleanup()
                if bad:
                    print(f"  {kind}: {len(bad)} error-log lines, first: {bad[0]}")
            n, p = res["nginx"], res["portico"]
            print(f"workers={w}: nginx {n[0]:.0f} req/s p99 {n[1]:.2f} ms {n[2]} | "
                  f"portico {p[0]:.0f} req/s p99 {p[1]:.2f} ms {p[2]} | ratio {p[0] / n[0]:.2f}x "
                  f"(bar 0.5x)")
    finally:
        for s in servers:
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
