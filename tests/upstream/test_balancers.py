"""Tests of the balancing methods (portico/upstream/balancers/).

Two kinds:
- Units drive each balancer directly with Peer objects and a fake request
  (``conn.client_addr`` for ip_hash, a stub complex value for ``hash``),
  against values worked out by hand from nginx's algorithms (written in as
  literals, so a change in the code cannot move the expectation with it).
- Differential tests run Debian's nginx 1.22 (/usr/sbin/nginx) in front of
  small Python backends, each answering with its own port, record which
  backend nginx chose for each request, and replay the same requests through
  the Portico balancer built from the same server list (same names, weights,
  ``down`` flags, a dead port that refuses connections): the choices must be
  identical request by request for hash, hash consistent, ip_hash and
  least_conn (sequential requests), and the distributions must agree for
  random and random two.
"""
from __future__ import annotations

import http.client
import socket
import threading
import zlib
from urllib.parse import quote
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from harness import Server, base_conf, free_port, have_nginx
from portico.conf.errors import ConfError
from portico.upstream.balancers import common, hash as hashmod, ip_hash, least_conn, random as randmod
from portico.upstream.peers import Peer, PeerGroup, PeerState

needs_nginx = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")


# ------------------------------------------------------------------ helpers

class Conn:
    def __init__(self, addr: str) -> None:
        self.client_addr = addr


class Req:
    """The attributes the balancers read from a request."""

    def __init__(self, key: str = "", addr: str = "127.0.0.1") -> None:
        self.key = key
        self.conn = Conn(addr)


class KeyValue:
    """A stand-in for the compiled ``hash`` key: the request's ``key``."""

    def eval(self, r: Req) -> str:
        return r.key


class Vars:
    def __init__(self) -> None:
        self.compiled: list[tuple[str, Any, Any]] = []

    def compile(self, text: str, file: str | None = None, line: int | None = None) -> KeyValue:
        self.compiled.append((text, file, line))
        return KeyValue()


def peer(name: str, weight: int = 1, **kw: Any) -> Peer:
    host, _, port = name.rpartition(":")
    return Peer(name, socket.AF_INET, (host, int(port)), weight=weight, **kw)


def group(*peers: Peer, backup: tuple[Peer, ...] = ()) -> PeerGroup:
    return PeerGroup("u", list(peers), list(backup))


def one(bal: Any, req: Req, dead: frozenset[str] = frozenset()) -> str | None:
    """One request as nginx's upstream runs it: get, and on a refused
    connection free(failed) and get again while tries remain."""
    st: PeerState = bal.new_state()
    while True:
        p = bal.get(st, req)
        if p is None:
            return None
        if p.name in dead:
            bal.free(st, p, False)
            if st.tries == 0:
                return None
            continue
        bal.free(st, p, True)
        return p.name


# ------------------------------------------------------------ common rules

def test_usable_rules() -> None:
    t = 1000.0
    assert common.usable(peer("a:1"), t)
    assert not common.usable(peer("a:1", down=True), t)
    p = peer("a:1", max_fails=2, fail_timeout=10)
    p.fails, p.checked = 2, t - 10
    assert not common.usable(p, t)  # "<= fail_timeout": still out at exactly 10 s
    p.checked = t - 10.5
    assert common.usable(p, t)  # past fail_timeout: one probe allowed
    p.fails = 1
    p.checked = t
    assert common.usable(p, t)  # fewer fails than max_fails
    p0 = peer("a:1", max_fails=0)
    p0.fails, p0.checked = 100, t
    assert common.usable(p0, t)  # max_fails=0 disables the accounting
    c = peer("a:1", max_conns=2)
    c.conns = 1
    assert common.usable(c, t)
    c.conns = 2
    assert not common.usable(c, t)


def test_free_failure_probe_and_recovery() -> None:
    a, b = peer("a:1", weight=4, max_fails=2, fail_timeout=10), peer("b:1")
    bal = least_conn.make(group(a, b), [])
    st = bal.new_state()
    assert st.tries == 2
    assert bal.get(st, Req()) is a
    assert a.conns == 1
    bal.free(st, a, False)
    assert (a.fails, a.conns, st.tries) == (1, 0, 1)
    assert a.effective_weight == 2  # weight - weight // max_fails
    assert a.accessed == a.checked > 0
    assert not common.disabled_now(a, False)
    st2 = bal.new_state()
    a.fails = 2
    a.checked = common.now()
    assert common.disabled_now(a, False)
    # a is out: every request goes to b
    assert bal.get(st2, Req()) is b
    # after fail_timeout a is probed, and a success clears its failures
    a.checked -= 11
    a.accessed = a.checked
    b.conns = 5
    st3 = bal.new_state()
    got = bal.get(st3, Req())
    assert got is a and a.checked > a.accessed
    bal.free(st3, a, True)
    assert a.fails == 0


