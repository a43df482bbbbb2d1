"""Response compression on a live Portico: gzip, gzip_static, gunzip, brotli,
zstd, and Accept-Encoding negotiation; gzip/gzip_static/gunzip also
differentially against Debian's nginx.

Invariants:
- Every compressed body is decoded (zlib/gzip, brotli, zstandard) and
  compared byte for byte with the file it came from.
- The differential part starts one nginx and one Portico from the same
  configuration and files (mtimes pinned, so ETags agree) and compares, per
  request: status, Content-Encoding, Vary, ETag, whether Content-Length is
  present, and the decoded body.
- Every request is sent with ``Connection: close`` on its own connection.
"""
from __future__ import annotations

import gzip
import os
import time
from typing import Iterator

import brotli
import pytest
import zstandard

from harness import Server, base_conf, free_port, have_nginx, parse_response, raw_request

MTIME = 1_700_000_000


def _text(n: int, seed: str) -> bytes:
    words = [f"{seed}{i % 97} lorem ipsum portico" for i in range(n)]
    return ("<html><body>\n" + "\n".join(words) + "\n</body></html>\n").encode()


PAGE = _text(4000, "p")  # ~110 KB of HTML
BIG = _text(120000, "b")  # ~3.5 MB: many read chunks and flushes
SMALL = b"<p>tiny</p>"  # 11 bytes: below the default gzip_min_length 20
JSON = b'{"k": "' + b"v" * 500 + b'"}'
GIF = b"GIF89a" + bytes(range(256)) * 8
CORRUPT_GZ = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\xff\xfe\xfd garbage, not deflate" * 20
TRUNCATED_GZ = gzip.compress(PAGE)[:-2000]

FILES: dict[str, bytes] = {}
for d in ("gz", "all", "min", "v10", "prox", "proxany", "dis", "novary", "st", "head"):
    FILES[f"html/{d}/page.html"] = PAGE
    FILES[f"html/{d}/small.html"] = SMALL
    FILES[f"html/{d}/data.json"] = JSON
    FILES[f"html/{d}/img.gif"] = GIF
FILES["html/gz/big.html"] = BIG
FILES["html/st/page.html.gz"] = gzip.compress(PAGE, 9)
FILES["html/sta/page.html.gz"] = gzip.compress(PAGE, 9)  # no page.html: always serves the .gz
FILES["html/gun/page.html.gz"] = gzip.compress(PAGE[:50000]) + gzip.compress(PAGE[50000:])  # two members
FILES["html/gun/bad.html.gz"] = CORRUPT_GZ
FILES["html/gun/cut.html.gz"] = TRUNCATED_GZ

SERVER = """
    server {
        listen 127.0.0.1:%PORT%;
        server_name localhost;
        root %PREFIX%/html;
        gzip_vary on;
        location /gz/ { gzip on; gzip_comp_level 6; gzip_types application/json; }
        location /all/ { gzip on; gzip_types *; }
        location /min/ { gzip on; gzip_min_length 200000; }
        location /v10/ { gzip on; gzip_http_version 1.0; }
        location /prox/ { gzip on; gzip_proxied expired; expires -1; }
        location /proxany/ { gzip on; gzip_proxied any; }
        location /dis/ { gzip on; gzip_disable msie6 "^BadBot/\\d"; }
        location /novary/ { gzip on; gzip_vary off; }
        location /st/ { gzip_static on; }
        location /sta/ { gzip_static always; }
        location /gun/ { gzip_static always; gunzip on; }
        location /head/ { gzip on; }
        location = /nothere.html { gzip on; }
        %EXTRA%
    }
"""

PORTICO_EXTRA = """
        location /br/ { alias %PREFIX%/html/gz/; brotli on; brotli_comp_level 5; }
        location /zs/ { alias %PREFIX%/html/gz/; zstd on; zstd_comp_level 3; }
        location /all3/ { alias %PREFIX%/html/gz/; gzip on; brotli on; zstd on;
                          brotli_types application/json; }
        location /brst/ { alias %PREFIX%/html/brst/; brotli_static on; zstd_static on; gzip_static on; }
        location /log/ { alias %PREFIX%/html/gz/; gzip on; access_log logs/ratio.log ratio; }
"""
PORTICO_FILES = {
    "html/brst/page.html": PAGE,
    "html/brst/page.html.br": brotli.compress(PAGE),
    "html/brst/page.html.zst": zstandard.ZstdCompressor().compress(PAGE),
    "html/brst/page.html.gz": gzip.compress(PAGE),
}
LOG_FORMAT = "log_format ratio '$request_uri $gzip_ratio';"


