"""Session resumption across separately built contexts: what two workers
(or a configuration and the next one after a reload) see.

Each "other worker" here is a second Cycle built from the same text: its
contexts are different SSL_CTX objects, so a resumption can only come from
the ticket keys or the shared zone, never from an in-process cache.
"""
from __future__ import annotations

import ssl
from types import SimpleNamespace

from portico.core.process.master import init_zones

from .conftest import client_ctx, handshake, load, table_of


def _conf(certs: dict[str, str], extra: str) -> str:
    return f"""server {{ listen 127.0.0.1:8443 ssl; server_name a.test;
        ssl_certificate {certs['a.test-rsa.crt']}; ssl_certificate_key {certs['a.test-rsa.key']};
        {extra} }}"""


def _resumes(t1, t2, certs, version: ssl.TLSVersion) -> bool:
    cc = client_ctx(certs, maxv=version, minv=version)
    first = handshake(t1, cc, "a.test")
    assert not first.server.session_reused
    again = handshake(t2, cc, "a.test", session=first.client.session)
    return again.server.session_reused


def test_ticket_key_file_shared_by_separate_contexts(tmp_path, certs) -> None:
    for key in ("ticket80", "ticket48"):
        conf = _conf(certs, f"ssl_session_ticket_key {certs[key]};")
        a = table_of(load(tmp_path, conf, "a.conf"), 8443)
        b = table_of(load(tmp_path, conf, "b.conf"), 8443)
        assert _resumes(a, b, certs, ssl.TLSVersion.TLSv1_3), key
        assert _resumes(a, b, certs, ssl.TLSVersion.TLSv1_2), key


def test_without_shared_keys_separate_contexts_do_not_resume(tmp_path, certs) -> None:
    conf = _conf(certs, "")
    a = table_of(load(tmp_path, conf, "a.conf"), 8443)
    b = table_of(load(tmp_path, conf, "b.conf"), 8443)
    assert _resumes(a, a, certs, ssl.TLSVersion.TLSv1_3)  # same context (one master, forked workers)
    assert not _resumes(a, b, certs, ssl.TLSVersion.TLSv1_3)


def test_shared_session_cache_session_ids(tmp_path, certs) -> None:
    conf = _conf(certs, "ssl_session_cache shared:SSL:1m; ssl_session_tickets off;")
    ca = load(tmp_path, conf, "a.conf")
    init_zones(ca, None)
    cb = load(tmp_path, conf, "b.conf")
    init_zones(cb, ca)  # same name, size and tag: the zone is the same memory
    assert cb.shm.get("SSL") is ca.shm.get("SSL")
    a, b = table_of(ca, 8443), table_of(cb, 8443)
    assert _resumes(a, b, certs, ssl.TLSVersion.TLSv1_2)
    # the session is in the zone, under its ID
    cc = client_ctx(certs, maxv=ssl.TLSVersion.TLSv1_2)
    hs = handshake(a, cc, "a.test")
    sid = hs.client.session.id
    table = ca.http.main["ssl"].caches["SSL"].table()
    with table.zone.lock:
        assert table.find(sid) >= 0


def test_shared_cache_only_builtin_off_means_no_internal_cache(tmp_path, certs) -> None:
    conf = _conf(certs, "ssl_session_cache off; ssl_session_tickets off;")
    a = table_of(load(tmp_path, conf), 8443)
    assert not _resumes(a, a, certs, ssl.TLSVersion.TLSv1_2)
    conf = _conf(certs, "ssl_session_cache builtin:100; ssl_session_tickets off;")
    a = table_of(load(tmp_path, conf, "b.conf"), 8443)
    assert _resumes(a, a, certs, ssl.TLSVersion.TLSv1_2)


def test_ticket_key_kept_in_zone_survives_reload(tmp_path, certs) -> None:
    from portico.http.modules.ssl import SslModule
    conf = _conf(certs, "ssl_session_cache shared:TK:1m;")
    old = load(tmp_path, conf, "a.conf")
    init_zones(old, None)
    SslModule().init_worker(SimpleNamespace(cycle=old))  # a worker stores the master's key
    key = old.http.main["ssl"].zone_keys["TK"]
    assert old.http.main["ssl"].caches["TK"].stored_ticket_key() == key
    new = load(tmp_path, conf, "a.conf")  # the reload: built while the old cycle serves
    assert new.http.main["ssl"].zone_keys["TK"] == key
    init_zones(new, old)
    assert _resumes(table_of(old, 8443), table_of(new, 8443), certs, ssl.TLSVersion.TLSv1_3)
    assert _resumes(table_of(old, 8443), table_of(new, 8443), certs, ssl.TLSVersion.TLSv1_2)
    # another size is another zone: new keys (nginx's zone is new too)
    other = load(tmp_path, _conf(certs, "ssl_session_cache shared:TK:2m;"), "c.conf")
    assert other.http.main["ssl"].zone_keys["TK"] != key


def test_session_variables(tmp_path, certs) -> None:
    from portico.tls import info
    conf = _conf(certs, "ssl_session_cache shared:V:1m; ssl_session_tickets off;")
    c = load(tmp_path, conf)
    init_zones(c, None)
    t = table_of(c, 8443)
    cc = client_ctx(certs, maxv=ssl.TLSVersion.TLSv1_2)
    first = handshake(t, cc, "a.test")
    assert info.session_reused(first.server) == "."
    sid = info.session_id(first.server)
    assert sid == first.client.session.id.hex() and len(sid) == 64
    again = handshake(t, cc, "a.test", session=first.client.session)
    assert info.session_reused(again.server) == "r"
    assert info.session_id(again.server) == sid
