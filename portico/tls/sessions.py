"""TLS session resumption shared by workers and kept across reloads.

Two mechanisms, as nginx's ngx_event_openssl.c:

- ``SharedSessionCache``: ``ssl_session_cache shared:NAME:SIZE``, an
  external OpenSSL session cache (new/get/remove callbacks) whose sessions
  (``i2d_SSL_SESSION`` bytes) live in a shared zone, so a session created
  by one worker resumes by session ID on any other.
- ``TicketKeys``: the session ticket key callback (nginx's
  ``ngx_ssl_ticket_key_callback``) with keys from ``ssl_session_ticket_key``
  files (48 or 80 bytes, nginx's layouts) or, without files but with a
  shared cache, one generated key stored in that zone so that the next
  configuration (a reload rebuilds every context in the master) finds and
  reuses it (nginx >= 1.23.2).  Without either, OpenSSL's own per-context
  keys apply; contexts are made in the master before fork, so every worker
  has them.

Invariants:
- The zone belongs to a ``KeyedTable`` (key: session ID, up to 32 bytes;
  value: expiry time, length, DER).  A session whose DER is longer than
  ``MAX_SESSION`` is not stored (nginx: ``NGX_SSL_MAX_SESSION_SIZE``).
- The ticket keys are one node of that table under ``TICKET_KEYS_ID`` (longer
  than any session ID, so stored as a digest that no ID can equal), outside
  the LRU queue: eviction never removes it.
- Callbacks never raise into OpenSSL: any Python error means "not found"
  (get) or "not stored" (new), or -1 (ticket: the handshake fails).
- Every CFUNCTYPE is kept by its owner object, which the context keeps
  (``ctx.portico_keep``) for as long as OpenSSL may call it.
"""
from __future__ import annotations

import ctypes
import os
import time
from ctypes import byref, c_uint, c_void_p
from typing import Any

from ..core.shm.keyed import KeyedTable
from . import openssl as osl

__all__ = ["MAX_SESSION", "SharedSessionCache", "TicketKeys", "TicketKey", "ticket_keys_from_bytes",
           "TICKET_KEYS_ID"]

MAX_SESSION = 2048
_VALUE_FMT = f"=dH{MAX_SESSION}s"
TICKET_KEYS_ID = b"\0portico ssl session ticket keys, not a session id\0"
_TAG_TEXT = "ssl_session_cache"


class TicketKey:
    __slots__ = ("name", "hmac", "aes", "size", "shared")

    def __init__(self, name: bytes, hmac: bytes, aes: bytes, size: int, shared: bool) -> None:
        self.name, self.hmac, self.aes, self.size, self.shared = name, hmac, aes, size, shared


def ticket_keys_from_bytes(buf: bytes, shared: bool = False) -> TicketKey:
    """nginx's layouts: 48 bytes name|aes|hmac (AES-128), 80 bytes name|hmac|aes (AES-256)."""
    if len(buf) == 48:
        return TicketKey(buf[:16], buf[32:48], buf[16:32], 48, shared)
    return TicketKey(buf[:16], buf[16:48], buf[48:80], 80, shared)


class TicketKeys:
    """The ticket key callback of one context: keys[0] encrypts, all decrypt."""

    def __init__(self, b: osl.Bridge, keys: list[TicketKey]) -> None:
        self.b = b
        self.keys = keys
        self.cb = osl.TICKET_KEY_CB(self._callback)

    def install(self, ctx_ptr: int) -> None:
        self.b.SSL_CTX_callback_ctrl(ctx_ptr, osl.SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB,
                                     ctypes.cast(self.cb, c_void_p))

    def _callback(self, sslp: int, name: Any, iv: Any, ectx: int, hctx: int, enc: int) -> int:
        b = self.b
        try:
            ivp = ctypes.cast(iv, c_void_p)
            if enc == 1:
                k = self.keys[0]
                if b.RAND_bytes(ivp, 16) != 1:
                    return -1
                cipher = b.EVP_aes_128_cbc() if k.size == 48 else b.EVP_aes_256_cbc()
                if b.EVP_EncryptInit_ex(ectx, cipher, None, k.aes, ivp) != 1:
                    return -1
                if b.HMAC_Init_ex(hctx, k.hmac, len(k.hmac), b.EVP_sha256(), None) != 1:
                    return -1
                ctypes.memmove(name, k.name, 16)
                return 1
            wanted = ctypes.string_at(name, 16)
            for i, k in enumerate(self.keys):
                if k.name == wanted:
                    break
            else:
                return 0
            cipher = b.EVP_aes_128_cbc() if k.size == 48 else b.EVP_aes_256_cbc()
            if b.HMAC_Init_ex(hctx, k.hmac, len(k.hmac), b.EVP_sha256(), None) != 1:
                return -1
            if b.EVP_DecryptInit_ex(ectx, cipher, None, k.aes, ivp) != 1:
                return -1
            if b.SSL_version(sslp) == osl.TLS1_3_VERSION:
                return 2  # renew if TLSv1.3
            return 2 if i != 0 and k.shared else 1
        except Exception:
            return -1


