"""Data sources through the training API: folders (with junk), streaming from host memory."""
import subprocess
import sys
from typing import NamedTuple

import jax
import numpy as np
import pytest
from conftest import ROOT, override_flags, tiny_config
from PIL import Image

import jaxgan
from jaxgan import data as data_lib
from jaxgan.art import export
from jaxgan.training import pipeline
from helpers import assert_identical, resume_from_copy, saved_state


@pytest.fixture
def art_folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "paintings"
    for style, mode in (("cubism", "RGB"), ("impressionism", "L")):
        (root / style).mkdir(parents=True)
        for i in range(6):
            size = (40 + 7 * i, 30 + 5 * i)
            array = rng.integers(0, 255, (size[1], size[0], 3 if mode == "RGB" else 1), np.uint8)
            Image.fromarray(array.squeeze()).save(root / style / f"{i}.{'jpg' if i % 2 else 'png'}")
    (root / "cubism" / ".DS_Store").write_bytes(b"\0\1")
    (root / "impressionism" / "broken.jpg").write_bytes(b"not really a jpeg")
    (root / "impressionism" / "empty.png").write_bytes(b"")
    return root


def test_train_on_a_folder_reports_junk_and_keeps_class_names(art_folder, tmp_path):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "folder.py"),
         f"--workdir={workdir}", f"--config.data.source=folder:{art_folder}",
         # (16 px, not the config's 64: a 64-px step takes ~20 s more to compile)
         *override_flags(**{"train.num_steps": 2, "data.resolution": 16})], cwd=ROOT,
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Skipped 3 files" in result.stderr
    assert "broken.jpg" in result.stderr and "empty.png" in result.stderr
    sampler = jaxgan.load_sampler(workdir)
    assert sampler.class_names == ("cubism", "impressionism")
    assert sampler.image_shape == (16, 16, 3)
    assert sampler.generate([0], labels="impressionism").shape == (1, 16, 16, 3)


@pytest.mark.parametrize("source, message", [
    ("folder:/no/such/place", "/no/such/place does not exist"),
    ("folder:", "data.source='folder:' is not allowed: it must be 'digits', 'folder:PATH'"),
])
def test_bad_folder_is_one_clear_error_and_writes_nothing(tmp_path, source, message):
    workdir = tmp_path / "run"
    result = subprocess.run([sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}",
                             f"--config.data.source={source}", *override_flags()], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not workdir.exists()


def test_host_batches_are_a_pure_function_of_seed_and_step():
    a = pipeline.host_batch_indices(0, 7, 1000, 16)
    np.testing.assert_array_equal(a, pipeline.host_batch_indices(0, 7, 1000, 16))
    assert not np.array_equal(a, pipeline.host_batch_indices(0, 8, 1000, 16))
    assert not np.array_equal(a, pipeline.host_batch_indices(1, 7, 1000, 16))


def test_streamed_data_resumes_exactly(tmp_path):
    # device_cache_mb=0 forces the host-streaming pipeline.
    stream = {"data.device_cache_mb": 0, "train.num_steps": 4}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    jaxgan.train_and_evaluate(tiny_config(**stream), straight)
    resume_from_copy(straight, resumed, 2)
    jaxgan.train_and_evaluate(tiny_config(**stream), resumed)
    assert_identical(saved_state(straight, 4), saved_state(resumed, 4))


class _StepOnly(NamedTuple):
    step: jax.Array


