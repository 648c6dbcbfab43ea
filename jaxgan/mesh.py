"""The device mesh every jaxgan computation is spread over: one axis, "data"."""
from __future__ import annotations

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
