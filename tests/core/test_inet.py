"""Tests for portico.core.inet: nginx's address parsers, printer, CIDR match
and X-Forwarded-For walk, quirks included.

The accept/refuse table is what Debian's nginx answers for ``allow TEXT;``
at ``nginx -t``; ``test_table_matches_nginx`` re-checks it when nginx is
installed.
"""
from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from portico.core.inet import (ALL32, ALL128, UNIX, V4, V6, Cidr, CidrSet, addr_key, forwarded_addr,
                               inet6_addr, inet6_ntop, inet_addr, ntop, parse_addr, parse_addr_port,
                               ptocidr, unmap_v4)
from tests.harness import NGINX, have_nginx


def v6(text: str) -> int:
    v = inet6_addr(text)
    assert v is not None, text
    return v


# --- ngx_inet_addr ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("1.2.3.4", 0x01020304),
    ("1..2.3", 0x01000203),  # an empty octet is 0
    ("1.2.3.", 0x01020300),
    (".1.2.3", 0x00010203),
    ("...", 0),
    ("01.2.3.4", 0x01020304),  # leading zeros are decimal, not octal
    ("001.002.003.004", 0x01020304),
    ("0.0.0.0", 0),
    ("255.255.255.254", 0xFFFFFFFE),
])
def test_inet_addr_accepts(text: str, value: int) -> None:
    assert inet_addr(text) == value


@pytest.mark.parametrize("text", [
    "255.255.255.255",  # INADDR_NONE: refused like invalid text
    "1.2.3.256", "1.2.3", "1.2.3.4.5", "", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "1.2.3.0x1",
    "0001.2.3.4x", "1.2.3.4/8", "١.2.3.4",  # no non-ASCII digits
])
def test_inet_addr_refuses(text: str) -> None:
    assert inet_addr(text) is None


# --- ngx_inet6_addr --------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("::", 0),
    ("::1", 1),
    ("1::", 1 << 112),
    ("1:2:3:4:5:6:7:8", 0x00010002000300040005000600070008),
    ("::1:2:3:4:5:6:7", 0x00000001000200030004000500060007),  # "::" standing for one group
    ("1:2:3:4:5:6:7::", None),  # ... but not at the end with 7 groups before it: nginx refuses
    ("ABCD::ef", 0xABCD << 112 | 0xEF),  # either case
    ("::1.2.3.4", 0x01020304),
    ("::ffff:1.2.3.4", 0xFFFF01020304),
    ("1:2:3:4:5:6:1.2.3.4", 0x00010002000300040005000601020304),
    ("1:2:3:4:5::1.2.3.4", 0x00010002000300040005000001020304),
    ("::1..2.3", 0x01000203),  # the dotted quad is ngx_inet_addr's, quirks included
    ("0:0:0:0:0:0:0:0", 0),
    ("0000::0001", 1),
])
def test_inet6_addr(text: str, value: int | None) -> None:
    assert inet6_addr(text) == value


@pytest.mark.parametrize("text", [
    "", ":", ":::1", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:", "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:1.2.3.4",  # no room for the dotted quad
    "::1.2.3", "::1.2.3.4.5", "::255.255.255.255", "1.2.3.4::",
    "fe80::1%eth0",  # no zone ids
    "[::1]", "::g", " ::1", "::1 ", "1:2:3:4:5:6:7", "::1/64",
])
def test_inet6_addr_refuses(text: str) -> None:
    assert inet6_addr(text) is None


# --- ngx_ptocidr -------------------------------------------------------------------------------

