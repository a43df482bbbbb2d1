"""Tests for portico.http.uri: differential against nginx 1.22, plus units.

The differential tests start /usr/sbin/nginx on loopback with two servers
(merge_slashes on / off) answering ``return 200 "$uri..."``, send every line
of uri_corpus.txt raw over a socket and compare with parse_target.  The unit
tests below hold the values nginx 1.22.1 answered, written in.
"""

from __future__ import annotations

import codecs
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from portico.http.uri import (BadRequest, Target, _complex_uri, normalise_host,
                              parse_target)

NGINX = "/usr/sbin/nginx"
CORPUS = Path(__file__).with_name("uri_corpus.txt")
SEP = b"<<|>>"


def load_corpus() -> list[bytes]:
    out = []
    for line in CORPUS.read_bytes().split(b"\n"):
        if line and not line.startswith(b"# "):
            out.append(codecs.escape_decode(line)[0])
    return out


# --------------------------------------------------------------- the oracle

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def nginx() -> Iterator[dict[bool, int]]:
    """Start nginx; yield {merge_slashes: port}."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx oracle not installed")
    d = tempfile.mkdtemp(prefix="portico-uri-")
    ports = {True: _free_port(), False: _free_port()}
    body = f'"$uri{SEP.decode()}$args{SEP.decode()}$request_uri{SEP.decode()}$host"'
    servers = "".join(
        f"server {{ listen 127.0.0.1:{port}; merge_slashes {'on' if m else 'off'};"
        f" location / {{ return 200 {body}; }} }}\n"
        for m, port in ports.items())
    temps = " ".join(f"{k}_temp_path {d}/{k};" for k in
                     ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    Path(d, "nginx.conf").write_text(
        "master_process off;\nworker_processes 1;\n"
        "events { worker_connections 64; }\n"
        f"http {{ access_log off; default_type text/plain; {temps}\n{servers}}}\n")
    proc = subprocess.Popen(
        [NGINX, "-p", d, "-c", f"{d}/nginx.conf", "-g",
         f"daemon off; pid {d}/nginx.pid; error_log {d}/error.log info;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        for port in ports.values():
            while True:
                if proc.poll() is not None:
                    pytest.fail("nginx exited: " + proc.stderr.read().decode())
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("nginx did not start listening")
                    time.sleep(0.05)
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def ask(port: int, target: bytes, host: bytes = b"x") -> tuple[int, list[bytes]]:
    """Send one raw request; return (status, [uri, args, request_uri, host])."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host
                  + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.split(SEP) if status == 200 else []


def ours(target: bytes, merge: bool) -> tuple:
    try:
        t = parse_target(target, merge)
    except BadRequest as e:
        return (e.status,)
    enc = [s.encode("utf-8", "surrogateescape") for s in (t.uri, t.args, t.raw_uri)]
    return (200, *enc, t.host)


def test_corpus_is_big_enough() -> None:
    assert len(load_corpus()) >= 80


def test_corpus_matches_nginx(nginx: dict[bool, int]) -> None:
    diffs = []
    for target in load_corpus():
        for merge, port in nginx.items():
            status, f = ask(port, target)
            want: tuple = (status,)
            if status == 200:
                host = f[3].decode("utf-8", "surrogateescape")
                want = (200, f[0], f[1], f[2],
                        None if target.startswith(b"/") else host)
            got = ours(target, merge)
            if got != want:
                diffs.append(f"{target!r} merge={merge}: nginx {want} ours {got}")
    assert not diffs, "\n".join(diffs)


HOSTS = [b"Example.COM", b"example.com.", b"example.com:8080", b".example.com",
         b"a..b", b"a/b", b"a\\b", b"[::1]", b"[::1]:80", b"[::1", b"::1",
         b"[::1]x", b"[zz]", b".", b":80", b"a:b:c", b"\xc3\xa9X.com", b"a b",
         b"a\x01b", b"a\x7fb", b"EXAMPLE.com.:80", b"a.:80", b"a_b", b"a..",
         b"..", b"[::1].", b"[a..b]", b"x]y", b"a|b", b"a\tb", b"a@b",
         b"example.com..", b"[", b"]", b"[]", b"a.-b", b"a:.", b"[::1]:x:y"]


