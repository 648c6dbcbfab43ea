"""The artist's toolbox: seeds, labels, truncation, grids, files, GIFs, provenance, novelty."""
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config
from PIL import Image

import jaxgan
from jaxgan import data as data_lib
from jaxgan.art import export, watermark
from jaxgan.images import enlarge


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    jaxgan.train_and_evaluate(tiny_config(**{"train.num_steps": 2}), workdir)
    return workdir


@pytest.fixture(scope="module")
def sampler(workdir):
    return jaxgan.load_sampler(workdir)


def sample(*args, check=True):
    result = subprocess.run([sys.executable, str(ROOT / "sample.py"), *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode:
        raise AssertionError(f"sample.py exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def test_load_sampler_builds_the_generator_once(workdir, monkeypatch):
    from jaxgan import sampler as sampler_lib
    built = []
    build_models = sampler_lib.build_models
    monkeypatch.setattr(sampler_lib, "build_models",
                        lambda *args, **kwargs: built.append(args) or build_models(*args, **kwargs))
    loaded = jaxgan.load_sampler(workdir)
    assert len(built) == 1
    assert loaded.generate([0], labels=3).shape == (1, 16, 16, 1)


def test_an_image_depends_on_its_seed_alone(sampler, workdir):
    many = sampler.generate(range(20), labels=3)
    for seed in (0, 7, 19):
        np.testing.assert_array_equal(sampler.generate([seed], labels=3)[0], many[seed])
    one_device = jaxgan.load_sampler(workdir, devices=jax.devices()[:1])
    np.testing.assert_array_equal(one_device.generate(range(20), labels=3), many)
    assert many.shape == (20, 16, 16, 1) and many.dtype == np.uint8
    assert len({m.tobytes() for m in many}) == 20


def test_labels_by_name_index_or_per_seed(sampler):
    by_name = sampler.generate([1, 2], labels="7")
    np.testing.assert_array_equal(by_name, sampler.generate([1, 2], labels=7))
    mixed = sampler.generate([1, 2], labels=[7, 2])
    np.testing.assert_array_equal(mixed[0], by_name[0])
    assert not np.array_equal(mixed[1], by_name[1])
    with pytest.raises(jaxgan.UserError, match="unknown class 'cat'; classes: 0, 1"):
        sampler.generate([1], labels="cat")
    with pytest.raises(jaxgan.UserError, match="3 labels for 2 seeds"):
        sampler.generate([1, 2], labels=[1, 2, 3])
    with pytest.raises(jaxgan.UserError, match="class-conditional"):
        sampler.generate([1])


def test_truncation_one_is_the_training_noise_and_below_one_is_biggans(sampler):
    from jaxgan.sampler import seed_noise
    seeds = jax.numpy.arange(50, dtype=jax.numpy.uint32)
    z_full = np.asarray(seed_noise(seeds, 16, 1.0))
    # 1.0: exactly N(0, 1), the noise training draws (no truncation, as StyleGAN's --trunc 1).
    for seed in (0, 49):
        np.testing.assert_array_equal(z_full[seed], np.asarray(
            jax.random.normal(jax.random.key(seed), (1, 16)))[0])
    assert np.abs(z_full).max() > 2.0  # 800 draws: some lie beyond the truncation bound
    # psi < 1: psi * N(0, 1) truncated to [-2, 2] (BigGAN).
    z_half = np.asarray(seed_noise(seeds, 16, 0.5))
    z_most = np.asarray(seed_noise(seeds, 16, 0.9))
    np.testing.assert_allclose(z_half / 0.5, z_most / 0.9, rtol=1e-5)
    assert np.abs(z_half).max() <= 1.0
    assert not np.array_equal(sampler.generate([0], 1, truncation=0.5),
                              sampler.generate([0], 1, truncation=1.0))
    for bad in (1.5, 0.0, -1.0, float("nan")):
        with pytest.raises(jaxgan.UserError, match=r"truncation must be in \(0, 1\], got"):
            sampler.generate([0], 1, truncation=bad)


def test_generate_and_the_key_sampler_agree_on_the_same_noise(sampler):
    # sampler(key) and generate(seed) draw their noise by one definition and run one generator.
    for seed, label in ((0, 3), (7, 9)):
        by_key = np.asarray(sampler(jax.random.key(seed), labels=np.array([label])))
        np.testing.assert_array_equal(by_key, sampler.generate([seed], labels=label))


def test_interpolation_starts_and_ends_at_the_seeds(sampler):
    frames = sampler.interpolate(3, 8, frames=6, label_a="1", label_b="7")
    assert frames.shape == (6, 16, 16, 1)
    np.testing.assert_array_equal(frames[0], sampler.generate([3], labels=1)[0])
    np.testing.assert_allclose(frames[-1], sampler.generate([8], labels=7)[0], atol=1)


def test_default_grid_has_a_row_per_class_with_provenance(workdir):
    result = sample("--workdir", workdir)
    path = workdir / "samples" / "sample-step2.png"
    assert str(path) in result.stdout
    image = Image.open(path)
    assert image.size == (8 * 66 + 2, 10 * 66 + 2)
    assert image.text["Comment"] == "AI-generated"
    assert image.text["Software"] == f"jaxgan {jaxgan.__version__}"
    assert image.text["Step"] == "2" and image.text["Seed"] == "0-7"
    assert watermark.detect(np.asarray(image.convert("RGB"))).marked


def test_same_command_twice_gives_identical_pixels(workdir, tmp_path):
    for name in ("a.png", "b.png"):
        sample("--workdir", workdir, "--seeds", "0-15", "--label", "4", "--grid", tmp_path / name)
    a, b = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png"))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2 * 66 + 2, 8 * 66 + 2)


def test_outdir_writes_one_marked_png_per_image(workdir, sampler, tmp_path):
    sample("--workdir", workdir, "--seeds", "1,5", "--label", "3", "--outdir", tmp_path,
           "--upscale", "4", "--truncation", "0.8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0001-3.png", "seed0005-3.png"]
    image = Image.open(tmp_path / "seed0005-3.png")
    assert image.size == (64, 64)
    assert image.text["Seed"] == "5" and image.text["Class"] == "3"
    assert image.text["Truncation"] == "0.8" and image.text["Comment"] == "AI-generated"
    assert watermark.detect(np.asarray(image.convert("RGB"))).marked
    sample("--workdir", workdir, "--seeds", "5", "--label", "3", "--outdir", tmp_path / "plain",
           "--upscale", "4", "--truncation", "0.8", "--no-watermark")
    plain = np.asarray(Image.open(tmp_path / "plain" / "seed0005-3.png"))
    expected = enlarge(sampler.generate([5], labels=3, truncation=0.8), 4)[0, ..., 0]
    np.testing.assert_array_equal(plain, expected)
    assert not watermark.detect(plain).marked


def test_interpolate_writes_a_looping_gif(workdir, sampler, tmp_path):
    out = tmp_path / "walk.gif"
    sample("--workdir", workdir, "--interpolate", "3,8", "--label", "1,7", "--frames", "5",
           "--out", out, "--no-watermark", "--upscale", "1")
    gif = Image.open(out)
    assert gif.n_frames == 8  # 5 frames there, 3 back
    assert b"AI-generated" in gif.info["comment"]
    first = np.asarray(gif.convert("L"))
    np.testing.assert_array_equal(first, sampler.generate([3], labels=1)[0, ..., 0])


def test_novelty_reports_nearest_training_image_and_drops_the_closer_ones(workdir, sampler,
                                                                         tmp_path):
    seeds = [0, 1, 2, 3]
    images = sampler.generate(seeds, labels=2)
    training = data_lib.load(sampler.config.data)
    index, distance = export.nearest_training_images(images, training.images)
    # A threshold between the two closest images and the two farther ones: exactly the two
    # closest are dropped, the others written.
    order = np.argsort(distance)
    assert distance[order[1]] < distance[order[2]]
    threshold = round(float(distance[order[1]] + distance[order[2]]) / 2, 6)
    result = sample("--workdir", workdir, "--seeds", "0-3", "--label", "2", "--novelty",
                    "--min-novelty", threshold, "--outdir", tmp_path / "kept", "--no-watermark")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["seed", "class", "nearest-training-image", "distance"]
    rows = {int(line.split()[0]): line.split() for line in lines[1:5]}
    for i, seed in enumerate(seeds):
        assert rows[seed][2] == f"#{index[i]}"
        assert float(rows[seed][4]) == pytest.approx(distance[i], abs=1e-4)
        assert (rows[seed][-1] == "dropped") == (distance[i] < threshold)
    assert f"2 of 4 images closer than {threshold} to a training image were dropped." \
        in result.stdout
    kept = sorted(seeds[i] for i in order[2:])
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == \
        [export.file_name(seed, sampler.class_names[2]) for seed in kept]


def test_nearest_training_images_finds_exact_copies():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    generated = np.stack([training[17], 255 - training[3]])
    index, distance = export.nearest_training_images(generated, training, chunk=1)
    assert index[0] == 17 and distance[0] == pytest.approx(0.0, abs=1e-3)
    assert distance[1] > 0.2


@pytest.mark.parametrize("args, message, code", [
    (["--label", "cat"], "unknown class 'cat'", 1),
    (["--seeds", "a-b"], "--seeds takes '0-63' or '1,5,9'", 2),
    (["--interpolate", "1,2"], "--interpolate needs --out FILE.gif", 2),
    (["--step", "99"], "no checkpoint for step 99", 1),
])
def test_sample_errors(workdir, args, message, code):
    result = sample("--workdir", workdir, *args, check=False)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr
