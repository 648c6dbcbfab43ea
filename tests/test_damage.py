"""Issue 34, damage that nothing noticed: flipped bits in checkpoints and non-finite states.
Through train.py / sample.py where a user meets them; every damaged file is built here."""
import logging
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, override_flags, tiny_config
from helpers import sample, write_checkpoint

import jaxgan
from jaxgan.training import checkpoint
from jaxgan.training.state import GAN


def train_py(workdir, **overrides):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}",
                           *override_flags(**overrides)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# ----------------------------------------------------------------------------- 1. digests


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A workdir after `train.py` with the tiny overrides: checkpoints at 2 and 4."""
    workdir = tmp_path_factory.mktemp("first-run")
    result = train_py(workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


@pytest.fixture
def trained(first_run, tmp_path):
    shutil.copytree(first_run, tmp_path / "run")
    return tmp_path / "run"


def flip_bits(item_dir, count=64):
    """XOR the lowest bit of `count` bytes in the middle of the item's largest array file: float
    values stay finite (a mantissa or low exponent bit), the file stays well-formed."""
    files = [os.path.join(root, name) for root, _, names in os.walk(item_dir)
             for name in names if os.path.basename(root) == "d"]
    largest = max(files, key=os.path.getsize)
    size = os.path.getsize(largest)
    with open(largest, "r+b") as f:
        f.seek(size // 2)
        original = f.read(count)
        f.seek(size // 2)
        f.write(bytes(b ^ 1 for b in original))
    return largest


def test_flipped_bits_in_the_state_are_damage_and_training_falls_back(trained):
    flip_bits(trained / "checkpoints" / "4" / "state")
    result = train_py(trained, **{"train.num_steps": 6})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (f"checkpoint {trained}/checkpoints/4 (step 4) is damaged: its state arrays differ "
            "from the digest written when it was saved; trying an older one") in result.stderr
    assert f"moved the damaged checkpoint of step 4 to {trained}/damaged_checkpoints/4" \
        in result.stderr
    assert "Traceback" not in result.stderr and "diverged" not in result.stderr
    assert sorted(os.listdir(trained / "checkpoints"), key=int) == ["2", "4", "6"]
    assert (trained / "damaged_checkpoints" / "4" / "state").is_dir()  # kept, not deleted
    # The rewritten step 4 is the one trained again from step 2: intact, with its digests.
    assert jaxgan.load_sampler(trained, step=4).step == 4


def test_flipped_bits_in_the_generator_are_refused_by_sample_py(trained, capsys):
    flip_bits(trained / "checkpoints" / "4" / "generator")
    status, out, err = sample(capsys, "--workdir", trained, "--seeds", "0-3")
    assert status == 1 and out == "", err
    assert err.splitlines() == [
        f"error: checkpoint of step 4 in {trained}/checkpoints is damaged: its generator arrays "
        "differ from the digest written when it was saved; other steps: 2 (the newest: --step 2)"]
    assert os.listdir(trained / "samples") == ["step_0000004.png"]  # training's grid only
    assert jaxgan.load_sampler(trained, step=2).step == 2  # the fallback named works
    assert sorted(os.listdir(trained / "checkpoints")) == ["2", "4"]  # sampling moves nothing


def save_state(manager, state, config, facts):
    checkpoint.save(manager, state, config, facts)
    checkpoint.wait(manager)


def test_a_non_finite_state_is_damage_even_with_a_matching_digest(tmp_path, caplog):
    config = tiny_config()
    facts = {"class_names": ["a", "b"], "image_shape": [16, 16, 1], "num_classes": 2,
             "num_examples": 100}
    gan = GAN.build(config, (16, 16, 1), 2)
    state = gan.create_state(jax.random.key(0))
    manager = checkpoint.make_manager(tmp_path)
    save_state(manager, state, config, facts)
    poisoned = state.replace(step=state.step + 1, d_params=jax.tree.map(
        lambda x: x.at[(0,) * x.ndim].set(np.nan), state.d_params))
    save_state(manager, poisoned, config, facts)  # its digest is of the NaN: it matches
    with caplog.at_level(logging.WARNING):
        restored, _, _ = checkpoint.restore_latest(manager, lambda c, f: gan.abstract_state(),
                                                   mesh=None)
    manager.close()
    assert int(restored.step) == 0
    assert f"checkpoint {tmp_path}/checkpoints/1 (step 1) is damaged: its state holds NaN or " \
           "infinity at .d_params[" in caplog.text
    assert os.listdir(tmp_path / "checkpoints") == ["0"]
    assert os.listdir(tmp_path / "damaged_checkpoints") == ["1"]


def test_a_checkpoint_without_digests_still_loads_with_a_note(tmp_path, caplog):
    workdir = tmp_path / "legacy"
    shutil.copytree(ROOT / "tests" / "data" / "legacy_workdir", workdir)
    with caplog.at_level(logging.WARNING):
        assert jaxgan.load_sampler(workdir).step == 4
    assert (f"checkpoint {workdir}/checkpoints/4 (step 4) carries no digest (written by jaxgan "
            "0.1.0): its generator arrays are checked for NaN and infinity only") in caplog.text


def test_every_saved_checkpoint_carries_digests_of_both_array_items(tmp_path):
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    manager = checkpoint.make_manager(workdir, read_only=True)
    _, facts = checkpoint.restore_meta(manager, 0)
    manager.close()
    assert sorted(facts[checkpoint.DIGESTS]) == ["generator", "state"]
    assert all(d.startswith("sha256-leaves:") and len(d) == 14 + 64
               for d in facts[checkpoint.DIGESTS].values())


def test_a_digest_of_another_scheme_is_not_taken_for_damage(tmp_path, caplog):
    import json
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    facts_file = workdir / "checkpoints" / "0" / "data" / "metadata"
    facts = json.loads(facts_file.read_text())
    facts[checkpoint.DIGESTS] = {"generator": "sha3-of-something-later:00", "state": "x:00"}
    facts_file.write_text(json.dumps(facts))
    with caplog.at_level(logging.WARNING):
        assert jaxgan.load_sampler(workdir).step == 0
    assert "(step 0) carries no digest this jaxgan can check (written by jaxgan " in caplog.text