def test_effective_weight_never_negative_and_recovers() -> None:
    a, b = peer("a:1", weight=1, max_fails=3), peer("b:1")
    bal = least_conn.make(group(a, b), [])
    st = bal.new_state()
    st.current = a
    a.conns = 1
    bal.free(st, a, False)  # 1 // 3 = 0: unchanged
    assert a.effective_weight == 1
    c = peer("c:1", weight=5, max_fails=1)
    c.conns = 1
    bal2 = least_conn.make(group(c, peer("d:1")), [])
    bal2.free(bal2.new_state(), c, False)
    assert c.effective_weight == 0
    c.fails = 0
    # smooth round robin raises it back one step per pick
    common.smooth_pick([c])
    assert c.effective_weight == 1


def test_rr_get_smooth_sequence_and_backup() -> None:
    a, b, c = peer("a:1", 5), peer("b:1", 1), peer("c:1", 1)
    peers = common.Peers.of(group(a, b, c))
    seq = []
    for _ in range(7):
        st = common.new_state(peers)
        p = common.rr_get(peers, st)
        assert p is not None
        seq.append(p.name[0])
        common.rr_free(peers, st, p, True)
    assert "".join(seq) == "aabacaa"  # nginx's smooth weighted round robin for 5,1,1
    x, bk = peer("x:1", down=True), peer("k:1")
    peers = common.Peers.of(group(x, backup=(bk,)))
    st = common.new_state(peers)
    assert st.tries == 1
    assert common.rr_get(peers, st) is bk and st.backup_phase


def test_single_peer_ignores_max_fails() -> None:
    a = peer("a:1", max_fails=1)
    a.fails, a.checked = 5, common.now()
    peers = common.Peers.of(group(a))
    assert peers.single
    st = common.new_state(peers)
    assert common.rr_get(peers, st) is a
    common.rr_free(peers, st, a, False)
    assert st.tries == 0 and a.conns == 0 and a.fails == 5  # single: no accounting


# ------------------------------------------------------------------ least_conn

def test_least_conn_prefers_fewest_conns_per_weight() -> None:
    a, b, c = peer("a:1", 1), peer("b:1", 3), peer("c:1", 1)
    bal = least_conn.make(group(a, b, c), [])
    a.conns, b.conns, c.conns = 1, 2, 1
    # 2/3 < 1/1: b
    assert bal.get(bal.new_state(), Req()) is b
    a.conns, b.conns, c.conns = 0, 4, 1
    assert bal.get(bal.new_state(), Req()) is a


def test_least_conn_ties_use_smooth_round_robin_from_first_tied() -> None:
    a, b, c = peer("a:1", 1), peer("b:1", 2), peer("c:1", 1)
    bal = least_conn.make(group(a, b, c), [])
    a.conns = 1  # a out of the tie: b, c tie at 0
    names = []
    for _ in range(6):
        st = bal.new_state()
        p = bal.get(st, Req())
        assert p is not None
        names.append(p.name[0])
        p.conns -= 1  # released, without touching rr state
    # smooth rr over b(2), c(1): b c b b c b
    assert "".join(names) == "bcbbcb"
    assert a.current_weight == 0  # never entered the round robin


def test_least_conn_skips_tried_down_failed_full_and_falls_to_backup() -> None:
    a = peer("a:1", down=True)
    b = peer("b:1", max_conns=1)
    b.conns = 1
    c = peer("c:1", max_fails=1)
    c.fails, c.checked = 1, common.now()
    d = peer("d:1")
    k1, k2 = peer("k:1"), peer("k:2", 2)
    bal = least_conn.make(group(a, b, c, d, backup=(k1, k2)), [])
    st = bal.new_state()
    assert bal.get(st, Req()) is d
    bal.free(st, d, False)
    # d tried for this request: to the backups, where k1 and k2 tie
    p = bal.get(st, Req())
    assert st.backup_phase and p is k2  # smooth pick: k2's weight 2 wins first
    bal.free(st, p, False)
    assert bal.get(st, Req()) is k1
    bal.free(st, k1, False)
    assert bal.get(st, Req()) is None