def test_hosts_match_nginx(nginx: dict[bool, int]) -> None:
    diffs = []
    for h in HOSTS + [b""]:
        status, f = ask(nginx[True], b"/", host=h)
        want = (200, f[3].decode("utf-8", "surrogateescape")) if status == 200 else (status,)
        try:
            got: tuple = (200, normalise_host(h))
        except BadRequest as e:
            got = (e.status,)
        if got != want:
            diffs.append(f"{h!r}: nginx {want} ours {got}")
    assert not diffs, "\n".join(diffs)


# ------------------------------------------------- unit tests (nginx values)

@pytest.mark.parametrize("target,uri,args", [
    (b"/a?b=c", "/a", "b=c"),
    (b"/a?b=%zz", "/a", "b=%zz"),           # args are never decoded/checked
    (b"/a?x=/../..", "/a", "x=/../.."),
    (b"/a?b#c?d", "/a", "b"),               # fragment cut from args
    (b"/a#b?c", "/a", ""),                  # '?' after '#' is not a query
    (b"/a%23b?c", "/a#b", "c"),
    (b"/a%3Fb", "/a?b", ""),                # %3F decodes, is not a query
    (b"/a%2525", "/a%25", ""),              # decoded once only
    (b"/a%2F%2Fb", "/a/b", ""),             # %2F is a real '/', merged too
    (b"/a%2F..%2Fb", "/b", ""),             # ... and resolves dot segments
    (b"/a/%2e%2e/b", "/b", ""),
    (b"/a/.%2e/b", "/b", ""),
    (b"/a+b?c+d", "/a+b", "c+d"),           # '+' is not a space
    (b"/a%20b", "/a b", ""),
    (b"/a%0D%0A", "/a\r\n", ""),            # decoded controls are kept
    (b"/a%C3%A9", "/a\xe9", ""),
    (b"/\xff\xfe", "/\udcff\udcfe", ""),    # raw high bytes round-trip
    (b"/a\\..\\b", "/a\\..\\b", ""),        # '\' is literal on Unix
    (b"/a/.", "/a/", ""),
    (b"/.", "/", ""),
    (b"/a/..", "/", ""),
    (b"/a/b/..?x", "/a/", "x"),
    (b"/a/..#x", "/", ""),
    (b"/a/.../b", "/a/.../b", ""),
    (b"/a/b;/../c", "/a/c", ""),
    (b"/.%3F", "/.?", ""),                  # decoded '?','#','%' end the dot
    (b"/..%23", "/..#", ""),                # segment: '..#' is a name
    (b"/a/%2e%2e%3fx", "/a/..?x", ""),
    (b"/a/..%3Fx/..", "/a/", ""),
    (b"/%41%42%43", "/ABC", ""),
    (b"//a//b//", "/a/b/", ""),
])
def test_values_from_nginx(target: bytes, uri: str, args: str) -> None:
    t = parse_target(target)
    assert (t.uri, t.args) == (uri, args)
    assert t.raw_uri == target.decode("utf-8", "surrogateescape")
    assert t.host is None


@pytest.mark.parametrize("target,on,off", [
    (b"//", "/", "//"),
    (b"/a//../b", "/b", "/a/b"),
    (b"/a/..//b", "/b", "//b"),
    (b"/a/.//b", "/a/b", "/a//b"),
    (b"/a/%2F/b", "/a/b", "/a///b"),
])
def test_merge_slashes(target: bytes, on: str, off: str) -> None:
    assert parse_target(target, True).uri == on
    assert parse_target(target, False).uri == off


def test_double_slash_dotdot_depends_on_merge() -> None:
    with pytest.raises(BadRequest):
        parse_target(b"//..", True)         # "/.." once merged: above root
    assert parse_target(b"//..", False).uri == "/"


@pytest.mark.parametrize("target", [
    b"/..", b"/../", b"/..?x", b"/..#x", b"/a/../..", b"/a/b/../../../c",
    b"/%2e%2e", b"/.%2e/", b"/a/..%2F..%2Fb", b"/a%2F%2E%2E%2F%2E%2E%2Fb",
    b"/a%00b", b"/%00", b"/a%", b"/a%0", b"/a%g0", b"/a%0g", b"/a%%",
    b"/a%?b", b"/a%4?b", b"/a\x7f", b"/a\x01", b"/a\tb", b"/a b",
    b"/a?b c", b"/a\rb", b"/a\nb", b"/a\x00b", b"/a?b\x00",
    b"*", b"a/b", b"?a", b"#a", b".", b"%2F", b"",
    b"http://[::1", b"http://[::1]x/", b"http://[fe80::1%25eth0]/",
    b"http://ex_ample.com/", b"http://user@example.com/", b"http:/x/",
    b"http//x", b"http://example.com/%2e%2e", b"http://example.com:abc/",
    b"1http://x/", b"http://example.com#b",
    b"http://example..com/%2e%2e",          # the URI is checked before the host
])
def test_bad_request(target: bytes) -> None:
    with pytest.raises(BadRequest) as e:
        parse_target(target)
    assert e.value.status == 400
    assert e.value.reason == "client sent invalid request"


