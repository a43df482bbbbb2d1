"""Declaring shared zones at configuration time, as nginx's
``ngx_shared_memory_add`` does, into ``cycle.zones`` (name -> (size, tag)),
which the master turns into real zones before it forks.

Invariants:
- A name means one zone per configuration: a second declaration with
  another tag (another module) is refused with nginx's "already declared
  for a different use", with another non-zero size with nginx's "conflicts
  with already declared size".
- A reference (``limit_req zone=NAME``) declares the zone with size 0; a
  later definition fills the size in.  ``check_zero_size`` refuses a zone
  that is still size 0 once the configuration is read (nginx's "zero size
  shared memory zone", which has no FILE:LINE).
- ``previous_cycle`` gives, during a reload, the configuration the workers
  run now (the last Cycle that got its zones, ``cycle.shm``), so a module
  can compare a kept zone's old and new use as nginx's zone ``init`` does.
"""
from __future__ import annotations

import weakref
from typing import Any

from ...conf.errors import ConfError
from ...conf.parser import Node

__all__ = ["shared_memory_add", "check_zero_size", "note_cycle", "previous_cycle"]


def _spec(v: Any) -> tuple[int, Any]:
    return (v[0], v[1]) if isinstance(v, tuple) else (v, None)


def shared_memory_add(cycle: Any, node: Node, name: str, size: int, tag: str) -> None:
    """Declare zone ``name`` of ``size`` bytes (0: a reference) for ``tag``."""
    zones: dict[str, Any] = cycle.zones
    old = zones.get(name)
    if old is None:
        zones[name] = (size, tag)
        return
    osize, otag = _spec(old)
    if otag != tag:
        raise node.error(f'the shared memory zone "{name}" is already declared for a different use')
    if osize == 0:
        zones[name] = (size, tag)
        osize = size
    if size and size != osize:
        raise node.error(f'the size {size} of shared memory zone "{name}" conflicts with '
                         f'already declared size {osize}')


def check_zero_size(cycle: Any) -> None:
    for name, v in cycle.zones.items():
        if _spec(v)[0] == 0:
            raise ConfError(f'zero size shared memory zone "{name}"')


# Cycles loaded in this process, oldest first (weak: a dropped Cycle goes).
_cycles: list[weakref.ref[Any]] = []


def note_cycle(cycle: Any) -> None:
    """Remember ``cycle`` (called while it loads)."""
    _cycles[:] = [w for w in _cycles if w() is not None and w() is not cycle]
    _cycles.append(weakref.ref(cycle))


def previous_cycle(cycle: Any) -> Any:
    """The newest other Cycle of this process whose zones exist (the one
    serving now, during a reload), or None (first start, ``-t``)."""
    for w in reversed(_cycles):
        c = w()
        if c is not None and c is not cycle and getattr(c, "shm", None) is not None:
            return c
    return None