def test_least_conn_directive() -> None:
    assert least_conn.DIRECTIVE["name"] == "least_conn"
    assert "backup" in least_conn.DIRECTIVE["server_params"]
    with pytest.raises(ConfError) as e:
        least_conn.make(group(peer("a:1")), ["x"], None, "f.conf", 3)
    assert e.value.message == 'invalid number of arguments in "least_conn" directive'
    assert (e.value.file, e.value.line) == ("f.conf", 3)


# --------------------------------------------------------------------- ip_hash

def test_ip_hash_bytes() -> None:
    assert ip_hash.addr_bytes("10.1.2.3") == b"\x0a\x01\x02"
    assert ip_hash.addr_bytes("::1") == b"\0" * 15 + b"\1"
    assert len(ip_hash.addr_bytes("::ffff:10.1.2.3")) == 16
    assert ip_hash.addr_bytes("unix:") == b"\0\0\0"


def test_ip_hash_values_by_hand() -> None:
    # 89 -> (89*113+10)%6271 = 3796 -> (3796*113+1)%6271 = 2521
    #    -> (2521*113+2)%6271 = 2680; 2680 % 3 = 1
    ps = [peer("a:1"), peer("b:1"), peer("c:1")]
    bal = ip_hash.make(group(*ps), [])
    assert bal.get(bal.new_state(), Req(addr="10.1.2.3")) is ps[1]
    assert bal.get(bal.new_state(), Req(addr="10.1.2.250")) is ps[1]  # 4th octet ignored
    # weights 1,2,1 (total 4): 2680 % 4 = 0 -> the first peer
    ws = [peer("a:1", 1), peer("b:1", 2), peer("c:1", 1)]
    bal = ip_hash.make(group(*ws), [])
    assert bal.get(bal.new_state(), Req(addr="10.1.2.3")) is ws[0]
    # first one down: the next round continues from 2680 with the same bytes:
    # (2680*113+10)%6271 = 1842, (1842*113+1)%6271 = 1204,
    # (1204*113+2)%6271 = 4363; 4363 % 4 = 3 -> the third peer
    ws[0].down = True
    st = bal.new_state()
    assert bal.get(st, Req(addr="10.1.2.3")) is ws[2]
    assert vars(st)["ip_hash"].hash == 4363 and vars(st)["ip_hash"].tries == 1


def test_ip_hash_twenty_misses_then_round_robin() -> None:
    a, b = peer("a:1"), peer("b:1", down=True)
    bal = ip_hash.make(group(a, b), [])
    st = bal.new_state()
    st.tried.add(id(a))
    a.conns = 0
    # every round lands on tried a or down b: after 20 misses, round robin,
    # which has nothing left either
    assert bal.get(st, Req(addr="10.0.0.1")) is None
    assert vars(st)["ip_hash"].tries == 21
    with pytest.raises(ConfError) as e:
        ip_hash.make(group(a), ["x"])
    assert e.value.message == 'invalid number of arguments in "ip_hash" directive'
    assert "backup" not in ip_hash.DIRECTIVE["server_params"]


# ------------------------------------------------------------------------ hash

def test_hash_values_by_hand() -> None:
    assert zlib.crc32(b"a") == 0xE8B7BE43
    # (0xe8b7be43 >> 16) & 0x7fff = 0x68b7 = 26807
    ps = [peer("a:1", 1), peer("b:1", 2), peer("c:1", 1)]
    bal = hashmod.make(group(*ps), ["$k"], Vars())
    assert isinstance(bal, hashmod.Hash)
    assert bal.get(bal.new_state(), Req("a")) is ps[2]  # 26807 % 4 = 3 -> c
    # c down: round 1 hashes "1a" and adds to the running sum
    ps[2].down = True
    h1 = (zlib.crc32(b"1a") >> 16) & 0x7FFF
    expect = (26807 + h1) % 4
    st = bal.new_state()
    got = bal.get(st, Req("a"))
    assert got is [ps[0], ps[1], ps[1], ps[2]][expect]
    assert vars(st)["hash"].rehash == 2


