"""The static-file corpus for the nginx-vs-Portico differential suite.

Invariants:
- ``CONF`` is the one configuration both servers run; it differs between
  them only by ``%PREFIX%`` (the harness fills it in) and ``%PORT1%`` /
  ``%PORT2%`` (the test fills them in).  ``FILES`` is the document tree both
  get, with every mtime pinned to ``MTIME`` so ETag / Last-Modified agree.
- Every ``Case.raw`` is the exact byte string written to the socket; nothing
  normalises it.  A raw request may hold several pipelined requests; then
  ``responses`` says how many answers to read.
- ``Case.xfail`` names a bug in a file this suite's owner does not own; the
  test marks it ``xfail(strict=True)`` so a fix makes the suite say so.
- Case ids are unique.
"""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate

#: the mtime of every file in FILES (Tue, 14 Nov 2023 22:13:20 GMT)
MTIME = 1700000000
LM = formatdate(MTIME, usegmt=True)
LM_BEFORE = formatdate(MTIME - 3600, usegmt=True)
LM_AFTER = formatdate(MTIME + 3600, usegmt=True)
SMALL = bytes(range(32, 127)) + b"abcde"  # 100 bytes
assert len(SMALL) == 100
BIG = bytes((i * 7 + 3) % 251 for i in range(1 << 20))  # 1 MiB
ETAG_SMALL = f'"{MTIME:x}-{len(SMALL):x}"'
ETAG_EMPTY = f'"{MTIME:x}-0"'

#: files under the prefix; the test pins their mtime and modes
FILES: dict[str, bytes] = {
    "html/index.html": b"<html><body>main index</body></html>\n",
    "html/empty.txt": b"",
    "html/small.txt": SMALL,
    "html/big.bin": BIG,
    "html/style.css": b"body { color: red; }\n",
    "html/app.js": b"console.log('hi');\n",
    "html/data.json": b'{"a": 1}\n',
    "html/img.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 56,
    "html/noext": b"no extension here\n",
    "html/UPPER.HTML": b"<p>upper</p>\n",
    "html/dir/index.html": b"<p>dir index</p>\n",
    "html/dir2/file.txt": b"in dir2\n",
    "html/secret.txt": b"top secret\n",
    "html/err/404.html": b"<h1>custom not found</h1>\n",
    "html/types/a.foo": b"custom type\n",
    "html/types/b.unknown": b"default type\n",
    "html/etagoff/small.txt": SMALL,
    "html/imsbefore/small.txt": SMALL,
    "html/maxranges1/small.txt": SMALL,
    "html/maxranges0/small.txt": SMALL,
    "html/a b.txt": b"space in name\n",
    "html/.txt": b"dot file, no extension\n",
    "html/sp ace/index.html": b"<p>space dir</p>\n",
    "html/notype/noext": SMALL,
    "prec/exact": b"exact file\n",
    "prec/internal-idx/index.html": b"internal index\n",
    "prec/index.html": b"prec index\n",
    "prec/a/x.css": b"a css\n",
    "prec/a/x.html": b"a html\n",
    "prec/a/b/x.css": b"a b css\n",
    "prec/a/b/x.html": b"a b html\n",
    "prec/static/x.txt": b"static txt\n",
    "prec/other/x.txt": b"other txt\n",
    "prec/other/X.TXT": b"other TXT\n",
    "prec/long/x.html": b"long\n",
    "prec/long/longer/x.html": b"longer\n",
    "aliased/page.txt": b"aliased page\n",
    "aliased/sub/deep.html": b"aliased deep\n",
    "aliased/re-root/name/x.html": b"re-root file\n",
}
#: files made unreadable (mode 000): nginx's workers run as nobody
UNREADABLE = ("html/secret.txt",)