@pytest.mark.parametrize("tier_config", [{}, {"data.device_cache_mb": 0}], ids=["device", "host"])
def test_every_tier_gives_the_step_the_same_key(monkeypatch, tier_config):
    """The step's key comes from (seed, step) alone, whichever tier feeds the data: a train step
    that reports its key gives step_keys' on the device-resident and the host-streamed path."""
    def halves(key):  # uint32 words as 16-bit halves: exact in the float32 metric average
        words = jax.random.key_data(key)
        return jax.numpy.stack([words >> 16, words & 0xFFFF]).astype(np.float32)

    def key_reporting_step(gan, train_config, mesh):
        return lambda state, batch, key: (state._replace(step=state.step + 1),
                                          {"key": halves(key)})
    monkeypatch.setattr(pipeline, "make_train_step", key_reporting_step)
    config = tiny_config(**tier_config)
    from jaxgan.mesh import make_mesh
    run = pipeline.Pipeline(config, None, data_lib.load_digits(16, 1), make_mesh())
    try:
        assert run.tier == ("host" if tier_config else "device")
        _, metrics = run.advance(_StepOnly(jax.numpy.int32(5)), 5, 1)
    finally:
        run.close()
    _, expected = pipeline.step_keys(jax.random.key(config.seed), 5)
    np.testing.assert_array_equal(metrics["key"], halves(expected))


def test_host_batches_match_the_dataset(config):
    from jaxgan.mesh import make_mesh
    dataset = data_lib.load_digits(16, 1)
    batches = pipeline.HostBatches(dataset, make_mesh(), 16, seed=3, random_flip=False)
    batch = batches.get(5)
    batches.close()
    index = pipeline.host_batch_indices(3, 5, len(dataset.labels), 16)
    np.testing.assert_array_equal(np.asarray(batch["label"]), dataset.labels[index])
    np.testing.assert_allclose(np.asarray(batch["image"]),
                               (dataset.images[index].astype(np.float32) - 127.5) / 127.5)
    assert batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")


@pytest.mark.parametrize("tier_config", [{}, {"data.device_cache_mb": 0}], ids=["device", "host"])
def test_every_tier_gives_the_relativistic_step_an_independent_generator_batch(monkeypatch,
                                                                             tier_config):
    """R3GAN's step takes two real batches: each tier feeds the second (g_image, g_label) from
    its own random numbers, as a pure function of (seed, step); the other losses get one."""
    seen = []

    def batch_reporting_step(gan, train_config, mesh):
        def step(state, batch, key):
            jax.debug.callback(lambda b: seen.append(jax.tree.map(np.asarray, b)), batch)
            return state._replace(step=state.step + 1), {}
        return step
    monkeypatch.setattr(pipeline, "make_train_step", batch_reporting_step)
    from jaxgan.mesh import make_mesh
    dataset = data_lib.load_digits(16, 1)
    for loss in ("rpgan", "hinge"):
        config = tiny_config(**tier_config, **{"train.loss": loss, "train.mode_seeking": 0.0})
        run = pipeline.Pipeline(config, None, dataset, make_mesh())
        try:
            state, _ = run.advance(_StepOnly(jax.numpy.int32(5)), 5, 2)
            jax.block_until_ready(state)
        finally:
            run.close()
    rpgan_5, rpgan_6, hinge_5, _ = seen
    assert set(rpgan_5) == {"image", "label", "g_image", "g_label"}
    assert set(hinge_5) == {"image", "label"}
    np.testing.assert_array_equal(rpgan_5["image"], hinge_5["image"])  # D's batch as before
    for batch in (rpgan_5, rpgan_6):
        assert batch["g_image"].shape == batch["image"].shape
        assert not np.array_equal(batch["g_label"], batch["label"])  # 16 of 10 classes
        rows = [np.flatnonzero((dataset.images.reshape(len(dataset.labels), -1) ==
                                np.round(x.reshape(-1) * 127.5 + 127.5)).all(1))[0]
                for x in batch["g_image"]]
        np.testing.assert_array_equal(dataset.labels[rows], batch["g_label"])  # real pairs
    assert not np.array_equal(rpgan_5["g_image"], rpgan_6["g_image"])  # a new one each step
    if tier_config:
        index = pipeline.host_batch_indices(config.seed, 5, len(dataset.labels), 16, stream=1)
        np.testing.assert_array_equal(rpgan_5["g_label"], dataset.labels[index])