@pytest.mark.parametrize("target", [b"http:///a", b"http://example..com/",
                                    b"http://:80/", b"http:///a/.."])
def test_bad_host_in_request_line(target: bytes) -> None:
    with pytest.raises(BadRequest) as e:
        parse_target(target)
    assert (e.value.status, e.value.reason) == (
        400, "client sent invalid host in request line")


@pytest.mark.parametrize("target,expect", [
    (b"http://example.com/a?b", Target("/a", "b", "/a?b", True, "example.com")),
    (b"http://Example.COM:8080/a/../b",
     Target("/b", "", "/a/../b", False, "example.com")),
    (b"http://example.com", Target("/", "", "/", False, "example.com")),
    (b"http://example.com:80", Target("/", "", "/", False, "example.com")),
    (b"http://example.com?x=1", Target("/", "x=1", "?x=1", True, "example.com")),
    (b"http://example.com./x", Target("/x", "", "/x", False, "example.com")),
    (b"http://[::1]:8080/x", Target("/x", "", "/x", False, "[::1]")),
    (b"HTTPS://example.com/a", Target("/a", "", "/a", False, "example.com")),
    (b"ftp://example.com/a", Target("/a", "", "/a", False, "example.com")),
    (b"x-y+z.1://h/", Target("/", "", "/", False, "h")),
    (b"http://.example.com/", Target("/", "", "/", False, ".example.com")),
    (b"http://example.com:/a", Target("/a", "", "/a", False, "example.com")),
    (b"http://example.com/a#b", Target("/a", "", "/a#b", False, "example.com")),
])
def test_absolute_form(target: bytes, expect: Target) -> None:
    assert parse_target(target) == expect


def test_has_args() -> None:
    assert parse_target(b"/a").has_args is False
    assert parse_target(b"/a?").has_args is True     # nginx: $is_args ""
    assert parse_target(b"/a?").args == ""
    assert parse_target(b"/a#?b").has_args is False
    assert parse_target(b"/a/.?").has_args is True


def test_fast_path_agrees_with_state_machine() -> None:
    for target in (b"/", b"/a/b.c", b"/a?b=c&d", b"/a?", b"/a.b/c?x=%zz/..",
                   b"/caf\xc3\xa9/+~;,", b"/a\\b"):
        for merge in (True, False):
            t = parse_target(target, merge)
            uri, args = _complex_uri(target, merge)
            assert t.uri.encode("utf-8", "surrogateescape") == uri
            assert (t.args.encode("utf-8", "surrogateescape")
                    if t.has_args else None) == args


def test_round_trip_bytes() -> None:
    t = parse_target(b"/%FF/\x80")
    assert t.uri.encode("utf-8", "surrogateescape") == b"/\xff/\x80"


@pytest.mark.parametrize("value,host", [
    (b"Example.COM", "example.com"), (b"example.com.", "example.com"),
    (b"EXAMPLE.com.:80", "example.com"), (b".example.com", ".example.com"),
    (b"[::1]:80", "[::1]"), (b"[::1", "[::1"), (b"[::1]x", "[::1]"),
    (b"a:b:c", "a"), (b"a\\b", "a\\b"), (b"a_b", "a_b"),
    (b"\xc3\xa9X.com", "\xe9x.com"), (b"[::1].", "[::1]"),
])
def test_normalise_host(value: bytes, host: str) -> None:
    assert normalise_host(value) == host


@pytest.mark.parametrize("value", [
    b"", b".", b":80", b"::1", b"a..b", b"a..", b"example.com..", b"a/b",
    b"a b", b"a\tb", b"a\x00b", b"a\x01b", b"a\x7fb", b"[a..b]",
])
def test_normalise_host_rejects(value: bytes) -> None:
    with pytest.raises(BadRequest) as e:
        normalise_host(value)
    assert (e.value.status, e.value.reason) == (
        400, "client sent invalid host header")
