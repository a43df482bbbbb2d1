"""Per-key state in a shared zone: what limit_req and limit_conn keep.

nginx keeps one rbtree node per key in a slab-allocated zone; a
``KeyedTable`` is the same thing with fixed-size nodes: a chained hash
table of nodes that never move (so a node index is as stable as nginx's
node pointer: limit_conn's cleanup and limit_req's held node keep one),
plus an optional LRU queue (nginx's ``ngx_queue_t``) for expiry.

Invariants
----------
* Ownership.  A zone given to ``KeyedTable.attach`` belongs to it whole: the
  table is laid out from ``HEADER_SIZE`` to the end of the zone and
  ``zone.alloc`` is never called on it (so ``zone.used`` stays at the
  header).  The layout is a function of the zone size and the value format
  only, so any process that attaches the same zone finds the same offsets,
  and a zone kept across a reload (same name, size and tag) is found again
  with its content.
* Attaching.  The first process to attach (under ``zone.lock``) writes the
  control block; fresh zone memory is zero, and zero means "empty" in every
  link (links store ``index + 1``) and "unused" in every node, so nothing
  else needs initialising.  A control block with another layout signature
  (a zone reused with another value format) is wiped and rewritten.  The
  master may attach before fork (its handle then serves every worker) or
  each worker after fork: both are correct.
* Locking.  Every method except ``attach`` expects the caller to hold
  ``zone.lock`` (nginx's ``*_locked`` slab calls): a module does lookup,
  accounting and expiry in one critical section, as nginx does.
* Keys.  Up to ``INLINE_KEY`` bytes are stored as they are; a longer key is
  stored as its 32-byte BLAKE2b digest with its length (a collision is as
  unlikely as a SHA-2 one).  Hashing is ``hash(bytes)``, inherited across
  fork like the zone (see zone.py).
* Capacity.  ``capacity`` nodes fit; ``insert`` returns -1 when none is
  free and the caller applies nginx's policy (expire, then fail).
"""
from __future__ import annotations

import hashlib
import struct

from .zone import HEADER_SIZE, SharedZone

__all__ = ["INLINE_KEY", "KeyedTable"]

#: keys up to this many bytes are stored verbatim
INLINE_KEY = 32
_MAGIC = 0x4B45594544544231  # "KEYEDTB1"
# magic, signature (node stride << 32 | value size), capacity, nbuckets,
# high-water mark, free head, lru head, lru tail, count
_CTRL = struct.Struct("=qqqqqqqqq")
_C_HW, _C_FREE, _C_HEAD, _C_TAIL, _C_COUNT = 4, 5, 6, 7, 8
_CTRL_SIZE = 128
# the key text of the configuration that created the zone (H length + text)
_TEXT_SIZE = 1024
# node header: hash, chain next, lru prev, lru next, key length, digest flag, key
_NODE = struct.Struct("=qiiiHBx32s")
_N_NEXT, _N_PREV, _N_LNEXT = 8, 12, 16
_I32 = struct.Struct("=i")
_Q = struct.Struct("=q")


def _stored_key(key: bytes) -> tuple[int, int, bytes]:
    n = len(key)
    if n <= INLINE_KEY:
        return n, 0, key
    return n, 1, hashlib.blake2b(key, digest_size=32).digest()


