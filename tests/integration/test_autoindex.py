"""autoindex, random_index and empty_gif against real processes, and against
Debian's nginx 1.22.1 on the same directory tree.

Invariants:
- The tree (``_build``) is made identically in both servers' prefixes:
  hostile names (markup, quotes, '&', '%', '?', '#', ':', controls, UTF-8,
  invalid UTF-8, 47..255-byte names), every size class of the html listing,
  symlinks (to a file, to a directory, dangling, looping), a FIFO, hidden
  entries, an index file, an unreadable directory.  Modes are set for
  nginx's "nobody" workers and every mtime is pinned, so listings agree.
- Differential cases compare status, the headers that matter (Content-Type,
  Content-Length presence, Transfer-Encoding, Last-Modified, ETag presence,
  Location, Connection) and the body byte for byte; only the product token
  (``nginx/1.22.1`` vs ``portico/0.1.0``) is normalised.
"""
from __future__ import annotations

import collections
import os
import socket
import sys
import time
import urllib.parse
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request  # noqa: E402

from portico.http.modules import autoindex as ai  # noqa: E402
from portico.http.modules.empty_gif import EMPTY_GIF  # noqa: E402

NGINX_TOKEN = b"nginx/1.22.1"
PORTICO_TOKEN = b"portico/0.1.0"
MT = 1600000000  # Sun, 13 Sep 2020 12:26:40 GMT

GIB = 1024 ** 3
MIB = 1024 ** 2

# name -> size (bytes); every file of the listed directory
FILES: dict[bytes, int] = {
    b"a.txt": 5,
    b"<script>alert(1)<\\script>.txt": 31,
    b"<img src=x onerror=alert(1)>": 0,
    b"q\"uote'single.txt": 1,
    b"&amp;.txt": 2,
    b"a&b<c>d.txt": 3,
    b"%41%zz percent.txt": 4,
    b"with  spaces .txt": 9999,
    b"what?.txt": 10000,
    b"hash#frag.txt": 10751,
    b"colon:name.txt": 10752,
    b"semi;colon=eq+plus,comma.txt": MIB - 1,
    b"tilde~under_dash-dot.txt": MIB,
    "ünïcödé-файл.txt".encode(): MIB + MIB // 2 - 1,
    "😀 emoji.txt".encode(): MIB + MIB // 2,
    "漢字".encode() * 30: 7,
    "é".encode() * 50: 8,
    "é".encode() * 51: 9,
    b"bad\xff\xfe.txt": 10,
    b"\xc3(.txt": 11,
    b"trunc\xe2\x82": 12,
    b"\xed\xa0\x80surrogate.txt": 13,
    b"\xc0\xafoverlong.txt": 14,
    b"\xf8\x88\x80\x80\x80five.txt": 15,
    b"\xf8\x90\x80\x80lenient.txt": 15,
    b"x" * 60 + b".txt": 16,
    b"y" * 50: 17,
    b"z" * 49: 18,
    b"w" * 51: 19,
    b"L" * 255: 20,
    b"a" * 46 + b"<<<<&&&&": 21,
    b"tab\there": 22,
    b"nl\nname": 23,
    b"ctl\x01\x1f\x7f": 24,
    b"back\\slash": 25,
    b".hidden": 26,
    b"UPPER.TXT": 27,
    b"index.htm": 28,
}
DIRS: tuple[bytes, ...] = (b"sub", b"D" * 55, b"E" * 49, b"F" * 50, b"<b>&dir\"", "sub dir é".encode(),
                           b".hiddendir", b"empty")
