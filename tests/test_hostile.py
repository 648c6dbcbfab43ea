"""Hostile files and real faults (issue 13): files that try to run code, names that try to break
file names or terminals, sizes that try to exhaust memory, disks that fill up."""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from jaxgan import fileio

POSTSCRIPT = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
              b"/loop { loop } def { } loop\nshowpage\n%%EOF\n")


def fake_ghostscript(folder):
    """A `gs` on PATH that only records that it was run (so no real Ghostscript is needed to prove
    that a file is never handed to it)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    marker = folder / "ghostscript-ran"
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> '{marker}'\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IEXEC)
    return bin_dir, marker


def noise_png(path, size=(64, 64), seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


# ----------------------------------------------------------------------------- 1. PostScript


def test_postscript_named_png_in_a_folder_is_skipped_never_run(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin
    from jaxgan.data.folder import load_folder
    bin_dir, marker = fake_ghostscript(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # let Pillow look for gs again
    images = tmp_path / "images"
    images.mkdir()
    noise_png(images / "a.png")
    (images / "cat.png").write_bytes(POSTSCRIPT)
    loaded = load_folder(str(images), 16, 3, num_workers=1)
    assert len(loaded.images) == 1
    reasons = {os.path.basename(p): why for p, why in loaded.skipped}
    assert reasons == {"cat.png": "not a supported image format (PostScript/EPS)"}
    assert not marker.exists(), "Ghostscript was started"


def test_postscript_named_png_is_one_line_error_in_the_watermark_tool(tmp_path):
    bin_dir, marker = fake_ghostscript(tmp_path)
    (tmp_path / "cat.png").write_bytes(POSTSCRIPT)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    for command in (["detect", "cat.png"], ["embed", "cat.png", "out.png"]):
        result = subprocess.run([sys.executable, "-m", "jaxgan.watermark", *command], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: cannot read cat.png: not a supported image format (PostScript/EPS)"]
    assert not marker.exists(), "Ghostscript was started"
    assert not (tmp_path / "out.png").exists()


def test_open_raster_refuses_every_delegating_format(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(POSTSCRIPT)
    with pytest.raises(Image.UnidentifiedImageError):
        fileio.open_raster(str(path))
    assert "EPS" not in fileio.raster_formats() and "PNG" in fileio.raster_formats()


# ----------------------------------------------------------------------------- watermark tool


def watermark_cli(*args, cwd=None, shell_prefix="", timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = " ".join([shell_prefix, f"'{sys.executable}' -m jaxgan.watermark",
                        *(f"'{a}'" for a in args)])
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_watermark_detect_refuses_a_fifo_instead_of_hanging(tmp_path):
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    result = watermark_cli("detect", pipe, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: cannot read {pipe}: not a regular file"


PEAK_RSS = """
import resource, sys
from jaxgan import watermark
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
status = watermark.main(sys.argv[1:])
print(status, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def test_watermark_detect_memory_is_bounded_on_a_large_image(tmp_path):
    # 4000x4000 RGB, smooth (a small file): detect holds the 8-bit pixels plus one stripe.
    ramp = np.linspace(0, 255, 4000, dtype=np.float32)
    pixels = np.empty((4000, 4000, 3), np.uint8)
    pixels[..., 0] = ramp[None, :]
    pixels[..., 1] = ramp[:, None]
    pixels[..., 2] = 128
    path = tmp_path / "large.png"
    Image.fromarray(pixels).save(path, compress_level=1)
    del pixels
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, "detect", str(path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    status, peak_growth = result.stdout.split()[-2:]
    assert status == "1"  # not marked
    # 16 Mpx: Pillow's RGBX copy (4 B/px) + numpy's RGB copy (3 B/px) = 112 MB; one float64
    # luma of the whole image alone would be 128 MB more. Measured: ~125 MB (before: ~900 MB).
    assert int(peak_growth) < 10 * 4000 * 4000, int(peak_growth) / 2**20


def test_watermark_reads_16_bit_images_like_the_folder_loader_and_refuses_to_embed_them(tmp_path):
    from jaxgan.art import watermark
    rng = np.random.default_rng(0)
    gray = watermark.embed(rng.integers(30, 220, (96, 96), dtype=np.uint8))
    sixteen = tmp_path / "marked16.png"
    Image.fromarray(gray.astype(np.uint16) * 257).save(sixteen)  # the same picture at 16 bits
    assert Image.open(sixteen).mode == "I;16"
    result = watermark_cli("detect", sixteen)
    assert result.returncode == 0 and "\tmarked\t" in result.stdout, result.stdout + result.stderr
    result = watermark_cli("embed", sixteen, tmp_path / "out.png")
    assert result.returncode == 2
    assert "cannot be marked without losing its depth" in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_watermark_embed_drops_a_cmyk_profile_from_rgb_output(tmp_path):
    cmyk_profile = bytes(16) + b"CMYK" + bytes(108)  # an ICC header naming the CMYK colour space
    source = tmp_path / "scan.tiff"
    Image.new("CMYK", (80, 80), (0, 200, 200, 0)).save(source, icc_profile=cmyk_profile)
    result = watermark_cli("embed", source, tmp_path / "out.png")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info


# ----------------------------------------------------------------------------- 10. atomic writes


def test_watermark_embed_in_place_on_a_full_disk_keeps_the_original(tmp_path):
    original = tmp_path / "x.png"
    noise_png(original, size=(300, 300))
    before = original.read_bytes()
    assert len(before) > 200 * 1024
    # ulimit -f: writes past 100 KiB fail with EFBIG, as on a full disk.
    result = watermark_cli("embed", "x.png", "x.png", cwd=tmp_path, shell_prefix="ulimit -f 100;")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: cannot write x.png: File too large"
    assert original.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["x.png"]  # no temporary file left behind


# ----------------------------------------------------------------------------- 3. decode bounds

LOAD_PEAK_RSS = """
import resource, sys
from jaxgan.data import folder
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kwargs = eval(sys.argv[2])
loaded = folder.load_folder(sys.argv[1], 16, 3, **kwargs)
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(len(loaded.images), len(loaded.skipped), growth)
"""


def sixteen_bit_folder(root, count, side):
    root.mkdir()
    ramp = (np.linspace(0, 65535, side, dtype=np.float64)[None, :] * np.ones((side, 1))).astype(np.uint16)
    for i in range(count):
        Image.fromarray(ramp).save(root / f"big{i}.png", compress_level=1)
    return root


def load_peak(root, **kwargs):
    result = subprocess.run([sys.executable, "-c", LOAD_PEAK_RSS, str(root), repr(kwargs)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return [int(v) for v in result.stdout.split()[-3:]]


def test_16_bit_images_decode_in_bounded_memory(tmp_path):
    side = 3000  # 9 Mpx, 16-bit grayscale: 18 MB decoded
    root = sixteen_bit_folder(tmp_path / "big", 4, side)
    # Four decoders at once. Before: each widened the image to int64 (copies of 8 B/px): peak
    # growth measured 529 MB. Now: Pillow's image + numpy's copy (2 + 2 B/px) and the 8-bit
    # result: measured 124 MB (88 MB with the budget below).
    images, skipped, growth = load_peak(root, num_workers=4)
    assert (images, skipped) == (4, 0)
    assert growth < 4 * 12 * side * side, growth / 2**20
    # A decode memory budget of one image's worth: one decoder at a time, whatever the cores.
    images, skipped, growth = load_peak(root, num_workers=4, memory_budget=1)
    assert (images, skipped) == (4, 0)
    assert growth < 12 * side * side, growth / 2**20


def test_images_above_the_pixel_limit_are_skipped_with_the_limit_named(tmp_path):
    from jaxgan.data.folder import load_folder
    noise_png(tmp_path / "small.png", size=(32, 32))
    noise_png(tmp_path / "large.png", size=(300, 200))
    loaded = load_folder(str(tmp_path), 16, 3, num_workers=2, max_pixels=50_000)
    assert len(loaded.images) == 1
    assert [(os.path.basename(p), why) for p, why in loaded.skipped] == [
        ("large.png", "too large: 300x200 pixels, more than data.max_image_pixels=50,000")]


# ----------------------------------------------------------------------------- 6. TFDS labels

TRAIN_UNDER_MOCK = """
import runpy, sys
import numpy as np
import tensorflow_datasets as tfds
labels = eval(sys.argv[1])
def records(builder, split=None, **kwargs):  # mnist-like records with the labels given
    rng = np.random.default_rng(0)
    return [{"image": rng.integers(0, 256, (28, 28, 1), dtype=np.uint8), "label": label}
            for label in labels]
sys.argv = ["train.py", *sys.argv[2:]]
with tfds.testing.mock_data(as_data_source_fn=records):
    runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.parametrize("labels, needle", [
    ([0, 1, -1, 2, -1, 3, 4, 5], "2 of 8 examples have no label (-1)"),
    ([0, 1, 2, 10, 3, 4, 5, 6], "1 of 8 examples have a label outside 0..9 (10)"),
])
def test_tfds_labels_out_of_range_are_refused_at_load_through_train_py(tmp_path, labels, needle):
    from conftest import override_flags
    workdir = tmp_path / "run"
    flags = ["--config", str(ROOT / "configs" / "mnist.py"), f"--workdir={workdir}",
             "--config.data.tfds_reader=data_source", *override_flags(**{"train.num_steps": 2})]
    result = subprocess.run([sys.executable, "-c", TRAIN_UNDER_MOCK, repr(labels), *flags], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and needle in lines[0], result.stderr[-3000:]
    assert "data.conditional=False" in lines[0] and "Traceback" not in result.stderr
    assert not (workdir / "checkpoints").exists()