CONF = r"""
worker_processes 1;
daemon off;
master_process on;
pid logs/nginx.pid;
error_log logs/error.log info;
events { worker_connections 256; }
http {
    include mime.types;
    default_type application/octet-stream;
    access_log logs/access.log;

    server {
        listen 127.0.0.1:%PORT1% default_server;
        server_name localhost main.test;
        root %PREFIX%/html;
        add_header X-Server main always;

        location / { }
        location /nolog/ { log_not_found off; }
        location /errpage/ { error_page 404 /err/404.html; }
        location /errpage200/ { error_page 404 =200 /err/404.html; }
        location /etagoff/ { etag off; }
        location /kd/safari/ { alias %PREFIX%/html/; keepalive_disable safari; }
        location /kd/none/ { alias %PREFIX%/html/; keepalive_disable none; }
        location /imsbefore/ { if_modified_since before; }
        location /maxranges1/ { max_ranges 1; }
        location /maxranges0/ { max_ranges 0; }
        location /notype/ { default_type ""; }
        location /types/ {
            types { text/x-custom foo; }
            default_type application/x-default;
        }
    }

    server {
        listen 127.0.0.1:%PORT1%;
        server_name hdr.test;
        root %PREFIX%/html;

        location /e/epoch/ { alias %PREFIX%/html/; expires epoch; }
        location /e/max/ { alias %PREFIX%/html/; expires max; }
        location /e/1h/ { alias %PREFIX%/html/; expires 1h; }
        location /e/mod/ { alias %PREFIX%/html/; expires modified 1h; }
        location /e/neg/ { alias %PREFIX%/html/; expires -1; }
        location /h/plain/ { alias %PREFIX%/html/; add_header X-A a; }
        location /h/always/ { alias %PREFIX%/html/; add_header X-A a always; }
        location /h/both/ {
            alias %PREFIX%/html/;
            expires 1h;
            add_header X-A a;
            add_header X-B b always;
            add_header Cache-Control private;
        }
        location /h/err/ {
            alias %PREFIX%/html/;
            add_header X-A a always;
            error_page 404 /err/404.html;
        }
        location /h/err200/ { alias %PREFIX%/html/; error_page 404 =200 /err/404.html; }
    }

    server {
        listen 127.0.0.1:%PORT1%;
        server_name prec.test;
        root %PREFIX%/prec;
        add_header X-Loc server;

        location = /exact { add_header X-Loc exact; }
        location = /internal-idx/index.html { internal; add_header X-Loc internal-index; }
        location / { add_header X-Loc root; }
        location /a/ {
            add_header X-Loc a;
            location /a/b/ { add_header X-Loc a-b; }
            location ~ \.css$ { add_header X-Loc a-css; }
        }
        location ^~ /static/ { add_header X-Loc static-noregex; }
        location ~ \.txt$ { add_header X-Loc txt-regex; }
        location ~* \.TXT$ { add_header X-Loc txt-ci; }
        location /long/ { add_header X-Loc long; }
        location /long/longer/ { add_header X-Loc longer; }
        location /alias/ { alias %PREFIX%/aliased/; add_header X-Loc alias; }
        location ~ ^/re-alias/(.+)\.html$ { alias %PREFIX%/aliased/$1.txt; add_header X-Loc re-alias; }
        location ~ ^/re-root/(?<name>\w+)/ { root %PREFIX%/aliased; add_header X-Loc re-root-$name; }
    }

    server { listen 127.0.0.1:%PORT1%; server_name exact.test; root %PREFIX%/html;
             add_header X-Server exact always; }
    server { listen 127.0.0.1:%PORT1%; server_name *.example.com; root %PREFIX%/html;
             add_header X-Server wild-head always; }
    server { listen 127.0.0.1:%PORT1%; server_name www.example.*; root %PREFIX%/html;
             add_header X-Server wild-tail always; }
    server { listen 127.0.0.1:%PORT1%; server_name ~^(?<sub>[a-z]+)\.regex\.test$; root %PREFIX%/html;
             add_header X-Server regex-$sub always; }
    server { listen 127.0.0.1:%PORT1%; server_name .dot.test; root %PREFIX%/html;
             add_header X-Server dot always; }

    server { listen 127.0.0.1:%PORT2%; server_name first.test; root %PREFIX%/html;
             add_header X-Server p2-first always; }
    server { listen 127.0.0.1:%PORT2% default_server; server_name second.test; root %PREFIX%/html;
             add_header X-Server p2-default always; }
}
"""


