"""Checkpoints you can trust: exact resume, signals, SIGKILL, damage, compatibility, NaN, workdir."""
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from conftest import ROOT, override_flags, tiny_config
from helpers import assert_identical, restore_state, resume_from_copy, saved_state

import jaxgan
from jaxgan.training import checkpoint


def train_cmd(workdir, **overrides):
    return [sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}",
            *override_flags(**overrides)]


def run_train(workdir, check=True, **overrides):
    result = subprocess.run(train_cmd(workdir, **overrides), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    if check and result.returncode:
        raise AssertionError(f"train.py exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """A workdir after `train.py` with the tiny overrides: checkpoints at 2 and 4."""
    workdir = tmp_path_factory.mktemp("first-run")
    run_train(workdir)
    return workdir


@pytest.fixture
def trained(first_run, tmp_path):
    """tmp_path holding a copy of first_run (one train.py run per test process, not per test)."""
    shutil.copytree(first_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


@pytest.mark.parametrize("steps_per_call", [1, 2])
def test_resume_is_bit_identical(tmp_path, steps_per_call):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    config = tiny_config(**{"train.steps_per_call": steps_per_call, "train.num_steps": 6,
                            "checkpoint.every_steps": 3})
    jaxgan.train_and_evaluate(config, straight)
    resume_from_copy(straight, resumed, 3)
    jaxgan.train_and_evaluate(config, resumed)
    assert_identical(saved_state(straight, 6), saved_state(resumed, 6))


def test_resnet_with_spectral_norm_augmentation_and_r1_resumes_bit_identically(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    tools = {"model.arch": "resnet", "model.d_norm": "spectral", "train.loss": "hinge",
             "train.augment": "color,translation,cutout", "train.augment_p": 0.0,
             "train.ada_target": 0.6, "train.r1_gamma": 1.0, "train.r1_every": 2,
             "train.lecam": 0.3, "train.mode_seeking": 0.0}
    config = tiny_config(**tools, **{"train.num_steps": 4})
    jaxgan.train_and_evaluate(config, straight)
    resume_from_copy(straight, resumed, 2)
    jaxgan.train_and_evaluate(config, resumed)
    assert_identical(saved_state(straight, 4), saved_state(resumed, 4))
    state = restore_state(resumed, 4)
    assert set(state.aux) == {"augment_p", "lecam_real", "lecam_fake"}
    assert any("/u" in jax.tree_util.keystr(p) for p, _ in
               jax.tree_util.tree_leaves_with_path(state.d_stats))
    assert jaxgan.load_sampler(resumed).step == 4


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_and_exits_zero(tmp_path, sig):
    process = subprocess.Popen(train_cmd(tmp_path, **{"train.num_steps": 100000,
                                                       "checkpoint.every_steps": 100000,
                                                       "train.sample_every_steps": 100000}),
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.stat().st_size) and time.time() < deadline:
        time.sleep(0.2)  # wait until training is under way
    sent = time.time()
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert time.time() - sent < 30
    assert f"Received {sig.name}: saved a checkpoint at step" in stdout
    step = int(stdout.split("checkpoint at step ")[1].split()[0])
    assert step > 0 and os.listdir(tmp_path / "checkpoints") == [str(step)]
    assert jaxgan.load_sampler(tmp_path).step == step


def test_sigkill_at_random_moments_never_leaves_a_bad_checkpoint(tmp_path):
    rng = random.Random(0)
    overrides = {"train.num_steps": 100000, "checkpoint.every_steps": 2, "train.steps_per_call": 1,
                 "train.log_every_steps": 1, "train.sample_every_steps": 100000}
    run_train(tmp_path, **{**overrides, "train.num_steps": 2})  # something to resume from
    metrics = tmp_path / "metrics.jsonl"
    last_step = 2
    for attempt in range(5):  # 4 kills once training is under way, 1 during start-up
        size = metrics.stat().st_size
        process = subprocess.Popen(train_cmd(tmp_path, **overrides), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt % 4 == 3:  # during start-up and restore
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # once training is under way: during steps, saves and their finalisation
            deadline = time.time() + 120
            while metrics.stat().st_size <= size and time.time() < deadline \
                    and process.poll() is None:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        process.kill()
        _, stderr = process.communicate()
        assert "Traceback" not in stderr, stderr[-2000:]
        step = max(checkpoint.make_manager(tmp_path, read_only=True).all_steps())
        assert step >= last_step, "a later run restarted or lost progress"
        last_step = step
        # The newest complete checkpoint loads: the state of that step, every value finite.
        state = restore_state(tmp_path, step)
        assert int(state.step) == step
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(state))
    # After all that, the same command still resumes and finishes cleanly.
    run_train(tmp_path, **{**overrides, "train.num_steps": last_step + 2})
    assert max(checkpoint.make_manager(tmp_path, read_only=True).all_steps()) == last_step + 2


def damage(step_dir):
    """Truncate every file of the checkpoint's state item."""
    for root, _, files in os.walk(step_dir / "state"):
        for name in files:
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(0, os.path.getsize(os.path.join(root, name)) // 3))


def test_damaged_newest_checkpoint_falls_back_to_an_intact_one(trained):
    damage(trained / "checkpoints" / "4")
    result = run_train(trained, **{"train.num_steps": 6})
    assert f"checkpoint {trained}/checkpoints/4 (step 4) is unreadable" in result.stderr
    assert f"moved the damaged checkpoint of step 4 to {trained}/damaged_checkpoints/4" \
        in result.stderr
    assert (trained / "damaged_checkpoints" / "4" / "state").is_dir()  # kept, not deleted
    assert sorted(os.listdir(trained / "checkpoints"), key=int) == ["2", "4", "6"]
    # Resumed from step 2: steps 3-6 were trained again, and logged again.
    steps = [json.loads(line)["step"] for line in open(trained / "metrics.jsonl")]
    assert steps == [2, 4, 4, 6]


def test_all_checkpoints_damaged_is_a_clear_error_and_deletes_nothing(trained):
    for step in ("2", "4"):
        damage(trained / "checkpoints" / step)
    before = sorted(os.listdir(trained / "checkpoints"))
    result = run_train(trained, check=False, **{"train.num_steps": 6})
    assert result.returncode == 1
    assert "no readable checkpoint" in result.stderr and "nothing was deleted" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(trained / "checkpoints")) == before


def test_incompatible_resume_is_refused_and_allowed_changes_pass(trained):
    result = run_train(trained, check=False, **{"model.g_width": 16, "data.resolution": 32})
    assert result.returncode == 1
    assert "cannot resume" in result.stderr
    assert "data.resolution: 16 -> 32" in result.stderr and "model.g_width: 8 -> 16" in result.stderr
    assert "Traceback" not in result.stderr
    run_train(trained, **{"train.num_steps": 6, "train.log_every_steps": 3,
                          "checkpoint.every_steps": 3, "train.g_lr": 1e-4})
    assert "6" in os.listdir(trained / "checkpoints")


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(trained):
    before = saved_state(trained, 4)
    result = run_train(trained, check=False, **{"train.num_steps": 8, "train.g_lr": 1e30,
                                                 "train.d_lr": 1e30})
    assert result.returncode == 1
    assert "training diverged: a non-finite loss or parameter at step" in result.stderr
    assert "Traceback" not in result.stderr
    assert max(int(s) for s in os.listdir(trained / "checkpoints")) == 4
    assert_identical(before, saved_state(trained, 4))


def test_unwritable_workdir_is_found_at_start(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run_train(blocker / "run", check=False)
    assert result.returncode == 1
    assert f"workdir {blocker}/run is not writable" in result.stderr
    assert "Traceback" not in result.stderr


LEGACY = ROOT / "tests" / "data"  # written by jaxgan 0.1.0 before the layout change (5ddfa62)


def legacy_workdir(tmp_path):
    workdir = tmp_path / "legacy"
    shutil.copytree(LEGACY / "legacy_workdir", workdir)
    return workdir


# The legacy run trained without augmentation (the digits default before 2026-11-27).
# (train.class_loss: off, as the digits config was when the workdir and the numbers were made.)
LEGACY_RESUME = {"train.num_steps": 8, "checkpoint.every_steps": 4, "train.sample_every_steps": 4,
                 "checkpoint.keep": 1, "train.augment": "", "train.class_loss": 0.0}
# legacy_step8.jax-<version>.npz: the parameters after the OLD code resumed the legacy workdir to
# step 8, on a 2-core AMD EPYC (AVX2). Another CPU or jax version rounds differently in the last
# bits (measured after these 4 steps: at most 1.2e-10 apart under --xla_cpu_max_isa=SSE4_2/AVX
# here and 4.8e-07 relative on an Intel Sapphire Rapids; jax 0.7.2 vs 0.10.2 at most 7.5e-09).
# The tolerance sits 13x above the largest of those and far below what one Adam step moves a
# weight (~lr = 2e-4), so a wrong or missing step cannot pass; the test checks the latter margin.
STORED_RTOL, STORED_ATOL = 1e-5, 1e-7
LEGACY_PIXELS = "seeds0-3_label3"  # sampled from the stored step-4 checkpoint (uint8: exact)


def named_params(state):
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(
        {"g": state.g_params, "d": state.d_params, "ema": state.ema_params})[0]}


def stored_step8():
    same_jax = LEGACY / f"legacy_step8.jax-{jax.__version__}.npz"
    return np.load(same_jax if same_jax.exists() else LEGACY / "legacy_step8.jax-0.10.2.npz")


def assert_near_stored(got, expected):
    assert sorted(got) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_allclose(got[name], expected[name], rtol=STORED_RTOL, atol=STORED_ATOL,
                                   err_msg=name)


def rewrite_in_current_layout(workdir, step, target):
    """`target`: a workdir holding `workdir`'s checkpoint at `step` as today's code writes it."""
    reader = checkpoint.make_manager(workdir, read_only=True)
    config, facts = checkpoint.restore_meta(reader, step)
    reader.close()
    state = jax.device_put(restore_state(workdir, step))
    writer = checkpoint.make_manager(target)
    checkpoint.save(writer, state, config, facts)
    checkpoint.wait(writer)
    writer.close()
    return target


def test_workdir_from_the_previous_layout_samples_and_resumes_as_the_current_code(tmp_path):
    # The checked-in workdir holds step 4 of tiny_config (steps_per_call=1, keep=1, every 4 steps).
    workdir = legacy_workdir(tmp_path)
    rewritten = rewrite_in_current_layout(workdir, 4, tmp_path / "rewritten")
    sampler = jaxgan.load_sampler(workdir)
    assert sampler.step == 4 and sampler.class_names == tuple("0123456789")
    images = sampler.generate(range(4), labels=3)
    assert images.shape == (4, 16, 16, 1) and images.dtype == np.uint8 and images.std() > 0
    # Sampling is a forward pass whose output is rounded to uint8: the same pixels on every CPU
    # and jax version tried (AMD AVX2, Intel AVX-512, other --xla_cpu_max_isa; jax 0.7.2-0.10.2).
    np.testing.assert_array_equal(images, np.load(LEGACY / "legacy_samples.npz")[LEGACY_PIXELS])
    np.testing.assert_array_equal(images, jaxgan.load_sampler(rewritten).generate(range(4), labels=3))
    before = named_params(restore_state(workdir, 4))
    got = named_params(jaxgan.train_and_evaluate(tiny_config(**LEGACY_RESUME), workdir))
    current = named_params(jaxgan.train_and_evaluate(tiny_config(**LEGACY_RESUME), rewritten))
    assert sorted(got) == sorted(current)
    for name in got:  # same machine, same run: bit for bit
        np.testing.assert_array_equal(got[name], current[name], err_msg=name)
    assert_near_stored(got, stored_step8())
    moved = min(np.abs(got[n] - before[n]).max() for n in got)
    assert moved > 10 * STORED_ATOL, f"the stored tolerance hides a resume step ({moved:.2g})"


ISA_RUN = """
import sys
import numpy as np
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from conftest import tiny_config
from test_checkpoint import LEGACY_PIXELS, LEGACY_RESUME, named_params
import jaxgan
images = jaxgan.load_sampler(sys.argv[1]).generate(range(4), labels=3)
state = jaxgan.train_and_evaluate(tiny_config(**LEGACY_RESUME), sys.argv[1])
np.savez(sys.argv[1] + "/isa.npz", **{LEGACY_PIXELS: images}, **named_params(state))
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="--xla_cpu_max_isa names x86 instruction sets")
def test_another_instruction_set_rounds_differently_within_the_stored_tolerance(tmp_path):
    # What another CPU does, on this one: XLA limited to AVX (no FMA, narrower vectors) rounds
    # differently in the last bits. The run must differ from this CPU's (else the flag was not
    # honoured and this test proves nothing) and stay within the stored tolerance.
    here, other = legacy_workdir(tmp_path / "here"), legacy_workdir(tmp_path / "other")
    # (SSE4.2 where the suite itself runs limited to AVX)
    limit = "SSE4_2" if "--xla_cpu_max_isa=AVX" in os.environ.get("XLA_FLAGS", "") else "AVX"
    flags = f"--xla_force_host_platform_device_count=8 --xla_cpu_max_isa={limit}"
    env = {**os.environ, "JAXGAN_TEST_XLA_FLAGS": flags, "XLA_FLAGS": flags,
           "JAX_ENABLE_COMPILATION_CACHE": "false"}  # (a cached program would ignore the flag)
    result = subprocess.run([sys.executable, "-c", ISA_RUN, str(other), str(ROOT / "tests"),
                             str(ROOT)], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    isa = np.load(other / "isa.npz")
    pixels = isa[LEGACY_PIXELS]
    np.testing.assert_array_equal(pixels, jaxgan.load_sampler(here).generate(range(4), labels=3))
    np.testing.assert_array_equal(pixels, np.load(LEGACY / "legacy_samples.npz")[LEGACY_PIXELS])
    got = named_params(jaxgan.train_and_evaluate(tiny_config(**LEGACY_RESUME), here))
    other_cpu = {name: isa[name] for name in isa.files if name != LEGACY_PIXELS}
    assert any(not np.array_equal(got[n], other_cpu[n]) for n in got), "the ISA flag changed nothing"
    assert_near_stored(other_cpu, stored_step8())
    for name in got:
        np.testing.assert_allclose(other_cpu[name], got[name], rtol=STORED_RTOL, atol=STORED_ATOL,
                                   err_msg=name)


def test_checkpoint_of_a_newer_format_is_refused_and_not_moved(tmp_path):
    workdir = legacy_workdir(tmp_path)
    facts_file = workdir / "checkpoints" / "4" / "data" / "metadata"
    facts = json.loads(facts_file.read_text())
    facts.update(format=checkpoint.FORMAT_VERSION + 1, jaxgan_version="9.0.0")
    facts_file.write_text(json.dumps(facts))
    for command in (train_cmd(workdir, **{"train.num_steps": 8}),
                    [sys.executable, str(ROOT / "sample.py"), f"--workdir={workdir}"]):
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert (f"was written by jaxgan 9.0.0 in checkpoint format {checkpoint.FORMAT_VERSION + 1}; "
                f"this jaxgan ({jaxgan.__version__}) reads formats up to "
                f"{checkpoint.FORMAT_VERSION}: upgrade jaxgan") in result.stderr
        assert os.listdir(workdir / "checkpoints") == ["4"]
        assert not (workdir / "damaged_checkpoints").exists()
