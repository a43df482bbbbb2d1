#!/usr/bin/env python3
"""Compression benchmark: a 100 KB HTML file with ``gzip on; gzip_comp_level 6;``
and the same file served by ``gzip_static on``, Portico and Debian's nginx
side by side (DESIGN.md section 6).

Cases (``wrk -t1 -c50 -dNs`` over keep-alive with ``Accept-Encoding: gzip``,
``worker_processes 1``, access_log on):

1. ``gzip6``: on-the-fly compression at level 6 (every request deflates 100 KB).
2. ``static``: ``gzip_static on`` answers with the precompressed ``.gz``.

Usage: ``python3 bench/gzip_filter.py [--duration S] [--rounds N] [--json FILE]``.

Invariants:
- Loopback only; each server runs in its own temporary prefix through
  tests/harness.py and is removed at the end (also on errors).
- Both servers get the identical config text; only the listen port differs.
- Before any load, each server's answer is checked: status 200,
  ``Content-Encoding: gzip`` and a body that inflates to the original file;
  wrk's non-2xx count is printed, so a broken setup cannot pass as fast.
- wrk runs through bench/static.py's ``run_wrk`` (at most 10 s per run); the
  Accept-Encoding header is added by pointing its ``WRK`` at a two-line
  wrapper script, so its parsing is reused, not copied.
- This file is named like the standard library's ``gzip``; it therefore
  never imports ``gzip`` (``zlib`` decodes the answers).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import zlib
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
sys.path.insert(0, HERE)

import static  # noqa: E402
from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request  # noqa: E402
from static import drain_output, finish, run_wrk  # noqa: E402

KINDS = ("nginx", "portico")


def make_page() -> bytes:
    """About 100 KB of HTML that compresses like a real page (about 4-5x)."""
    import random
    rnd = random.Random(42)
    words = ["portico", "nginx", "server", "request", "response", "header", "body", "gzip", "level",
             "static", "file", "stream", "buffer", "client", "proxy", "cache", "module", "filter"]
    parts = ["<!doctype html>\n<html><head><title>bench</title></head><body>\n"]
    size = len(parts[0])
    n = 0
    while size < 100 * 1024:
        line = (f'<div class="row r{n % 13}" id="item-{n}"><a href="/p/{rnd.randrange(10**6)}">'
                + " ".join(rnd.choice(words) for _ in range(12)) + f"</a> {rnd.randrange(10**9):x}</div>\n")
        parts.append(line)
        size += len(line)
        n += 1
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def make_conf(port: int) -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root %PREFIX%/html;
        location /dyn/ {{ gzip on; gzip_comp_level 6; }}
        location /pre/ {{ gzip_static on; }}
    }}""", error_level="warn")


def fetch_gzip(port: int, path: str) -> tuple[int, str | None, bytes]:
    """(status, Content-Encoding, inflated body) of one request."""
    status, hdrs, body, _ = parse_response(raw_request(port, (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n"
        f"Connection: close\r\n\r\n").encode()))
    ce = hdrs.get("content-encoding")
    if ce == "gzip":
        body = zlib.decompress(body, 31)
    return status, ce, body


def start(kind: str, page: bytes) -> tuple[Server, int]:
    port = free_port()
    files = {"html/dyn/page.html": page, "html/pre/page.html": page,
             "html/pre/page.html.gz": _gzip_bytes(page)}
    srv = Server(make_conf(port), kind=kind, files=files)
    try:
        srv.start()
        drain_output(srv)
        for path in ("/dyn/page.html", "/pre/page.html"):
            status, ce, body = fetch_gzip(port, path)
            if status != 200 or ce != "gzip" or body != page:
                raise RuntimeError(f"{kind} {path}: status {status}, Content-Encoding {ce}, "
                                   f"{len(body)} bytes decoded; error.log:\n{srv.log()[-2000:]}")
    except BaseException:
        srv.cleanup()
        raise
    return srv, port


def _gzip_bytes(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=8, help="wrk -d seconds (max 10)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per case and server, best kept")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if not have_nginx() or not os.path.exists(static.WRK):
        print("nginx and wrk are needed", file=sys.stderr)
        return 2
    page = make_page()
    tmp = tempfile.mkdtemp(prefix="gzip-bench-")
    wrapper = os.path.join(tmp, "wrk-gzip")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\nexec {static.WRK} -H "Accept-Encoding: gzip" "$@"\n')
    os.chmod(wrapper, 0o755)
    static.WRK = wrapper
    res: dict[str, Any] = {"page_bytes": len(page)}
    servers: dict[str, tuple[Server, int]] = {}
    try:
        for kind in KINDS:
            servers[kind] = start(kind, page)
        for case, path in (("gzip6", "/dyn/page.html"), ("static", "/pre/page.html")):
            for rnd in range(args.rounds):
                order = KINDS if rnd % 2 == 0 else KINDS[::-1]
                for kind in order:
                    port = servers[kind][1]
                    r = run_wrk(f"http://127.0.0.1:{port}{path}", args.duration)
                    r.pop("raw", None)
                    key = f"{case}_{kind}"
                    res.setdefault(key + "_runs", []).append(r)
                    best = res.get(key)
                    if best is None or r["rps"] > best["rps"]:
                        res[key] = r
                    static.log(f"{case} {kind} round {rnd + 1}: {r['rps']:.0f} req/s, "
                               f"non-2xx {r['non_2xx_3xx']}, errors {r['socket_errors']}")
    finally:
        for kind, (srv, _) in servers.items():
            out = finish(srv)
            if out.strip():
                static.log(f"{kind} printed: {out.strip()[:500]}")
        os.unlink(wrapper)
        os.rmdir(tmp)
    print(f"\n100 KB HTML ({len(page)} bytes), wrk -t1 -c50 -d{min(args.duration, 10)}s, "
          f"Accept-Encoding: gzip, best of {args.rounds}")
    print(f"{'case':<22}{'nginx req/s':>14}{'portico req/s':>16}{'ratio':>8}")
    for case, title in (("gzip6", "gzip_comp_level 6"), ("static", "gzip_static on")):
        n, p = res[f"{case}_nginx"]["rps"], res[f"{case}_portico"]["rps"]
        res[f"{case}_ratio"] = p / n if n else 0.0
        print(f"{title:<22}{n:>14.0f}{p:>16.0f}{res[f'{case}_ratio']:>8.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