SPARSE: dict[bytes, int] = {b"big": 5 * MIB + 600000, b"huge": 3 * GIB + 600 * MIB, b"giga-1": GIB - 1,
                            b"giga-half": GIB + GIB // 2 - 1, b"giga-half2": GIB + GIB // 2}
LINKS: dict[bytes, bytes] = {b"link-file": b"a.txt", b"link-dir": b"sub", b"dangling": b"nowhere",
                             b"loop": b"loop"}
# names whose mtime is not MT: a negative time, the epoch, year 10000
MTIMES: dict[bytes, int] = {b"a.txt": 0, b"UPPER.TXT": -86400 * 400, b"&amp;.txt": 253402300800}


def _build(www: str) -> None:
    """The tree under ``www``: /d (the listing), /idx (has index.html),
    /noperm (unreadable), /rnd (random_index candidates)."""
    d = os.path.join(www, "d").encode()
    os.makedirs(d, exist_ok=True)
    for name in DIRS:
        os.makedirs(os.path.join(d, name), exist_ok=True)
    with open(os.path.join(d, b"sub", b"inner.txt"), "wb") as f:
        f.write(b"inner")
    for name, size in FILES.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(b"x" * size)
    for name, size in SPARSE.items():
        with open(os.path.join(d, name), "wb") as f:
            f.truncate(size)
    for name, target in LINKS.items():
        os.symlink(target, os.path.join(d, name))
    os.mkfifo(os.path.join(d, b"fifo"))
    for sub in ("idx", "noperm", "wx", "rnd", "rnd/sub", "rnd-empty/onlydir", "rnd-noperm", "rnd-loop", "gif"):
        os.makedirs(os.path.join(www, sub), exist_ok=True)
    with open(os.path.join(www, "idx", "index.html"), "w") as f:
        f.write("the index\n")
    for name in ("one.txt", "two.txt", "three.txt", ".hidden.txt"):
        with open(os.path.join(www, "rnd", name), "w") as f:
            f.write(name)
    os.symlink("one.txt", os.path.join(www, "rnd", "link-one"))
    os.symlink("nowhere", os.path.join(www, "rnd", "dangling"))
    with open(os.path.join(www, "rnd-noperm", "f.txt"), "w") as f:
        f.write("f")
    with open(os.path.join(www, "rnd-loop", "f.txt"), "w") as f:
        f.write("f")
    os.symlink("loop", os.path.join(www, "rnd-loop", "loop"))
    for dp, dns, fns in os.walk(www.encode()):
        os.chmod(dp, 0o755)
        for n in fns:
            p = os.path.join(dp, n)
            if not os.path.islink(p):
                os.chmod(p, 0o644)
    os.chmod(os.path.join(www, "noperm"), 0o700)
    os.chmod(os.path.join(www, "wx"), 0o711)  # searchable, not listable
    os.chmod(os.path.join(www, "rnd-noperm"), 0o744)  # listable, not searchable
    for dp, dns, fns in os.walk(www.encode(), topdown=False):
        for n in fns + dns:
            p = os.path.join(dp, n)
            os.utime(p, ns=(MT * 10**9, MTIMES.get(n, MT) * 10**9), follow_symlinks=False)
        os.utime(dp, (MT, MT))


SERVER = """
server {{
    listen 127.0.0.1:{port};
    root %PREFIX%/www;
    location /d/ {{ autoindex on; }}
    location /h/ {{ alias %PREFIX%/www/d/; autoindex on; autoindex_exact_size off; }}
    location /l/ {{ alias %PREFIX%/www/d/; autoindex on; autoindex_localtime on; }}
    location /x/ {{ alias %PREFIX%/www/d/; autoindex on; autoindex_format xml; }}
    location /j/ {{ alias %PREFIX%/www/d/; autoindex on; autoindex_format json; }}
    location /p/ {{ alias %PREFIX%/www/d/; autoindex on; autoindex_format jsonp; }}
    location /idx/ {{ autoindex on; }}
    location /noperm/ {{ autoindex on; }}
    location /wx/ {{ autoindex on; }}
    location /off/ {{ alias %PREFIX%/www/d/; }}
    location /rnd/ {{ random_index on; }}
    location /rnd-empty/ {{ random_index on; }}
    location /rnd-noperm/ {{ random_index on; }}
    location /rnd-missing/ {{ random_index on; }}
    location /rnd-loop/ {{ random_index on; }}
    location = /gif {{ empty_gif; }}
    location /gif/ {{ empty_gif; }}
}}
"""


def _start(kind: str, server_block: str = SERVER) -> tuple[Server, int]:
    port = free_port()
    s = Server(base_conf(server_block.format(port=port)), kind)
    _build(s.path("www"))
    s.start()
    return s, port


@pytest.fixture(scope="module")
def pair() -> Iterator[dict[str, tuple[Server, int]]]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    servers: dict[str, tuple[Server, int]] = {}
    try:
        for kind in ("nginx", "portico"):
            servers[kind] = _start(kind)
        yield servers
    finally:
        for s, _ in servers.values():
            s.cleanup()


def _get(port: int, target: str, method: str = "GET", version: str = "HTTP/1.1",
         extra: str = "") -> tuple[int, dict[str, str], bytes]:
    host = "Host: t\r\n" if version == "HTTP/1.1" else ""
    req = f"{method} {target} {version}\r\n{host}Connection: close\r\n{extra}\r\n".encode()
    data = raw_request(port, req)
    if method == "HEAD":
        head, _, _ = data.partition(b"\r\n\r\n")
        status, headers, _, _ = parse_response(head + b"\r\n\r\n")
        return status, headers, data[len(head) + 4:]
    status, headers, body, _ = parse_response(data)
    return status, headers, body


_COMPARED = ("content-type", "transfer-encoding", "last-modified", "location", "connection")


def _view(status: int, headers: dict[str, str], body: bytes, port: int) -> tuple[object, ...]:
    loc = headers.get("location", "").replace(str(port), "PORT")
    hs = tuple((k, loc if k == "location" else headers.get(k)) for k in _COMPARED)
    return (status, hs, "content-length" in headers, "etag" in headers,
            body.replace(NGINX_TOKEN, PORTICO_TOKEN))


# (method, target, version): every one is answered identically by both servers
DIFF_CASES = [
    (m, t, "HTTP/1.1") for m in ("GET", "HEAD") for t in (
        "/d/", "/h/", "/l/", "/x/", "/j/", "/p/", "/p/?callback=cb", "/p/?callback=A.b_9",
        "/p/?callback=", "/p/?callback", "/p/?CALLBACK=up", "/p/?xcallback=1&callback=ok",
        "/p/?callback=a-b", "/p/?callback=%41", "/p/?callback=" + "c" * 128, "/p/?callback=" + "c" * 129,
        "/d/?a=b", "/d/sub/", "/d/empty/", "/d/%3Cb%3E%26dir%22/", "/d/sub%20dir%20%C3%A9/",
        "/d", "/d/nope/", "/d/a.txt/", "/idx/", "/noperm/", "/wx/", "/off/", "/d/.hiddendir/",
        "/rnd-empty/", "/rnd-missing/", "/rnd-noperm/", "/rnd-loop/", "/gif", "/gif/x",
    )
] + [
    ("GET", "/d/", "HTTP/1.0"), ("GET", "/j/", "HTTP/1.0"),
    ("POST", "/d/", "HTTP/1.1"), ("DELETE", "/d/", "HTTP/1.1"), ("PUT", "/x/", "HTTP/1.1"),
    ("POST", "/gif", "HTTP/1.1"), ("DELETE", "/gif", "HTTP/1.1"), ("OPTIONS", "/j/", "HTTP/1.1"),
]


@pytest.mark.parametrize("method,target,version", DIFF_CASES,
                         ids=[f"{m}-{t}-{v}" for m, t, v in DIFF_CASES])
def test_same_as_nginx(pair: dict[str, tuple[Server, int]], method: str, target: str, version: str) -> None:
    extra = "Content-Length: 0\r\n" if method in ("POST", "PUT") else ""
    views = {}
    for kind, (_, port) in pair.items():
        views[kind] = _view(*_get(port, target, method, version, extra), port)
    assert views["portico"] == views["nginx"]


def test_if_modified_since_gif_same_as_nginx(pair: dict[str, tuple[Server, int]]) -> None:
    ims = "If-Modified-Since: Mon, 28 Sep 1970 06:00:00 GMT\r\n"
    views = {k: _view(*_get(p, "/gif", extra=ims), p) for k, (_, p) in pair.items()}
    assert views["portico"][0] == 304
    assert views["portico"] == views["nginx"]


def test_listing_content(pair: dict[str, tuple[Server, int]]) -> None:
    """What the differential cases rely on, stated directly."""
    _, port = pair["portico"]
    status, headers, body = _get(port, "/d/")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "text/html" and "content-length" not in headers
    assert b"<script>" not in body and b"<img" not in body
    assert b'<a href="%3Cscript%3Ealert%281%29%3C%5Cscript%3E.txt">&lt;script&gt;alert(1)&lt;\\script&gt;.txt</a>' in body
    assert b".hidden" not in body and b"index.htm" in body
    # directories first (a link to a directory is one), each group in strcmp
    # order of the raw names; "../" leads
    hrefs = [line.split(b'"')[1] for line in body.split(b"\r\n") if line.startswith(b"<a href=")]
    assert b'<hr><pre><a href="../">../</a>\r\n<a href="' in body
    raw = [urllib.parse.unquote_to_bytes(h) for h in hrefs]
    ndirs = sum(h.endswith(b"/") for h in raw)
    assert all(h.endswith(b"/") for h in raw[:ndirs]) and b"link-dir/" in raw[:ndirs]
    assert raw[:ndirs] == sorted(raw[:ndirs], key=lambda h: h[:-1]) and raw[ndirs:] == sorted(raw[ndirs:])
    visible = [n for n in DIRS if not n.startswith(b".")]
    assert ndirs == len(visible) + 1  # and link-dir
    files = [n for n in FILES if not n.startswith(b".")]
    assert len(raw) - ndirs == len(files) + len(SPARSE) + len(LINKS) - 1 + 1  # link-dir out, fifo in
    assert b'<a href="' + b"x" * 47 + b'..&gt;</a>' not in body  # html cuts the text, not the href
    assert b">" + b"x" * 47 + b"..&gt;</a>" in body
    _, _, xml = _get(port, "/x/")
    assert b'<other mtime="2020-09-13T12:26:40Z">dangling</other>' in xml
    assert b'<file mtime="1970-01-01T00:00:00Z" size="5">a.txt</file>' in xml


def test_hostile_names_in_json_are_valid_json(pair: dict[str, tuple[Server, int]]) -> None:
    import json
    _, port = pair["portico"]
    _, headers, body = _get(port, "/j/")
    assert headers["content-type"] == "application/json"
    items = json.loads(body.decode("utf-8", "surrogateescape"))
    by_name = {i["name"]: i for i in items}
    assert by_name["nl\nname"]["type"] == "file" and by_name["nl\nname"]["size"] == 23
    assert by_name["ctl\x01\x1f\x7f"]["size"] == 24
    assert by_name["loop"]["type"] == "other" and "size" not in by_name["loop"]
    assert by_name["link-file"]["type"] == "file" and by_name["fifo"]["type"] == "other"
    assert ".hidden" not in by_name


def test_jsonp_callback_and_errors_logged(pair: dict[str, tuple[Server, int]]) -> None:
    s, port = pair["portico"]
    status, headers, body = _get(port, "/p/?callback=my.cb_1")
    assert status == 200 and headers["content-type"] == "application/javascript"
    assert body.startswith(b"/* callback */\r\nmy.cb_1([\r\n") and body.endswith(b"\r\n]);")
    assert _get(port, "/p/?callback=alert(1)")[0] == 400
    assert 'client sent invalid callback name: "alert(1)"' in s.log()
    assert _get(port, "/p/?callback=" + "c" * 129)[0] == 400
    assert "client sent too long callback name" in s.log()
    assert _get(port, "/noperm/")[0] == 403


def test_opendir_errors_logged(pair: dict[str, tuple[Server, int]]) -> None:
    """A searchable but unreadable directory: index finds no index.html, then
    autoindex's opendir() fails with EACCES -> 403, logged at error."""
    s, port = pair["portico"]
    assert _get(port, "/wx/")[0] == 403
    assert "[error]" in s.log() and '/www/wx" failed (13: Permission denied)' in s.log()
    assert 'opendir() "' + s.path("www/wx") + '" failed' in s.log()
    # autoindex off: the core's 403 with nginx's wording
    assert _get(port, "/off/")[0] == 403
    assert 'directory index of "' in s.log()


def test_random_index_only_files_uniformly() -> None:
    s, port = _start("portico")
    try:
        seen: collections.Counter[bytes] = collections.Counter()
        for _ in range(300):
            status, _, body = _get(port, "/rnd/")
            assert status == 200
            seen[body] += 1
        # the candidates: the three files and the link to a file; never the
        # hidden file, the subdirectory or the dangling link
        assert set(seen) == {b"one.txt", b"two.txt", b"three.txt"}
        # one.txt is reachable twice (itself and link-one): about 150 of 300
        assert 100 <= seen[b"one.txt"] <= 200
        assert all(45 <= seen[n] <= 120 for n in (b"two.txt", b"three.txt"))
        # arguments survive the redirect; HEAD works
        assert _get(port, "/rnd/?x=1", "HEAD")[0] == 200
        # no candidate: declined, then the core's 403
        assert _get(port, "/rnd-empty/")[0] == 403
        assert _get(port, "/rnd-missing/")[0] == 404
        assert 'opendir() "' in s.log() and "rnd-missing\" failed (2: No such file or directory)" in s.log()
        # d_type is trusted: a file in an unsearchable directory is still
        # chosen, and the static handler's open() answers 403
        assert _get(port, "/rnd-noperm/")[0] == 403
        assert 'open() "' + s.path("www/rnd-noperm/f.txt") + '" failed (13: Permission denied)' in s.log()
        # a symlink loop fails its stat(): 500 logged at crit
        assert _get(port, "/rnd-loop/")[0] == 500
        assert '[crit]' in s.log() and 'stat() "' + s.path("www/rnd-loop/loop") + '" failed (40: ' in s.log()
    finally:
        s.cleanup()


def test_random_index_same_candidates_as_nginx(pair: dict[str, tuple[Server, int]]) -> None:
    for kind, (_, port) in pair.items():
        bodies = {_get(port, "/rnd/")[2] for _ in range(60)}
        assert bodies == {b"one.txt", b"two.txt", b"three.txt"}, kind


def test_empty_gif_bytes() -> None:
    s, port = _start("portico")
    try:
        status, headers, body = _get(port, "/gif")
        assert status == 200 and body == EMPTY_GIF and len(body) == 43
        assert body.startswith(b"GIF89a") and body.endswith(b";")
        assert headers["content-type"] == "image/gif" and headers["content-length"] == "43"
        assert headers["last-modified"] == "Mon, 28 Sep 1970 06:00:00 GMT" and "etag" not in headers
        status, headers, rest = _get(port, "/gif", "HEAD")
        assert status == 200 and headers["content-length"] == "43" and rest == b""
        assert _get(port, "/gif", "POST", extra="Content-Length: 3\r\n\r\nabc")[0] == 405
        # a body is discarded and the connection kept: two requests on one socket
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /gif HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
                      b"GET /gif HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(EMPTY_GIF) == 2
    finally:
        s.cleanup()


def test_head_does_not_read_directory() -> None:
    """nginx sends the header before reading: HEAD of an unlistable-entries
    directory is a clean 200 without a body."""
    s, port = _start("portico")
    try:
        status, headers, rest = _get(port, "/d/", "HEAD")
        assert status == 200 and rest == b"" and headers["content-type"] == "text/html"
        assert "content-length" not in headers
    finally:
        s.cleanup()


# --- UTF-8 measured names (needs "charset utf-8") -------------------------------------

UTF8_SERVER = """
server {{
    listen 127.0.0.1:{port};
    root %PREFIX%/www;
    location /d/ {{ autoindex on; charset utf-8; }}
    location /h/ {{ alias %PREFIX%/www/d/; autoindex on; charset utf-8; autoindex_exact_size off; }}
}}
"""


def _entries(d: bytes) -> list[ai.Entry]:
    out = []
    for name in os.listdir(d):
        if name.startswith(b"."):
            continue
        p = os.path.join(d, name)
        try:
            st = os.stat(p)
        except OSError:
            st = os.lstat(p)
        out.append(ai.Entry(name, st))
    return sorted(out, key=lambda e: (not e.is_dir, e.name))


@pytest.fixture(scope="module")
def utf8_nginx() -> Iterator[tuple[Server, int]]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    n, port = _start("nginx", UTF8_SERVER)
    try:
        yield n, port
    finally:
        n.cleanup()


@pytest.mark.parametrize("uri,exact", [("/d/", True), ("/h/", False)])
def test_utf8_renderer_matches_nginx(utf8_nginx: tuple[Server, int], uri: str, exact: bool) -> None:
    """nginx measures names in characters under ``charset utf-8`` (its lenient
    decoder; invalid names in bytes): the html renderer agrees byte for byte."""
    n, port = utf8_nginx
    status, headers, body = _get(port, uri)
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    mine = ai.render_html(uri.encode(), _entries(n.path("www/d").encode()), True, exact, 0)
    assert mine == body
    assert "é".encode() * 47 + b"..&gt;" in body and "é".encode() * 50 + b"</a>" in body


def test_utf8_listing_matches_nginx(utf8_nginx: tuple[Server, int]) -> None:
    """The same through a Portico server, once its charset filter exists."""
    probe = Server(base_conf(UTF8_SERVER.format(port=free_port())), "portico")
    try:
        if probe.run("-t").returncode != 0:
            pytest.skip("Portico has no charset filter yet (the renderer is compared above)")
    finally:
        probe.cleanup()
    p, pport = _start("portico", UTF8_SERVER)
    _, nport = utf8_nginx
    try:
        for uri in ("/d/", "/h/"):
            assert _view(*_get(pport, uri), pport) == _view(*_get(nport, uri), nport)
    finally:
        p.cleanup()


# --- pure functions against nginx's definitions ---------------------------------------

@pytest.mark.parametrize("name,chars", [
    (b"abc", 3), ("é".encode() * 3, 3), ("😀".encode(), 1), (b"\xff", 1), (b"a\xc3", 2),
    (b"\xc3(", 2), (b"\xed\xa0\x80", 1), (b"\xc0\xaf", 2), (b"\xe0\x80\x80", 3),
    (b"\xf8\x88\x80\x80", 4), (b"\xf8\x90\x80\x80", 1), (b"\xf4\x90\x80\x80", 4), (b"\xe2\x82", 2),
])
def test_utf8_length_is_nginx(name: bytes, chars: int) -> None:
    assert ai.utf8_length(name) == chars


@pytest.mark.parametrize("size,text", [
    (0, b"      0"), (9999, b"   9999"), (10000, b"    10K"), (10751, b"    10K"), (10752, b"    11K"),
    (MIB - 1, b"  1024K"), (MIB, b"     1M"), (MIB + MIB // 2 - 1, b"     1M"), (MIB + MIB // 2, b"     2M"),
    (GIB - 1, b"  1024M"), (GIB + GIB // 2, b"     2G"),
])
def test_human_sizes(size: int, text: bytes) -> None:
    assert ai._html_size(size, False, False) == text
    assert ai._html_size(size, True, False) == b"%19d" % size


def test_gmtime_matches_libc() -> None:
    for t in (0, 1, 951782400, 951868800, 4107542400, 253402300799, 1600000000):
        g = time.gmtime(t)
        assert ai.gmtime(t)[:6] == (g.tm_year, g.tm_mon, g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec)
    assert ai.gmtime(-5) == ai.gmtime(0)


def test_unused_locations_register_nothing(server: object) -> None:
    """Without autoindex anywhere, a directory URI is the core's 403."""
    port = free_port()
    s = server(base_conf(f"server {{ listen 127.0.0.1:{port}; root %PREFIX%/www; }}"), start=False)  # type: ignore[operator]
    os.makedirs(s.path("www/dir"))
    os.chmod(s.path("www"), 0o755)
    os.chmod(s.path("www/dir"), 0o755)
    s.start()
    status, _, body = _get(port, "/dir/")
    assert status == 403 and b"Index of" not in body
    assert 'directory index of "' + s.path("www/dir/") + '" is forbidden' in s.log()