class SharedSessionCache:
    """``ssl_session_cache shared:NAME:SIZE``: the zone and its callbacks.

    ``zone_of`` returns this process's ``SharedZone`` for the name (looked
    up at first use, so an object made before the master created its zones
    works in the workers); one object serves every context using the name.
    """

    def __init__(self, b: osl.Bridge, name: str, size: int, zone_of: Any) -> None:
        self.b = b
        self.name = name
        self.size = size
        self.zone_of = zone_of
        self._table: KeyedTable | None = None
        self._zone: Any = None
        self.new_cb = osl.NEW_SESSION_CB(self._new)
        self.get_cb = osl.GET_SESSION_CB(self._get)
        self.remove_cb = osl.REMOVE_SESSION_CB(self._remove)

    # --- the table ------------------------------------------------------------------------
    def table(self) -> KeyedTable | None:
        zone = self.zone_of(self.name)
        if zone is None:
            return None
        if self._table is None or self._zone is not zone:
            self._table = KeyedTable.attach(zone, _VALUE_FMT, _TAG_TEXT)
            self._zone = zone
        return self._table

    def install(self, ctx_ptr: int) -> None:
        b = self.b
        b.SSL_CTX_sess_set_new_cb(ctx_ptr, ctypes.cast(self.new_cb, c_void_p))
        b.SSL_CTX_sess_set_get_cb(ctx_ptr, ctypes.cast(self.get_cb, c_void_p))
        b.SSL_CTX_sess_set_remove_cb(ctx_ptr, ctypes.cast(self.remove_cb, c_void_p))

    def _expire(self, t: KeyedTable, now: float, n: int) -> None:
        """nginx's ngx_ssl_expire_sessions: drop up to ``n`` expired oldest."""
        for _ in range(n):
            idx = t.lru_tail()
            if idx < 0 or t.get(idx)[0] > now:
                return
            t.remove(idx)

    # --- ticket keys kept in the zone ----------------------------------------------------
    def stored_ticket_key(self) -> bytes | None:
        t = self.table()
        if t is None:
            return None
        with t.zone.lock:
            idx = t.find(TICKET_KEYS_ID)
            if idx < 0:
                return None
            _, n, data = t.get(idx)
            return bytes(data[:n])

    def store_ticket_key(self, key: bytes) -> bytes:
        """Store ``key`` unless a key is there already; return the one kept."""
        t = self.table()
        if t is None:
            return key
        with t.zone.lock:
            idx = t.find(TICKET_KEYS_ID)
            if idx >= 0:
                _, n, data = t.get(idx)
                return bytes(data[:n])
            if t.insert(TICKET_KEYS_ID, (float("inf"), len(key), key), lru=False) < 0:
                idx = t.lru_tail()
                if idx >= 0:
                    t.remove(idx)
                    t.insert(TICKET_KEYS_ID, (float("inf"), len(key), key), lru=False)
        return key

    # --- OpenSSL callbacks ----------------------------------------------------------------
    def _new(self, sslp: int, sess: int) -> int:
        b = self.b
        try:
            n = b.i2d_SSL_SESSION(sess, None)
            if n <= 0 or n > MAX_SESSION:
                return 0
            buf = ctypes.create_string_buffer(n)
            p = c_void_p(ctypes.addressof(buf))
            b.i2d_SSL_SESSION(sess, byref(p))
            ln = c_uint()
            idp = b.SSL_SESSION_get_id(sess, byref(ln))
            sid = ctypes.string_at(idp, ln.value)
            expire = time.time() + b.SSL_SESSION_get_timeout(sess)
            t = self.table()
            if t is None:
                return 0
            with t.zone.lock:
                self._expire(t, time.time(), 1)
                idx = t.find(sid)
                if idx >= 0:
                    t.remove(idx)
                if t.insert(sid, (expire, n, buf.raw)) < 0:
                    self._expire(t, time.time(), 1)
                    if t.insert(sid, (expire, n, buf.raw)) < 0:
                        old = t.lru_tail()  # full: forget the oldest, as nginx's slab does
                        if old >= 0:
                            t.remove(old)
                        t.insert(sid, (expire, n, buf.raw))
        except Exception:
            pass
        return 0  # the session is not kept by us: OpenSSL frees it

    def _get(self, sslp: int, idp: Any, n: int, copy: Any) -> int | None:
        b = self.b
        try:
            copy[0] = 0
            sid = ctypes.string_at(idp, n)
            t = self.table()
            if t is None:
                return None
            with t.zone.lock:
                idx = t.find(sid)
                if idx < 0:
                    return None
                expire, ln, data = t.get(idx)
                if expire <= time.time():
                    t.remove(idx)
                    return None
                der = bytes(data[:ln])
            buf = ctypes.create_string_buffer(der, ln)
            p = c_void_p(ctypes.addressof(buf))
            sess = b.d2i_SSL_SESSION(None, byref(p), ln)
            return sess or None
        except Exception:
            return None

    def _remove(self, ctxp: int, sess: int) -> None:
        try:
            ln = c_uint()
            idp = self.b.SSL_SESSION_get_id(sess, byref(ln))
            sid = ctypes.string_at(idp, ln.value)
            t = self.table()
            if t is None:
                return
            with t.zone.lock:
                idx = t.find(sid)
                if idx >= 0:
                    t.remove(idx)
        except Exception:
            pass


def random_ticket_key() -> bytes:
    return os.urandom(80)

