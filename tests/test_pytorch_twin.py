"""The PyTorch twin (benchmarks/pytorch_twin.py) is the same GAN as jaxgan: same initial weights,
batch and draws -> the same losses, gradients (Adam moments), parameters and BatchNorm means after
each step, within benchmarks/twin_check.py's tolerances (justified there). The benchmarks compare
jaxgan's speed against this twin, so the comparison is only fair while this passes."""
import sys

import pytest

from conftest import ROOT, tiny_config

torch = pytest.importorskip("torch")
sys.path.insert(0, str(ROOT / "benchmarks"))

import pytorch_twin  # noqa: E402
import twin_check  # noqa: E402
from jaxgan.config import resolve  # noqa: E402

CASES = {
    # The digits default: conditional, BatchNorm in D, mode seeking (paired labels).
    "conditional-mode_seeking": {},
    # Every other option of the step: hinge, two D updates per step, DiffAugment translation.
    "hinge-n_critic2-translation": {"train.loss": "hinge", "train.n_critic": 2,
                                    "train.augment": "translation"},
    # Unconditional, no norm in D (biases), no mode seeking, RGB.
    "unconditional-no_d_norm-rgb": {"data.conditional": False, "model.d_norm": "none",
                                    "train.mode_seeking": 0.0, "data.channels": 3},
}


def _config(overrides):
    config = resolve(tiny_config(**overrides))
    num_classes = 10 if config.data.conditional else 0
    shape = (config.data.resolution, config.data.resolution, config.data.channels)
    return config, shape, num_classes


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_twin_matches_jaxgan_step_for_step(overrides):
    config, shape, num_classes = _config(overrides)
    reports = twin_check.compare(config, shape, num_classes, steps=2)
    for step, report in enumerate(reports, 1):
        assert twin_check.within_tolerance(report, config.train.d_lr), (step, report)


def test_check_sees_a_missing_mode_seeking_term(monkeypatch):
    """The check is sensitive: a twin that drops the mode-seeking term differs in G's loss."""
    config, shape, num_classes = _config({})
    original = pytorch_twin.TwinGAN.__init__

    def without_mode_seeking(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.mode_seeking = 0.0
    monkeypatch.setattr(pytorch_twin.TwinGAN, "__init__", without_mode_seeking)
    (report,) = twin_check.compare(config, shape, num_classes, steps=1)
    assert report["metrics"] > 100 * twin_check.TOLERANCES["metrics"]
    assert report["where"]["metrics"] == "g_loss"
    assert not twin_check.within_tolerance(report, config.train.d_lr)


@pytest.mark.parametrize("key, value, named", [("model.dtype", "float16", "model.dtype='float16'")])
def test_twin_refuses_what_it_does_not_model_by_name(key, value, named):
    config, shape, num_classes = _config({key: value})
    with pytest.raises(ValueError, match=f"does not model {named}"):
        pytorch_twin.TwinGAN(config, shape, num_classes)