class KeyedTable:
    """Fixed-capacity ``bytes`` key -> ``struct`` value table in a zone."""

    def __init__(self, zone: SharedZone, value_fmt: str) -> None:
        self.zone = zone
        self.buf = zone.buf
        self.value = struct.Struct(value_fmt)
        self.stride = (_NODE.size + self.value.size + 7) & ~7
        self._ctrl = HEADER_SIZE
        self._text = HEADER_SIZE + _CTRL_SIZE
        self._buckets = self._text + _TEXT_SIZE
        avail = zone.size - self._buckets
        # each node costs its stride plus at most two 4-byte buckets
        cap = max(1, avail // (self.stride + 8))
        nb = 1
        while nb < cap:
            nb <<= 1
        while nb * 4 + cap * self.stride > avail and cap > 1:
            cap -= 1
        self.capacity = cap
        self.nbuckets = nb
        self._mask = nb - 1
        self._nodes = self._buckets + nb * 4
        self._vo = _NODE.size
        self.signature = (self.stride << 32) | self.value.size

    # --- attaching ----------------------------------------------------------------------
    @classmethod
    def attach(cls, zone: SharedZone, value_fmt: str, key_text: str) -> "KeyedTable":
        """The table in ``zone``, initialising the zone on first use.  Any
        process may call this; it takes the zone lock itself."""
        t = cls(zone, value_fmt)
        buf = t.buf
        with zone.lock:
            ctrl = _CTRL.unpack_from(buf, t._ctrl)
            if (ctrl[0] != _MAGIC or ctrl[1] != t.signature or ctrl[2] != t.capacity
                    or ctrl[3] != t.nbuckets):
                if ctrl[0] != 0:  # another layout was here: start from zeroes
                    buf[HEADER_SIZE:zone.size] = bytes(zone.size - HEADER_SIZE)
                _CTRL.pack_into(buf, t._ctrl, _MAGIC, t.signature, t.capacity, t.nbuckets,
                                0, 0, 0, 0, 0)
                text = key_text.encode("utf-8", "surrogateescape")[:_TEXT_SIZE - 2]
                struct.pack_into(f"=H{len(text)}s", buf, t._text, len(text), text)
        return t

    def key_text(self) -> str:
        """The key text recorded by the process that initialised the zone."""
        (n,) = struct.unpack_from("=H", self.buf, self._text)
        return bytes(self.buf[self._text + 2:self._text + 2 + n]).decode("utf-8", "surrogateescape")

    # --- control block cells --------------------------------------------------------------
    def _cget(self, i: int) -> int:
        return _Q.unpack_from(self.buf, self._ctrl + i * 8)[0]

    def _cset(self, i: int, v: int) -> None:
        _Q.pack_into(self.buf, self._ctrl + i * 8, v)

    def __len__(self) -> int:
        return self._cget(_C_COUNT)

    def _off(self, idx: int) -> int:
        return self._nodes + idx * self.stride

    def _bucket(self, h: int) -> int:
        return self._buckets + (h & self._mask) * 4

    # --- lookups (caller holds zone.lock) ---------------------------------------------------
    def find(self, key: bytes) -> int:
        """The node index of ``key``, or -1."""
        h = hash(key)
        klen, flag, stored = _stored_key(key)
        stored = stored.ljust(INLINE_KEY, b"\0")
        buf, node = self.buf, _NODE
        link = _I32.unpack_from(buf, self._bucket(h))[0]
        while link:
            idx = link - 1
            nh, nxt, _, _, nlen, nflag, nkey = node.unpack_from(buf, self._off(idx))
            if nh == h and nlen == klen and nflag == flag and nkey == stored:
                return idx
            link = nxt
        return -1

    def get(self, idx: int) -> tuple:
        return self.value.unpack_from(self.buf, self._off(idx) + self._vo)

    def put(self, idx: int, values: tuple | list) -> None:
        self.value.pack_into(self.buf, self._off(idx) + self._vo, *values)

    # --- insertion and removal (caller holds zone.lock) -------------------------------------
    def insert(self, key: bytes, values: tuple | list, lru: bool = True) -> int:
        """Add ``key`` (not present) with ``values``; at the head of the LRU
        queue when ``lru``.  Returns its index, or -1 when the table is full."""
        buf = self.buf
        free = self._cget(_C_FREE)
        if free:
            idx = free - 1
            self._cset(_C_FREE, _I32.unpack_from(buf, self._off(idx) + _N_NEXT)[0])
        else:
            hw = self._cget(_C_HW)
            if hw >= self.capacity:
                return -1
            idx = hw
            self._cset(_C_HW, hw + 1)
        h = hash(key)
        klen, flag, stored = _stored_key(key)
        b = self._bucket(h)
        head = _I32.unpack_from(buf, b)[0]
        off = self._off(idx)
        _NODE.pack_into(buf, off, h, head, 0, 0, klen, flag, stored)
        self.value.pack_into(buf, off + self._vo, *values)
        _I32.pack_into(buf, b, idx + 1)
        if lru:
            self._lru_push(idx)
        self._cset(_C_COUNT, self._cget(_C_COUNT) + 1)
        return idx

    def remove(self, idx: int, lru: bool = True) -> None:
        """Unlink node ``idx`` from its chain (and the LRU queue) and free it."""
        buf = self.buf
        off = self._off(idx)
        h = _Q.unpack_from(buf, off)[0]
        nxt = _I32.unpack_from(buf, off + _N_NEXT)[0]
        b = self._bucket(h)
        link = _I32.unpack_from(buf, b)[0]
        if link == idx + 1:
            _I32.pack_into(buf, b, nxt)
        else:
            while link:
                loff = self._off(link - 1)
                ln = _I32.unpack_from(buf, loff + _N_NEXT)[0]
                if ln == idx + 1:
                    _I32.pack_into(buf, loff + _N_NEXT, nxt)
                    break
                link = ln
        if lru:
            self._lru_unlink(idx)
        buf[off:off + self.stride] = bytes(self.stride)
        _I32.pack_into(buf, off + _N_NEXT, self._cget(_C_FREE))
        self._cset(_C_FREE, idx + 1)
        self._cset(_C_COUNT, self._cget(_C_COUNT) - 1)

    # --- the LRU queue (caller holds zone.lock) -----------------------------------------------
    def _lru_push(self, idx: int) -> None:
        buf = self.buf
        off = self._off(idx)
        head = self._cget(_C_HEAD)
        _I32.pack_into(buf, off + _N_PREV, 0)
        _I32.pack_into(buf, off + _N_LNEXT, head)
        if head:
            _I32.pack_into(buf, self._off(head - 1) + _N_PREV, idx + 1)
        else:
            self._cset(_C_TAIL, idx + 1)
        self._cset(_C_HEAD, idx + 1)

    def _lru_unlink(self, idx: int) -> None:
        buf = self.buf
        off = self._off(idx)
        prev = _I32.unpack_from(buf, off + _N_PREV)[0]
        nxt = _I32.unpack_from(buf, off + _N_LNEXT)[0]
        if prev:
            _I32.pack_into(buf, self._off(prev - 1) + _N_LNEXT, nxt)
        else:
            self._cset(_C_HEAD, nxt)
        if nxt:
            _I32.pack_into(buf, self._off(nxt - 1) + _N_PREV, prev)
        else:
            self._cset(_C_TAIL, prev)

    def touch(self, idx: int) -> None:
        """Move node ``idx`` to the head of the LRU queue (most recent)."""
        if self._cget(_C_HEAD) != idx + 1:
            self._lru_unlink(idx)
            self._lru_push(idx)

    def lru_tail(self) -> int:
        """The least recently used node, or -1 when the queue is empty."""
        return self._cget(_C_TAIL) - 1