def test_hash_empty_key_is_round_robin() -> None:
    ps = [peer("a:1", 2), peer("b:1", 1)]
    bal = hashmod.make(group(*ps), ["$k"], Vars())
    names = [one(bal, Req("")) for _ in range(3)]
    assert names == ["a:1", "b:1", "a:1"]


def test_hash_directive_errors() -> None:
    v = Vars()
    with pytest.raises(ConfError) as e:
        hashmod.make(group(peer("a:1")), ["$k", "foo"], v, "n.conf", 6)
    assert e.value.message == 'invalid parameter "foo"' and e.value.line == 6
    with pytest.raises(ConfError):
        hashmod.make(group(peer("a:1")), ["$k", "CONSISTENT"], v)  # case matters, as nginx
    with pytest.raises(ConfError) as e:
        hashmod.parse([], v)
    assert e.value.message == 'invalid number of arguments in "hash" directive'
    c = hashmod.make(group(peer("a:1"), peer("b:1")), ["$k", "consistent"], v, "n.conf", 9)
    assert isinstance(c, hashmod.ConsistentHash)
    assert v.compiled[-1] == ("$k", "n.conf", 9)


def test_split_server() -> None:
    assert hashmod.split_server("127.0.0.1:8080") == (b"127.0.0.1", b"8080")
    assert hashmod.split_server("backend") == (b"backend", b"")
    assert hashmod.split_server("UNIX:/tmp/s") == (b"/tmp/s", b"")
    assert hashmod.split_server("[::1]:81") == (b"[::1]", b"81")
    assert hashmod.split_server("[::1]") == (b"[::1]", b"")
    assert hashmod.split_server("host:") == (b"host", b"")


def test_chash_points_chain() -> None:
    ps = [peer("127.0.0.1:8080", 2), peer("127.0.0.1:8081", 1)]
    values, servers = hashmod.chash_points(ps)
    assert len(values) == 480 and values == sorted(values) and len(set(values)) == 480
    base = b"127.0.0.1\x008080"
    first = zlib.crc32(base + b"\0\0\0\0")
    second = zlib.crc32(base + first.to_bytes(4, "little"))
    assert first in values and second in values
    assert servers[values.index(second)] == "127.0.0.1:8080"
    assert servers.count("127.0.0.1:8080") == 320


def test_chash_lookup_wraps_and_walks_points() -> None:
    ps = [peer("10.0.0.1:80"), peer("10.0.0.2:80"), peer("10.0.0.3:80")]
    bal = hashmod.make(group(*ps), ["$k", "consistent"], Vars())
    assert isinstance(bal, hashmod.ConsistentHash)
    keys = [f"key{i}" for i in range(200)]
    for k in keys:
        assert one(bal, Req(k)) == bal.point_of(k)
    # a point past the last value wraps to the first point
    top = max(keys, key=lambda k: zlib.crc32(k.encode()))
    if zlib.crc32(top.encode()) > bal.points[-1]:
        assert bal.point_of(top) == bal.servers[0]
    # remove one server: keys of the others do not move (consistency)
    ps[1].down = True
    for k in keys:
        before = bal.point_of(k)
        after = one(bal, Req(k))
        if before != "10.0.0.2:80":
            assert after == before
        else:
            assert after in ("10.0.0.1:80", "10.0.0.3:80")


# ---------------------------------------------------------------------- random

class Seq:
    """rand(n) answering a fixed sequence of draws."""

    def __init__(self, *xs: int) -> None:
        self.xs = list(xs)
        self.asked: list[int] = []

    def __call__(self, n: int) -> int:
        self.asked.append(n)
        return self.xs.pop(0)


def test_random_ranges() -> None:
    ps = [peer("a:1", 1), peer("b:1", 3), peer("c:1", 2)]
    draws = Seq(0, 1, 3, 4, 5)
    bal = randmod.make(group(*ps), [], rand=draws)
    got = [bal.get(bal.new_state(), Req()) for _ in range(5)]
    assert [p.name[0] for p in got if p] == list("abbcc")
    assert draws.asked == [6] * 5


