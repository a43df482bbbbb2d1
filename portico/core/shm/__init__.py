"""Shared-memory zones shared by the master and its forked workers.

Invariants (details in ``zone.py``): zones are created by the master before
it forks; a worker's counter slot is written only by that worker; every
other shared structure is written only under ``zone.lock``; a zone and its
content survive a reload when name, size and tag are unchanged.
"""
from portico.core.shm.zone import (ALIGN, HEADER_SIZE, MIN_ZONE_SIZE,
                                   CounterSlot, SharedZone, ShmDict,
                                   StructArray, WorkerCounters, ZoneFull,
                                   ZoneLock, ZoneRegistry, ZoneSizeMismatch,
                                   ZoneTagMismatch, ZoneTooSmall)

__all__ = [
    "ALIGN", "HEADER_SIZE", "MIN_ZONE_SIZE", "CounterSlot", "SharedZone",
    "ShmDict", "StructArray", "WorkerCounters", "ZoneFull", "ZoneLock",
    "ZoneRegistry", "ZoneSizeMismatch", "ZoneTagMismatch", "ZoneTooSmall",
]
