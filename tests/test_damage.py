"""Issue 34, damage that nothing noticed: flipped bits in checkpoints, non-finite states, hostile
files in the evaluator's folders, sizes that cannot fit, forged reference statistics, read-only
checkpoint folders. Through train.py / sample.py / python -m jaxgan.evaluate where a user meets
them; every damaged file is built here."""
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


# ----------------------------------------------------------------------------- 2, 7. image files


def sparse_png(path, width, height):
    """A 1-bit PNG of zeros, built row by row: ~100 KB on disk for 30000x30000 (a decompression
    bomb), never held whole in memory here."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def generated_png(path, seed, side=16):
    from PIL import Image
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def hostile_folder(tmp_path):
    """Four generated 16x16 images and three files no reader may choke on."""
    folder_path = tmp_path / "fake"
    folder_path.mkdir()
    for i in range(4):
        generated_png(folder_path / f"seed{i:04d}.png", i)
    sparse_png(folder_path / "bomb.png", 30000, 30000)      # Pillow's decompression-bomb error
    sparse_png(folder_path / "large.png", 9000, 9000)       # under Pillow's, over jaxgan's limit
    (folder_path / "notes.png").write_text("not an image, named .png\n" * 10)
    return folder_path


HOSTILE_REASONS = {
    "bomb.png": "too large (Pillow's decompression-bomb limit): Image size (900000000 pixels) "
                "exceeds limit of 178956970 pixels, could be decompression bomb DOS attack.",
    "large.png": "too large: 9000x9000 pixels, more than data.max_image_pixels=67,108,864",
    "notes.png": "not an image",
}


def test_every_folder_reader_skips_hostile_files_with_the_same_reasons(hostile_folder, caplog):
    from jaxgan.data import folder
    from jaxgan.evaluation import folders
    training = folder.load_folder(str(hostile_folder), 16, 1, num_workers=2)  # training, gallery
    assert len(training.images) == 4
    assert {os.path.basename(p): why for p, why in training.skipped} == HOSTILE_REASONS
    with caplog.at_level(logging.WARNING):
        fake = folders.read_image_folder(str(hostile_folder))  # python -m jaxgan.evaluate --fake
    assert fake.images.shape == (4, 16, 16, 1) and fake.labels is None
    assert fake.description.endswith("4 images at 16x16x1 (3 files skipped)")
    for name, reason in HOSTILE_REASONS.items():
        assert f"{hostile_folder / name} ({reason})" in caplog.text
    np.testing.assert_array_equal(fake.images, training.images)


def test_the_watermark_tool_refuses_hostile_files_in_one_line_with_the_same_reasons(hostile_folder):
    for name, reason in HOSTILE_REASONS.items():
        result = subprocess.run([sys.executable, "-m", "jaxgan.watermark", "detect", name],
                                cwd=hostile_folder, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 2
        expected = reason.replace("data.max_image_pixels", "this tool's MAX_PIXELS")
        assert result.stderr.splitlines() == [f"error: cannot read {name}: {expected}"]


def evaluate_cli(capsys, *args):
    import importlib
    code = importlib.import_module("jaxgan.evaluate").main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_fake_with_images_beside_class_subfolders_says_what_is_wrong(tmp_path, capsys):
    fake = tmp_path / "fake"
    (fake / "cats").mkdir(parents=True)
    (fake / "dogs").mkdir()
    (fake / "dogs" / "README.txt").write_text("the dogs come later\n")
    for i in range(3):
        generated_png(fake / f"seed{i:04d}.png", i)
    (fake / "notes.txt").write_text("a note beside the images is no image\n")
    code, out, err = evaluate_cli(capsys, "--fake", fake, "--real", "digits")
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"error: {fake} holds 3 images at its top level (e.g. seed0000.png) and 2 subfolders "
        "(cats, dogs) holding no usable image: give either images directly in the folder or one "
        "subfolder per class, not both"]
    generated_png(fake / "cats" / "a.png", 7)  # the subfolders hold images too: still refused
    code, out, err = evaluate_cli(capsys, "--fake", fake, "--real", "digits")
    assert code == 1 and "2 subfolders (cats, dogs) holding images: give either" in err
    assert len(err.splitlines()) == 1


def test_evaluate_fake_with_nothing_usable_lists_why(tmp_path, capsys):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "notes.png").write_text("not an image, named .png\n")
    code, _, err = evaluate_cli(capsys, "--fake", fake, "--real", "digits")
    assert code == 1
    assert err.splitlines() == [f"error: no usable images in {fake}. Skipped 1 file or folder: "
                                f"{fake}/notes.png (not an image)."]


# ----------------------------------------------------------------------------- 4. --reference


def npz_with_headers(path, arrays):
    """An .npz whose members are (header dict, body bytes): headers may declare any shape."""
    import io
    import zipfile
    with zipfile.ZipFile(path, "w") as archive:
        for name, (header, body) in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array_header_1_0(buffer, header)
            archive.writestr(f"{name}.npy", buffer.getvalue() + body)
    return path


def f8(*shape):
    return {"descr": "<f8", "fortran_order": False, "shape": shape}


@pytest.mark.parametrize("arrays, needle", [
    # 298 GiB declared (a 200,000-feature sigma), 16 bytes held: refused from the header alone.
    ({"mu": (f8(200_000), b"\0" * 8), "sigma": (f8(200_000, 200_000), b"\0" * 8)},
     "mu and sigma declare 200,000 features, more than any feature space here (8,192)"),
    # A size that fits, with less data than the header declares.
    ({"mu": (f8(2048), b"\0" * 16), "sigma": (f8(2048, 2048), b"\0" * 16)},
     "is not an .npz with 'mu' and 'sigma' (mu.npy: its header declares (2048,) float64 "
     "(16,384 bytes) but it holds 16)"),
    ({"mu": (f8(3), b"\0" * 24), "sigma": (f8(4, 4), b"\0" * 128)},
     "mu (3,) and sigma (4, 4) do not match"),
    ({"mu": ({"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\0" * 16),
      "sigma": (f8(2, 2), b"\0" * 32)}, "(mu.npy: dtype object is not numeric)"),
    ({"mu": (f8(2), np.array([0.0, np.nan]).tobytes()), "sigma": (f8(2, 2), np.eye(2).tobytes())},
     "mu holds NaN or infinity"),
    ({"mu": (f8(2), b"\0" * 16), "sigma": (f8(2, 2), np.array([1, 0, 0, np.inf]).tobytes())},
     "sigma holds NaN or infinity"),
])
def test_forged_or_non_finite_reference_statistics_are_one_line(tmp_path, capsys, arrays, needle):
    reference = npz_with_headers(tmp_path / "stats.npz", arrays)
    fake = tmp_path / "fake"
    fake.mkdir()
    for i in range(2):
        generated_png(fake / f"{i}.png", i)
    code, out, err = evaluate_cli(capsys, "--fake", fake, "--reference", reference)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {reference}") and needle in err, err


def test_reference_statistics_that_are_sound_are_read_exactly(tmp_path):
    from jaxgan.evaluation.evaluator import load_reference
    mu, sigma = np.arange(3.0), np.asfortranarray(np.arange(9.0).reshape(3, 3))
    np.savez_compressed(tmp_path / "stats.npz", mu=mu.astype(np.float32), sigma=sigma)
    got_mu, got_sigma = load_reference(str(tmp_path / "stats.npz"))
    np.testing.assert_array_equal(got_mu, mu)
    np.testing.assert_array_equal(got_sigma, sigma)


# ----------------------------------------------------------------------------- 3. memory


def test_a_batch_that_cannot_fit_is_one_line_before_anything_is_written(tmp_path):
    # 2 devices (the test processes'), 16x16x1 digits: a real and a generated batch in float32
    # alone take 2 * 4 * 256 bytes an image; this batch asks for more than the machine's memory.
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    batch = (physical // (2 * 4 * 16 * 16) // 4 + 1) * 4
    result = train_py(tmp_path / "run", **{"train.batch_size": batch})
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert line.startswith(f"error: train.batch_size={batch} cannot fit: {batch // 2:,} images per "
                           "device of 16x16x1 need at least "), line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_width_that_cannot_fit_any_device_is_refused_by_the_config():
    with pytest.raises(jaxgan.UserError, match=r"^config key model.g_width=100000 is not allowed: "
                                               r"it must be an integer >= 1 and <= 65536$"):
        jaxgan.config.resolve(tiny_config(**{"model.g_width": 100_000}))


def test_a_model_whose_state_cannot_fit_a_device_is_refused_before_anything_is_written(
        tmp_path, monkeypatch):
    from jaxgan import mesh as mesh_lib
    workdir = tmp_path / "run"
    workdir.mkdir()
    # The tiny model's state is ~0.4 MB: a device of 64 KB holds its batches but not its state.
    monkeypatch.setattr(mesh_lib, "device_memory_bytes", lambda mesh: 64 << 10)
    with pytest.raises(jaxgan.UserError, match=r"^model.g_width=8 cannot fit: the training state "
                                               r"\(parameters, Adam moments, EMA\) is 0.\d MiB and "
                                               r"a device has 0.1 MiB; lower model.g_width / "
                                               r"model.d_width$"):
        jaxgan.train_and_evaluate(tiny_config(), workdir)
    assert os.listdir(workdir) == []  # no .lock, no checkpoints/, no tensorboard/


def out_of_memory(*args, **kwargs):
    raise jax.errors.JaxRuntimeError(
        "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 6.10GiB.\n"
        "BufferAssignment OOM Debugging.\n" + "allocation details\n" * 50)


@pytest.mark.parametrize("existing", [False, True])
def test_out_of_memory_in_the_loop_is_one_line_and_leaves_nothing_behind(tmp_path, monkeypatch,
                                                                         existing):
    from jaxgan.training.pipeline import Pipeline
    workdir = tmp_path / "run"
    if existing:
        workdir.mkdir()
    monkeypatch.setattr(Pipeline, "advance", out_of_memory)
    with pytest.raises(jaxgan.UserError) as raised:
        jaxgan.train_and_evaluate(tiny_config(), workdir)
    message = str(raised.value)
    assert message.startswith("out of memory during training (while trying to allocate 6.10GiB "
                              "on CPU, 8 devices of "), message
    assert message.endswith("; the likely key: train.batch_size=16 (2 images per device), then "
                            "model.g_width=8 / model.d_width=8 and data.resolution=16: lower it "
                            "and rerun")
    assert "\n" not in message
    # A rerun trips on nothing: no lock file, no empty checkpoints/, no TensorBoard file.
    assert os.listdir(workdir) == [] if existing else not workdir.exists()


# ----------------------------------------------------------------------------- 5. saves


def test_a_read_only_checkpoint_folder_is_found_at_the_start(tmp_path):
    workdir = tmp_path / "run"
    folder = workdir / "checkpoints"
    folder.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores permissions and cannot mount here")
        folder.chmod(0o555)
    try:
        result = train_py(workdir, **{"data.source": "folder:/no/such/folder"})
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)])
    assert result.returncode == 1
    reason = "Read-only file system" if mounted else "Permission denied"
    assert error_lines(result.stderr) == [
        f"error: checkpoint folder {folder} is not writable: {reason}"], result.stderr[-2000:]


@pytest.mark.parametrize("stop", [False, True])
def test_saved_is_said_only_once_the_save_is_on_disk(tmp_path, monkeypatch, capsys, stop):
    import errno
    import orbax.checkpoint as ocp
    from jaxgan.loop import StopSignals

    def full_disk(self):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ocp.CheckpointManager, "wait_until_finished", full_disk)
    if stop:  # as if SIGTERM arrived during step 2
        monkeypatch.setattr(StopSignals, "stop_requested",
                            lambda self, step: setattr(self, "received", "SIGTERM") or step == 2)
    with pytest.raises(jaxgan.UserError, match="^could not write a checkpoint to .*: No space "
                                               "left on device"):
        jaxgan.train_and_evaluate(tiny_config(), tmp_path / "run")
    out = capsys.readouterr().out
    assert "saved" not in out and "Done" not in out, out


# ----------------------------------------------------------------------------- 6. sample.py


def test_sample_outdir_that_is_a_file_says_not_a_directory(tmp_path, capsys):
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    not_a_folder = tmp_path / "F"
    not_a_folder.write_text("keep me")
    status, out, err = sample(capsys, "--workdir", workdir, "--outdir", not_a_folder)
    assert status == 1 and out == ""
    assert err.splitlines() == [f"error: --outdir {not_a_folder} is not a directory (a file of "
                                "that name exists): name a folder, new or existing"]
    assert not_a_folder.read_text() == "keep me"