def test_random_two_rule() -> None:
    a, b, c = peer("a:1", 1), peer("b:1", 1), peer("c:1", 2)
    # draws: a, a again (same peer: a miss), then c; tie 0/1 vs 0/2: second (c)
    draws = Seq(0, 0, 2)
    bal = randmod.make(group(a, b, c), ["two", "least_conn"], rand=draws)
    st = bal.new_state()
    assert bal.get(st, Req()) is c
    assert vars(st)["random"].tries == 2  # the first pick and the repeat count
    # first has strictly fewer conns per weight: first wins
    c.conns = 1
    a.conns = 0
    bal.rand = Seq(0, 2)
    assert bal.get(bal.new_state(), Req()) is a
    # equal ratio (1/1 vs 2/2): second wins
    a.conns, c.conns = 1, 2
    bal.rand = Seq(0, 3)
    assert bal.get(bal.new_state(), Req()) is c
    # 'two' alone is the same method
    assert randmod.parse(["two"]).two and not randmod.parse([]).two


def test_random_misses_then_round_robin() -> None:
    a, b = peer("a:1"), peer("b:1", down=True)
    draws = Seq(*([1] * 21))
    bal = randmod.make(group(a, b), [], rand=draws)
    st = bal.new_state()
    assert bal.get(st, Req()) is a  # 21 misses on b, then round robin finds a
    assert len(draws.asked) == 21


def test_random_directive_errors() -> None:
    for args, msg in ((["x"], 'invalid parameter "x"'), (["two", "x"], 'invalid parameter "x"'),
                      (["TWO"], 'invalid parameter "TWO"'),
                      (["two", "least_time"], 'invalid parameter "least_time"'),
                      (["two", "least_conn", "x"], 'invalid number of arguments in "random" directive')):
        with pytest.raises(ConfError) as e:
            randmod.parse(args)
        assert e.value.message == msg


# --------------------------------------------------------- nginx's [emerg]s

def nginx_t(upstream_body: str) -> str:
    s = Server(base_conf("server { listen 127.0.0.1:%d; location / { proxy_pass http://u; } }" % free_port(),
                         http_extra="upstream u { %s }" % upstream_body), kind="nginx")
    try:
        r = s.run("-t")
        return r.stderr
    finally:
        s.cleanup()


@needs_nginx
@pytest.mark.parametrize("directive,mod", [
    ("least_conn x;", least_conn), ("ip_hash x;", ip_hash), ("hash;", hashmod),
    ("hash a b c;", hashmod), ("hash $arg_k foo;", hashmod), ("hash $arg_k Consistent;", hashmod),
    ("random x;", randmod), ("random two x;", randmod), ("random two least_conn x;", randmod),
    ("random two least_time=header;", randmod),
])
def test_emerg_wording_matches_nginx(directive: str, mod: Any) -> None:
    err = nginx_t(directive + " server 127.0.0.1:1;")
    words = directive.rstrip(";").split()
    with pytest.raises(ConfError) as e:
        mod.make(group(peer("127.0.0.1:1")), words[1:], Vars())
    assert f": {e.value.message} in " in err and "[emerg]" in err, err


@needs_nginx
@pytest.mark.parametrize("method,mod", [("hash $arg_k", hashmod), ("ip_hash", ip_hash), ("random", randmod),
                                        ("least_conn", least_conn)])
def test_backup_support_matches_nginx(method: str, mod: Any) -> None:
    err = nginx_t(f"{method}; server 127.0.0.1:1; server 127.0.0.1:2 backup;")
    supported = "backup" in mod.DIRECTIVE["server_params"]
    assert ('balancing method does not support parameter "backup"' in err) != supported, err


# ---------------------------------------------------------- differential

class Backend:
    """A backend answering every request with its own port; a request for
    /hold waits until ``release`` is set (it holds one upstream connection)."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        backend = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/hold"):
                    backend.holding.set()
                    backend.release.wait(20)
                body = str(self.server.server_address[1]).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    bs = [Backend() for _ in range(5)]
    yield bs
    for b in bs:
        b.close()


class Nginx:
    """Debian's nginx proxying to ``upstream u { <method>; <servers> }``."""

    def __init__(self, method: str, servers: list[str]) -> None:
        self.port = free_port()
        ups = "upstream u { %s; %s }" % (method, " ".join(f"server {s};" for s in servers))
        conf = base_conf(f"server {{ listen 127.0.0.1:{self.port}; location / {{ proxy_pass http://u; }} }}",
                         http_extra=ups + " access_log off;")
        self.server = Server(conf, kind="nginx").start()
        self.conns: dict[str, http.client.HTTPConnection] = {}

    def get(self, path: str, source: str = "127.0.0.1") -> str:
        c = self.conns.get(source)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(source, 0))
            self.conns[source] = c
        c.request("GET", path)
        resp = c.getresponse()
        body = resp.read().decode()
        return body if resp.status == 200 else f"status {resp.status}"

    def close(self) -> None:
        for c in self.conns.values():
            c.close()
        self.server.cleanup()