def test_ptocidr_shapes() -> None:
    assert ptocidr("1.2.3.4") == Cidr(V4, 0x01020304, ALL32, False)
    assert ptocidr("10.0.0.0/8") == Cidr(V4, 0x0A000000, 0xFF000000, False)
    c = ptocidr("1.2.3.4/24")
    assert c == Cidr(V4, 0x01020300, 0xFFFFFF00, True)  # NGX_DONE: low bits were set
    assert c is not None and c.prefix == 24
    assert ptocidr("1.2.3.4/0024") == Cidr(V4, 0x01020300, 0xFFFFFF00, True)  # ngx_atoi
    assert ptocidr("1.2.3.4/0") == Cidr(V4, 0, 0, True)
    assert ptocidr("0.0.0.0/0") == Cidr(V4, 0, 0, False)
    assert ptocidr("::1") == Cidr(V6, 1, ALL128, False)
    c = ptocidr("::ffff:1.2.3.4/96")
    assert c == Cidr(V6, 0xFFFF00000000, ALL128 ^ ALL32, True)
    assert c is not None and c.prefix == 96
    assert ptocidr("2001:db8::/32") == Cidr(V6, 0x20010DB8 << 96, ALL128 ^ ((1 << 96) - 1), False)
    assert ptocidr("1..2.3/32") == Cidr(V4, 0x01000203, ALL32, False)


@pytest.mark.parametrize("text", [
    "255.255.255.255", "255.255.255.255/32", "1.2.3.4/33", "::1/129", "1.2.3.4/", "1.2.3.4/+1",
    "1.2.3.4/-1", "1.2.3.4/ 8", "1.2.3.4/99999999999999999999", "foo", "unix:", "all", "1.2.3.4:80",
    "[::1]", "/8", "",
])
def test_ptocidr_refuses(text: str) -> None:
    assert ptocidr(text) is None


# (text, accepted, warns about low bits) as Debian's nginx answers ``allow TEXT;``
NGINX_TABLE = [
    ("1..2.3", True, False), ("01.2.3.4", True, False), ("1.2.3.", True, False),
    ("255.255.255.255", False, False), ("255.255.255.255/32", False, False),
    ("1.2.3.4/33", False, False), ("1.2.3.4/", False, False), ("1.2.3.4/24", True, True),
    ("1.2.3.4/0024", True, True), ("::1.2.3.4", True, False), ("::ffff:1.2.3.4/96", True, True),
    ("1:2:3:4:5:6:7:8", True, False), ("1:2:3:4:5:6:7:8:", False, False),
    ("1:2:3:4:5:6:7::", False, False), ("::1:2:3:4:5:6:7", True, False), ("1::2::3", False, False),
    (":::1", False, False), ("::", True, False), ("1:2:3:4:5:6:1.2.3.4", True, False),
    ("1:2:3:4:5:6:7:1.2.3.4", False, False), ("::1.2.3", False, False),
    ("fe80::1%eth0", False, False), ("[::1]", False, False), ("::1/129", False, False),
    ("::1/128", True, False), ("12345::", False, False), ("ABCD::EF", True, False),
    ("1.2.3.4/99999999999999999999", False, False), ("::1.2.3.4.5", False, False),
    ("1:2:3:4:5::1.2.3.4", True, False), ("1.2.3.4:80", False, False),
]


@pytest.mark.parametrize("text, accepted, low_bits", NGINX_TABLE)
def test_ptocidr_table(text: str, accepted: bool, low_bits: bool) -> None:
    c = ptocidr(text)
    assert (c is not None) == accepted
    assert c is None or c.low_bits == low_bits


@pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")
def test_table_matches_nginx() -> None:
    with tempfile.TemporaryDirectory() as prefix:
        os.mkdir(os.path.join(prefix, "logs"))
        conf = os.path.join(prefix, "nginx.conf")
        for text, accepted, low_bits in NGINX_TABLE:
            with open(conf, "w") as f:
                f.write(f"error_log {prefix}/logs/error.log;\npid {prefix}/logs/nginx.pid;\n"
                        "events {}\nhttp { access_log off; server { listen 127.0.0.1:1;\n"
                        f"allow {text};\n}} }}\n")
            res = subprocess.run([NGINX, "-t", "-q", "-p", prefix, "-c", conf],
                                 capture_output=True, text=True, timeout=30)
            assert (res.returncode == 0) == accepted, (text, res.stderr)
            assert ("low address bits" in res.stderr) == low_bits, (text, res.stderr)


