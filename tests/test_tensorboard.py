"""TensorBoard event files: written beside metrics.jsonl, read back as TensorBoard reads them."""
import json
import shutil
import sys
import types

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

import jaxgan
from jaxgan.training.writers import Writers

# TensorBoard's loader imports TensorFlow when it is installed (half a minute here) and uses its
# own TensorFlow-free reader when `tensorboard.compat.notf` exists: read the files as a
# TensorFlow-free TensorBoard (Colab's TPU runtime) does.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def load_events(workdir):
    accumulator = event_accumulator.EventAccumulator(
        str(workdir / "tensorboard"), size_guidance={event_accumulator.SCALARS: 0,
                                                     event_accumulator.IMAGES: 0,
                                                     event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return accumulator


def metrics_by_step(workdir):
    """metrics.jsonl's records, the last one of each step (a resumed run logs steps again)."""
    return {r["step"]: r for r in map(json.loads, open(workdir / "metrics.jsonl"))}


def test_events_hold_scalars_grids_and_config_and_a_resume_replaces_lost_steps(tmp_path):
    overrides = {"train.log_every_steps": 1, "checkpoint.every_steps": 2,
                 "train.sample_every_steps": 2}
    jaxgan.train_and_evaluate(tiny_config(**overrides, **{"train.num_steps": 4}), tmp_path)
    events = load_events(tmp_path)
    assert {"d_loss", "g_loss", "images_per_sec"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("d_loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Images("samples")] == [2, 4]
    png = Image.open(tmp_path / "samples" / "step_0000004.png")
    assert (events.Images("samples")[-1].width, events.Images("samples")[-1].height) == png.size
    config_text = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| train.batch_size | `16` |" in config_text

    # A crash after steps 3 and 4 were logged but before checkpoint 4 was written: the next run
    # resumes from 2 and trains 3 and 4 again. TensorBoard shows each step once, from that run.
    shutil.rmtree(tmp_path / "checkpoints" / "4")
    jaxgan.train_and_evaluate(tiny_config(**overrides, **{"train.num_steps": 6}), tmp_path)
    events, logged = load_events(tmp_path), metrics_by_step(tmp_path)
    speed = events.Scalars("images_per_sec")
    assert [e.step for e in speed] == [1, 2, 3, 4, 5, 6]
    assert [e.value for e in speed[2:]] == pytest.approx(
        [logged[step]["images_per_sec"] for step in (3, 4, 5, 6)], rel=1e-6)
    assert [e.step for e in events.Images("samples")] == [2, 4, 6]


def test_tensorboard_off_and_other_processes_write_nothing(tmp_path):
    jaxgan.train_and_evaluate(tiny_config(**{"train.tensorboard": False, "train.num_steps": 2}),
                              tmp_path / "off")
    assert not (tmp_path / "off" / "tensorboard").exists()
    assert (tmp_path / "off" / "metrics.jsonl").exists()

    other = Writers.for_run(str(tmp_path / "other"), False, tiny_config(), 0)
    other.scalars(2, {"d_loss": 1.0})
    other.grid(2, np.zeros((8, 8, 3), np.uint8), {})
    other.close()
    assert not (tmp_path / "other").exists()
