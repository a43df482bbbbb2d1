"""map, geo and split_clients on a live server, most of it differential:
the same configuration runs in Debian's nginx and in Portico, the same
requests go to both, and the bodies (``return 200 "$var"``) must be equal.

Each server answers many requests over one keep-alive connection, so
hundreds of keys or addresses cost one connection per server.
"""
from __future__ import annotations

import socket
from typing import Callable, Sequence
from urllib.parse import quote

import pytest

from harness import Server, base_conf, free_port, have_nginx, parse_response

Request = tuple[str, Sequence[tuple[str, str]]]  # (path and query, extra headers)


def fetch_all(port: int, reqs: Sequence[Request], host: str = "localhost") -> list[tuple[int, bytes]]:
    """(status, body) of each request, sent one after another on one connection."""
    out: list[tuple[int, bytes]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        buf = b""
        for path, headers in reqs:
            hdrs = "".join(f"{k}: {v}\r\n" for k, v in headers)
            if not any(k.lower() == "host" for k, _ in headers):
                hdrs = f"Host: {host}\r\n" + hdrs
            s.sendall(f"GET {path} HTTP/1.1\r\n{hdrs}\r\n".encode("utf-8", "surrogateescape"))
            while True:
                try:
                    status, h, body, rest = parse_response(buf)
                    if len(body) >= int(h.get("content-length", "0")):
                        break
                except ValueError:
                    pass
                data = s.recv(65536)
                assert data, f"connection closed before the answer to {path}"
                buf += data
            out.append((status, body))
            buf = rest
    return out


def conf_for(port: int, http_extra: str, locations: str) -> str:
    return base_conf(f"""
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        {locations}
    }}""", http_extra=http_extra)


Start = Callable[..., Server]


def differential(server: Start, http_extra: str, locations: str, reqs: Sequence[Request],
                 files: dict[str, str] | None = None) -> list[tuple[int, bytes]]:
    """Portico's answers, after checking they equal nginx's one by one."""
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    answers = []
    for kind in ("nginx", "portico"):
        port = free_port()
        server(conf_for(port, http_extra, locations), kind=kind, files=files)
        answers.append(fetch_all(port, reqs))
    nginx, portico = answers
    diffs = [(r[0], dict(r[1]), n, p) for r, n, p in zip(reqs, nginx, portico) if n != p]
    assert not diffs, f"{len(diffs)} of {len(reqs)} differ, first ones (request, nginx, portico): {diffs[:5]}"
    return portico


def get(path: str, *headers: tuple[str, str]) -> Request:
    return (path, headers)


# --- split_clients -------------------------------------------------------------------

SPLIT = """
split_clients "${arg_k}salt" $bucket {
    0.5%   a;
    2%     b;
    10.25% c;
    30%    d;
    *      e;
}
split_clients "$arg_k" $partial {
    50% first;
    25% second;
}
"""


def test_split_clients_buckets_match_nginx_for_many_keys(server: Start) -> None:
    # keys of every length modulo 4 (MurmurHash2's tail cases), UTF-8 bytes and
    # an empty key
    keys = [f"user{i}" + "x" * (i % 7) for i in range(200)]
    keys += ["", "é", "ключ", "a" * 61]
    reqs = [get(f"/?k={quote(k)}") for k in keys]
    answers = differential(server, SPLIT, 'location / { return 200 "$bucket/$partial"; }', reqs)
    buckets = {body.split(b"/")[0] for _, body in answers}
    # 200 keys spread over the big buckets; the empty value of $partial (a
    # key in no part) shows too
    assert {b"c", b"d", b"e"} <= buckets
    assert any(body.endswith(b"/") for _, body in answers)


def test_split_clients_constant_key_is_one_bucket(server: Start) -> None:
    port = free_port()
    server(conf_for(port, 'split_clients "fixed" $b { 50% x; * y; }', 'location / { return 200 "$b"; }'))
    bodies = {body for _, body in fetch_all(port, [get(f"/{i}") for i in range(20)])}
    assert len(bodies) == 1 and bodies <= {b"x", b"y"}


# --- map -----------------------------------------------------------------------------

MAP = r"""
map $arg_h $kind {
    hostnames;
    default                   none;
    example.com               exact;
    *.example.com             star;
    *.deep.example.com        deeper;
    .dot.org                  dot;
    www.example.*             tail;
    www.*                     www;
    \default                  literal-default;
    ~^(?<sub>[a-z]+)\.re\.net$ re-$sub;
    ~*^UP(\d+)                up-$1;
    ~(.*)\.example\.com$      never-reached;
}
map $uri $path {
    /exact                    exact;
    /EXACT2                   upper-key;
    ~^/re/(\w+)/(\w+)$        "$2-$1";
    ~*^/CI/                   ci;
    ~^/exact                  regex-after-exact;
    default                   $uri;
}
map $arg_e $empty {
    ""                        is-empty;
    default                   not-empty;
}
"""

RAW_SAFE = ":\\"
HOSTS = ["example.com", "EXAMPLE.com", "example.com.", "a.example.com", "a.b.example.com",
         "deep.example.com", "x.deep.example.com", "dot.org", "a.dot.org", "xdot.org",
         "www.example.net", "www.example", "www.other.org", "www", "default", "\\default",
         "foo.re.net", "foo.bar.re.net", "up42", "UP7", "x.up1", "other", "", ".", "..",
         "exAmple.com..", "Www.Example.Org", "a..example.com"]


def test_map_hostnames_and_regex_precedence_match_nginx(server: Start) -> None:
    # $arg_h is the raw argument: "\\" and ":" go unescaped so the map sees them
    reqs = [get("/?h=" + quote(h, safe=RAW_SAFE)) for h in HOSTS]
    answers = differential(server, MAP, 'location / { return 200 "$kind|$1|$sub"; }', reqs)
    got = dict(zip(HOSTS, (body for _, body in answers)))
    assert got["example.com"].startswith(b"exact|")
    assert got["x.deep.example.com"].startswith(b"deeper|")
    assert got["foo.re.net"] == b"re-foo|foo|foo"


def test_map_exact_regex_default_match_nginx(server: Start) -> None:
    paths = ["/exact", "/EXACT", "/exact2", "/Exact2", "/exactly", "/re/a/b", "/re/a/b/c",
             "/ci/x", "/Ci/y", "/nothing", "/"]
    reqs = [get(p) for p in paths] + [get("/?e="), get("/?e=1"), get("/")]
    answers = differential(server, MAP, 'location / { return 200 "$path|$empty|$1"; }', reqs)
    assert answers[0][1].startswith(b"exact|")
    assert answers[5][1].startswith(b"b-a|")


def test_map_value_is_cached_unless_volatile(server: Start) -> None:
    http = """
    map $args $cached { default "c:$args"; }
    map $args $fresh { volatile; default "v:$args"; }
    """
    loc = """location / {
        set $first_c $cached;
        set $first_v $fresh;
        set $args changed;
        return 200 "$first_c $cached $first_v $fresh";
    }"""
    answers = differential(server, http, loc, [get("/?orig")])
    assert answers[0] == (200, b"c:orig c:orig v:orig v:changed")


def test_map_variable_can_be_overridden_by_set(server: Start) -> None:
    http = "map $uri $m { default from-map; }"
    loc = 'location /s { set $m from-set; return 200 "$m"; } location / { return 200 "$m"; }'
    answers = differential(server, http, loc, [get("/s"), get("/x")])
    assert [b for _, b in answers] == [b"from-set", b"from-map"]


def test_map_include_relative_to_conf_prefix(server: Start) -> None:
    port = free_port()
    files = {"conf/maps/one.map": "/a   from-include;\n~^/b(\\d) b$1;\n"}
    server(conf_for(port, "map $uri $m { include maps/*.map; default dflt; }",
                    'location / { return 200 "$m"; }'), files=files)
    assert [b for _, b in fetch_all(port, [get("/a"), get("/b7"), get("/c")])] == \
        [b"from-include", b"b7", b"dflt"]


def test_map_chain_defined_after_use(server: Start) -> None:
    http = """
    map $second $first { default "1:$second"; }
    map $uri $second { /x ex; default other; }
    """
    answers = differential(server, http, 'location / { return 200 "$first"; }', [get("/x"), get("/y")])
    assert [b for _, b in answers] == [b"1:ex", b"1:other"]


# --- geo -----------------------------------------------------------------------------

GEO_CIDR = """
geo $arg_ip $net {
    default          world;
    10.0.0.0/8       ten;
    10.1.0.0/16      ten-one;
    10.1.2.0/24      ten-one-two;
    10.1.2.3         host;
    10.1.2.4/31      pair;
    192.168.0.0/16   private;
    delete           192.168.7.0/24;
    192.168.7.0/25   seven-low;
    0.0.0.0/1        low-half;
    255.255.255.255  invalid;
    2001:db8::/32    doc;
    2001:db8:1::/48  doc-one;
    ::1              v6-lo;
    ::ffff:172.16.0.0/108 mapped;
}
"""

CIDR_ADDRS = ["10.0.0.1", "10.1.0.1", "10.1.2.1", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6",
              "11.0.0.0", "127.0.0.1", "128.0.0.1", "192.168.1.1", "192.168.7.1", "192.168.7.200",
              "255.255.255.255", "256.1.1.1", "1.2.3", "1..2.3", "010.1.2.3", "10.1.2.3.",
              "garbage", "", "2001:db8::1", "2001:db8:1::5", "2001:db9::1", "::1", "::2",
              "::ffff:10.1.2.3", "::ffff:172.16.5.5", "::FFFF:10.0.0.1", "1:2:3:4:5:6:7:8",
              "1::2::3", "[::1]", "10.1.2.3:80"]


def test_geo_cidr_longest_prefix_matches_nginx(server: Start) -> None:
    reqs = [get(f"/?ip={quote(a, safe=':[]')}") for a in CIDR_ADDRS] + [get("/")]
    answers = differential(server, GEO_CIDR, 'location / { return 200 "$net"; }', reqs)
    got = dict(zip(CIDR_ADDRS, (b for _, b in answers)))
    assert got["10.1.2.3"] == b"host"
    assert got["10.1.2.5"] == b"pair"
    assert got["192.168.7.200"] == b"private"  # the deleted /24 falls back to the /16
    assert got["garbage"] == b"invalid"  # unparsable: nginx looks up 255.255.255.255


GEO_RANGES = """
geo $arg_ip $range {
    ranges;
    default                      none;
    10.0.0.0-10.0.0.255          a;
    10.0.0.10-10.0.0.20          inner;
    10.0.1.0-10.2.255.255        wide;
    10.1.0.0-10.1.0.5            wide-start;
    10.2.255.250-10.2.255.255    wide-end;
    0.0.0.0-0.0.0.0              zero;
    172.16.0.0-172.16.0.9        gone;
    delete                       172.16.0.0-172.16.0.9;
    255.255.0.0-255.255.255.254  top;
}
"""

RANGE_ADDRS = ["10.0.0.0", "10.0.0.9", "10.0.0.10", "10.0.0.20", "10.0.0.21", "10.0.0.255",
               "10.0.1.0", "10.1.0.0", "10.1.0.5", "10.1.0.6", "10.2.255.249", "10.2.255.250",
               "10.2.255.255", "10.3.0.0", "0.0.0.0", "0.0.0.1", "172.16.0.5", "255.255.255.254",
               "255.255.255.255", "::ffff:10.0.0.15", "::1", "bad", ""]


def test_geo_ranges_match_nginx(server: Start) -> None:
    reqs = [get(f"/?ip={quote(a, safe=':[]')}") for a in RANGE_ADDRS]
    answers = differential(server, GEO_RANGES, 'location / { return 200 "$range"; }', reqs)
    got = dict(zip(RANGE_ADDRS, (b for _, b in answers)))
    assert got["::ffff:10.0.0.15"] == b"inner"  # IPv4-mapped: the IPv4 ranges
    assert got["::1"] == b"none"  # IPv6 in ranges mode: looked up as 255.255.255.255
    assert got["10.1.0.6"] == b"wide"


GEO_PROXY = """
geo $g {
    default       unknown;
    proxy         127.0.0.1;
    proxy         10.0.0.0/8;
    127.0.0.0/8   loopback;
    10.0.0.0/8    internal;
    1.2.3.0/24    client;
    2001:db8::/32 v6-client;
}
geo $gr {
    default       unknown;
    proxy         127.0.0.1;
    proxy         10.0.0.0/8;
    proxy_recursive;
    127.0.0.0/8   loopback;
    10.0.0.0/8    internal;
    1.2.3.0/24    client;
}
geo $arg_ip $gv {
    default       unknown;
    proxy         192.0.2.0/24;
    1.2.3.0/24    client;
    192.0.2.0/24  proxy-net;
}
"""

XFF = ["1.2.3.4", "1.2.3.4, 10.0.0.1", "9.9.9.9, 1.2.3.4, 10.0.0.1", "1.2.3.4,10.0.0.2 ,",
       "garbage", "10.0.0.1, garbage", "1.2.3.4:8080", "[2001:db8::1]:443", "2001:db8::1",
       "[2001:db8::1]", "10.1.1.1, 10.2.2.2", "  1.2.3.4", ""]


def test_geo_proxy_and_x_forwarded_for_match_nginx(server: Start) -> None:
    reqs = [get("/")] + [get("/", ("X-Forwarded-For", x)) for x in XFF]
    # two headers: nginx reads them last first
    reqs.append(get("/", ("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-For", "10.0.0.7")))
    reqs.append(get("/", ("X-Forwarded-For", "garbage"), ("X-Forwarded-For", "1.2.3.9")))
    # a variable source: the proxy check applies to the variable's address
    reqs += [get("/?ip=192.0.2.1", ("X-Forwarded-For", "1.2.3.4")),
             get("/?ip=198.51.100.1", ("X-Forwarded-For", "1.2.3.4")),
             get("/?ip=bad", ("X-Forwarded-For", "1.2.3.4"))]
    answers = differential(server, GEO_PROXY, 'location / { return 200 "$g $gr $gv"; }', reqs)
    assert answers[0] == (200, b"loopback loopback unknown")
    assert answers[2][1].split()[:2] == [b"internal", b"client"]  # "1.2.3.4, 10.0.0.1"


def test_geo_client_address_without_source(server: Start) -> None:
    port = free_port()
    server(conf_for(port, "geo $g { default far; 127.0.0.0/8 near; }\n"
                          "geo $r { ranges; default far; 127.0.0.0-127.0.0.1 near; }",
                    'location / { return 200 "$g $r"; }'))
    assert fetch_all(port, [get("/")]) == [(200, b"near near")]


def test_geo_include_file(server: Start) -> None:
    port = free_port()
    files = {"conf/geo.conf": "10.0.0.0/8 from-file;\n"}
    server(conf_for(port, "geo $arg_ip $g { default none; include geo.conf; }",
                    'location / { return 200 "$g"; }'), files=files)
    assert [b for _, b in fetch_all(port, [get("/?ip=10.9.9.9"), get("/?ip=11.0.0.1")])] == \
        [b"from-file", b"none"]
