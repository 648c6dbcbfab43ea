"""The PyTorch twin (benchmarks/pytorch_twin.py) is the same GAN as jaxgan: same initial weights,
batch and draws -> the same step, checked by benchmarks/twin_check.py in its two regimes (its
tolerances are float32 rounding bounds, derived there): plain SGD, where the losses, every
gradient, parameter, BatchNorm mean and spectral vector agree step after step; and the config's
Adam, where what precedes D's first update agrees and both sides' parameters and moments are Adam
of their own gradients. The benchmarks compare jaxgan's speed against this twin, so the
comparison is only fair while this passes."""
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
    # Every other option of the step: hinge, two D updates per step, DiffAugment's three
    # operations (each applied to an image with probability 0.7), LeCam.
    "hinge-n_critic2-augment-lecam": {"train.loss": "hinge", "train.n_critic": 2,
                                      "train.augment": "color,translation,cutout",
                                      "train.augment_p": 0.7, "train.lecam": 0.3},
    # Unconditional, no norm in D (biases), no mode seeking, RGB.
    "unconditional-no_d_norm-rgb": {"data.conditional": False, "model.d_norm": "none",
                                    "train.mode_seeking": 0.0, "data.channels": 3},
}
# The resnet family as configs/art.py trains it (spectral norm in D, hinge, two D updates,
# DiffAugment, LeCam), with self-attention in G and D. One step with SGD (the Adam path is
# the other families').
RESNET = {"model.arch": "resnet", "model.d_norm": "spectral", "model.attention_resolution": 8,
          "train.loss": "hinge", "train.n_critic": 2, "train.mode_seeking": 0.0,
          "train.augment": "color,translation,cutout", "train.lecam": 0.3}


# The fastgan family as configs/fastgan_cpu.py trains it (32 px: spectral norm on every conv of G
# and D, noise injection, skip-layer excitation, D's three reconstruction decoders, hinge,
# DiffAugment color + translation), class-conditional (conditional BatchNorm, projection head).
# The twin gets jaxgan's noise maps and quadrants (twin_check.compare). One step in each regime.
FASTGAN = {"data.source": "digits"}


def _config(overrides, name="digits"):
    config = resolve(tiny_config(name, **overrides))
    num_classes = 10 if config.data.conditional else 0
    shape = (config.data.resolution, config.data.resolution, config.data.channels)
    return config, shape, num_classes


def _assert_agree(reports):
    for step, report in enumerate(reports, 1):
        assert twin_check.within_tolerance(report), (step, twin_check.failed(report))


@pytest.mark.parametrize("overrides", CASES.values(), ids=CASES.keys())
def test_twin_matches_jaxgan_step_for_step_with_sgd(overrides):
    config, shape, num_classes = _config(overrides)
    steps = 2 if not overrides else 1  # the digits default two steps, the others one
    _assert_agree(twin_check.compare(config, shape, num_classes, steps=steps, optimizer="sgd"))


def test_twin_matches_jaxgan_step_with_adam_and_two_d_updates():
    """The config's Adam with n_critic = 2 (the digits default with Adam: the beta2 test below,
    whose only failing check is the one it breaks)."""
    config, shape, num_classes = _config(CASES["hinge-n_critic2-augment-lecam"])
    _assert_agree(twin_check.compare(config, shape, num_classes, steps=1, optimizer="adam"))


def test_resnet_twin_matches_jaxgan_step():
    config, shape, num_classes = _config(RESNET)
    _assert_agree(twin_check.compare(config, shape, num_classes, steps=1, optimizer="sgd"))


@pytest.mark.parametrize("optimizer", twin_check.REGIMES)
def test_fastgan_twin_matches_jaxgan_step(optimizer):
    config, shape, num_classes = _config(FASTGAN, "fastgan_cpu")
    assert config.model.arch == "fastgan" and shape == (32, 32, 3)
    _assert_agree(twin_check.compare(config, shape, num_classes, steps=1, optimizer=optimizer))


def test_fastgan_twin_has_the_official_256px_parameter_counts():
    """At the paper's size (configs/fastgan.py at 256 px) the twin is the official model: its
    parameter counts are jaxgan's, which tests/test_fastgan.py checks against the official code
    (G less the unbuilt 192-parameter to_128 head)."""
    import pytorch_twin_fastgan as fastgan
    G = fastgan.Generator(256, 3, 0, latent_dim=256, width=64)
    D = fastgan.Discriminator(256, 3, 0, width=64)
    assert (pytorch_twin.num_params(G), pytorch_twin.num_params(D)) == \
        (29_127_846 - 64 * 3, 11_526_160)
    with torch.no_grad():
        images = G(torch.zeros(2, 256))
        logits, reconstruction = D(images, None, torch.tensor([0, 3]))
    assert images.shape == (2, 3, 256, 256) and logits.shape == (2, 50)
    assert reconstruction.shape == ()


def test_check_sees_a_missing_mode_seeking_term(monkeypatch):
    """The check is sensitive: a twin that drops the mode-seeking term differs in G's loss."""
    config, shape, num_classes = _config({})
    original = pytorch_twin.TwinGAN.__init__

    def without_mode_seeking(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.mode_seeking = 0.0
    monkeypatch.setattr(pytorch_twin.TwinGAN, "__init__", without_mode_seeking)
    (report,) = twin_check.compare(config, shape, num_classes, steps=1, optimizer="sgd")
    assert not twin_check.within_tolerance(report)
    assert "gradient G" in {check.name for check in twin_check.failed(report)}
    (metrics,) = [check for check in report["checks"] if check.name == "metrics"]
    assert metrics.where == "g_loss"  # D's metrics agree; G's loss lost a term


def test_check_sees_a_wrong_adam_beta2(monkeypatch):
    """The Adam regime holds each side to the config's Adam: a twin with beta2 0.99 instead of
    0.999 fails its second moments (and only the twin's)."""
    config, shape, num_classes = _config({})
    original = pytorch_twin.TwinGAN.__init__

    def with_beta2(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for opt in (self.opt_g, self.opt_d):
            opt.param_groups[0]["betas"] = (config.train.b1, 0.99)
    monkeypatch.setattr(pytorch_twin.TwinGAN, "__init__", with_beta2)
    (report,) = twin_check.compare(config, shape, num_classes, steps=1, optimizer="adam")
    assert {check.name for check in twin_check.failed(report)} == {
        "twin nu (Adam of its own gradients)"}


@pytest.mark.parametrize("overrides, named", [
    ({"model.dtype": "float16"}, "model.dtype='float16'"),
    ({"train.r1_gamma": 1.0}, "train.r1_gamma=1.0"),
    ({"train.lr_decay": 0.5}, "train.lr_decay=0.5"),
    ({"train.augment": "translation", "train.ada_target": 0.6}, "train.ada_target=0.6"),
    ({"train.loss": "rpgan"}, "train.loss='rpgan'"),
    ({"train.r2_gamma": 1.0}, "train.r2_gamma=1.0"),
    ({**RESNET, "model.hierarchical_latent": True}, "model.hierarchical_latent=True"),
])
def test_twin_refuses_what_it_does_not_model_by_name(overrides, named):
    config, shape, num_classes = _config(overrides)
    with pytest.raises(ValueError, match=f"does not model {named}"):
        pytorch_twin.TwinGAN(config, shape, num_classes)
