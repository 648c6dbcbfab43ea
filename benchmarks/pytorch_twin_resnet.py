"""The PyTorch twin of jaxgan's resnet family (jaxgan.models.resnet), NCHW: SNGAN's networks.

Imported by benchmarks/pytorch_twin.py (which builds the step around it); benchmark-only.
Layers carry jaxgan's names (`G.blocks[0].conv1` is `block0/conv1`), and `param_table` maps every
flax path to its tensor, so a layer jaxgan adds or renames fails the copy instead of being missed.

Modelled: the SNGAN generator (class-conditional BatchNorm gain = 1 + embedding, bias =
embedding, eps 1e-4; or plain BatchNorm unconditional), the discriminator with or without spectral
norm on every conv, linear and projection embedding, SAGAN self-attention at
`attention_resolution`. Spectral norm is `FlaxSpectralNorm` below, a torch parametrization: torch's
own parametrizations.spectral_norm iterates in the other order (v from the stored v, then u; sigma
from the new u and v: half an iteration more than flax per call), so it is the same cost but not
the same numbers. Not modelled (refused by pytorch_twin.unsupported): BigGAN's shared embedding,
hierarchical latent and spectral norm in G.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

# The architecture tables are jaxgan's own (pure Python: no JAX work happens at import).
from jaxgan.models.resnet import BN_EPSILON, D_BLOCKS, G_IN0, G_OUT


def _orthogonal(module: nn.Module) -> nn.Module:
    """StudioGAN's `ortho` init, as jaxgan's: orthogonal weights, zero biases."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


