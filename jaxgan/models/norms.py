"""Normalisation and label-conditioning layers shared by the model families."""
from __future__ import annotations

from typing import Any

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


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose gain and bias are looked up per class; plain BatchNorm when unconditional.

    Statistics are taken over the global batch: `axis_name` names the data-parallel mesh axis.
    """
    num_classes: int
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x, labels, train: bool):
        conditional = self.num_classes > 0
        x = batch_norm(train, self.axis_name, self.dtype, use_scale=not conditional,
                       use_bias=not conditional)(x)
        if conditional:
            features = x.shape[-1]
            gain = embed_labels(nn.Embed(self.num_classes, features, name="gain",
                                         embedding_init=nn.initializers.ones), labels)
            bias = embed_labels(nn.Embed(self.num_classes, features, name="bias",
                                         embedding_init=nn.initializers.zeros), labels)
            x = x * gain[:, None, None, :].astype(x.dtype) + bias[:, None, None, :].astype(x.dtype)
        return x