def spec(backends: list[Backend], weights: list[int], down: set[int] = frozenset(),  # type: ignore[assignment]
         dead_port: int | None = None, dead_max_fails: int = 1) -> tuple[list[str], list[Peer], frozenset[str]]:
    """The same upstream as nginx config lines and as Peers: backend i with
    weights[i] (and ``down`` when i in down); a dead (refusing) port last."""
    lines, peers = [], []
    for i, (b, w) in enumerate(zip(backends, weights)):
        name = f"127.0.0.1:{b.port}"
        lines.append(f"{name} weight={w}" + (" down" if i in down else ""))
        peers.append(peer(name, w, down=i in down))
    dead: frozenset[str] = frozenset()
    if dead_port is not None:
        name = f"127.0.0.1:{dead_port}"
        lines.append(f"{name} weight=4 max_fails={dead_max_fails} fail_timeout=120")
        peers.append(peer(name, 4, max_fails=dead_max_fails, fail_timeout=120))
        dead = frozenset({name})
    return lines, peers, dead


def port_of(name: str | None) -> str:
    return "status 502" if name is None else name.rpartition(":")[2]


KEYS = [f"k{i}" for i in range(150)] + [f"/user/{i * 7919}" for i in range(50)] + ["é", "a b"]


@needs_nginx
@pytest.mark.parametrize("consistent", [False, True])
def test_hash_same_choices_as_nginx(backends: list[Backend], consistent: bool) -> None:
    lines, peers, _ = spec(backends, [1, 2, 1, 3, 1], down={2})
    method = "hash $arg_k" + (" consistent" if consistent else "")
    ng = Nginx(method, lines)
    try:
        bal = hashmod.make(group(*peers), method.split()[1:], Vars())
        nginx_seq, ours = [], []
        for i, k in enumerate(KEYS):
            # every 10th request has no key: round robin, interleaved with the rest
            key = "" if i % 10 == 9 else k
            nginx_seq.append(ng.get("/?k=" + quote(key, safe="/") if key else "/"))
            ours.append(port_of(one(bal, Req(quote(key, safe="/")))))
        assert nginx_seq == ours
        assert len(set(ours)) == 4  # every live backend got keys, the down one none
        assert str(backends[2].port) not in ours
    finally:
        ng.close()


@needs_nginx
@pytest.mark.parametrize("consistent", [False, True])
def test_hash_with_dead_server_same_as_nginx(backends: list[Backend], consistent: bool) -> None:
    """A server refusing connections: nginx fails over (rehash / next point /
    round robin after 20) and then keeps it out for fail_timeout."""
    lines, peers, dead = spec(backends[:3], [1, 1, 1], dead_port=free_port())
    method = "hash $arg_k" + (" consistent" if consistent else "")
    ng = Nginx(method, lines)
    try:
        bal = hashmod.make(group(*peers), method.split()[1:], Vars())
        nginx_seq = [ng.get(f"/?k={k}") for k in KEYS[:120]]
        ours = [port_of(one(bal, Req(k), dead)) for k in KEYS[:120]]
        assert nginx_seq == ours
        assert "status 502" not in ours
        assert peers[-1].fails == 1  # failed once, then skipped while fail_timeout runs
    finally:
        ng.close()


@needs_nginx
def test_ip_hash_same_choices_as_nginx(backends: list[Backend]) -> None:
    lines, peers, _ = spec(backends, [1, 3, 1, 2, 1], down={3})
    ng = Nginx("ip_hash", lines)
    try:
        bal = ip_hash.make(group(*peers), [])
        nginx_seq, ours = [], []
        # client addresses differing in the first three octets (all of
        # 127/8 is loopback on Linux); the fourth must not matter
        for a in range(1, 5):
            for b in range(0, 30, 3):
                for d in (1, 77):
                    src = f"127.{a}.{b}.{d}"
                    nginx_seq.append(ng.get("/", source=src))
                    ours.append(port_of(one(bal, Req(addr=src))))
        assert nginx_seq == ours
        assert all(ours[i] == ours[i + 1] for i in range(0, len(ours), 2))
        assert len(set(ours)) == 4 and str(backends[3].port) not in ours
    finally:
        ng.close()