def _pin(s: Server) -> None:
    for base, _dirs, files in os.walk(s.path("html")):
        for name in files:
            os.utime(os.path.join(base, name), (MTIME, MTIME))


def _start(kind: str, extra: str = "", files: dict[str, bytes] | None = None) -> tuple[Server, int]:
    port = free_port()
    conf = base_conf(SERVER.replace("%PORT%", str(port)).replace("%EXTRA%", extra), http_extra=LOG_FORMAT)
    s = Server(conf, kind, {**FILES, **(files or {})})
    _pin(s)
    s.start()
    return s, port


@pytest.fixture(scope="module")
def portico() -> Iterator[tuple[Server, int]]:
    s, port = _start("portico", PORTICO_EXTRA, PORTICO_FILES)
    yield s, port
    s.cleanup()


@pytest.fixture(scope="module")
def nginx() -> Iterator[tuple[Server, int]]:
    if not have_nginx():
        pytest.skip("Debian's nginx is not installed")
    s, port = _start("nginx")
    yield s, port
    s.cleanup()


def get(port: int, path: str, headers: tuple[str, ...] = (), version: str = "1.1",
        method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    head = f"{method} {path} HTTP/{version}\r\nHost: localhost\r\nConnection: close\r\n"
    head += "".join(h + "\r\n" for h in headers) + "\r\n"
    status, hdrs, body, _ = parse_response(raw_request(port, head.encode()))
    return status, hdrs, body


def decode(hdrs: dict[str, str], body: bytes) -> bytes:
    ce = hdrs.get("content-encoding")
    if ce == "gzip":
        return gzip.decompress(body)
    if ce == "br":
        return brotli.decompress(body)
    if ce == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert ce is None, ce
    return body


AE = "Accept-Encoding: gzip, deflate"


# --- gzip -----------------------------------------------------------------------------------------

def test_gzip_compresses_and_streams(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/page.html", (AE,))
    assert status == 200
    assert h["content-encoding"] == "gzip"
    assert "content-length" not in h and h["transfer-encoding"] == "chunked"
    assert h["vary"] == "Accept-Encoding"
    assert h["etag"] == f'W/"{MTIME:x}-{len(PAGE):x}"'
    assert "accept-ranges" not in h
    # nginx's own 10-byte header: no name, no mtime, OS 3
    assert body[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    assert gzip.decompress(body) == PAGE
    assert len(body) < len(PAGE) // 3


def test_gzip_big_file_many_chunks(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/big.html", (AE,))
    assert status == 200 and h["content-encoding"] == "gzip"
    assert gzip.decompress(body) == BIG


@pytest.mark.parametrize("ae", ["gzip;q=0", "gzip; q=0.000", "deflate", "identity", "gzip;q=1.5",
                                "x-gzip", "br;q=1, gzip;q=0"])
def test_gzip_not_acceptable(portico: tuple[Server, int], ae: str) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/page.html", (f"Accept-Encoding: {ae}",))
    assert status == 200
    assert "content-encoding" not in h
    assert h["content-length"] == str(len(PAGE)) and body == PAGE
    assert h["vary"] == "Accept-Encoding"  # the response could have been compressed


@pytest.mark.parametrize("ae", ["gzip;q=0.001", "GZIP", "deflate, gzip;q=0.5", "*", "br;q=0, *;q=0.3"])
def test_gzip_acceptable(portico: tuple[Server, int], ae: str) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/page.html", (f"Accept-Encoding: {ae}",))
    assert h.get("content-encoding") == "gzip", ae
    assert gzip.decompress(body) == PAGE


def test_gzip_no_accept_encoding(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/page.html")
    assert "content-encoding" not in h and body == PAGE and h["accept-ranges"] == "bytes"


@pytest.mark.parametrize("path,compressed", [
    ("/gz/data.json", True), ("/gz/img.gif", False), ("/gz/small.html", False),
    ("/all/img.gif", True), ("/min/page.html", False), ("/gz/nothere.html", True),
])
def test_gzip_types_and_lengths(portico: tuple[Server, int], path: str, compressed: bool) -> None:
    _, port = portico
    status, h, body = get(port, path, (AE,))
    assert (h.get("content-encoding") == "gzip") is compressed
    if compressed:
        body = gzip.decompress(body)
    if status == 200:
        assert body == FILES["html" + path]
    else:
        assert status == 404 and b"404 Not Found" in body


def test_gzip_head_has_headers_only(portico: tuple[Server, int]) -> None:
    _, port = portico
    data = raw_request(port, f"HEAD /head/page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AE}\r\n\r\n".encode())
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and rest == b""
    assert b"Content-Length" not in head


def test_gzip_range_request_gets_whole_compressed_body(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/gz/page.html", (AE, "Range: bytes=0-9"))
    assert status == 200 and "content-range" not in h
    assert gzip.decompress(body) == PAGE


def test_gzip_not_modified_is_not_compressed(portico: tuple[Server, int]) -> None:
    _, port = portico
    etag = f'"{MTIME:x}-{len(PAGE):x}"'
    status, h, body = get(port, "/gz/page.html", (AE, f"If-None-Match: {etag}"))
    assert status == 304 and "content-encoding" not in h and body == b""


def test_gzip_http_version(portico: tuple[Server, int]) -> None:
    _, port = portico
    _, h, _ = get(port, "/gz/page.html", (AE,), version="1.0")
    assert "content-encoding" not in h
    _, h, body = get(port, "/v10/page.html", (AE,), version="1.0")
    assert h["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE
    assert "transfer-encoding" not in h and h["connection"] == "close"


def test_gzip_proxied(portico: tuple[Server, int]) -> None:
    _, port = portico
    via = "Via: 1.1 proxy"
    assert "content-encoding" not in get(port, "/gz/page.html", (AE, via))[1]
    assert get(port, "/proxany/page.html", (AE, via))[1]["content-encoding"] == "gzip"
    # expires -1: Expires is in the past, so "expired" allows it
    assert get(port, "/prox/page.html", (AE, via))[1]["content-encoding"] == "gzip"
    assert get(port, "/prox/page.html", (AE,))[1]["content-encoding"] == "gzip"


@pytest.mark.parametrize("ua,compressed", [
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", False),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", True),
    ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", False),
    ("Mozilla/4.0 (compatible; MSIE 7.0)", True),
    ("Opera/9.0 (MSIE 6.0)", True),
    ("BadBot/2.0", False), ("badbot/3", False), ("GoodBot/BadBot/1", True),
])
def test_gzip_disable(portico: tuple[Server, int], ua: str, compressed: bool) -> None:
    _, port = portico
    _, h, _ = get(port, "/dis/page.html", (AE, f"User-Agent: {ua}"))
    assert (h.get("content-encoding") == "gzip") is compressed


def test_gzip_vary_off(portico: tuple[Server, int]) -> None:
    _, port = portico
    _, h, _ = get(port, "/novary/page.html", (AE,))
    assert h["content-encoding"] == "gzip" and "vary" not in h


def test_gzip_ratio_variable(portico: tuple[Server, int]) -> None:
    s, port = portico
    _, _, body = get(port, "/log/page.html", (AE,))
    get(port, "/log/page.html")
    assert wait_for_lines(s, "ratio.log", 2)
    lines = s.log("ratio.log").splitlines()
    uri, ratio = lines[-2].split()
    zin, zout = len(PAGE), len(body)  # nginx's zout counts the 10-byte header and 8-byte trailer
    whole, frac = zin // zout, zin * 100 // zout % 100
    if zin * 1000 // zout % 10 > 4:
        whole, frac = (whole + 1, 0) if frac == 99 else (whole, frac + 1)
    assert uri == "/log/page.html" and ratio == f"{whole}.{frac:02d}"
    assert lines[-1].split()[1] == "-"


def wait_for_lines(s: Server, name: str, n: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if len(s.log(name).splitlines()) >= n:
            return True
        time.sleep(0.05)
    return False


# --- gzip_static and gunzip ----------------------------------------------------------------------

def test_gzip_static_serves_gz(portico: tuple[Server, int]) -> None:
    _, port = portico
    gz = FILES["html/st/page.html.gz"]
    status, h, body = get(port, "/st/page.html", (AE,))
    assert status == 200 and h["content-encoding"] == "gzip"
    assert h["content-length"] == str(len(gz)) and body == gz
    assert h["etag"] == f'"{MTIME:x}-{len(gz):x}"' and h["content-type"] == "text/html"
    assert h["vary"] == "Accept-Encoding" and "accept-ranges" not in h
    status, h, body = get(port, "/st/page.html")
    assert body == PAGE and "content-encoding" not in h and h["vary"] == "Accept-Encoding"
    # no .gz beside it: the plain file, no Vary
    _, h, body = get(port, "/st/small.html", (AE,))
    assert body == SMALL and "vary" not in h


def test_gzip_static_always(portico: tuple[Server, int]) -> None:
    _, port = portico
    gz = FILES["html/sta/page.html.gz"]
    status, h, body = get(port, "/sta/page.html")
    assert status == 200 and h["content-encoding"] == "gzip" and body == gz and "vary" not in h


def test_gunzip_decodes_for_clients_without_gzip(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/gun/page.html")
    assert status == 200 and body == PAGE
    assert "content-encoding" not in h and "content-length" not in h
    assert h["etag"] == f'W/"{MTIME:x}-{len(FILES["html/gun/page.html.gz"]):x}"'
    assert h["vary"] == "Accept-Encoding"
    status, h, body = get(port, "/gun/page.html", (AE,))
    assert h["content-encoding"] == "gzip" and gzip.decompress(body) == PAGE


@pytest.mark.parametrize("name,message", [
    ("bad", "inflate() failed: 4, -3"), ("cut", "inflate() returned -5 on response end")])
def test_gunzip_corrupt_closes_cleanly(portico: tuple[Server, int], name: str, message: str) -> None:
    s, port = portico
    data = raw_request(port, f"GET /gun/{name}.html HTTP/1.1\r\nHost: x\r\n\r\n".encode(), timeout=5)
    # the connection was closed by the server with the body incomplete
    assert not data.endswith(b"0\r\n\r\n")
    assert wait_for_lines(s, "error.log", 1) and message in s.log()
    assert "Traceback" not in s.log()
    assert get(port, "/gz/page.html")[0] == 200  # the worker lives on


# --- brotli, zstd, negotiation -------------------------------------------------------------------

def test_brotli(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/br/page.html", ("Accept-Encoding: gzip, br",))
    assert h["content-encoding"] == "br" and brotli.decompress(body) == PAGE
    assert h["etag"].startswith('W/"') and "content-length" not in h and h["vary"] == "Accept-Encoding"
    _, h, body = get(port, "/br/page.html", ("Accept-Encoding: br;q=0",))
    assert "content-encoding" not in h and body == PAGE


def test_zstd(portico: tuple[Server, int]) -> None:
    _, port = portico
    status, h, body = get(port, "/zs/big.html", ("Accept-Encoding: zstd",))
    assert h["content-encoding"] == "zstd" and decode(h, body) == BIG


@pytest.mark.parametrize("ae,want", [
    ("gzip, br, zstd", "zstd"),  # a tie: zstd, then br, then gzip
    ("gzip, br", "br"),
    ("gzip;q=1, br;q=0.9, zstd;q=0.8", "gzip"),  # the highest q wins
    ("br;q=0.5, zstd;q=0.4, gzip;q=0.1", "br"),
    ("*", "zstd"), ("*;q=0.5, gzip", "gzip"), ("zstd;q=0, *", "br"),
    ("gzip;q=0, br;q=0, zstd;q=0", None), ("", None),
])
def test_negotiation(portico: tuple[Server, int], ae: str, want: str | None) -> None:
    _, port = portico
    _, h, body = get(port, "/all3/page.html", (f"Accept-Encoding: {ae}",))
    assert h.get("content-encoding") == want
    assert decode(h, body) == PAGE


def test_negotiation_respects_each_modules_types(portico: tuple[Server, int]) -> None:
    _, port = portico
    # application/json is only in brotli_types: zstd and gzip cannot act
    _, h, body = get(port, "/all3/data.json", ("Accept-Encoding: zstd, gzip, br;q=0.1",))
    assert h["content-encoding"] == "br" and decode(h, body) == JSON


@pytest.mark.parametrize("ae,want", [("br, gzip, zstd", "zstd"), ("br, gzip", "br"), ("gzip", "gzip"),
                                     ("gzip;q=0.9, br;q=0.2", "gzip"), ("deflate", None)])
def test_static_precompressed_negotiation(portico: tuple[Server, int], ae: str, want: str | None) -> None:
    s, port = portico
    _, h, body = get(port, "/brst/page.html", (f"Accept-Encoding: {ae}",))
    assert h.get("content-encoding") == want
    suffix = {"zstd": ".zst", "br": ".br", "gzip": ".gz", None: ""}[want]
    with open(s.path("html/brst/page.html" + suffix), "rb") as f:
        assert body == f.read()
    assert decode(h, body) == PAGE


# --- differential: Debian's nginx ------------------------------------------------------------------

DIFF_REQUESTS = [
    ("/gz/page.html", (AE,), "1.1"), ("/gz/page.html", (), "1.1"),
    ("/gz/page.html", ("Accept-Encoding: gzip;q=0",), "1.1"),
    ("/gz/page.html", ("Accept-Encoding: gzip;q=0.5",), "1.1"),
    ("/gz/page.html", (AE, "Range: bytes=0-99"), "1.1"),
    ("/gz/page.html", (AE,), "1.0"), ("/v10/page.html", (AE,), "1.0"),
    ("/gz/data.json", (AE,), "1.1"), ("/gz/img.gif", (AE,), "1.1"), ("/gz/small.html", (AE,), "1.1"),
    ("/all/img.gif", (AE,), "1.1"), ("/min/page.html", (AE,), "1.1"),
    ("/gz/missing.html", (AE,), "1.1"), ("/nothere.html", (AE,), "1.1"),
    ("/gz/page.html", (AE, "Via: 1.1 p"), "1.1"), ("/proxany/page.html", (AE, "Via: 1.1 p"), "1.1"),
    ("/prox/page.html", (AE, "Via: 1.1 p"), "1.1"),
    ("/dis/page.html", (AE, "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"), "1.1"),
    ("/dis/page.html", (AE, "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; SV1)"), "1.1"),
    ("/dis/page.html", (AE, "User-Agent: BadBot/1"), "1.1"),
    ("/novary/page.html", (AE,), "1.1"),
    ("/st/page.html", (AE,), "1.1"), ("/st/page.html", (), "1.1"), ("/st/small.html", (AE,), "1.1"),
    ("/st/page.html", ("Accept-Encoding: gzip;q=0",), "1.1"),
    ("/sta/page.html", (), "1.1"), ("/sta/page.html", (AE,), "1.1"),
    ("/gun/page.html", (), "1.1"), ("/gun/page.html", (AE,), "1.1"),
    ("/gz/page.html", (AE, f'If-None-Match: "{MTIME:x}-{len(PAGE):x}"'), "1.1"),
]


@pytest.mark.parametrize("path,headers,version", DIFF_REQUESTS,
                         ids=[f"{p}|{'|'.join(h)}|{v}" for p, h, v in DIFF_REQUESTS])
def test_same_as_nginx(portico: tuple[Server, int], nginx: tuple[Server, int], path: str,
                       headers: tuple[str, ...], version: str) -> None:
    got = []
    for _, port in (nginx, portico):
        status, h, body = get(port, path, headers, version)
        got.append((status, h.get("content-encoding"), h.get("vary"), h.get("etag"),
                    "content-length" in h, h.get("accept-ranges"), h.get("content-range"),
                    decode(h, body).replace(b"nginx/1.22.1", b"TOKEN").replace(b"portico/0.1.0", b"TOKEN")))
    assert got[1] == got[0]


def test_same_as_nginx_head(portico: tuple[Server, int], nginx: tuple[Server, int]) -> None:
    heads = []
    for _, port in (nginx, portico):
        data = raw_request(port, f"HEAD /head/page.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{AE}\r\n\r\n".encode())
        _, h, _, _ = parse_response(data + b"")
        heads.append((h.get("content-encoding"), h.get("vary"), h.get("etag"), "content-length" in h))
    assert heads[1] == heads[0]


def test_corrupt_gz_like_nginx(portico: tuple[Server, int], nginx: tuple[Server, int]) -> None:
    """Both close the connection without a complete response and log the
    same inflate() error (nginx sends nothing; Portico's header was out)."""
    for s, port in (nginx, portico):
        data = raw_request(port, b"GET /gun/bad.html HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
        assert not data.endswith(b"0\r\n\r\n"), s.kind
        assert wait_for_lines(s, "error.log", 1)
        deadline = time.monotonic() + 3
        while "inflate() failed: 4, -3" not in s.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "[error]" in s.log() and "inflate() failed: 4, -3" in s.log(), s.kind
