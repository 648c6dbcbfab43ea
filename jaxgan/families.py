"""The model families, by `model.arch`: the module that builds each and the `model.*` keys only
it takes (pure Python, no JAX: the config is validated from here before JAX starts).

Every family takes the keys jaxgan.config declares for all (`model.arch`, `latent_dim`,
`g_width`, `d_width`, `d_norm`, `dtype`); a family's own keys are its entry's `keys`. The config
holds every family's keys (so that `--config.model.KEY=VALUE` and older workdirs' configs name
them all); a key the chosen family does not take must stay at its default (jaxgan.config's
`check_family_keys`, one place for every family).

Adding a family is its module (`build(model_config, image_shape, num_classes, axis_name)`, see
jaxgan.models) plus its line here, with its own keys if it has any.
"""
from __future__ import annotations

import dataclasses

from jaxgan.keys import MAX_WIDTH, Key, boolean, is_int, power_of_two, integer


@dataclasses.dataclass(frozen=True)
class Family:
    # The module with `build`, imported by jaxgan.models when the family is built; a leading dot:
    # relative to jaxgan.models (as `from .dcgan import build` would name it there).
    module: str
    keys: dict[str, Key] = dataclasses.field(default_factory=dict)  # its own model.* keys


def _attention_ok(v) -> bool:
    return is_int(v) and (v == 0 or power_of_two(v))


# A key two families take is declared once (so they agree on it).
G_SPECTRAL_NORM = boolean(False, "resnet, fastgan: spectral norm on G's layers too (BigGAN, "
                                 "FastGAN)")

RESNET_KEYS = {
    "g_spectral_norm": G_SPECTRAL_NORM,
    "attention_resolution": Key(0, "resnet: SAGAN self-attention in G and D at this feature-map "
                                "size (0: none)", "0 or a power of two from 8 to 1024",
                                _attention_ok, 12),
    "shared_embedding_dim": integer(0, "resnet: BigGAN's shared class embedding of this size "
                                    "feeding every conditional BatchNorm (0: per-block class "
                                    "embeddings, SNGAN)", 0, MAX_WIDTH),
    "hierarchical_latent": boolean(False, "resnet: BigGAN's hierarchical latent (z split across "
                                   "the Dense layer and the blocks)"),
}
R3GAN_KEYS = {
    "blocks_per_stage": integer(0, "r3gan: residual blocks at each resolution (0: 2, R3GAN's)",
                                0, MAX_WIDTH),
    "group_width": integer(0, "r3gan: channels per group of the blocks' grouped 3x3 convolutions "
                           "(0: 16, R3GAN's CIFAR-10 cardinality; its ImageNet presets: 32)", 0,
                           MAX_WIDTH),
}

DEFAULT = "dcgan"  # the digits recipe's
FAMILIES: dict[str, Family] = {
    "dcgan": Family(".dcgan"),
    "resnet": Family(".resnet", RESNET_KEYS),
    "fastgan": Family(".fastgan", {"g_spectral_norm": G_SPECTRAL_NORM}),
    "r3gan": Family(".r3gan", R3GAN_KEYS),
}


def family_keys() -> dict[str, Key]:
    """Every family's own keys, by name (without 'model.'), in the registry's order."""
    keys = {}
    for family in FAMILIES.values():
        for name, key in family.keys.items():
            if keys.setdefault(name, key) != key:
                raise ValueError(f"model.{name}: two families declare it differently; declare "
                                 "it once and give both the same Key")
    return keys


def owners(name: str) -> list[str]:
    """The families that take `model.<name>` as their own key."""
    return [arch for arch, family in FAMILIES.items() if name in family.keys]
