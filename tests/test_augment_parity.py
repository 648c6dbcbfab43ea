"""train.augment="ada" against the official PyTorch AugmentPipe (benchmarks/augment_parity.py):
on the official code's own random numbers, every geometric operation gives the official inverse
matrix and every colour operation and cutout the official pixels, within float32 rounding bounds
derived there. Needs torch, scipy and a checkout of the official code (brownvc/R3GAN or
NVlabs/stylegan2-ada-pytorch, not copied here: NVIDIA's licence) named by
JAXGAN_AUGMENT_PIPE_SOURCE:

  git clone https://github.com/brownvc/R3GAN /tmp/R3GAN
  JAXGAN_AUGMENT_PIPE_SOURCE=/tmp/R3GAN python -m pytest tests/test_augment_parity.py
"""
import os
import pathlib
import sys

import pytest

from conftest import ROOT

pytest.importorskip("torch")
pytest.importorskip("scipy")
SOURCE = os.environ.get("JAXGAN_AUGMENT_PIPE_SOURCE", "")
if not (SOURCE and (pathlib.Path(SOURCE) / "training" / "augment.py").exists()):
    pytest.skip("set JAXGAN_AUGMENT_PIPE_SOURCE to a checkout of the official AugmentPipe",
                allow_module_level=True)
sys.path.insert(0, str(ROOT / "benchmarks"))

import augment_parity  # noqa: E402

ROWS = augment_parity.compare(SOURCE, batch=32, side=16, p=0.7)


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}-{r[1]}ch-{r[2]}" for r in ROWS])
def test_matches_official_augment_pipe(row):
    case, channels, what, difference, bound = row
    assert difference <= bound, f"{case} ({channels} channels): {what} differ by {difference}"
