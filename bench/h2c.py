#!/usr/bin/env python3
"""HTTP/2 benchmark: h2load against Debian's nginx and Portico, same config.

Prior-knowledge h2c (``listen ... http2``, which nginx 1.22 accepts on a
plain listener), a 100-byte file, ``h2load -c 50 -m 10``, ``worker_processes
1`` for both; prints req/s for each and the ratio.  ``--profile`` also runs
py-spy on the Portico worker during a second run and prints where the time
goes: the ``h2``/``hpack``/``hyperframe`` codec versus Portico's own code.

Usage: ``python3 bench/h2c.py [--requests N] [--profile]``.

Invariants:
- Loopback only; both servers live in temporary prefixes (tests/harness.py)
  and are stopped and removed at the end, also on errors.
- Every run is bounded: h2load stops after ``--requests`` requests and is
  killed after 60 s; py-spy samples for at most 15 s.
- Both servers get the identical config text; only the port differs.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness import Server, children, free_port, have_nginx  # noqa: E402

H2LOAD = shutil.which("h2load") or "/usr/bin/h2load"
PYSPY = shutil.which("py-spy")
SMALL = b"0123456789" * 10


def conf(port: int) -> str:
    return f"""
worker_processes 1;
daemon off;
pid logs/nginx.pid;
error_log logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;
    server {{
        listen 127.0.0.1:{port} http2;
        root html;
    }}
}}
"""


def h2load(port: int, requests: int) -> float:
    out = subprocess.run([H2LOAD, "-c", "50", "-m", "10", "-n", str(requests), f"http://127.0.0.1:{port}/small.txt"],
                         capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not m or not ok or ok.group(1) != ok.group(2):
        print(out, file=sys.stderr)
    return float(m.group(1)) if m else 0.0


def profile(port: int, pid: int, requests: int) -> None:
    if PYSPY is None:
        print("py-spy is not installed: no profile")
        return
    raw = tempfile.mktemp(suffix=".txt")
    spy = subprocess.Popen([PYSPY, "record", "-p", str(pid), "-r", "200", "-d", "15", "-f", "raw", "-o", raw,
                            "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    h2load(port, requests)
    spy.wait(30)
    if not os.path.exists(raw):
        print("py-spy produced no profile")
        return
    own: collections.Counter[str] = collections.Counter()  # leaf frame's area
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    with open(raw) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if not n.isdigit():
                continue
            count = int(n)
            frames = stack.split(";")
            leaf = frames[-1]
            total += count
            # attribute the sample to the innermost frame that is ours or the codec's
            area = "other (uvloop, stdlib, idle)"
            for fr in reversed(frames):
                m = re.search(r"\(([^:()]+):\d+\)$", fr)
                path = m.group(1) if m else ""
                if re.match(r"(.*/)?(h2|hpack|hyperframe)/", path) and "portico/" not in path:
                    area = "h2 codec (h2, hpack, hyperframe)"
                    break
                if "portico/http/proto/h2" in path:
                    area = "portico HTTP/2 layer (h2.py, h2_stream.py)"
                    break
                if "portico/" in path:
                    area = "portico request processing (phases, static, log...)"
                    break
            own[area] += count
            funcs[leaf] += count
    os.unlink(raw)
    print(f"\npy-spy: {total} samples of the Portico worker under h2load")
    for area, n in own.most_common():
        print(f"  {100 * n / max(total, 1):5.1f}%  {area}")
    print("  top leaf functions:")
    for fn, n in funcs.most_common(12):
        print(f"  {100 * n / max(total, 1):5.1f}%  {fn}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=50000)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(H2LOAD):
        sys.exit("h2load is not installed (apt-get install nghttp2-client)")
    kinds = ["nginx", "portico"] if have_nginx() else ["portico"]
    results: dict[str, float] = {}
    for kind in kinds:
        port = free_port()
        s = Server(conf(port), kind, {"html/small.txt": SMALL})
        try:
            s.start()
            h2load(port, 2000)  # warm up
            results[kind] = h2load(port, args.requests)
            print(f"{kind:8s} {results[kind]:10.0f} req/s  (h2load -c 50 -m 10 -n {args.requests}, 1 worker)")
            if kind == "portico" and args.profile:
                workers = children(s.master_pid)
                if workers:
                    profile(port, workers[0], args.requests)
        finally:
            s.cleanup()
    if len(results) == 2 and results["nginx"]:
        print(f"ratio portico/nginx: {results['portico'] / results['nginx']:.2f}")


if __name__ == "__main__":
    main()
