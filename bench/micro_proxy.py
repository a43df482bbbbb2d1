"""Per-request CPU cost of Portico's reverse-proxy path, without the network.

The proxy counterpart of ``micro_h1.py``: 40 client ``H1Connection``s each
send a keep-alive GET to a ``proxy_pass`` location whose upstream{} has a
keepalive pool filled with 40 ``UpstreamConn``s over discarding transports.
Each simulated poll feeds every client its request, runs the deferred
writes (the requests leave for the upstream), then feeds every upstream
connection that was written to the response nginx's ``return 200`` sends,
and runs the deferred writes again (the responses leave for the clients).
Prints microseconds of CPU per proxied request (best of 5); ``--opcodes``
counts interpreter opcodes and Python calls (exact and repeatable);
``--profile`` adds a cProfile listing.

Invariants: no sockets are opened; everything lives in a temp prefix that
is removed at exit; every request must get its response from the upstream
(checked: each round every upstream connection is written to once).
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from micro_h1 import CONNS, _Loop, _Transport, bench_args, make_prefix, report  # noqa: E402
from portico.core import deferred  # noqa: E402
from portico.core.cycle import Cycle  # noqa: E402
from portico.core.process.worker import Worker  # noqa: E402
from portico.http.proto.h1 import H1Connection  # noqa: E402
from portico.upstream.connection import UpstreamConn  # noqa: E402
from portico.upstream.keepalive import Pool  # noqa: E402

CONF = """worker_processes 1; daemon off; pid logs/nginx.pid; error_log logs/error.log;
events { worker_connections 4096; }
http { include mime.types; access_log off;
  upstream be { server 127.0.0.1:18081; keepalive 64; }
  server { listen 127.0.0.1:18080;
    location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://be; } } }
"""
REQ = b"GET / HTTP/1.1\r\nHost: localhost:18080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
BODY = b"0123456789" * 10
RESP = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 05:03:00 GMT\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n" + BODY)


class _Handle:
    __slots__ = ()

    def cancel(self) -> None:
        pass


class _ProxyLoop(_Loop):
    """The loop calls the proxy makes: time and (never firing) timers."""

    time = staticmethod(time.monotonic)

    def call_later(self, delay: float, cb: Any, *args: Any) -> _Handle:
        return _Handle()


class _UpTransport(_Transport):
    """An upstream socket: remembers that a request was written to it."""

    def __init__(self, written: list[UpstreamConn]) -> None:
        self.written = written
        self.conn: UpstreamConn | None = None

    def write(self, data: bytes) -> None:
        assert self.conn is not None
        self.written.append(self.conn)

    def is_closing(self) -> bool:
        return False


def main() -> int:
    args = bench_args(__doc__)
    prefix = make_prefix("micro-proxy-", CONF)
    try:
        cycle = Cycle(os.path.join(prefix, "conf", "nginx.conf"), prefix)
        cycle.load()
        cycle.open_logs()
        worker = Worker(cycle, {}, None)
        spec = cycle.listens[0]
        loop = worker.loop = deferred.loop = _ProxyLoop()
        ub = cycle.http.main["upstream"].upstreams.find("be", 80, True)
        written: list[UpstreamConn] = []
        pool = ub.pool = Pool(ub.keepalive, loop)

        def fill_pool() -> None:
            pool.close_all()
            for _ in range(CONNS):
                c = UpstreamConn(loop, ub.balancer.peers.primary[0].name)
                t = _UpTransport(written)
                t.conn = c
                c.connection_made(t)
                pool.put(c)

        def run(n: int) -> None:
            for _ in range(max(1, n // (50 * CONNS))):  # stay under keepalive_requests
                fill_pool()
                conns = [H1Connection(worker, spec) for _ in range(CONNS)]
                for conn in conns:
                    conn.connection_made(_Transport())
                for _ in range(50):
                    for conn in conns:
                        conn.data_received(REQ)
                    loop.run_ready()
                    ups = written[:]
                    written.clear()
                    if len(ups) != CONNS:
                        raise SystemExit(f"{len(ups)} upstream writes for {CONNS} requests")
                    for c in ups:
                        c.data_received(RESP)
                    loop.run_ready()
                for conn in conns:
                    conn.connection_lost(None)

        report(run, args)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