@needs_nginx
def test_least_conn_sequence_as_nginx(backends: list[Backend]) -> None:
    """Sequential requests: every peer has 0 connections at each choice, so
    nginx's least_conn is its tie rule, the smooth round robin, throughout;
    with a dead server (max_fails=2) each choice of it fails over within the
    request, and its second failure takes it out for fail_timeout."""
    lines, peers, dead = spec(backends[:3], [1, 2, 3], dead_port=free_port(), dead_max_fails=2)
    ng = Nginx("least_conn", lines)
    try:
        bal = least_conn.make(group(*peers), [])
        nginx_seq = [ng.get("/") for _ in range(40)]
        ours = [port_of(one(bal, Req(), dead)) for _ in range(40)]
        assert nginx_seq == ours
        counts = [ours.count(str(b.port)) for b in backends[:3]]
        assert counts[0] < counts[1] < counts[2]  # weights 1, 2, 3
        assert sum(counts) == 40  # the dead server never answered, no 502
        assert peers[-1].fails == 2
    finally:
        ng.close()


def two_probabilities(weights: list[int]) -> list[float]:
    """P(peer i is the second of two distinct weighted draws)."""
    total = sum(weights)
    return [sum(weights[j] / total * weights[i] / (total - weights[j])
                for j in range(len(weights)) if j != i) for i in range(len(weights))]


@needs_nginx
@pytest.mark.parametrize("args", [[], ["two", "least_conn"]])
def test_random_distribution_as_nginx(backends: list[Backend], args: list[str]) -> None:
    """Sequential requests (no connection open at a choice): plain random is
    proportional to weight; random two takes the second of two distinct
    draws on the 0/0 tie.  nginx and Portico must both match the formula."""
    weights = [1, 1, 2, 4]
    lines, peers, _ = spec(backends[:4], weights)
    ng = Nginx(" ".join(["random", *args]), lines)
    n = 1600
    try:
        bal = randmod.make(group(*peers), args)
        nginx_seq = [ng.get("/") for _ in range(n)]
        ours = [port_of(one(bal, Req())) for _ in range(n)]
        expect = ([w / sum(weights) for w in weights] if not args else two_probabilities(weights))
        for i, b in enumerate(backends[:4]):
            p = str(b.port)
            assert abs(nginx_seq.count(p) / n - expect[i]) < 0.045, (i, nginx_seq.count(p), expect)
            assert abs(ours.count(p) / n - expect[i]) < 0.045, (i, ours.count(p), expect)
    finally:
        ng.close()


def test_two_probabilities_differ_from_plain() -> None:
    # the formula the test above relies on: two draws flatten the weights
    p = two_probabilities([1, 1, 2, 4])
    assert abs(sum(p) - 1) < 1e-9
    assert p[3] < 0.5 and p[0] > 0.125


def hold_one(ng: Nginx, backends: list[Backend]) -> tuple[threading.Thread, list[str]]:
    """Send /hold through nginx from another thread; return once a backend
    holds it."""
    out: list[str] = []

    def run() -> None:
        c = http.client.HTTPConnection("127.0.0.1", ng.port, timeout=30)
        c.request("GET", "/hold")
        out.append(c.getresponse().read().decode())
        c.close()

    th = threading.Thread(target=run)
    th.start()
    for _ in range(200):
        if any(b.holding.is_set() for b in backends):
            break
        threading.Event().wait(0.02)
    assert any(b.holding.is_set() for b in backends)
    return th, out


