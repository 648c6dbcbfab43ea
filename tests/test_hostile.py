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
from jaxgan.errors import UserError

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
    from jaxgan.folder import load_folder
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
