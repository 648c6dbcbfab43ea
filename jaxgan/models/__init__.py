"""Model families, chosen by `config.model.arch`.

A family is one module with `build(model_config, image_shape, num_classes, axis_name)` returning
`(generator, discriminator)` (Flax Linen modules) and raising UserError for settings it does not
support:
- `generator.apply(variables, z_BZ, labels_B, train=...)` -> images in [-1, 1];
- `discriminator.apply(variables, x_BHWC, labels_B, train=...)` -> (logits (B,), or patch logits
  (B, P) that the losses average over; its own loss, a float32 scalar, 0 where it has none). The
  train step adds D's own loss to D's objective in D updates and reports it as the class's
  `aux_loss_name` (where it names one). A discriminator that needs random numbers per image
  declares them: a static `draw_numbers(key, n_updates, batch_size) -> {name: (n_updates,
  batch_size, ...) array}`; the step draws them for the global batch (so 1 device and N agree)
  and passes each D update's part as `numbers=` on its real batch (fastgan: which quadrant to
  reconstruct). A conditional discriminator's projection head goes through
  `jaxgan.models.norms.projection`, which sows every class's score for `train.class_loss` (on in
  the digits default; without the scores that loss is refused in one line).
The registry (which module builds each `model.arch`, and each family's own config keys) is
jaxgan.families, below the config: adding a family is that module plus its line there. Modules
are imported when a family is built, so that the config can be validated before JAX starts.
"""
from __future__ import annotations

import importlib

from jaxgan.config import check_family_keys
from jaxgan.families import FAMILIES
from jaxgan.images import to_uint8


def build_models(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair `model_config` describes, for images of `image_shape`
    (H, W, C); `axis_name` names the data-parallel mesh axis BatchNorm averages over."""
    check_family_keys(model_config)  # (resolve did, for a config that went through it)
    family = importlib.import_module(FAMILIES[model_config.arch].module, __name__)
    return family.build(model_config, tuple(image_shape), num_classes, axis_name)


def draw_discriminator_numbers(discriminator, key, n_updates: int, batch_size: int) -> dict:
    """The per-image random numbers `discriminator` declares (`draw_numbers`; {} where none)."""
    draw = getattr(discriminator, "draw_numbers", None)
    return {} if draw is None else draw(key, n_updates, batch_size)


def aux_loss_name(discriminator) -> str | None:
    """The metric name of the discriminator's own loss (None: it has none to report)."""
    return getattr(discriminator, "aux_loss_name", None)


def generate_uint8(generator, variables, z_NZ, labels_N):
    """uint8 images (N, H, W, C) from noise, BatchNorm in inference mode (no batch dependence)."""
    return to_uint8(generator.apply(variables, z_NZ, labels_N, train=False))


def variables(params, batch_stats) -> dict:
    """The variables dict Flax's `apply` takes (no 'batch_stats' for models without BatchNorm)."""
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}
