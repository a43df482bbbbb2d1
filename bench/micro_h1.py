"""Per-request CPU cost of Portico's HTTP/1 path, without the network.

Feeds raw keep-alive requests for a 100-byte static file straight into 40
``H1Connection``s whose transports discard output, one request each per
simulated poll (deferred writes and log lines go out once per poll, as
under wrk -c50), and prints microseconds per request (CPU time, best of 5).  This isolates Python work (parse, server
and location lookup, phases, static handler, filters, log line) from the
kernel and from wrk; compare with nginx's whole-request cost from
``bench/static.py``.  ``--profile`` adds a cProfile listing.

Invariants: no sockets are opened; everything lives in a temp prefix that
is removed at exit.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from portico.core import deferred  # noqa: E402
from portico.core.cycle import Cycle  # noqa: E402
from portico.core.process.worker import Worker  # noqa: E402
from portico.http.proto.h1 import H1Connection  # noqa: E402
from portico.http.static_fast import SETTLED  # noqa: E402

CONF = """worker_processes 1; daemon off; pid logs/nginx.pid; error_log logs/error.log;
events { worker_connections 4096; }
http { include mime.types; access_log logs/access.log; sendfile on;
  server { listen 127.0.0.1:18080; location / { root html; } } }
"""
CONNS = 40
REQ = b"GET /100.txt HTTP/1.1\r\nHost: localhost:18080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


class _Sock:
    family = socket.AF_INET

    def fileno(self) -> int:
        return -1

    def setsockopt(self, *a: Any) -> None:
        pass


class _Loop:
    """call_soon only: callbacks run after each fed packet, as the event
    loop would run them after a poll's read events (core/deferred.py)."""

    def __init__(self) -> None:
        self.ready: list[Any] = []

    def call_soon(self, cb: Any) -> None:
        self.ready.append(cb)

    def run_ready(self) -> None:
        ready, self.ready = self.ready, []
        for cb in ready:
            cb()


class _Transport:
    """Accepts writes and drops them: only Python work is measured."""

    def get_extra_info(self, key: str) -> Any:
        return {"socket": _Sock(), "peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 18080)}[key]

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def bench_args(doc: str) -> argparse.Namespace:
    """The micro benchmarks' command line: -n, --profile, --opcodes."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("-n", type=int, default=20000, help="requests per round (a multiple of 20,000)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--opcodes", action="store_true",
                    help="also count interpreter opcodes and Python calls per request (exact, repeatable)")
    return ap.parse_args()


def make_prefix(name: str, conf: str) -> str:
    """A temporary prefix with conf/nginx.conf (``conf``), conf/mime.types,
    html/ and logs/; the caller removes it."""
    prefix = tempfile.mkdtemp(prefix=name)
    for d in ("conf", "html", "logs"):
        os.makedirs(os.path.join(prefix, d))
    shutil.copy(os.path.join(REPO, "conf", "mime.types"), os.path.join(prefix, "conf"))
    with open(os.path.join(prefix, "conf", "nginx.conf"), "w") as f:
        f.write(conf)
    return prefix


def main() -> int:
    args = bench_args(__doc__)
    prefix = make_prefix("micro-h1-", CONF)
    try:
        with open(os.path.join(prefix, "html", "100.txt"), "wb") as f:
            f.write(b"x" * 100)
        # as a served file usually is: older than static_fast.SETTLED, so
        # its contents may be kept between requests
        time.sleep(SETTLED + 0.1)
        cycle = Cycle(os.path.join(prefix, "conf", "nginx.conf"), prefix)
        cycle.load()
        cycle.open_logs()
        worker = Worker(cycle, {}, None)
        spec = cycle.listens[0]
        loop = worker.loop = deferred.loop = _Loop()

        def run(n: int) -> None:
            # like wrk -c50: each poll finds every connection readable, and
            # deferred writes go out once per poll
            for _ in range(max(1, n // (500 * CONNS))):  # stay under keepalive_requests
                conns = [H1Connection(worker, spec) for _ in range(CONNS)]
                for conn in conns:
                    conn.connection_made(_Transport())
                for _ in range(500):
                    for conn in conns:
                        conn.data_received(REQ)
                    loop.run_ready()

        report(run, args)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    return 0


def report(run: Any, args: Any) -> None:
    """Warm up, then print the best CPU time per request of 5 rounds, and
    with ``--opcodes`` / ``--profile`` the counts / a cProfile listing."""
    run(1000)
    best = min(_timed(run, args.n) for _ in range(5))
    print(f"{best:.1f} us/request (CPU time, best of 5 x {args.n})")
    if args.opcodes:
        ops, calls = _count(run, args.n)
        print(f"{ops:.1f} opcodes, {calls:.1f} Python calls per request")
    if args.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        run(args.n)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(int(os.environ.get("NSTATS", "25")))


def _count(run: Any, n: int) -> tuple[float, float]:
    """Opcode and call events per request under sys.settrace: unlike time,
    the same for every run, so a change worth 1% shows as 1%."""
    counts = [0, 0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            counts[0] += 1
        elif event == "call":
            counts[1] += 1
            frame.f_trace_opcodes = True
        return tracer

    sys.settrace(tracer)
    try:
        run(n)
    finally:
        sys.settrace(None)
    return counts[0] / n, counts[1] / n


def _timed(run: Any, n: int) -> float:
    t = time.process_time()
    run(n)
    return (time.process_time() - t) / n * 1e6


if __name__ == "__main__":
    raise SystemExit(main())
