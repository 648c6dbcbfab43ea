"""The layers the model families share: BatchNorm over the global batch, the one conditional
BatchNorm (each family's form is a setting of it), spectral normalisation, label embeddings and
nearest-neighbour 2x upsampling."""
from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp


def batch_norm(train: bool, axis_name: str | None, dtype=None, epsilon: float = 1e-5,
               **kwargs) -> nn.BatchNorm:
    """BatchNorm with PyTorch's defaults (momentum 0.1 there, 0.9 in flax's convention; eps 1e-5)
    over the global batch: `axis_name` names the data-parallel mesh axis."""
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon,
                        axis_name=axis_name if train else None, dtype=dtype, **kwargs)


def embed_labels(embed: nn.Embed, labels):
    """Look up class embeddings: int labels (B,), or class weights (B, K) for a weighted mix of
    the embeddings (what morphing from one class to another interpolates)."""
    if jnp.issubdtype(labels.dtype, jnp.integer):
        return embed(labels)
    embed(jnp.zeros((1,), jnp.int32))  # creates the table on first use
    return labels.astype(jnp.float32) @ embed.embedding


def projection(module: nn.Module, embed: nn.Embed, labels, features_BC):
    """The projection head's term <embed(label), features> (B,) (Miyato & Koyama 2018).

    Every class's <embedding, features> (B, K) is sown as `intermediates/class_logits`: the
    head read as a classifier, which train.class_loss trains (P2GAN, Han et al. 2021). Flax
    keeps a sown value only where `apply` is asked for that collection, so it costs nothing
    elsewhere and adds no parameter."""
    embedding_BC = embed_labels(embed, labels).astype(jnp.float32)
    sow_class_scores(module, features_BC, embed.embedding.astype(jnp.float32))
    return jnp.sum(embedding_BC * features_BC, axis=-1)


def sow_class_scores(module: nn.Module, features_BC, table_KC):
    """Sow every class's projection score (B, K) as `intermediates/class_logits`, and the
    features they project (B, C) as `intermediates/class_features` (what a test bounds the
    scores' rounding by)."""
    module.sow("intermediates", "class_features", features_BC)
    module.sow("intermediates", "class_logits", features_BC @ table_KC.T)


def upsample2x(x_BHWC):
    """Nearest-neighbour 2x (PyTorch's F.interpolate(scale_factor=2, mode='nearest'))."""
    return jnp.repeat(jnp.repeat(x_BHWC, 2, axis=1), 2, axis=2)


def spectrally_normalised(layer: nn.Module, enabled: bool, train: bool, epsilon: float):
    """`layer`, or (when `enabled`) `layer` with its kernel divided by its largest singular value:
    flax's nn.SpectralNorm, one power-iteration step per training call (its vector in the
    'batch_stats' collection). `epsilon` is the reference code's (StudioGAN 1e-6, FastGAN 1e-12)."""
    if not enabled:
        return layer
    return lambda *args: nn.SpectralNorm(layer, epsilon=epsilon)(*args, update_stats=train)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without an affine of its own, then a gain and a bias that depend on the class;
    plain BatchNorm (its own affine, scale from `plain_scale_init`) when unconditional.

    Each family's form is a setting, as its reference code writes it:
    - dcgan (the cGAN form): gain, bias = per-class embeddings from 1 and 0; x * gain + bias;
    - fastgan: the same, gains from the official N(1, 0.02), PyTorch's two-pass variance;
    - resnet (StudioGAN's SNGAN / BigGAN): gain = 1 + f(c), bias = f'(c), orthogonal init,
      epsilon 1e-4; f, f' per-class embeddings, or (`vector=True`, BigGAN) bias-free linear maps
      of a conditioning vector, spectrally normalised with the network.
    `cond`: int labels (B,), class weights (B, K) (a blend of the embeddings), or the vector.
    Statistics are taken over the global batch: `axis_name` names the data-parallel mesh axis.
    """
    num_classes: int
    axis_name: str | None = None
    dtype: Any = None
    epsilon: float = 1e-5
    two_pass_variance: bool = False   # PyTorch's variance (see fastgan.exact_batch_norm)
    gain_init: Callable = nn.initializers.ones
    bias_init: Callable = nn.initializers.zeros
    plain_scale_init: Callable = nn.initializers.ones
    one_plus_gain: bool = False
    spectral: bool = False            # the vector path's linear maps
    spectral_epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x, cond, train: bool, vector: bool = False):
        variance = {"use_fast_variance": False} if self.two_pass_variance else {}
        if not vector and self.num_classes == 0:
            return batch_norm(train, self.axis_name, self.dtype, epsilon=self.epsilon,
                              scale_init=self.plain_scale_init, **variance)(x)
        x = batch_norm(train, self.axis_name, self.dtype, epsilon=self.epsilon, use_scale=False,
                       use_bias=False, **variance)(x)
        features = x.shape[-1]
        if vector:
            linear = lambda init, name: spectrally_normalised(
                nn.Dense(features, use_bias=False, kernel_init=init, dtype=self.dtype, name=name),
                self.spectral, train, self.spectral_epsilon)(cond)
            gain, bias = linear(self.gain_init, "gain"), linear(self.bias_init, "bias")
        else:
            gain = embed_labels(nn.Embed(self.num_classes, features, name="gain",
                                         embedding_init=self.gain_init), cond)
            bias = embed_labels(nn.Embed(self.num_classes, features, name="bias",
                                         embedding_init=self.bias_init), cond)
        if self.one_plus_gain:
            gain = 1.0 + gain
        return x * gain[:, None, None, :].astype(x.dtype) + bias[:, None, None, :].astype(x.dtype)
