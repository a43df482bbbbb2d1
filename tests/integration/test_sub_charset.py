"""sub_filter and charset against real servers: Portico alone, and side by
side with Debian's nginx (same config, same files).

Invariants:
- One Portico and one nginx for the module, started from the same ``CONF``
  and ``FILES`` (only ``%PREFIX%`` and the port differ); file mtimes are
  pinned so Last-Modified and ETag agree.
- Differential cases compare status, Content-Type, Content-Length (presence
  and value), Last-Modified, ETag, Transfer-Encoding presence and the body
  (product tokens normalised).  Each case also has an expectation of its
  own where one is easy to state, so a shared mistake cannot hide.
- Bodies are chosen so that matches and UTF-8 sequences straddle the 32 KB
  pieces both servers read files in.
"""
from __future__ import annotations

import os
import re
import socket
import sys
import time
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import REPO, Server, base_conf, children, free_port, have_nginx, parse_response, raw_request  # noqa: E402

MTIME = 1700000000
IMS = "Tue, 14 Nov 2023 22:13:20 GMT"  # == MTIME
K = 32768


def _at(buf: bytearray, pos: int, piece: bytes) -> None:
    buf[pos:pos + len(piece)] = piece


def _big() -> bytes:
    """200 KB of text/html with NEEDLE (in several cases) across every 32 KB
    boundary, at both ends, and a partial match as the very last bytes."""
    line = b"<p>lorem ipsum dolor sit amet, consectetur adipiscing</p>\n"
    buf = bytearray((line * (200 * 1024 // len(line) + 1))[:200 * 1024])
    _at(buf, 0, b"NEEDLE")
    for n, word in enumerate((b"NEEDLE", b"needle", b"NeEdLe", b"nEEDLE", b"NEEDle", b"needlE")):
        b = (n + 1) * K
        _at(buf, b - 3, word)
    _at(buf, 1000, b"needleneedle")
    _at(buf, 2000, b"neeneedle")
    buf += b"\nNEEDL"
    return bytes(buf)


def _ru() -> bytes:
    """UTF-8: Cyrillic 2-byte sequences cut by the 32 KB boundaries, a
    4-byte emoji across 64 KB, CJK (no mapping), invalid bytes, and an
    incomplete sequence as the last byte."""
    out = bytearray(b"<html>\n")
    text = "привет, мир! Ёлка — «ёж» №5 €\n".encode()
    while len(out) < 100 * 1024:
        out += text
    out = out[:100 * 1024]
    # two spaces first: a lead byte cut off by the insert eats one of them
    _at(out, K - 3, "  жж".encode())  # "ж" starts on the piece's last byte
    _at(out, 2 * K - 4, "  😀".encode())  # 2 + 2 bytes around 64 KB
    _at(out, 2 * K + 100, "  漢字 \xa9".encode())
    _at(out, 2 * K + 200, b"  \xff\xd0A\xc0\xaf\xed\xa0\x80 ")
    return bytes(out) + "  конец".encode() + b"\xd0"


def _koi() -> bytes:
    """KOI8-R: every byte value, repeated past 64 KB (box drawing ones have
    no mapping in koi-utf)."""
    return (bytes(range(256)) + b"\n") * 300


def _koi_mixed() -> bytes:
    """Three 32 KB pieces for nginx's 8-bit -> UTF-8 shortcut: unmapped
    bytes (0x81, 0x82) and no byte mapping to several (piece 1: all raw), a
    long prefix before the first such byte (piece 2: prefix raw), and a
    short one (piece 3: everything recoded, unmapped -> "?")."""
    p1 = (b"ascii \x81\x82 " * (K // 9 + 1))[:K]
    p2 = (b"x" * 600 + b"\x81" + b"\xc1\xc2" + b"y" * K)[:K]
    p3 = b"z" * 100 + b"\x81\xc1\xc2\xe1" + b"w" * 100
    return p1 + p2 + p3


def _win() -> bytes:
    return ("Съешь же ещё этих мягких французских булок\n".encode("cp1251")) * 40


FILES: dict[str, bytes] = {
    "html/big.html": _big(),
    "html/pairs.html": b"abcd ab abc bcd abx ABCD Ab aBc\nab abc",
    "html/ru.html": _ru(),
    "html/koi.html": _koi(),
    "html/win.txt": _win(),
    "html/koi-mixed.html": _koi_mixed(),
    "html/a.txt": b"a needle in text\n",
    "html/a.css": b"/* needle */ body { color: red }\n",
    "html/a.bin": b"binary needle\n",
}

_SERVER = r"""
server {
    listen 127.0.0.1:%PORT%;
    location /s/off/ { alias %PREFIX%/html/; sub_filter NEEDLE "[X]"; sub_filter_once off; }
    location /s/once/ { alias %PREFIX%/html/; sub_filter needle "[X]"; }
    location /s/pairs/ { alias %PREFIX%/html/; sub_filter abcd 1; sub_filter ab 2; sub_filter bc 3;
                         sub_filter_once off; }
    location /s/pairs-once/ { alias %PREFIX%/html/; sub_filter abcd 1; sub_filter ab 2; sub_filter bc 3; }
    location /s/var/ { alias %PREFIX%/html/; sub_filter needle "<$uri|$arg_x>"; sub_filter_once off; }
    location /s/search/ { alias %PREFIX%/html/; sub_filter $arg_s "[S]"; sub_filter_once off; }
    location /s/lm/ { alias %PREFIX%/html/; sub_filter needle X; sub_filter_last_modified on; }
    location /s/types/ { alias %PREFIX%/html/; sub_filter needle X; sub_filter_types text/plain; }
    location /s/any/ { alias %PREFIX%/html/; sub_filter needle X; sub_filter_types *; }
    location /s/empty/ { alias %PREFIX%/html/; sub_filter needle ""; sub_filter_once off; }
    location /s/ru/ { alias %PREFIX%/html/; sub_filter "привет" "hi"; sub_filter "Ёлка" "tree";
                      sub_filter_once off; }
    location = /s/ret { default_type text/html; sub_filter world there; sub_filter_once off;
                        return 200 "hello world, WORLD! Wor"; }
    location = /s/err { sub_filter "Not Found" "Missing"; return 404; }
    location /c/w/ { alias %PREFIX%/html/; charset windows-1251; source_charset utf-8; }
    location /c/k/ { alias %PREFIX%/html/; charset utf-8; source_charset koi8-r; }
    location /c/u2k/ { alias %PREFIX%/html/; charset koi8-r; source_charset utf-8; }
    location /c/8/ { alias %PREFIX%/html/; charset koi8-r; source_charset windows-1251; }
    location /c/plain/ { alias %PREFIX%/html/; charset utf-8; }
    location /c/types/ { alias %PREFIX%/html/; charset utf-8; charset_types text/css; }
    location /c/same/ { alias %PREFIX%/html/; charset utf-8; source_charset UTF-8; }
    location /c/var/ { alias %PREFIX%/html/; charset $arg_cs; source_charset utf-8; }
    location = /c/301 { charset utf-8; return 301 /x; }
    location = /c/302 { charset utf-8; return 302 /x; }
    location = /c/404 { charset utf-8; return 404; }
    location = /c/if { default_type text/html; charset utf-8; if ($arg_a) { charset koi8-r; }
                       return 200 "abc"; }
    location /sc/ { alias %PREFIX%/html/; sub_filter "мир" "world"; sub_filter_once off;
                    charset windows-1251; source_charset utf-8; }
}
"""
CONF = base_conf(_SERVER, http_extra="include koi-win; include koi-utf; include win-utf;")


def _files() -> dict[str, bytes]:
    out = dict(FILES)
    for name in ("koi-win", "koi-utf", "win-utf"):
        with open(os.path.join(REPO, "conf", name), "rb") as f:
            out[f"conf/{name}"] = f.read()
    return out


class Running:
    def __init__(self, s: Server, port: int) -> None:
        self.s = s
        self.port = port

    def req(self, path: str, method: str = "GET", extra: str = "") -> bytes:
        data = f"{method} {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n".encode()
        return raw_request(self.port, data)

    def get(self, path: str, method: str = "GET", extra: str = "") -> tuple[int, dict[str, str], bytes]:
        status, headers, body, _ = parse_response(self.req(path, method, extra))
        return status, headers, body


def _start(kind: str) -> Running:
    port = free_port()
    s = Server(CONF.replace("%PORT%", str(port)), kind, _files())
    for rel in FILES:
        os.utime(s.path(rel), (MTIME, MTIME))
    s.start()
    return Running(s, port)


@pytest.fixture(scope="module")
def portico() -> Iterator[Running]:
    r = _start("portico")
    yield r
    r.s.cleanup()


@pytest.fixture(scope="module")
def nginx() -> Iterator[Running]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    r = _start("nginx")
    yield r
    r.s.cleanup()


# --- differential -----------------------------------------------------------------------

DIFF = [
    ("/s/off/big.html", "GET", ""),
    ("/s/once/big.html", "GET", ""),
    ("/s/pairs/pairs.html", "GET", ""),
    ("/s/pairs-once/pairs.html", "GET", ""),
    ("/s/var/big.html?x=1", "GET", ""),
    ("/s/search/big.html?s=NeEdLe", "GET", ""),
    ("/s/search/big.html", "GET", ""),
    ("/s/lm/big.html", "GET", ""),
    ("/s/types/a.txt", "GET", ""),
    ("/s/types/a.css", "GET", ""),
    ("/s/types/big.html", "GET", ""),
    ("/s/any/a.bin", "GET", ""),
    ("/s/empty/big.html", "GET", ""),
    ("/s/ru/ru.html", "GET", ""),
    ("/s/ret", "GET", ""),
    ("/s/err", "GET", ""),
    ("/s/off/big.html", "HEAD", ""),
    ("/s/off/big.html", "GET", f"If-Modified-Since: {IMS}\r\n"),
    ("/s/any/big.html", "GET", f"If-Modified-Since: {IMS}\r\n"),
    ("/s/off/big.html", "GET", "Range: bytes=0-9\r\n"),
    ("/c/w/ru.html", "GET", ""),
    ("/c/k/koi.html", "GET", ""),
    ("/c/k/koi-mixed.html", "GET", ""),
    ("/c/u2k/ru.html", "GET", ""),
    ("/c/8/win.txt", "GET", ""),
    ("/c/8/win.txt", "GET", "Range: bytes=10-100\r\n"),
    ("/c/8/win.txt", "HEAD", ""),
    ("/c/w/ru.html", "HEAD", ""),
    ("/c/plain/big.html", "GET", ""),
    ("/c/plain/a.css", "GET", ""),
    ("/c/plain/a.txt", "GET", ""),
    ("/c/plain/a.bin", "GET", ""),
    ("/c/types/a.css", "GET", ""),
    ("/c/types/a.txt", "GET", ""),
    ("/c/types/big.html", "GET", ""),
    ("/c/same/ru.html", "GET", ""),
    ("/c/var/ru.html?cs=windows-1251", "GET", ""),
    ("/c/var/ru.html?cs=bogus", "GET", ""),
    ("/c/301", "GET", ""),
    ("/c/302", "GET", ""),
    ("/c/404", "GET", ""),
    ("/c/if?a=1", "GET", ""),
    ("/c/if", "GET", ""),
    ("/sc/ru.html", "GET", ""),
]

_TOKENS = re.compile(rb"(nginx|portico)/[0-9.]+")


def _view(status: int, h: dict[str, str], body: bytes) -> dict[str, object]:
    cl = h.get("content-length")
    if cl is not None and _TOKENS.search(body):
        cl = "present"  # "portico/0.1.0" and "nginx/1.22.1" differ in length
    return {
        "status": status,
        "content-type": h.get("content-type"),
        "content-length": cl,
        "last-modified": h.get("last-modified"),
        "etag": h.get("etag"),
        "chunked": h.get("transfer-encoding") == "chunked",
        "content-range": h.get("content-range"),
        "body": _TOKENS.sub(b"SERVER", body),
    }


@pytest.mark.parametrize("path,method,extra", DIFF, ids=[f"{m} {p} {e.split(':')[0]}" for p, m, e in DIFF])
def test_same_as_nginx(portico: Running, nginx: Running, path: str, method: str, extra: str) -> None:
    p = _view(*portico.get(path, method, extra))
    n = _view(*nginx.get(path, method, extra))
    if p != n:  # the first differing field, readable
        for k in n:
            assert p[k] == n[k], k
    assert p == n


def test_unfound_charset_variable_closes_like_nginx(portico: Running, nginx: Running) -> None:
    """``charset $arg_cs`` without the argument: nginx's header filter fails
    and the connection closes with no response at all."""
    assert nginx.req("/c/var/ru.html") == b""
    assert portico.req("/c/var/ru.html") == b""


# --- Portico on its own: expectations ------------------------------------------------------

def test_sub_all_occurrences_across_pieces(portico: Running) -> None:
    status, h, body = portico.get("/s/off/big.html")
    src = FILES["html/big.html"]
    want = re.sub(b"(?i)needle", b"[X]", src[:-len(b"NEEDL")]) + b"NEEDL"
    assert status == 200 and body == want
    assert "content-length" not in h and "last-modified" not in h and "etag" not in h
    assert h["transfer-encoding"] == "chunked"


def test_sub_once_replaces_first_only(portico: Running) -> None:
    _, _, body = portico.get("/s/once/big.html")
    src = FILES["html/big.html"]
    assert body == b"[X]" + src[6:]


def test_sub_pairs_leftmost_then_first_configured(portico: Running) -> None:
    _, _, body = portico.get("/s/pairs/pairs.html")
    # "abc" at the very end is a partial "abcd": it goes out as it is
    assert body == b"1 2 2c 3d 2x 1 2 2c\n2 abc"
    _, _, body = portico.get("/s/pairs-once/pairs.html")
    # each string once: "abcd", then "ab", then "bc" inside the next "abc"
    assert body == b"1 2 a3 bcd abx ABCD Ab aBc\nab abc"


def test_sub_variables(portico: Running) -> None:
    _, _, body = portico.get("/s/var/a.txt?x=7")
    assert body == b"a needle in text\n"  # text/plain is not listed
    _, _, body = portico.get("/s/var/big.html?x=7")
    assert body.startswith(b"</s/var/big.html|7>") and b"needle" not in body.lower()
    _, h, body = portico.get("/s/search/big.html?s=Lorem")
    assert b"lorem" not in body.lower() and b"[S]" in body
    status, h, body = portico.get("/s/search/big.html")
    assert h["content-length"] == str(len(FILES["html/big.html"])) and body == FILES["html/big.html"]


def test_sub_last_modified_on_weakens_etag(portico: Running) -> None:
    _, h, _ = portico.get("/s/lm/big.html")
    assert h["last-modified"] == IMS and h["etag"].startswith('W/"')


def test_sub_return_body_and_end_partial(portico: Running) -> None:
    _, _, body = portico.get("/s/ret")
    assert body == b"hello there, there! Wor"


def test_sub_utf8_search_is_case_sensitive_beyond_ascii(portico: Running) -> None:
    _, _, body = portico.get("/s/ru/ru.html")
    assert "привет".encode() not in body and b"hi, " in body and b"tree" in body
    assert "ёж".encode() in body  # lower-case "ё" is not "Ё"


def test_sub_slow_reader_large_file(portico: Running) -> None:
    """A 16 MB file through sub_filter to a client that does not read for a
    while: the worker must not read the whole file into memory, and the
    body must arrive complete and replaced."""
    path = portico.s.path("html/huge.html")
    chunk = (b"x" * 1000 + b"NEEDLE\n")
    with open(path, "wb") as f:
        f.write(chunk * (16 * 1024 * 1024 // len(chunk)))
    size = os.path.getsize(path)
    worker = children(portico.s.master_pid)[0]

    def rss() -> int:
        with open(f"/proc/{worker}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024  # type: ignore[union-attr]

    before = rss()
    with socket.create_connection(("127.0.0.1", portico.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(b"GET /s/off/huge.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(1.0)
        during = rss()
        data = bytearray()
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
    _, h, body, _ = parse_response(bytes(data))
    want = chunk.replace(b"NEEDLE", b"[X]") * (size // len(chunk))
    assert len(body) == len(want) and body == want
    assert during - before < 8 * 1024 * 1024, (before, during)


def test_charset_recode_utf8_to_1251(portico: Running) -> None:
    _, h, body = portico.get("/c/w/ru.html")
    assert h["content-type"] == "text/html; charset=windows-1251" and "content-length" not in h
    src = FILES["html/ru.html"]
    assert body.startswith(b"<html>\n" + "привет, мир! Ёлка".encode("cp1251"))
    assert "жж".encode("cp1251") in body  # the pair cut by the 32 KB boundary
    assert b"&#128512;" in body and b"&#28450;&#23383;" in body  # emoji, CJK
    assert b"?" in body  # invalid bytes
    assert body.endswith("конец".encode("cp1251"))  # the incomplete last byte is dropped
    assert len(body) < len(src)


def test_charset_recode_koi8_to_utf8(portico: Running) -> None:
    _, h, body = portico.get("/c/k/koi.html")
    assert h["content-type"] == "text/html; charset=utf-8" and "content-length" not in h
    assert "юабцдефгхийклмноп".encode() in body and "ЮАБЦ".encode() in body


def test_charset_koi8_to_utf8_shortcut(portico: Running) -> None:
    _, _, body = portico.get("/c/k/koi-mixed.html")
    assert body.startswith(b"ascii \x81\x82 ")  # piece 1 untouched
    assert b"x" * 600 + b"\x81" + "аб".encode() in body  # piece 2: the long prefix raw
    assert body.endswith(b"z" * 100 + "?абА".encode() + b"w" * 100)  # piece 3 recoded


def test_charset_8bit_keeps_length(portico: Running) -> None:
    _, h, body = portico.get("/c/8/win.txt")
    assert h["content-type"] == "text/plain; charset=koi8-r"
    assert h["content-length"] == str(len(FILES["html/win.txt"]))
    assert body == FILES["html/win.txt"].decode("cp1251").encode("koi8-r")


def test_charset_header_only(portico: Running) -> None:
    _, h, _ = portico.get("/c/plain/a.bin")
    assert h["content-type"] == "application/octet-stream"
    _, h, _ = portico.get("/c/types/a.txt")  # charset_types starts from text/html alone
    assert h["content-type"] == "text/plain"
    _, h, _ = portico.get("/c/types/big.html")
    assert h["content-type"] == "text/html; charset=utf-8"
    _, h, _ = portico.get("/c/301")
    assert h["content-type"] == "text/html"
    _, h, _ = portico.get("/c/404")
    assert h["content-type"] == "text/html; charset=utf-8"


def test_charset_unknown_name_logs(portico: Running) -> None:
    _, h, body = portico.get("/c/var/ru.html?cs=bogus")
    assert h["content-type"] == "text/html" and body == FILES["html/ru.html"]
    assert 'no "charset_map" between the charsets "utf-8" and "bogus"' in portico.s.log()