@dataclass(frozen=True)
class Case:
    id: str
    raw: bytes
    port: str = "p1"  # "p1" or "p2"
    responses: int = 1  # pipelined answers to read
    xfail: str | None = None
    xfail_root_only: bool = False  # the bug shows only when the suite runs as root
    timeout: float = 5.0  # per read; short where one server is expected to wait for more


def req(method: str, path: str, host: str | None = "localhost", headers: tuple[str, ...] = (),
        version: str = "HTTP/1.1", body: bytes = b"") -> bytes:
    """A raw request; header lines are given verbatim ("Name: value")."""
    lines = [f"{method} {path} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_MSIE6 = "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
_SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15"


def _get(id: str, path: str, *headers: str, host: str = "localhost", method: str = "GET",
         xfail: str | None = None, port: str = "p1", xfail_root_only: bool = False) -> Case:
    return Case(id, req(method, path, host, headers), port=port, xfail=xfail, xfail_root_only=xfail_root_only)


_BUG_NO_COLON = ("portico/http/proto/h1.py: httptools rejects a header line without ':' (400); nginx "
                 "takes it as a header with an empty value and serves the request")
_BUG_BARE_LF = ("portico/http/proto/h1.py: httptools (strict llhttp) rejects a request whose lines end "
                "in a bare LF (400); nginx accepts LF line ends in the request line and headers")

CASES: list[Case] = [
    # --- file types and sizes -------------------------------------------------------
    _get("get-index-root", "/"),
    _get("get-index-explicit", "/index.html"),
    _get("get-empty", "/empty.txt"),
    _get("get-small", "/small.txt"),
    _get("get-big", "/big.bin"),
    _get("get-css", "/style.css"),
    _get("get-js", "/app.js"),
    _get("get-json", "/data.json"),
    _get("get-png", "/img.png"),
    _get("get-noext", "/noext"),
    _get("get-upper-ext", "/UPPER.HTML"),
    _get("get-types-custom", "/types/a.foo"),
    _get("get-types-default", "/types/b.unknown"),
    _get("get-space-encoded", "/a%20b.txt"),
    _get("get-query", "/small.txt?x=1&y=2"),
    _get("get-dotfile-no-ext", "/.txt"),
    _get("get-encoded-dot", "/index%2ehtml"),
    _get("get-big-head", "/big.bin", method="HEAD"),
    _get("dir-space-301", "/sp%20ace"),
    _get("dir-space-index", "/sp%20ace/"),
    _get("dir-encoded-query-301", "/sp%20ace?q=a%20b"),
    Case("post-404-with-body", req("POST", "/nope.txt", headers=("Content-Length: 4",), body=b"abcd")),
    Case("post-dir-301", req("POST", "/dir", headers=("Content-Length: 3",), body=b"abc")),
    _get("dir-index", "/dir/"),
    _get("dir-no-slash-301", "/dir"),
    _get("dir-no-slash-301-args", "/dir?a=1"),
    _get("dir-no-slash-301-hostport", "/dir", host="localhost:8080"),
    _get("dir2-listing-403", "/dir2/"),
    _get("unreadable-403", "/secret.txt"),
    _get("missing-404", "/nope.txt"),
    _get("missing-dir-404", "/nope/"),
    _get("missing-nolog-404", "/nolog/x"),
    _get("file-as-dir-404", "/small.txt/x"),
    _get("head-small", "/small.txt", method="HEAD"),
    _get("head-404", "/nope.txt", method="HEAD"),
    _get("head-dir-301", "/dir", method="HEAD"),
    Case("post-static-405", req("POST", "/small.txt", headers=("Content-Length: 5",), body=b"hello")),
    Case("post-static-405-noblen", req("POST", "/small.txt", headers=("Content-Length: 0",))),
    _get("post-dir-index", "/dir/", method="POST"),
    _get("put-405", "/small.txt", "Content-Length: 0", method="PUT"),
    _get("delete-405", "/small.txt", method="DELETE"),
    _get("options-405", "/small.txt", method="OPTIONS"),
    _get("unknown-method", "/small.txt", method="FOO"),
    _get("unknown-method-underscore", "/small.txt", method="X_Y-Z"),
    _get("connect-method", "/small.txt", method="CONNECT"),
    _get("unknown-method-index", "/", method="FOO"),
    # --- ranges ---------------------------------------------------------------------
    _get("range-single", "/small.txt", "Range: bytes=0-9"),
    _get("range-middle", "/small.txt", "Range: bytes=10-19"),
    _get("range-suffix", "/small.txt", "Range: bytes=-10"),
    _get("range-suffix-too-big", "/small.txt", "Range: bytes=-1000"),
    _get("range-open", "/small.txt", "Range: bytes=90-"),
    _get("range-end-past", "/small.txt", "Range: bytes=95-200"),
    _get("range-multi", "/small.txt", "Range: bytes=0-4,10-14"),
    _get("range-multi-three", "/small.txt", "Range: bytes=0-0,-1,50-52"),
    _get("range-overlap", "/small.txt", "Range: bytes=0-10,5-15"),
    _get("range-overlap-large", "/small.txt", "Range: bytes=0-80,10-90"),
    _get("range-unsatisfiable", "/small.txt", "Range: bytes=200-300"),
    _get("range-unsatisfiable-head", "/small.txt", "Range: bytes=200-300", method="HEAD"),
    _get("range-malformed", "/small.txt", "Range: bytes=abc"),
    _get("range-malformed-reverse", "/small.txt", "Range: bytes=20-10"),
    _get("range-not-bytes", "/small.txt", "Range: items=0-1"),
    _get("range-spaces", "/small.txt", "Range: bytes= 0 - 4 , 6 - 7"),
    _get("range-empty-file", "/empty.txt", "Range: bytes=0-"),
    _get("range-empty-file-suffix", "/empty.txt", "Range: bytes=-5"),
    _get("range-big", "/big.bin", "Range: bytes=1000-70000"),
    _get("range-big-multi", "/big.bin", "Range: bytes=0-99,500000-500099,-100"),
    _get("range-head", "/small.txt", "Range: bytes=0-9", method="HEAD"),
    _get("range-if-range-etag-match", "/small.txt", "Range: bytes=0-9", f"If-Range: {ETAG_SMALL}"),
    _get("range-if-range-etag-mismatch", "/small.txt", "Range: bytes=0-9", 'If-Range: "nope"'),
    _get("range-if-range-date-match", "/small.txt", "Range: bytes=0-9", f"If-Range: {LM}"),
    _get("range-if-range-date-mismatch", "/small.txt", "Range: bytes=0-9", f"If-Range: {LM_BEFORE}"),
    _get("range-if-range-etag-off", "/etagoff/small.txt", "Range: bytes=0-9", f"If-Range: {ETAG_SMALL}"),
    _get("range-max1-multi", "/maxranges1/small.txt", "Range: bytes=0-1,5-6"),
    _get("range-max1-single", "/maxranges1/small.txt", "Range: bytes=0-1"),
    _get("range-max0", "/maxranges0/small.txt", "Range: bytes=0-1"),
    _get("range-on-404", "/nope.txt", "Range: bytes=0-1"),
    _get("range-multi-no-type", "/notype/noext", "Range: bytes=0-1,3-4"),
    _get("range-single-no-type", "/notype/noext", "Range: bytes=0-1"),
    _get("range-uppercase-unit", "/small.txt", "Range: BYTES=0-1"),
    _get("range-trailing-comma", "/small.txt", "Range: bytes=0-1,"),
    _get("range-zero-zero-empty", "/empty.txt", "Range: bytes=0-0"),
    _get("range-huge-number", "/small.txt", "Range: bytes=0-99999999999999999999999"),
    _get("range-if-range-weak", "/small.txt", "Range: bytes=0-9", f"If-Range: W/{ETAG_SMALL}"),
    _get("range-if-range-rfc850", "/small.txt", "Range: bytes=0-9", "If-Range: Tuesday, 14-Nov-23 22:13:20 GMT"),
    _get("range-if-range-garbage", "/small.txt", "Range: bytes=0-9", "If-Range: garbage"),
    Case("range-http10", req("GET", "/small.txt", None, ("Range: bytes=0-1",), version="HTTP/1.0")),
    # --- conditionals ---------------------------------------------------------------
    _get("ims-exact", "/small.txt", f"If-Modified-Since: {LM}"),
    _get("ims-before", "/small.txt", f"If-Modified-Since: {LM_BEFORE}"),
    _get("ims-after", "/small.txt", f"If-Modified-Since: {LM_AFTER}"),
    _get("ims-garbage", "/small.txt", "If-Modified-Since: yesterday-ish"),
    _get("ims-after-mode-before", "/imsbefore/small.txt", f"If-Modified-Since: {LM_AFTER}"),
    _get("ims-rfc850", "/small.txt", "If-Modified-Since: Tuesday, 14-Nov-23 22:13:20 GMT"),
    _get("ims-asctime", "/small.txt", "If-Modified-Since: Tue Nov 14 22:13:20 2023"),
    _get("ims-head", "/small.txt", f"If-Modified-Since: {LM}", method="HEAD"),
    _get("ims-other-zone", "/small.txt", "If-Modified-Since: Tue, 14 Nov 2023 22:13:20 +0100"),
    _get("ims-no-weekday", "/small.txt", "If-Modified-Since: 14 Nov 2023 22:13:20 GMT"),
    _get("ims-lowercase-month", "/small.txt", "If-Modified-Since: Tue, 14 nov 2023 22:13:20 GMT"),
    _get("ims-on-404", "/nope.txt", f"If-Modified-Since: {LM}"),
    _get("ius-head-412", "/small.txt", f"If-Unmodified-Since: {LM_BEFORE}", method="HEAD"),
    _get("ius-after", "/small.txt", f"If-Unmodified-Since: {LM_AFTER}"),
    _get("if-match-list", "/small.txt", f'If-Match: "a", {ETAG_SMALL}'),
    _get("if-match-etag-off", "/etagoff/small.txt", f"If-Match: {ETAG_SMALL}"),
    _get("inm-star-etag-off", "/etagoff/small.txt", "If-None-Match: *"),
    _get("inm-and-range-206", "/small.txt", 'If-None-Match: "zzz"', "Range: bytes=0-1"),
    _get("inm-match", "/small.txt", f"If-None-Match: {ETAG_SMALL}"),
    _get("inm-star", "/small.txt", "If-None-Match: *"),
    _get("inm-weak", "/small.txt", f"If-None-Match: W/{ETAG_SMALL}"),
    _get("inm-list", "/small.txt", f'If-None-Match: "a", {ETAG_SMALL}, "b"'),
    _get("inm-mismatch", "/small.txt", 'If-None-Match: "zzz"'),
    _get("inm-match-ims-before", "/small.txt", f"If-None-Match: {ETAG_SMALL}", f"If-Modified-Since: {LM_BEFORE}"),
    _get("inm-etag-off", "/etagoff/small.txt", f"If-None-Match: {ETAG_SMALL}"),
    _get("inm-with-range", "/small.txt", f"If-None-Match: {ETAG_SMALL}", "Range: bytes=0-1"),
    _get("if-match-ok", "/small.txt", f"If-Match: {ETAG_SMALL}"),
    _get("if-match-star", "/small.txt", "If-Match: *"),
    _get("if-match-412", "/small.txt", 'If-Match: "zzz"'),
    _get("if-match-weak-412", "/small.txt", f"If-Match: W/{ETAG_SMALL}"),
    _get("ius-ok", "/small.txt", f"If-Unmodified-Since: {LM}"),
    _get("ius-412", "/small.txt", f"If-Unmodified-Since: {LM_BEFORE}"),
    _get("ius-garbage", "/small.txt", "If-Unmodified-Since: garbage"),
    _get("cond-on-404", "/nope.txt", f"If-None-Match: {ETAG_SMALL}"),
    # --- expires / add_header / error_page -----------------------------------------------
    _get("expires-epoch", "/e/epoch/small.txt", host="hdr.test"),
    _get("expires-max", "/e/max/small.txt", host="hdr.test"),
    _get("expires-1h", "/e/1h/small.txt", host="hdr.test"),
    _get("expires-modified", "/e/mod/small.txt", host="hdr.test"),
    _get("expires-negative", "/e/neg/small.txt", host="hdr.test"),
    _get("expires-404", "/e/max/nope.txt", host="hdr.test"),
    _get("expires-304", "/e/max/small.txt", f"If-None-Match: {ETAG_SMALL}", host="hdr.test"),
    _get("add-header-200", "/h/plain/small.txt", host="hdr.test"),
    _get("add-header-404", "/h/plain/nope.txt", host="hdr.test"),
    _get("add-header-always-200", "/h/always/small.txt", host="hdr.test"),
    _get("add-header-always-404", "/h/always/nope.txt", host="hdr.test"),
    _get("add-header-both-200", "/h/both/small.txt", host="hdr.test"),
    _get("add-header-both-404", "/h/both/nope.txt", host="hdr.test"),
    _get("add-header-both-206", "/h/both/small.txt", "Range: bytes=1-2", host="hdr.test"),
    _get("add-header-both-304", "/h/both/small.txt", f"If-Modified-Since: {LM}", host="hdr.test"),
    _get("add-header-server-level-404", "/nope.txt"),
    _get("add-header-both-416", "/h/both/small.txt", "Range: bytes=500-", host="hdr.test"),
    _get("add-header-both-412", "/h/both/small.txt", 'If-Match: "x"', host="hdr.test"),
    _get("add-header-301", "/h/plain/dir", host="hdr.test"),
    _get("add-header-always-301", "/h/always/dir", host="hdr.test"),
    _get("expires-206", "/e/1h/small.txt", "Range: bytes=0-0", host="hdr.test"),
    _get("expires-416", "/e/max/small.txt", "Range: bytes=900-", host="hdr.test"),
    _get("error-page-static", "/errpage/nope"),
    _get("error-page-200", "/errpage200/nope"),
    _get("error-page-head", "/errpage/nope", method="HEAD"),
    _get("error-page-with-headers", "/h/err/nope", host="hdr.test"),
    _get("error-page-post", "/errpage/nope", "Content-Length: 0", method="POST"),
    _get("ua-msie-padding", "/nope", "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"),
    _get("ua-msie-short", "/nope", "User-Agent: MSIE 6"),
    _get("ua-opera-msie", "/nope", "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0) Opera 8.5"),
    _get("ua-chrome-padding", "/nope", "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
         "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"),
    _get("ua-firefox", "/nope", "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"),
    _get("ua-msie-403", "/dir2/", "User-Agent: Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1)"),
    _get("error-page-200-hdr", "/h/err200/nope", host="hdr.test"),
    # --- root / alias / location precedence ---------------------------------------------
    _get("loc-exact", "/exact", host="prec.test"),
    _get("loc-exact-not-prefix", "/exactly", host="prec.test"),
    _get("loc-internal-via-index", "/internal-idx/", host="prec.test"),
    _get("loc-internal-direct-404", "/internal-idx/index.html", host="prec.test"),
    _get("loc-root-index", "/", host="prec.test"),
    _get("loc-prefix-a", "/a/x.html", host="prec.test"),
    _get("loc-nested-regex", "/a/x.css", host="prec.test"),
    _get("loc-nested-prefix", "/a/b/x.html", host="prec.test"),
    _get("loc-nested-prefix-regex", "/a/b/x.css", host="prec.test"),
    _get("loc-noregex", "/static/x.txt", host="prec.test"),
    _get("loc-regex-first", "/other/x.txt", host="prec.test"),
    _get("loc-regex-ci", "/other/X.TXT", host="prec.test"),
    _get("loc-longest-prefix", "/long/longer/x.html", host="prec.test"),
    _get("loc-shorter-prefix", "/long/x.html", host="prec.test"),
    _get("alias-prefix", "/alias/page.txt", host="prec.test"),
    _get("alias-prefix-deep", "/alias/sub/deep.html", host="prec.test"),
    _get("alias-dir-301", "/alias/sub", host="prec.test"),
    _get("alias-regex-capture", "/re-alias/page.html", host="prec.test"),
    _get("alias-regex-capture-404", "/re-alias/nope.html", host="prec.test"),
    _get("root-regex-named", "/re-root/name/x.html", host="prec.test"),
    # --- server_name ------------------------------------------------------------------
    _get("sn-exact", "/small.txt", host="exact.test"),
    _get("sn-exact-case", "/small.txt", host="EXACT.Test"),
    _get("sn-exact-port", "/small.txt", host="exact.test:1234"),
    _get("sn-exact-trailing-dot", "/small.txt", host="exact.test."),
    _get("sn-wild-head", "/small.txt", host="a.example.com"),
    _get("sn-wild-head-deep", "/small.txt", host="a.b.example.com"),
    _get("sn-wild-head-vs-tail", "/small.txt", host="www.example.com"),
    _get("sn-wild-tail", "/small.txt", host="www.example.org"),
    _get("sn-regex", "/small.txt", host="abc.regex.test"),
    _get("sn-dot-bare", "/small.txt", host="dot.test"),
    _get("sn-dot-sub", "/small.txt", host="x.dot.test"),
    _get("sn-unknown", "/small.txt", host="unknown.test"),
    _get("sn-p2-named", "/small.txt", host="first.test", port="p2"),
    _get("sn-p2-default", "/small.txt", host="unknown.test", port="p2"),
    _get("sn-absolute-form", "/small.txt", host="second.test", port="p2"),
    Case("sn-absolute-form-wins", req("GET", "http://first.test/small.txt", host="second.test"), port="p2"),
    # --- connection handling ----------------------------------------------------------------
    _get("conn-close", "/small.txt", "Connection: close"),
    _get("conn-keepalive-11", "/small.txt"),
    Case("conn-http10", req("GET", "/small.txt", None, version="HTTP/1.0")),
    Case("conn-http10-keepalive", req("GET", "/small.txt", None, ("Connection: keep-alive",), version="HTTP/1.0")),
    Case("conn-http10-host", req("GET", "/small.txt", "exact.test", version="HTTP/1.0")),
    Case("conn-pipelined", req("GET", "/small.txt") + req("HEAD", "/empty.txt") + req("GET", "/nope"),
         responses=3),
    Case("conn-pipelined-close", req("GET", "/small.txt", headers=("Connection: close",)) + req("GET", "/empty.txt")),
    # --- malformed and hostile -------------------------------------------------------------
    Case("bad-request-line", b"GARBAGE\r\n\r\n"),
    Case("http09", b"GET /small.txt\r\n", timeout=1.5),
    Case("http09-missing", b"GET /nope\r\n", timeout=1.5),
    Case("lf-only", b"GET /small.txt HTTP/1.1\nHost: localhost\n\n", xfail=_BUG_BARE_LF),
    Case("host-empty", req("GET", "/small.txt", host="")),
    Case("host-port-only", req("GET", "/small.txt", host=":80")),
    Case("conn-close-mixed-case", req("GET", "/small.txt", headers=("Connection: ClOsE",))),
    Case("te-chunked-get", req("GET", "/small.txt", headers=("Transfer-Encoding: chunked",), body=b"0\r\n\r\n")),
    Case("absolute-form-https", req("GET", "https://localhost/small.txt", host="x")),
    Case("space-before-colon", b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nX-A : 1\r\n\r\n"),
    Case("bad-version", b"GET / HTTP/9.9\r\nHost: localhost\r\n\r\n"),
    Case("bad-lowercase-method", b"get / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    Case("missing-host-11", b"GET /small.txt HTTP/1.1\r\n\r\n"),
    Case("two-hosts", req("GET", "/small.txt", headers=("Host: other",))),
    Case("bad-host", req("GET", "/small.txt", host="bad/host")),
    Case("cl-and-te", req("POST", "/small.txt", headers=("Content-Length: 5", "Transfer-Encoding: chunked"),
                          body=b"0\r\n\r\n")),
    Case("te-unknown-501", req("POST", "/small.txt", headers=("Transfer-Encoding: gzip",))),
    Case("cl-invalid", req("POST", "/small.txt", headers=("Content-Length: abc",))),
    # a digit to Python (UTF-8 superscript two), not to nginx
    Case("cl-unicode-digit", req("POST", "/small.txt", headers=("Content-Length: \xc2\xb2",))),
    Case("uri-too-long-414", req("GET", "/" + "a" * 9000)),
    Case("header-too-long-494", req("GET", "/small.txt", headers=("X-Big: " + "b" * 9000,))),
    Case("dotdot-escape", req("GET", "/../../etc/passwd")),
    Case("dotdot-encoded", req("GET", "/%2e%2e/%2e%2e/etc/passwd")),
    Case("dotdot-inside", req("GET", "/dir/../small.txt")),
    Case("nul-encoded", req("GET", "/small.txt%00.html")),
    Case("absolute-form", req("GET", "http://localhost/small.txt", host="ignored.test")),
    Case("absolute-form-unknown-host", req("GET", "http://nohost.test/small.txt", host="localhost")),
    # keepalive_disable (default msie6: MSIE 4-6 without SV1, POST only)
    _get("kd-msie6-post", "/small.txt", "User-Agent: " + _MSIE6, method="POST"),
    _get("kd-msie6-get", "/small.txt", "User-Agent: " + _MSIE6),
    _get("kd-msie6-sv1-post", "/small.txt", "User-Agent: " + _MSIE6[:-1] + "; SV1)", method="POST"),
    _get("kd-msie5-opera-post", "/small.txt", "User-Agent: Mozilla/4.0 (compatible; MSIE 5.0; Opera 7)",
         method="POST"),
    _get("kd-msie6-none-post", "/kd/none/small.txt", "User-Agent: " + _MSIE6, method="POST"),
    _get("kd-safari-default", "/small.txt", "User-Agent: " + _SAFARI),
    _get("kd-safari", "/kd/safari/small.txt", "User-Agent: " + _SAFARI),
    _get("kd-safari-chrome", "/kd/safari/small.txt", "User-Agent: " + _SAFARI + " Chrome/120.0"),
    _get("kd-safari-first-ua-only", "/kd/safari/small.txt", "User-Agent: curl/8", "User-Agent: " + _SAFARI),
    # nginx checks the Host line whatever the request line says
    Case("absolute-form-bad-host", req("GET", "http://localhost/small.txt", host="bad/host")),
    Case("absolute-form-empty-host", req("GET", "http://localhost/small.txt", host="")),
    Case("absolute-form-two-hosts", req("GET", "http://localhost/small.txt", headers=("Host: other",))),
    Case("asterisk-target", req("OPTIONS", "*")),
    Case("header-no-colon", b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\nNoColonHere\r\n\r\n",
         xfail=_BUG_NO_COLON),
    Case("header-underscore", req("GET", "/small.txt", headers=("X_Under: 1",))),
]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"