# --- ngx_parse_addr / ngx_parse_addr_port ------------------------------------------------------

def test_parse_addr() -> None:
    assert parse_addr("1.2.3.4") == (V4, 0x01020304)
    assert parse_addr("::1") == (V6, 1)
    assert parse_addr("1.2.3.4:80") is None
    assert parse_addr("255.255.255.255") is None
    assert parse_addr("") is None


@pytest.mark.parametrize("text, result", [
    ("1.2.3.4", (V4, 0x01020304, 0)),
    ("1.2.3.4:80", (V4, 0x01020304, 80)),
    ("1.2.3.4:080", (V4, 0x01020304, 80)),
    ("1..2.3:1", (V4, 0x01000203, 1)),
    ("::1", (V6, 1, 0)),  # a bare IPv6 address first: "1" is not a port
    ("1::2:80", (V6, (1 << 112) | (2 << 16) | 0x80, 0)),
    ("[::1]:80", (V6, 1, 80)),
    ("[::1]:65535", (V6, 1, 65535)),
    ("[::1]", None), ("[::1]:", None), ("[::1]80", None), ("[::1]:0", None), ("[::1]:65536", None),
    ("1.2.3.4:0", None), ("1.2.3.4:", None), ("1.2.3.4:+80", None), ("1.2.3.4:80:81", None),
    ("[1.2.3.4]:80", (V4, 0x01020304, 80)),  # brackets do not care about the family
    ("foo:80", None), (":80", None), ("", None), ("255.255.255.255:80", None),
])
def test_parse_addr_port(text: str, result: tuple[int, int, int] | None) -> None:
    assert parse_addr_port(text) == result


# --- ngx_inet6_ntop / ngx_sock_ntop ----------------------------------------------------------

@pytest.mark.parametrize("text, printed", [
    ("::", "::"),
    ("::1", "::1"),
    ("1::", "1::"),
    ("::1.2.3.4", "::1.2.3.4"),  # 96 zero bits: IPv4-compatible, dotted
    ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),  # IPv4-mapped, dotted
    ("::102", "::0.0.1.2"),  # 112 zero bits, high byte set, low byte not 1: dotted
    ("::101", "::101"),
    ("::5", "::5"),
    ("::ffff:0:1.2.3.4", "::ffff:0:102:304"),  # IPv4-translated: not dotted
    ("64:ff9b::1.2.3.4", "64:ff9b::102:304"),
    ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # the first of two equal runs
    ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),  # the longest run
    ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),  # a single zero group stays
    ("0:0:0:1::", "0:0:0:1::"),
    ("0001:0002:0003:0004:0005:0006:0007:0008", "1:2:3:4:5:6:7:8"),
])
def test_inet6_ntop(text: str, printed: str) -> None:
    assert inet6_ntop(v6(text)) == printed


def test_ntop() -> None:
    assert ntop(V4, 0x7F000001) == "127.0.0.1"
    assert ntop(V6, 1) == "::1"
    assert ntop(UNIX, 0) == "unix:"


# --- peer addresses and matching ------------------------------------------------------------

def test_addr_key() -> None:
    assert addr_key("127.0.0.1") == (V4, 0x7F000001)
    assert addr_key("::1") == (V6, 1)
    assert addr_key("fe80::1%eth0") == (V6, 0xFE80 << 112 | 1)  # the zone is no part of it
    assert addr_key("unix:") == (UNIX, 0)
    assert addr_key("255.255.255.255") == (V4, ALL32)  # a peer, not text nginx parses


def test_unmap_v4() -> None:
    assert unmap_v4(V6, 0xFFFF01020304) == (V4, 0x01020304)
    assert unmap_v4(V6, 0x01020304) == (V6, 0x01020304)  # IPv4-compatible is not mapped
    assert unmap_v4(V4, 5) == (V4, 5)
    assert unmap_v4(UNIX, 0) == (UNIX, 0)


