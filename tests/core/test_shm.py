"""Tests for portico.core.shm: shared zones across real forked processes.

Children are made with os.fork() after the zone exists (as the master does)
and always leave with os._exit: 0 when their body ran, 1 on any exception.
The parent reaps them with a deadline so a lock bug fails instead of hanging.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import random
import signal
import struct
import time
import traceback
from collections.abc import Callable

import pytest

from portico.core.shm import (HEADER_SIZE, MIN_ZONE_SIZE, SharedZone, ShmDict,
                              StructArray, WorkerCounters, ZoneFull,
                              ZoneRegistry, ZoneSizeMismatch, ZoneTagMismatch,
                              ZoneTooSmall)

DEADLINE = 60.0


def fork(body: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            body()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def reap(pids: list[int], expect_signal: int | None = None) -> None:
    """Wait for every pid; assert each exited 0 (or died of expect_signal)."""
    pending = set(pids)
    end = time.monotonic() + DEADLINE
    while pending:
        for pid in list(pending):
            got, status = os.waitpid(pid, os.WNOHANG)
            if got == 0:
                continue
            pending.discard(pid)
            if expect_signal is None:
                assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
                    f"child {pid} failed: status {status:#x}"
            else:
                assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == expect_signal
        if pending and time.monotonic() > end:
            for pid in pending:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            pytest.fail(f"children {sorted(pending)} did not finish (deadlock?)")
        if pending:
            time.sleep(0.005)


@pytest.fixture
def zone() -> SharedZone:
    return SharedZone("test", 64 * 1024)


# -- SharedZone ---------------------------------------------------------------

def test_zone_attributes_and_fork_shared_buffer(zone: SharedZone) -> None:
    assert zone.name == "test" and zone.size == 64 * 1024
    assert isinstance(zone.buf, memoryview) and len(zone.buf) == zone.size
    off = zone.alloc(8)

    def child() -> None:
        zone.buf[off:off + 8] = b"fromkid!"

    reap([fork(child)])
    assert bytes(zone.buf[off:off + 8]) == b"fromkid!"


def test_zone_too_small() -> None:
    assert MIN_ZONE_SIZE == 8 * mmap.PAGESIZE
    with pytest.raises(ZoneTooSmall) as ei:
        SharedZone("tiny", MIN_ZONE_SIZE - 1)
    assert isinstance(ei.value, ValueError)
    assert (ei.value.name, ei.value.size) == ("tiny", MIN_ZONE_SIZE - 1)
    assert str(ei.value) == 'zone "tiny" is too small'
    assert SharedZone("ok", MIN_ZONE_SIZE).size == MIN_ZONE_SIZE


def test_alloc_aligned_disjoint_and_seen_across_fork(zone: SharedZone) -> None:
    a = zone.alloc(1)
    b = zone.alloc(17)
    c = zone.alloc(0)
    d = zone.alloc(40, align=64)
    assert a >= HEADER_SIZE
    assert all(x % 16 == 0 for x in (a, b, c, d)) and d % 64 == 0
    assert b >= a + 1 and c >= b + 17 and d >= c
    slot = zone.alloc(8)
    report = zone.buf[slot:slot + 8].cast("q")

    def child() -> None:
        report[0] = zone.alloc(100)  # sees the parent's pre-fork allocations

    reap([fork(child)])
    assert report[0] > slot
    after = zone.alloc(8)  # and the parent sees the child's allocation
    assert after >= report[0] + 100


def test_alloc_zone_full(zone: SharedZone) -> None:
    zone.alloc(zone.size - HEADER_SIZE - 64)
    used = zone.used
    with pytest.raises(ZoneFull) as ei:
        zone.alloc(128)
    assert isinstance(ei.value, MemoryError) and ei.value.name == "test"
    assert zone.used == used  # a failed alloc consumes nothing
    assert zone.alloc(64) == used  # what fits still fits, exactly
    assert zone.used == zone.size
    with pytest.raises(ZoneFull):
        zone.alloc(1)
    with pytest.raises(ValueError):
        zone.alloc(8, align=24)


def test_lock_released_on_exception(zone: SharedZone) -> None:
    with pytest.raises(RuntimeError):
        with zone.lock:
            assert zone.lock.owner == os.getpid()
            raise RuntimeError("boom")
    assert zone.lock.owner == 0
    assert zone.lock.acquire(timeout=1)
    zone.lock.release()


def test_lock_excludes_other_process(zone: SharedZone) -> None:
    off = zone.alloc(8)
    flag = zone.buf[off:off + 8].cast("q")
    zone.lock.acquire()

    def child() -> None:
        # Parent holds the lock: a try-acquire must fail, a blocking one
        # succeed once the parent lets go.
        assert not zone.lock.acquire(block=False)
        flag[0] = 1
        assert zone.lock.acquire(timeout=30)
        assert zone.lock.owner == os.getpid()
        flag[0] = 2
        zone.lock.release()

    pid = fork(child)
    end = time.monotonic() + DEADLINE
    while flag[0] != 1 and time.monotonic() < end:
        time.sleep(0.001)
    time.sleep(0.05)
    assert flag[0] == 1  # child is blocked behind our lock
    zone.lock.release()
    reap([pid])
    assert flag[0] == 2


def test_force_unlock_after_holder_killed(zone: SharedZone) -> None:
    def child() -> None:
        zone.lock.acquire()
        os.kill(os.getpid(), signal.SIGKILL)

    pid = fork(child)
    reap([pid], expect_signal=signal.SIGKILL)
    assert zone.lock.owner == pid
    assert not zone.lock.acquire(timeout=0.05)
    assert not zone.force_unlock(pid + 1)  # not the holder: untouched
    assert zone.force_unlock(pid)
    assert zone.lock.owner == 0
    with zone.lock:
        assert zone.lock.owner == os.getpid()


# -- WorkerCounters + StructArray under load -----------------------------------

def test_four_workers_counters_and_locked_struct_adds(zone: SharedZone) -> None:
    counters = WorkerCounters(zone, ("requests", "active"), slots=4)
    arr = StructArray(zone, "qqd", 2)
    arr.set(1, (0, 7, 0.0))
    pids = []
    for _ in range(4):
        s = counters.acquire_slot()

        def child(s: int = s) -> None:
            slot = counters.slot(s)
            for _ in range(10_000):
                slot.incr("requests")
                slot.incr("active")
                slot.decr("active")
            for _ in range(1_000):
                arr.add(1, 0, 1)
                arr.add(1, 2, 0.5)

        pids.append(fork(child))
    reap(pids)
    assert counters.total("requests") == 40_000
    assert counters.totals() == {"requests": 40_000, "active": 0}
    assert [counters.slot(i)["requests"] for i in range(4)] == [10_000] * 4
    assert arr.get(1) == (4_000, 7, 2_000.0)
    assert arr.get(0) == (0, 0, 0.0)


def test_struct_array_bounds_and_bad_values(zone: SharedZone) -> None:
    arr = StructArray(zone, "iH", 3)
    assert len(arr) == 3 and arr.nfields == 2
    assert arr.add(2, 1, 5) == 5
    assert arr.get(2) == (0, 5)
    with pytest.raises(IndexError):
        arr.get(3)
    with pytest.raises(IndexError):
        arr.set(-1, (1, 1))
    with pytest.raises(struct.error):
        arr.set(0, (1,))
    with pytest.raises(struct.error):
        arr.add(2, 1, 70_000)  # H overflows; record left as it was
    assert arr.get(2) == (0, 5)
    assert zone.lock.owner == 0 and zone.lock.acquire(timeout=1)
    zone.lock.release()


def test_slot_reuse_keeps_cumulative_counts(zone: SharedZone) -> None:
    fields = ("accepts", "requests", "active", "reading")
    counters = WorkerCounters(zone, fields, slots=2)
    s = counters.acquire_slot()

    def crashing_worker() -> None:
        slot = counters.slot(s)
        slot.incr("accepts", 3)
        slot.incr("requests", 100)
        slot.incr("active", 3)   # connections open when it "dies"
        slot.incr("reading", 1)

    reap([fork(crashing_worker)])
    assert counters.totals() == {"accepts": 3, "requests": 100, "active": 3,
                                 "reading": 1}
    counters.reset_gauges(s, ("active", "reading"))
    counters.release_slot(s)
    assert not counters.in_use(s)
    s2 = counters.acquire_slot()
    assert s2 == s  # reused, not zeroed

    def replacement() -> None:
        slot = counters.slot(s2)
        assert slot["requests"] == 100
        slot.incr("accepts")
        slot.incr("requests", 50)
        slot.incr("active")
        slot.decr("active")

    reap([fork(replacement)])
    assert counters.totals() == {"accepts": 4, "requests": 150, "active": 0,
                                 "reading": 0}


def test_slot_handout_for_reload_and_exhaustion(zone: SharedZone) -> None:
    counters = WorkerCounters(zone, ("requests",), slots=4)
    old = [counters.acquire_slot(), counters.acquire_slot()]
    assert old == [0, 1]
    new = [counters.acquire_slot(), counters.acquire_slot()]  # old still run
    assert new == [2, 3]
    with pytest.raises(ZoneFull):
        counters.acquire_slot()
    counters.release_slot(0)  # an old worker exits
    assert counters.acquire_slot() == 0
    with pytest.raises(IndexError):
        counters.slot(4)


def test_slot_acquired_in_child_seen_by_parent(zone: SharedZone) -> None:
    counters = WorkerCounters(zone, ("n",), slots=3)

    def child() -> None:
        assert counters.acquire_slot() == 0

    reap([fork(child)])
    assert counters.in_use(0)
    assert counters.acquire_slot() == 1


def test_counter_rows_do_not_share_cache_lines(zone: SharedZone) -> None:
    counters = WorkerCounters(zone, ("a", "b", "c"), slots=3)
    addrs = [ctypes.addressof(ctypes.c_int64.from_buffer(counters.slot(i).cells))
             for i in range(3)]
    assert all(a % 64 == 0 for a in addrs)  # each row starts a cache line
    assert addrs[1] - addrs[0] == addrs[2] - addrs[1] == 64
    # Writing one slot never shows up in another.
    counters.slot(1).incr("c", 9)
    assert [counters.slot(i)["c"] for i in range(3)] == [0, 9, 0]
    assert counters.slot(1).values() == {"a": 0, "b": 0, "c": 9}


def test_counters_reject_bad_fields(zone: SharedZone) -> None:
    with pytest.raises(ValueError):
        WorkerCounters(zone, ("a", "a"), slots=2)
    with pytest.raises(ValueError):
        WorkerCounters(zone, ("a",), slots=0)


# -- ShmDict --------------------------------------------------------------------

def test_dict_written_in_child_read_in_parent(zone: SharedZone) -> None:
    d = ShmDict(zone, key_size=16, value_fmt="qd", capacity=200)

    def child() -> None:
        for i in range(150):
            d.put(b"key-%d" % i, (i, i / 4))
        for i in range(0, 150, 3):
            assert d.delete(b"key-%d" % i)

    reap([fork(child)])
    assert len(d) == 100
    for i in range(150):
        expect = None if i % 3 == 0 else (i, i / 4)
        assert d.get(b"key-%d" % i) == expect
    assert b"key-1" in d and b"key-0" not in d
    assert d.get(b"nope", (-1, 0.0)) == (-1, 0.0)


def test_dict_concurrent_updates_are_atomic(zone: SharedZone) -> None:
    d = ShmDict(zone, key_size=8, value_fmt="q", capacity=16)
    keys = [b"ip%d" % i for i in range(10)]

    def bump(old: tuple | None) -> tuple:
        return ((old[0] if old else 0) + 1,)

    def child() -> None:
        for _ in range(300):
            for k in keys:
                d.update(k, bump)

    reap([fork(child) for _ in range(4)])
    assert {k: d.get(k) for k in keys} == {k: (1_200,) for k in keys}
    assert d.update(keys[0], lambda old: None) is None  # None deletes
    assert keys[0] not in d and len(d) == 9


def test_dict_full_and_replace(zone: SharedZone) -> None:
    d = ShmDict(zone, key_size=4, value_fmt="i", capacity=8)
    for i in range(8):
        d.put(b"k%d" % i, (i,))
    with pytest.raises(ZoneFull):
        d.put(b"k8", (8,))
    assert len(d) == 8 and b"k8" not in d
    d.put(b"k3", (33,))  # replacing in a full table is fine
    assert d.get(b"k3") == (33,)
    assert d.delete(b"k0") and not d.delete(b"k0")
    d.put(b"k8", (8,))
    assert sorted(d.items()) == sorted(
        [(b"k%d" % i, (33 if i == 3 else i,)) for i in range(1, 9)])


def test_dict_matches_model_under_random_churn(zone: SharedZone) -> None:
    # A small table (16 slots for 12 entries) forces collisions, wrap-around
    # and backward-shift deletions; compare with a plain dict throughout.
    d = ShmDict(zone, key_size=3, value_fmt="I", capacity=12)
    assert d.nslots == 16
    model: dict[bytes, int] = {}
    rng = random.Random(1234)
    universe = [bytes([a, b]) for a in range(5) for b in range(5)] + [b""]
    for step in range(20_000):
        k = rng.choice(universe)
        op = rng.random()
        if op < 0.45:
            if k in model or len(model) < 12:
                v = rng.randrange(1 << 32)
                d.put(k, (v,))
                model[k] = v
            else:
                with pytest.raises(ZoneFull):
                    d.put(k, (1,))
        elif op < 0.9:
            assert d.delete(k) == (k in model)
            model.pop(k, None)
        else:
            assert d.get(k) == ((model[k],) if k in model else None)
        if step % 500 == 0:
            assert dict((key, v[0]) for key, v in d.items()) == model
    assert len(d) == len(model)
    assert all(d.get(k) == (v,) for k, v in model.items())


def test_dict_key_checks(zone: SharedZone) -> None:
    d = ShmDict(zone, key_size=4, value_fmt="B", capacity=4)
    with pytest.raises(ValueError):
        d.put(b"12345", (1,))
    with pytest.raises(TypeError):
        d.get("abc")  # type: ignore[arg-type]
    d.put(b"1234", (7,))
    assert d.get(b"1234") == (7,) and d.get(b"123") is None


# -- ZoneRegistry ----------------------------------------------------------------

def test_registry_reuse_and_mismatch() -> None:
    reg = ZoneRegistry()
    a = reg.get_or_create("one", MIN_ZONE_SIZE, tag="limit_req")
    assert reg.get_or_create("one", MIN_ZONE_SIZE, tag="limit_req") is a
    assert "one" in reg and len(reg) == 1 and reg.get("one") is a
    with pytest.raises(ZoneSizeMismatch) as ei:
        reg.get_or_create("one", 2 * MIN_ZONE_SIZE, tag="limit_req")
    assert isinstance(ei.value, ValueError)
    assert (ei.value.name, ei.value.size, ei.value.declared_size) == \
        ("one", 2 * MIN_ZONE_SIZE, MIN_ZONE_SIZE)
    with pytest.raises(ZoneTagMismatch):
        reg.get_or_create("one", MIN_ZONE_SIZE, tag="limit_conn")
    with pytest.raises(ZoneTooSmall):
        reg.get_or_create("small", 4096)
    assert "small" not in reg and reg.remove("one") is a and len(reg) == 0


def test_registry_reload_keeps_content_and_replaces_resized() -> None:
    old = ZoneRegistry()
    kept = old.get_or_create("kept", MIN_ZONE_SIZE)
    resized = old.get_or_create("resized", MIN_ZONE_SIZE)
    d = ShmDict(kept, key_size=8, value_fmt="q", capacity=8)
    kept.data = d
    d.put(b"x", (42,))

    new = ZoneRegistry(previous=old)
    again = new.get_or_create("kept", MIN_ZONE_SIZE)
    assert again is kept and again.data is d and d.get(b"x") == (42,)
    bigger = new.get_or_create("resized", 2 * MIN_ZONE_SIZE)
    assert bigger is not resized and bigger.size == 2 * MIN_ZONE_SIZE
    other_use = new.get_or_create("gone", MIN_ZONE_SIZE)
    assert other_use.data is None
    new.forget_previous()
    assert [z.name for z in new] == ["kept", "resized", "gone"]
