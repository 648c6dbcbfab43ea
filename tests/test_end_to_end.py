"""A user's session: train.py (tiny) -> checkpoint -> resume -> sample.py, and the error paths."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, override_flags
from PIL import Image

import jaxgan


def run(script, *args, check=True):
    result = subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    first = run("train.py", f"--workdir={workdir}", *override_flags())
    return workdir, first


def test_train_writes_checkpoints_samples_and_metrics(trained):
    workdir, first = trained
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    assert os.listdir(workdir / "samples") == ["step_0000004.png"]
    grid = np.asarray(Image.open(workdir / "samples" / "step_0000004.png"))
    # 10 rows (one per class) of 8 images, 16 px upscaled x4, 2 px padding.
    assert grid.shape == (10 * 66 + 2, 8 * 66 + 2)
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in records] == [2, 4]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)
    assert f"checkpoint in {workdir}/checkpoints" in first.stdout
    assert "step_0000004.png" in first.stdout


def test_rerun_resumes_and_finished_run_says_so(trained):
    workdir, _ = trained
    again = run("train.py", f"--workdir={workdir}", *override_flags())
    assert "Already trained" in again.stdout and "step 4" in again.stdout
    longer = run("train.py", f"--workdir={workdir}", *override_flags(**{"train.num_steps": 6}))
    assert "Already trained" not in longer.stdout
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4", "6"]
    steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert steps == [2, 4, 6]  # resumed at 4, not restarted from 0


def test_sample_py_writes_a_class_grid(trained, tmp_path):
    workdir, _ = trained
    out = tmp_path / "digits.png"
    result = run("sample.py", f"--workdir={workdir}", f"--grid={out}")
    assert str(out) in result.stdout
    image = Image.open(out)
    assert image.size == (8 * 66 + 2, 10 * 66 + 2)
    assert image.text["Comment"] == "AI-generated"


def test_load_sampler_from_python(trained):
    workdir, _ = trained
    sampler = jaxgan.load_sampler(workdir)
    assert sampler.step == max(int(s) for s in os.listdir(workdir / "checkpoints"))
    assert sampler.class_names == tuple("0123456789")
    assert sampler.num_classes == 10 and sampler.image_shape == (16, 16, 1)
    images = sampler(jax.random.key(0), labels=np.array([0, 5, 9]))
    assert images.shape == (3, 16, 16, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, sampler(jax.random.key(0), labels=np.array([0, 5, 9])))
    older = jaxgan.load_sampler(workdir, step=2)
    assert older.step == 2
    with pytest.raises(jaxgan.UserError, match="label 10 is out of range"):
        sampler(jax.random.key(0), labels=np.array([10]))
    with pytest.raises(jaxgan.UserError, match="no checkpoint for step 3"):
        jaxgan.load_sampler(workdir, step=3)


def test_unconditional_model_samples_by_count(tmp_path):
    run("train.py", f"--workdir={tmp_path}", *override_flags(**{"data.conditional": False,
                                                                 "train.num_steps": 2}))
    sampler = jaxgan.load_sampler(tmp_path)
    assert sampler.num_classes == 0 and sampler.class_names == ()
    assert sampler(jax.random.key(0), num=5).shape == (5, 16, 16, 1)


@pytest.mark.parametrize("flag, message", [
    ("--config.train.batch_size=13", "train.batch_size=13 must be a positive multiple of the "
                                     "number of devices (2)"),  # conftest's 2 for train.py
    ("--config.data.source=imagenet", "config key data.source='imagenet' is not allowed: it must "
                                      "be 'digits', 'folder:PATH' or 'tfds:NAME'"),
    ("--config.data.resolution=48", "data.resolution=48 is not allowed: it must be a power of two"),
    ("--config.data.resolution=256", "data.resolution: the dcgan family supports powers of two "
                                     "from 16 to 128, got 256"),
    ("--config.train.nums_steps=3", 'Did you mean "num_steps" instead of "nums_steps"?'),
    ("--config.train.num_steps=abc", "--config.train.num_steps=abc: invalid literal"),
])
def test_user_mistakes_get_one_clear_line(tmp_path, flag, message):
    workdir = tmp_path / "run"
    result = run("train.py", f"--workdir={workdir}", *override_flags(), flag, check=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists()  # nothing written for a run that cannot start


def test_sample_py_on_an_empty_workdir(tmp_path):
    result = run("sample.py", f"--workdir={tmp_path}", check=False)
    assert result.returncode == 1
    assert f"no checkpoint found in {tmp_path}/checkpoints" in result.stderr
    assert "Traceback" not in result.stderr
