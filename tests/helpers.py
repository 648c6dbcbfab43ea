"""Helpers more than one test module uses (test modules never import each other)."""
import importlib.util
import os
import shutil

import jax
import numpy as np
from conftest import ROOT, tiny_config

from jaxgan.mesh import make_mesh
from jaxgan.training import checkpoint
from jaxgan.training.state import GAN, compile_to_run_once


def run_unoptimised(function, *args):
    """`function(*args)` as one program built as create_state builds its own (for tests that run
    a model once or twice: faster than op by op, and than an optimised build)."""
    return compile_to_run_once(function, *args)(*args)


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


def resume_from_copy(workdir, copy, step):
    """`copy`: `workdir` as it was after `step` (its later checkpoints removed), to resume.

    One run and a copy instead of two runs to `step` and on: in-process runs trace every program
    again, and the straight run writes the checkpoint at `step` anyway.
    """
    shutil.copytree(workdir, copy)
    for name in os.listdir(copy / "checkpoints"):
        if int(name) > step:
            shutil.rmtree(copy / "checkpoints" / name)
    assert os.listdir(copy / "checkpoints") and max(map(int, os.listdir(copy / "checkpoints"))) == step


def write_checkpoint(workdir, class_names, resolution=16):
    """A workdir with one checkpoint of an untrained tiny model with these class names."""
    config = tiny_config(**{"data.resolution": resolution})
    shape = (resolution, resolution, 1)
    state = GAN.build(config, shape, len(class_names)).create_state(jax.random.key(0))
    manager = checkpoint.make_manager(workdir)
    facts = {"class_names": list(class_names), "image_shape": list(shape),
             "num_classes": len(class_names), "num_examples": 100}
    checkpoint.save(manager, state, config, facts)
    checkpoint.wait(manager)
    manager.close()
    return workdir


def load_sample_py():
    spec = importlib.util.spec_from_file_location("sample_flags", ROOT / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = load_sample_py()


def sample(capsys, *args):
    """sample.py's main in this process: (exit status, stdout, stderr)."""
    try:
        status = SAMPLE.main([str(a) for a in args])
    except SystemExit as exit:  # argparse's usage errors
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err
