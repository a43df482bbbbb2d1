#!/usr/bin/env python3
"""TLS benchmark: Portico and Debian's nginx on the same config, side by side.

Cases:
1. ``h2``: HTTP/2 over TLS, a 100-byte file, ``h2load -c50 -m10 -D S``
   (50 clients x 10 concurrent streams), 1 worker each.
2. ``h1``: HTTPS with HTTP/1.1 keep-alive, same file, ``h2load --h1 -c50``.
3. ``full`` / ``resumed``: TLS handshakes per second with
   ``openssl s_time -new`` (full) and ``-reuse`` (session resumption), TLS 1.2
   so that both servers resume from their session caches the same way;
   ``--clients`` s_time processes run in parallel and their rates are summed.

Usage: ``python3 bench/https.py [--duration 5] [--only h2,h1,full,resumed]``.
Prints each figure for both servers and the ratio portico/nginx.

Invariants:
- Loopback only; each server in its own temporary prefix (tests/harness.py),
  always stopped and removed at the end.
- Both servers get the identical config text (nginx 1.22 syntax:
  ``listen ... ssl http2``); only the port differs.
- Every run is bounded in time (h2load -D, s_time -time).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import Server, base_conf, free_port, have_nginx  # noqa: E402
from pki import server_cert  # noqa: E402

H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
SMALL = b"0123456789" * 10


def conf(port: int) -> str:
    crt, key = server_cert("bench.test")
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port} ssl http2;
        server_name bench.test;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        ssl_session_cache shared:SSL:10m;
        # h2load does not reconnect after a GOAWAY: no keep-alive limit in the run
        keepalive_requests 10000000;
        access_log off;
        root %PREFIX%/html;
    }}""", error_level="warn")


def h2load(port: int, duration: int, h1: bool) -> tuple[float, str]:
    args = [H2LOAD, "-c50", "-m1" if h1 else "-m10", "-D", str(duration), "--warm-up-time=1",
            f"https://127.0.0.1:{port}/small.txt"]
    if h1:
        args.insert(1, "--h1")
    out = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    st = re.search(r"requests: .*", out)
    return (float(m.group(1)) if m else 0.0), (st.group(0) if st else out[-300:])


def s_time(port: int, duration: int, reuse: bool, clients: int) -> float:
    """Handshakes/s summed over ``clients`` parallel ``openssl s_time`` runs
    (one s_time alone is the bottleneck, not the server)."""
    procs = [subprocess.Popen(["openssl", "s_time", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                               "-reuse" if reuse else "-new", "-time", str(duration)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(clients)]
    total = 0.0
    for p in procs:
        out = p.communicate(timeout=duration + 60)[0]
        m = re.search(r"(\d+) connections in (\d+) real seconds", out)
        if m:
            total += int(m.group(1)) / max(float(m.group(2)), 1.0)
    return total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--only", default="h2,h1,full,resumed")
    ap.add_argument("--clients", type=int, default=3, help="parallel s_time clients for full/resumed")
    a = ap.parse_args()
    if not have_nginx():
        print("Debian's nginx is not installed")
        return 1
    only = a.only.split(",")
    servers: dict[str, tuple[Server, int]] = {}
    try:
        for kind in ("nginx", "portico"):
            port = free_port()
            s = Server(conf(port), kind, files={"html/small.txt": SMALL})
            s.start()
            servers[kind] = (s, port)
        rows = []
        for case in only:
            res = {}
            for kind, (s, port) in servers.items():
                if case in ("h2", "h1"):
                    rps, note = h2load(port, a.duration, case == "h1")
                    res[kind] = rps
                    print(f"  {case:8s} {kind:8s} {rps:10.0f} req/s   {note}", flush=True)
                else:
                    res[kind] = s_time(port, a.duration, case == "resumed", a.clients)
                    print(f"  {case:8s} {kind:8s} {res[kind]:10.0f} handshakes/s", flush=True)
            ratio = res["portico"] / res["nginx"] if res["nginx"] else 0.0
            rows.append((case, res["nginx"], res["portico"], ratio))
        print(f"\n{'case':10s} {'nginx':>10s} {'portico':>10s} {'ratio':>7s}")
        for case, n, p, r in rows:
            print(f"{case:10s} {n:10.0f} {p:10.0f} {r:6.2f}x")
        for kind, (s, _) in servers.items():
            bad = [ln for ln in s.log().splitlines() if re.search(r"\[(warn|error|crit|alert|emerg)\]", ln)]
            if bad:
                print(f"{kind} error.log: {len(bad)} lines at warn or worse, e.g. {bad[0]}")
    finally:
        for s, _ in servers.values():
            s.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