class FlaxSpectralNorm(nn.Module):
    """flax.linen.SpectralNorm (n_steps=1, jaxgan's epsilon 1e-6) as a torch parametrization.

    With M the weight as an (out, in) matrix (flax's kernel reshaped to (in, out), transposed)
    and u the stored unit vector on the output axis (on the feature axis of an embedding:
    `dim=1`): v = n(M^T u), u' = n(M v), sigma = u' . M v with u', v held constant, W / sigma;
    in training mode u' is stored. n(x) = x / sqrt(|x|^2 + eps), flax's l2 normalisation."""

    def __init__(self, weight: torch.Tensor, dim: int = 0, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.register_buffer("_u", F.normalize(torch.randn(weight.shape[dim]), dim=0))

    def _normalise(self, x):
        return x * torch.rsqrt((x * x).sum() + self.eps)

    def forward(self, weight):
        matrix = (weight.transpose(0, self.dim) if self.dim else weight).flatten(1)
        with torch.no_grad():
            v = self._normalise(matrix.t().mv(self._u))
            u = self._normalise(matrix.mv(v))
            if self.training:
                self._u.copy_(u)
        sigma = torch.dot(u, matrix.mv(v))  # u is not the buffer: later in-place updates miss it
        return weight / torch.where(sigma != 0, sigma, torch.ones_like(sigma))


def _maybe_sn(module: nn.Module, spectral: bool, dim: int = 0) -> nn.Module:
    if spectral:
        parametrize.register_parametrization(module, "weight",
                                             FlaxSpectralNorm(module.weight, dim))
    return module


class CondBatchNorm(nn.Module):
    """jaxgan.models.norms.ConditionalBatchNorm as the resnet family sets it, with class labels (or plain, unconditional)."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(features, eps=BN_EPSILON, momentum=0.1, affine=num_classes == 0)
        if num_classes:
            self.gain = _orthogonal(nn.Embedding(num_classes, features))
            self.bias = _orthogonal(nn.Embedding(num_classes, features))

    def forward(self, x, labels):
        x = self.bn(x)
        if self.num_classes:
            x = x * (1.0 + self.gain(labels))[:, :, None, None] + self.bias(labels)[:, :, None, None]
        return x


class SelfAttention(nn.Module):
    """jaxgan.models.resnet.SelfAttention (SAGAN as StudioGAN writes it)."""

    def __init__(self, channels: int, spectral: bool):
        super().__init__()
        conv = lambda cin, cout: _maybe_sn(_orthogonal(nn.Conv2d(cin, cout, 1, bias=False)), spectral)
        self.theta, self.phi = conv(channels, channels // 8), conv(channels, channels // 8)
        self.g, self.out = conv(channels, channels // 2), conv(channels // 2, channels)
        self.sigma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        b, c, h, w = x.shape
        theta = self.theta(x).view(b, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(b, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(b, c // 2, h * w // 4)
        attention = torch.softmax(torch.bmm(theta.transpose(1, 2), phi).float(), -1)
        attended = torch.bmm(g, attention.to(g.dtype).transpose(1, 2)).view(b, c // 2, h, w)
        return x + self.sigma * self.out(attended)


class GeneratorBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int):
        super().__init__()
        self.bn1, self.bn2 = CondBatchNorm(cin, num_classes), CondBatchNorm(cout, num_classes)
        self.conv1 = _orthogonal(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = _orthogonal(nn.Conv2d(cout, cout, 3, padding=1))
        self.shortcut = _orthogonal(nn.Conv2d(cin, cout, 1))

    def forward(self, x, labels):
        up = lambda t: F.interpolate(t, scale_factor=2, mode="nearest")
        h = self.conv1(up(F.relu(self.bn1(x, labels))))
        h = self.conv2(F.relu(self.bn2(h, labels)))
        return h + self.shortcut(up(x))


class Generator(nn.Module):
    def __init__(self, resolution: int, channels: int, num_classes: int, latent_dim: int,
                 width: int, attention_resolution: int = 0):
        super().__init__()
        self.num_classes = num_classes
        self.in0 = G_IN0[resolution] * width
        self.linear = _orthogonal(nn.Linear(latent_dim, 16 * self.in0))
        widths = [m * width for m in G_OUT[resolution]]
        self.blocks = nn.ModuleList(GeneratorBlock(cin, cout, num_classes)
                                    for cin, cout in zip([self.in0] + widths[:-1], widths))
        sizes = [4 * 2 ** (i + 1) for i in range(len(widths))]
        self.attention_after = sizes.index(attention_resolution) if attention_resolution in sizes \
            else None
        if self.attention_after is not None:
            self.attention = SelfAttention(widths[self.attention_after], spectral=False)
        self.bn = nn.BatchNorm2d(widths[-1], eps=BN_EPSILON, momentum=0.1)
        self.conv_out = _orthogonal(nn.Conv2d(widths[-1], channels, 3, padding=1))

    def forward(self, z, labels=None):
        # jaxgan reshapes the Dense output to NHWC (B, 4, 4, C).
        x = self.linear(z).view(z.shape[0], 4, 4, self.in0).permute(0, 3, 1, 2)
        for i, block in enumerate(self.blocks):
            x = block(x, labels)
            if i == self.attention_after:
                x = self.attention(x)
        return torch.tanh(self.conv_out(F.relu(self.bn(x))).float())


class DiscriminatorBlock(nn.Module):
    def __init__(self, cin: int, cout: int, downsample: bool, first: bool, spectral: bool):
        super().__init__()
        sn = lambda m: _maybe_sn(_orthogonal(m), spectral)
        self.downsample, self.first = downsample, first
        self.conv1 = sn(nn.Conv2d(cin, cout, 3, padding=1))
        self.conv2 = sn(nn.Conv2d(cout, cout, 3, padding=1))
        self.has_shortcut = first or downsample or cin != cout
        if self.has_shortcut:
            self.shortcut = sn(nn.Conv2d(cin, cout, 1))

    def forward(self, x):
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.first:
            return h + self.shortcut(F.avg_pool2d(x, 2))
        if self.has_shortcut:
            x = self.shortcut(x)
            x = F.avg_pool2d(x, 2) if self.downsample else x
        return h + x


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, num_classes: int, width: int,
                 attention_resolution: int = 0, spectral: bool = True):
        super().__init__()
        self.num_classes = num_classes
        blocks, cin, size = [], channels, resolution
        self.attention_after = None
        for i, (multiple, downsample) in enumerate(D_BLOCKS[resolution]):
            blocks.append(DiscriminatorBlock(cin, multiple * width, downsample, i == 0, spectral))
            cin, previous = multiple * width, size
            size = size // 2 if downsample else size
            if size == attention_resolution and size != previous:
                self.attention_after = i
                self.attention = SelfAttention(cin, spectral)
        self.blocks = nn.ModuleList(blocks)
        self.linear = _maybe_sn(_orthogonal(nn.Linear(cin, 1)), spectral)
        if num_classes:
            self.projection = _maybe_sn(_orthogonal(nn.Embedding(num_classes, cin)), spectral, 1)

    def forward(self, x, labels=None):
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.attention_after:
                x = self.attention(x)
        features = F.relu(x).float().sum(dim=(2, 3))
        logits = self.linear(features).view(-1).float()
        if self.num_classes:
            logits = logits + (self.projection(labels).float() * features).sum(dim=1)
        return logits


# ---------------------------------------------------------------------------------------------
# flax paths -> the twin's tensors.

def _weight(module: nn.Module) -> torch.Tensor:
    """The trainable weight (under a spectral-norm parametrization: the unnormalised original)."""
    if hasattr(module, "parametrizations"):
        return module.parametrizations.weight.original
    return module.weight


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    return "copy"


def _layer(params, stats, vectors, path, module, sn_index=None):
    """Record `module`'s weight (and bias) under flax `path`, its spectral-norm `u` under
    ('SpectralNorm_k', 'name/kernel/u') of the enclosing flax module."""
    leaf = "embedding" if isinstance(module, nn.Embedding) else "kernel"
    params[path + (leaf,)] = (_weight(module), _kind(module))
    if getattr(module, "bias", None) is not None:
        params[path + ("bias",)] = (module.bias, "copy")
    if hasattr(module, "parametrizations"):
        vectors[path[:-1] + (f"SpectralNorm_{sn_index}", f"{path[-1]}/{leaf}/u")] = \
            module.parametrizations.weight[0]._u


def _batch_norm(params, stats, path, bn: nn.BatchNorm2d):
    if bn.affine:
        params[path + ("scale",)] = (bn.weight, "copy")
        params[path + ("bias",)] = (bn.bias, "copy")
    stats[path + ("mean",)] = bn.running_mean
    stats[path + ("var",)] = bn.running_var


def _cond_batch_norm(params, stats, path, norm: CondBatchNorm):
    if norm.num_classes:
        params[path + ("gain", "embedding")] = (norm.gain.weight, "copy")
        params[path + ("bias", "embedding")] = (norm.bias.weight, "copy")
    _batch_norm(params, stats, path + ("BatchNorm_0",), norm.bn)


def _attention(params, vectors, path, attention: SelfAttention):
    for k, name in enumerate(("theta", "phi", "g", "out")):
        _layer(params, {}, vectors, path + (name,), getattr(attention, name), k)
    params[path + ("sigma",)] = (attention.sigma, "copy")


def param_table(G: Generator, D: Discriminator):
    """({(net, flax path): (tensor, kind)}, {(net, path): BatchNorm buffer},
    {(net, batch_stats path): spectral-norm u buffer}) for both networks."""
    params, stats, vectors = {}, {}, {}
    g_params, g_stats = {}, {}
    _layer(g_params, g_stats, {}, ("linear",), G.linear)
    for i, block in enumerate(G.blocks):
        p = (f"block{i}",)
        _cond_batch_norm(g_params, g_stats, p + ("bn1",), block.bn1)
        _cond_batch_norm(g_params, g_stats, p + ("bn2",), block.bn2)
        for name in ("conv1", "conv2", "shortcut"):
            _layer(g_params, g_stats, {}, p + (name,), getattr(block, name))
    if G.attention_after is not None:
        _attention(g_params, {}, ("attention",), G.attention)
    _batch_norm(g_params, g_stats, ("BatchNorm_0",), G.bn)
    _layer(g_params, g_stats, {}, ("conv_out",), G.conv_out)

    d_params, d_vectors = {}, {}
    for i, block in enumerate(D.blocks):
        names = ("conv1", "conv2") + (("shortcut",) if block.has_shortcut else ())
        for k, name in enumerate(names):
            _layer(d_params, {}, d_vectors, (f"block{i}", name), getattr(block, name), k)
    if D.attention_after is not None:
        _attention(d_params, d_vectors, ("attention",), D.attention)
    _layer(d_params, {}, d_vectors, ("linear",), D.linear, 0)
    if D.num_classes:
        _layer(d_params, {}, d_vectors, ("projection",), D.projection, 1)

    params.update({("g", k): v for k, v in g_params.items()})
    params.update({("d", k): v for k, v in d_params.items()})
    stats.update({("g", k): v for k, v in g_stats.items()})
    vectors.update({("d", k): v for k, v in d_vectors.items()})
    return params, stats, vectors