@needs_nginx
def test_least_conn_avoids_busy_peer_as_nginx(backends: list[Backend]) -> None:
    """One request held open on a backend: least_conn counts it (conns 1
    against 0/weight elsewhere) and sends every other request elsewhere,
    in the same order as nginx."""
    lines, peers, _ = spec(backends[:3], [3, 1, 2])
    ng = Nginx("least_conn", lines)
    try:
        bal = least_conn.make(group(*peers), [])
        held_state = bal.new_state()
        held = bal.get(held_state, Req())
        assert held is not None and held.conns == 1
        th, out = hold_one(ng, backends[:3])
        nginx_seq = [ng.get("/") for _ in range(20)]
        ours = [port_of(one(bal, Req())) for _ in range(20)]
        for b in backends:
            b.release.set()
        th.join(30)
        assert out == [port_of(held.name)]
        assert nginx_seq == ours
        assert port_of(held.name) not in ours
    finally:
        ng.close()


@needs_nginx
@pytest.mark.parametrize("two", [False, True])
def test_random_two_avoids_busy_peer_as_nginx(backends: list[Backend], two: bool) -> None:
    """With one backend holding a request, ``random two`` never picks it
    (the other draw always has fewer connections), plain random still does."""
    lines, peers, _ = spec(backends[:3], [1, 1, 1])
    args = ["two"] if two else []
    ng = Nginx(" ".join(["random", *args]), lines)
    try:
        th, out = hold_one(ng, backends[:3])
        busy = next(str(b.port) for b in backends[:3] if b.holding.is_set())
        nginx_seq = [ng.get("/") for _ in range(150)]
        bal = randmod.make(group(*peers), args)
        held = next(p for p in peers if port_of(p.name) == busy)
        held.conns = 1
        ours = [port_of(one(bal, Req())) for _ in range(150)]
        for b in backends:
            b.release.set()
        th.join(30)
        assert out == [busy]
        if two:
            assert busy not in nginx_seq and busy not in ours
        else:
            assert nginx_seq.count(busy) > 20 and ours.count(busy) > 20
    finally:
        ng.close()


# ----------------------------------------------------- block registry wiring

class _Http:
    def __init__(self) -> None:
        self.variables = Vars()


class _Cf:
    def __init__(self) -> None:
        self.extra = {"http": _Http()}


@pytest.mark.parametrize("mod,args,cls", [
    (least_conn, [], least_conn.LeastConn), (ip_hash, [], ip_hash.IpHash),
    (randmod, ["two", "least_conn"], randmod.Random), (hashmod, ["$k"], hashmod.Hash),
    (hashmod, ["$k", "consistent"], hashmod.ConsistentHash),
])
def test_block_registry_builds_each_method(mod: Any, args: list[str], cls: type) -> None:
    from portico.conf.parser import Node
    from portico.upstream import block
    mod.register()
    name = mod.DIRECTIVE["name"]
    assert block._METHODS[name].allowed == mod.DIRECTIVE["server_params"]
    ub = block.UpstreamBlock("u", explicit=True, file="n.conf", line=1)
    for url, w in (("127.0.0.1", 2), ("127.0.0.2:8080", 1)):
        ub.servers.append(block.ServerLine(url, weight=w, node=Node("server", [url], "n.conf", 2)))
    ub.method = (name, Node(name, args, "n.conf", 3))
    block.finish(ub, _Cf())
    bal = ub.balancer
    assert isinstance(bal, cls)
    assert [p.name for p in bal.peers.primary] == ["127.0.0.1:80", "127.0.0.2:8080"]
    if cls is hashmod.ConsistentHash:
        # the points hash the text as written: "127.0.0.1" has no port part
        assert set(bal.servers) == {"127.0.0.1", "127.0.0.2:8080"}
        assert bal.servers.count("127.0.0.1") == 320
        ref, _ = hashmod.chash_points(bal.peers.primary, ["127.0.0.1", "127.0.0.2:8080"])
        assert bal.points == ref
    p = bal.get(bal.new_state(), Req("k", "10.0.0.1"))
    assert p in bal.peers.primary


def test_block_factory_reports_directive_line() -> None:
    from portico.conf.parser import Node
    from portico.upstream import block
    randmod.register()
    ub = block.UpstreamBlock("u", explicit=True, file="n.conf", line=1)
    ub.servers.append(block.ServerLine("127.0.0.1:1", node=Node("server", ["127.0.0.1:1"], "n.conf", 2)))
    ub.method = ("random", Node("random", ["three"], "n.conf", 7))
    with pytest.raises(ConfError) as e:
        block.finish(ub, _Cf())
    assert (e.value.message, e.value.file, e.value.line) == ('invalid parameter "three"', "n.conf", 7)
