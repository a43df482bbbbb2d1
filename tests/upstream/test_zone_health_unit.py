"""Unit tests of the upstream zone records, ``match`` rules and
``health_check`` parameters (no server processes)."""
from __future__ import annotations

import os
import tempfile

import pytest

from portico.conf.errors import ConfError
from portico.conf.parser import Node, parse_string
from portico.core.cycle import Cycle
from portico.upstream import health, zone


def load(http: str) -> Cycle:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(f"events {{}} http {{ {http} server {{ listen 127.0.0.1:1; location / {{ proxy_pass http://be; }} }} }}")
    c = Cycle(path, d)
    c.load()
    return c


def upstream(c: Cycle) -> object:
    return c.http.main["upstream"].upstreams.blocks[0]


def test_peers_of_two_cycles_share_records_and_a_new_cycle_resets(monkeypatch):
    monkeypatch.setattr(zone, "_private", {})
    conf = "upstream be { zone be 64k; server 127.0.0.1:1; server 127.0.0.1:2 weight=3; }"
    c1, c2 = load(conf), load(conf)
    u1, u2 = upstream(c1), upstream(c2)
    u1.shared.attach(c1)
    p1 = u1.group.peers[1]
    assert isinstance(p1, zone.SharedPeer) and p1.effective_weight == 3
    p1.fails = 2
    p1.conns = 1
    u2.shared.attach(c2)  # a new Cycle (reload): state starts afresh, conns kept
    p2 = u2.group.peers[1]
    assert p2.fails == 0 and p1.fails == 0
    assert p2.conns == 1
    p2.conns += 1
    assert p1.conns == 2  # the same record
    u1.shared.attach(c1)  # a worker of an already attached Cycle resets nothing
    p2.fails = 1
    u2.shared.attach(c2)
    assert p1.fails == 1


def test_down_includes_health_state(monkeypatch):
    monkeypatch.setattr(zone, "_private", {})
    c = load("upstream be { zone be 64k; server 127.0.0.1:1; server 127.0.0.1:2 down; }")
    ub = upstream(c)
    ub.shared.attach(c)
    a, b = ub.group.peers
    assert not a.down and b.down and b.config_down
    hc = health.HealthCheck(Node("health_check", [], "x", 1), fails=2, passes=2)
    hc.ub = ub
    assert health.record(ub.shared, a, hc, False) is None
    assert health.record(ub.shared, a, hc, False) == "down"
    assert a.down and not a.config_down
    assert ub.balancer.get(ub.balancer.new_state(), None) is None  # nothing left
    assert health.record(ub.shared, a, hc, True) is None
    assert health.record(ub.shared, a, hc, True) == "up"
    assert not a.down


def test_mandatory_starts_checking(monkeypatch):
    monkeypatch.setattr(zone, "_private", {})
    c = load("upstream be { zone be 64k; server 127.0.0.1:1; }")
    ub = upstream(c)
    hc = health.parse_health_check(Node("health_check", ["mandatory"], "x", 1))
    health.bind(hc, ub, None, {})
    ub.shared.attach(c)
    p = ub.group.peers[0]
    assert p.down
    assert health.record(ub.shared, p, hc, True) == "up"
    assert not p.down


def match(body: str) -> health.Match:
    node = list(parse_string(f"match m {{ {body} }}", "t", ".", param=False))[0]
    c = load("upstream be { server 127.0.0.1:1; }")
    return health.parse_match(node, c.http.variables)


@pytest.mark.parametrize("rules,status,headers,body,ok", [
    ("status 200;", 200, [], b"", True),
    ("status 200;", 201, [], b"", False),
    ("status ! 500;", 200, [], b"", True),
    ("status ! 500 502;", 502, [], b"", False),
    ("status 200-399;", 302, [], b"", True),
    ("status ! 400-599;", 404, [], b"", False),
    ("status 301-303 307;", 307, [], b"", True),
    ("header Content-Type = text/html;", 200, [("content-type", "text/html")], b"", True),
    ("header Content-Type != text/html;", 200, [("Content-Type", "text/html")], b"", False),
    ("header Connection ~ close;", 200, [("Connection", "close")], b"", True),
    ("header Connection !~ close;", 200, [("Connection", "close")], b"", False),
    ("header Host;", 200, [], b"", False),
    ("header ! X-Accel-Redirect;", 200, [("X-Accel-Redirect", "/x")], b"", False),
    ('body ~ "Welcome to nginx!";', 200, [], b"<h1>Welcome to nginx!</h1>", True),
    ('body !~ "Welcome";', 200, [], b"Welcome", False),
    ("require $upstream_status;", 200, [], b"", True),
    ("require $upstream_http_x_ready;", 200, [("X-Ready", "0")], b"", False),
])
def test_match_rules(rules, status, headers, body, ok):
    assert match(rules).test(status, headers, body)[0] is ok


def test_health_check_parameters():
    hc = health.parse_health_check(Node("health_check", ["interval=2s", "jitter=1s", "fails=3", "passes=2",
                                                         "uri=/h", "port=8080", "match=m", "mandatory",
                                                         "persistent", "type=http"], "x", 1))
    assert (hc.interval, hc.jitter, hc.fails, hc.passes, hc.uri, hc.port, hc.match_name) == \
        (2.0, 1.0, 3, 2, "/h", 8080, "m")
    assert hc.mandatory and hc.persistent
    for bad in (["fails=0"], ["port=70000"], ["type=grpc"], ["uri="], ["persistent"]):
        with pytest.raises(ConfError):
            health.parse_health_check(Node("health_check", bad, "x", 1))