def cidrs(*texts: str) -> CidrSet:
    s = CidrSet()
    for t in texts:
        if t == "unix:":
            s.unix = True
            continue
        c = ptocidr(t)
        assert c is not None
        s.add(c.family, c.addr, c.mask)
    return s


def test_cidr_match() -> None:
    s = cidrs("10.0.0.0/8", "::1")
    assert s.match(V4, 0x0A010203)
    assert not s.match(V4, 0x0B000000)
    assert s.match(V6, 0xFFFF0A000001)  # IPv4-mapped: matched as IPv4
    assert not s.match(V6, 0x0A000001)  # IPv4-compatible: an IPv6 address
    assert s.match(V6, 1)
    assert not s.match(UNIX, 0)
    assert cidrs("unix:").match(UNIX, 0)
    assert not cidrs("::ffff:10.0.0.0/104").match(V6, 0xFFFF0A000001)  # mapped never meets IPv6 nets
    assert cidrs("0.0.0.0/0").match(V4, ALL32)


# --- ngx_http_get_forwarded_addr -----------------------------------------------------------

LO = (V4, 0x7F000001, 1234)
TRUST = cidrs("127.0.0.0/8", "10.0.0.0/8", "::1")


def fwd(values: list[str], recursive: bool = False, addr: tuple[int, int, int] = LO) -> str | None:
    r = forwarded_addr(addr, values, TRUST, recursive)
    return None if r is None else f"{ntop(r[0], r[1])}:{r[2]}"


def test_forwarded_addr_last_element() -> None:
    assert fwd(["1.1.1.1, 2.2.2.2"]) == "2.2.2.2:0"
    assert fwd(["1.1.1.1, 10.0.0.2"]) == "10.0.0.2:0"  # not recursive: one step
    assert fwd(["1.1.1.1,  2.2.2.2 ,, "]) == "2.2.2.2:0"  # trailing separators dropped
    assert fwd(["2.2.2.2:8080"]) == "2.2.2.2:8080"
    assert fwd(["[::1]:99"]) == "::1:99"
    assert fwd(["1.1.1.1, junk"]) is None  # NGX_DECLINED: unparsable
    assert fwd([""]) is None
    assert fwd([","]) is None
    assert fwd(["2.2.2.2"], addr=(V4, 0x01010101, 5)) is None  # the peer is not trusted


def test_forwarded_addr_recursive() -> None:
    assert fwd(["1.1.1.1, 10.0.0.2, 10.0.0.3"], True) == "1.1.1.1:0"
    assert fwd(["9.9.9.9, 1.1.1.1, 10.0.0.2"], True) == "1.1.1.1:0"  # stops at the untrusted one
    assert fwd(["junk, 10.0.0.2"], True) == "10.0.0.2:0"  # NGX_DONE: keeps the last good one
    assert fwd(["10.0.0.2"], True) == "10.0.0.2:0"  # all trusted: the left-most
    # nginx never looks at the first character as a separator: ",10.0.0.2" is
    # one element, unparsable (Debian's nginx keeps the peer's address too)
    assert fwd([",10.0.0.2"], True) is None
    assert fwd(["1.1.1.1,10.0.0.2"], True) == "1.1.1.1:0"
    assert fwd(["::ffff:10.0.0.9, ::1"], True) == "::ffff:10.0.0.9:0"  # mapped: trusted as 10.0.0.9


def test_forwarded_addr_several_lines() -> None:
    # walked from the last line; only the last one without recursion
    assert fwd(["1.1.1.1", "10.0.0.2"]) == "10.0.0.2:0"
    assert fwd(["1.1.1.1", "10.0.0.2"], True) == "1.1.1.1:0"
    assert fwd(["1.1.1.1", "2.2.2.2"], True) == "2.2.2.2:0"  # the next line is declined: NGX_DONE
    assert fwd(["1.1.1.1", "junk"], True) is None
    assert fwd(["junk", "10.0.0.2"], True) == "10.0.0.2:0"
