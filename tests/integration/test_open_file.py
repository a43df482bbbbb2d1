"""open_file_cache, disable_symlinks, directio and aio on a live portico,
each compared with Debian's nginx running the same configuration over the
same tree (links, owners and file replacements done to both)."""
from __future__ import annotations

import os
import socket

import pytest

from harness import base_conf, free_port, have_nginx, wait_for

pytestmark = pytest.mark.skipif(not have_nginx(), reason="Debian's nginx is not installed")

CONF = """
    server {{
        listen 127.0.0.1:{port};
        root html;
        location /cached/ {{
            open_file_cache max=10 inactive=60s;
            open_file_cache_valid 60s;
        }}
        location /errors/ {{
            open_file_cache max=10;
            open_file_cache_errors on;
        }}
        location /noerrors/ {{ open_file_cache max=10; }}
        location /twice/ {{ open_file_cache max=10; open_file_cache_min_uses 3; }}
        location /strict/ {{ disable_symlinks on; }}
        location /owner/ {{ disable_symlinks if_not_owner; }}
        location /from/ {{ disable_symlinks on from=$document_root/from/linked; }}
        location /tf/ {{ disable_symlinks on; try_files $uri =404; }}
        location /io/ {{ directio 4m; aio threads; }}
    }}"""


def get(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.replace(b"nginx/1.22.1", b"TOKEN").replace(b"portico/0.1.0", b"TOKEN")


def both(server):
    """Start nginx and portico on the same tree; yields (kind, server, port)."""
    out = []
    for kind in ("nginx", "portico"):
        port = free_port()
        s = server(base_conf(CONF.format(port=port)), kind=kind, start=False,
                   files={"html/cached/a.txt": "old\n", "html/twice/a.txt": "one\n",
                          "html/target/t.txt": "target\n", "html/from/real/r.txt": "real\n",
                          "html/io/f.txt": "io\n"})
        html = s.path("html")
        os.makedirs(os.path.join(html, "errors"))
        os.makedirs(os.path.join(html, "noerrors"))
        for d in ("strict", "owner", "tf"):
            os.makedirs(os.path.join(html, d))
            os.symlink(os.path.join(html, "target/t.txt"), os.path.join(html, d, "link.txt"))
            os.symlink(os.path.join(html, "target"), os.path.join(html, d, "dirlink"))
            with open(os.path.join(html, d, "plain.txt"), "w") as f:
                f.write("plain\n")
        # a link owned by someone else than its target
        other = os.path.join(html, "owner", "foreign.txt")
        os.symlink(os.path.join(html, "target/t.txt"), other)
        os.lchown(other, 65534, 65534)
        os.symlink(os.path.join(html, "from/real"), os.path.join(html, "from/linked"))
        for dirpath, dirs, files in os.walk(s.prefix):
            os.chmod(dirpath, 0o755)
            for f in files:
                p = os.path.join(dirpath, f)
                if not os.path.islink(p):
                    os.chmod(p, 0o644)
        s.start()
        out.append((kind, s, port))
    return out


def test_disable_symlinks_like_nginx(server):
    paths = ["/strict/plain.txt", "/strict/link.txt", "/strict/dirlink/t.txt", "/owner/link.txt",
             "/owner/foreign.txt", "/owner/dirlink/t.txt", "/from/linked/r.txt", "/from/real/r.txt",
             "/tf/link.txt", "/tf/plain.txt", "/target/t.txt"]
    answers = {kind: [get(port, p) for p in paths] for kind, _, port in both(server)}
    assert answers["portico"] == answers["nginx"]
    # and the answers are what disable_symlinks means
    got = dict(zip(paths, answers["portico"]))
    assert got["/strict/link.txt"][0] == 403 and got["/strict/plain.txt"][0] == 200
    assert got["/owner/link.txt"][0] == 200 and got["/owner/foreign.txt"][0] == 403
    # the link is inside the from= part: allowed
    assert got["/from/linked/r.txt"] == (200, b"real\n")


def test_open_file_cache_like_nginx(server):
    runs = both(server)
    seen: dict[str, list[tuple[int, bytes]]] = {}
    for kind, s, port in runs:
        html = s.path("html")
        steps = [get(port, "/cached/a.txt"), get(port, "/errors/late.txt"), get(port, "/noerrors/late.txt")]
        # replace the file (a new inode) and create the missing ones
        tmp = os.path.join(html, "cached", "a.new")
        with open(tmp, "w") as f:
            f.write("new\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, os.path.join(html, "cached", "a.txt"))
        for d in ("errors", "noerrors"):
            with open(os.path.join(html, d, "late.txt"), "w") as f:
                f.write("late\n")
            os.chmod(os.path.join(html, d, "late.txt"), 0o644)
        steps += [get(port, "/cached/a.txt"), get(port, "/errors/late.txt"), get(port, "/noerrors/late.txt")]
        seen[kind] = steps
    assert seen["portico"] == seen["nginx"]
    # within open_file_cache_valid the cached descriptor (old inode) and the
    # cached error win; without the cache or errors caching, the new state
    assert seen["portico"][3] == (200, b"old\n")
    assert seen["portico"][4][0] == 404
    assert seen["portico"][5] == (200, b"late\n")


def test_min_uses_keeps_descriptor_only_after_enough_uses(server):
    runs = both(server)
    seen = {}
    for kind, s, port in runs:
        path = s.path("html/twice/a.txt")
        first = [get(port, "/twice/a.txt") for _ in range(3)]
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write("two\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        seen[kind] = first + [get(port, "/twice/a.txt")]
    assert seen["portico"] == seen["nginx"]


def test_directio_and_aio_are_accepted_and_said_not_applicable(server):
    port = free_port()
    srv = server(base_conf(CONF.format(port=port)),
                 files={"html/io/f.txt": "io\n", "html/cached/a.txt": "x", "html/twice/a.txt": "x"})
    assert get(port, "/io/f.txt") == (200, b"io\n")
    assert wait_for(lambda: '"aio threads" is not applicable in portico' in srv.log(), 5)
    assert '[info]' in srv.log() and '"directio 4m" is not applicable' in srv.log()
