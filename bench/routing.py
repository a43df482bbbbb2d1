#!/usr/bin/env python3
"""Routing benchmark: ten regex locations and a 1,000-entry map, Portico and
Debian's nginx with the same config, side by side.

Cases (each a ``wrk -t1 -c50`` run over keep-alive, ``worker_processes 1``):

1. ``regex10``: ``GET /r9/item/123``: a prefix miss, then the ten regex
   locations tried in order; the tenth matches and ``return 200`` prints a
   named capture and a ``map`` lookup (key 500 of 1,000, exact match) whose
   source is itself a regex ``map`` over ``$uri``.
2. ``map_regex``: the same location, with a key that misses the 1,000 exact
   entries and falls through to the map's regex entries.

Usage: ``python3 bench/routing.py [--duration S] [--json FILE]``.

Invariants:
- Loopback only; each server runs in its own temporary prefix through
  tests/harness.py and is removed at the end (also on errors).
- Both servers get the identical config text; only the listen port differs.
- Every answer is checked before the load runs (status and body), and wrk's
  non-2xx count is printed, so a broken route cannot pass as fast.
- Each run is bounded (wrk ``-d`` at most 10 s).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

from harness import Server, base_conf, free_port, have_nginx  # noqa: E402
from static import drain_output, finish, http_get, run_wrk  # noqa: E402

MAP_ENTRIES = 1000


def make_conf(port: int) -> str:
    entries = "\n".join(f"        /item/{i} value{i};" for i in range(MAP_ENTRIES))
    regexes = "\n".join(
        f'        location ~ ^/r{n}/(?<kind>[a-z]+)/(\\d+)$ {{ return 200 "r{n} $kind $mapped\\n"; }}'
        for n in range(10))
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location /static/ {{ return 404; }}
        location /other/ {{ return 404; }}
{regexes}
    }}""", http_extra=f"""
    map $uri_tail $mapped {{
        default none;
{entries}
        ~^/item/9\\d\\d\\d+$ big;
        ~^/item/(?<n>\\d+)$ regex-$n;
    }}
    map $uri $uri_tail {{
        ~^/r\\d+(?<t>/.*)$ $t;
    }}""", error_level="warn")


CASES = {
    "regex10": ("/r9/item/500", b"r9 item value500\n"),
    "map_regex": ("/r9/item/12345", b"r9 item regex-12345\n"),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if not have_nginx():
        print("nginx is not installed", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Any]] = {}
    for kind in ("nginx", "portico"):
        port = free_port()
        srv = Server(make_conf(port), kind=kind)
        try:
            srv.start()
            drain_output(srv)
            for case, (path, want) in CASES.items():
                status, length = http_get(port, path)
                if status != 200 or length != len(want):
                    raise RuntimeError(f"{kind} {path}: {status}, {length} bytes (want {len(want)})")
            for case, (path, _) in CASES.items():
                run_wrk(f"http://127.0.0.1:{port}{path}", 1)  # warm-up
                res = run_wrk(f"http://127.0.0.1:{port}{path}", args.duration)
                results.setdefault(case, {})[kind] = res
                print(f"{kind:8} {case:10} {res['rps']:10.0f} req/s  non-2xx {res['non_2xx_3xx']}",
                      file=sys.stderr)
        finally:
            finish(srv)
    print(f"{'case':12} {'nginx':>10} {'portico':>10} {'ratio':>7}")
    for case, by in results.items():
        n, p = by["nginx"]["rps"], by["portico"]["rps"]
        print(f"{case:12} {n:10.0f} {p:10.0f} {p / n if n else 0:7.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({c: {k: {kk: vv for kk, vv in v.items() if kk != "raw"} for k, v in by.items()}
                       for c, by in results.items()}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
