"""The device mesh every jaxgan computation is spread over: one axis, "data"."""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "data"


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device of every host) on the axis "data"."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def split(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh's devices."""
    return NamedSharding(mesh, P(AXIS))


def physical_memory_bytes() -> int:
    """The host's physical memory (not what is free now: a bound from it never refuses what
    could fit once other programs end)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf: assume a large machine
        return 1 << 40


def device_memory_bytes(mesh: Mesh) -> int:
    """Memory of the smallest device of `mesh` on this host: its allocator's limit where the
    backend reports one (GPUs, TPUs); CPU devices share the host's physical memory."""
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    limits = []
    for device in local:
        try:
            stats = device.memory_stats() or {}
        except Exception:  # noqa: BLE001 - a backend without memory statistics
            stats = {}
        if stats.get("bytes_limit"):
            limits.append(int(stats["bytes_limit"]))
    if limits:
        return min(limits)
    return physical_memory_bytes() // max(1, len(local))
