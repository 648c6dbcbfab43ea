"""Helpers more than one test module uses (test modules never import each other)."""
import jax
import numpy as np

from jaxgan.mesh import make_mesh
from jaxgan.training import checkpoint
from jaxgan.training.state import GAN


def restore_state(workdir, step):
    """The training state saved at `step` in `workdir`, on the host."""
    manager = checkpoint.make_manager(workdir, read_only=True)
    try:
        config, facts = checkpoint.restore_meta(manager, step)
        target = GAN.build(config, facts["image_shape"], facts["num_classes"]).abstract_state()
        return jax.device_get(checkpoint.restore_item(manager, step, "state", target, make_mesh()))
    finally:
        manager.close()


def saved_state(workdir, step):
    """The leaves of the state saved at `step`, as numpy arrays (for exact comparisons)."""
    return [np.asarray(x) for x in jax.tree.leaves(restore_state(workdir, step))]


def assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