def test_folder_larger_than_the_host_cache_is_decoded_a_batch_at_a_time(art_folder, caplog):
    # A JPEG whose header reads but whose pixels are cut off passes the scan and fails to decode.
    good = art_folder / "cubism" / "1.jpg"
    (art_folder / "cubism" / "2_cut.jpg").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    held = data_lib.load(tiny_config(**{"data.source": f"folder:{art_folder}"}).data)
    streamed = data_lib.load(tiny_config(**{"data.source": f"folder:{art_folder}",
                                            "data.host_cache_mb": 0}).data)
    assert isinstance(streamed.images, data_lib.StreamedImages)
    assert streamed.class_names == held.class_names == ("cubism", "impressionism")
    # Streamed rows: cubism 0, 1, 2, 2_cut, 3, 4, 5, then impressionism 0-5; held rows skip 2_cut.
    assert streamed.images.shape == (13, 16, 16, 1) and len(held.labels) == 12
    np.testing.assert_array_equal(streamed.labels, np.repeat([0, 1], [7, 6]))
    rows = np.array([0, 1, 2, 4, 12, 7])
    np.testing.assert_array_equal(streamed.images[rows], held.images[[0, 1, 2, 3, 11, 6]])
    # The cut file is replaced by the next cubism image that decodes (3.jpg), and named once.
    np.testing.assert_array_equal(streamed.images[[3, 3]], held.images[[3, 3]])
    [message] = [r.getMessage() for r in caplog.records if "is used instead" in r.getMessage()]
    assert message.startswith(f"Skipped {art_folder / 'cubism' / '2_cut.jpg'} (truncated or corrupt")
    # --novelty reads a streamed set in chunks and finds what it finds in the array.
    everything = streamed.images[np.arange(13)]
    generated = everything[[12, 3, 0]] // 2 + 60
    for got, want in zip(export.nearest_training_images(generated, streamed.images, chunk=4),
                         export.nearest_training_images(generated, everything)):
        np.testing.assert_allclose(got, want, rtol=1e-4)
    streamed.close()


def test_a_file_that_cannot_be_read_mid_run_stops_the_run_clearly(art_folder):
    streamed = data_lib.load(tiny_config(**{"data.source": f"folder:{art_folder}",
                                            "data.host_cache_mb": 0}).data)
    (art_folder / "cubism" / "1.jpg").unlink()  # deleted after the scan: not skipped silently
    with pytest.raises(jaxgan.UserError, match=r"cannot read .*1.jpg while training: file vanished"):
        streamed.images[[1]]
    streamed.close()


def test_training_streams_a_folder_from_disk(art_folder, tmp_path):
    config = tiny_config(**{"data.source": f"folder:{art_folder}", "data.host_cache_mb": 0,
                            "data.device_cache_mb": 0, "train.steps_per_call": 1})
    jaxgan.train_and_evaluate(config, tmp_path)
    sampler = jaxgan.load_sampler(tmp_path)
    assert sampler.step == 4 and sampler.class_names == ("cubism", "impressionism")


def test_built_in_digits_are_scikit_learns_without_importing_it():
    from sklearn.datasets import load_digits
    from jaxgan.data.digits import digits_arrays
    images, labels = digits_arrays()
    reference = load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)
    code = "import sys, jaxgan.data; jaxgan.data.load_digits(16, 1); print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_data_fit_pad_reaches_training_held_and_streamed(art_folder):
    """data.fit='pad' is what the loader uses, whether the folder is held in memory or decoded a
    batch at a time (the two tiers must give the step the same pictures)."""
    source = {"data.source": f"folder:{art_folder}", "data.fit": "pad"}
    held = data_lib.load(tiny_config(**source).data)
    streamed = data_lib.load(tiny_config(**source, **{"data.host_cache_mb": 0}).data)
    cropped = data_lib.load(tiny_config(**{"data.source": f"folder:{art_folder}"}).data)
    # cubism/0.png is 40x30: padded, its top and bottom rows are white; cropped, they are not.
    assert (held.images[0][0] == 255).all() and (held.images[0][-1] == 255).all()
    assert not (cropped.images[0][0] == 255).all()
    np.testing.assert_array_equal(streamed.images[np.arange(3)], held.images[:3])
    streamed.close()
