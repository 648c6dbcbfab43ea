"""The PyTorch twin of jaxgan's fastgan family (jaxgan.models.fastgan), NCHW.

Written from the official code (github odegeasslbc/FastGAN-pytorch, models.py and train.py): the
same building blocks, kept as the official writes them (`InitLayer`: ConvTranspose2d(nz, 2C, 4)
-> BatchNorm -> GLU; `UpBlock` / `UpBlockComp`: nearest 2x -> conv3x3 -> [NoiseInjection] ->
BatchNorm -> GLU [-> conv3x3 -> NoiseInjection -> BatchNorm -> GLU]; `SEBlock`: AdaptiveAvgPool2d(4)
-> conv4x4 -> Swish -> conv1x1 -> Sigmoid gating the larger map; `DownBlock` / `DownBlockComp`;
`SimpleDecoder`; D's two branches on the image and on its 2x nearest-downsampled copy, patch logits
concatenated; bias-free convolutions, every one spectrally normalised; N(0, 0.02) weights and
N(1, 0.02) BatchNorm gains), with jaxgan's generalisation to every size from 32 to 1024 px (the
official tables `nfc_multi` keyed by map size, SLE pairs 16x apart in G and 8x apart in D) and
with jaxgan's departures (its module docstring), so that the two compute the same step:
- G has one output and ends in tanh (the official 256-px G also returns a 128-px image through a
  1x1 `to_128` conv that D's small branch sees for fakes; jaxgan's D sees the image downsampled);
- the reconstruction loss is the mean squared error, not LPIPS; the quadrant D reconstructs is
  drawn per image (the official draws one per batch); plain hinge, not the official's noisy
  hinge (relu(U[0.8, 1) - D(x))), as jaxgan's train.loss='hinge';
- noise injection takes the noise maps it is given (jaxgan derives them from z; the check feeds
  jaxgan's), or draws fresh ones as the official does (the timings);
- class conditioning when there are classes: conditional BatchNorm in G, projection head in D.
Spectral norm is pytorch_twin_resnet.FlaxSpectralNorm (flax's iteration order; eps 1e-12 as
jaxgan's fastgan and torch's spectral_norm): torch's own differs by half an iteration per call.

Every layer carries jaxgan's name (`G.up8.conv1` is `up8/conv1`) and every module lists its
spectrally normalised convolutions in the order jaxgan calls them (`sn_order`), which is how
flax numbers their `SpectralNorm_k` wrappers: `param_table` maps every flax path to its tensor, so
a layer jaxgan adds or renames fails the copy instead of being missed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

# The width tables and size limits are jaxgan's own (pure Python: no JAX work at import).
from jaxgan.models.fastgan import D_MULT, G_MULT, SMALL_MAX, TRUNK_MAX
from pytorch_twin_resnet import FlaxSpectralNorm

SPECTRAL_EPSILON = 1e-12  # jaxgan.models.fastgan.Convs' and torch's spectral_norm's


def conv2d(cin: int, cout: int, kernel: int, stride: int, padding: int, spectral: bool):
    """The official conv2d (spectral_norm(nn.Conv2d(..., bias=False))), N(0, 0.02) weights."""
    conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if spectral:
        parametrize.register_parametrization(
            conv, "weight", FlaxSpectralNorm(conv.weight, 0, SPECTRAL_EPSILON))
    return conv


def conv_transpose4x4(cin: int, cout: int, spectral: bool):
    """The official InitLayer's convTranspose2d(nz, C, 4, 1, 0) (spectral norm over dim 1: the
    output channels of a ConvTranspose2d's (in, out, h, w) weight, flax's kernel axis)."""
    conv = nn.ConvTranspose2d(cin, cout, 4, 1, 0, bias=False)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if spectral:
        parametrize.register_parametrization(
            conv, "weight", FlaxSpectralNorm(conv.weight, 1, SPECTRAL_EPSILON))
    return conv


def batch_norm2d(features: int, affine: bool = True):
    """The official BatchNorm2d with weights_init's gains N(1, 0.02) and zero biases."""
    bn = nn.BatchNorm2d(features, eps=1e-5, momentum=0.1, affine=affine)
    if affine:
        nn.init.normal_(bn.weight, 1.0, 0.02)
        nn.init.zeros_(bn.bias)
    return bn


def glu(x):
    """The official GLU: the first half of the channels gated by the sigmoid of the second."""
    half = x.shape[1] // 2
    return x[:, :half] * torch.sigmoid(x[:, half:])


def up2x(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


def lrelu(x):
    return F.leaky_relu(x, 0.2)


class Norm(nn.Module):
    """G's BatchNorm (jaxgan.models.fastgan.conditional_norm): the official one, or without affine plus
    per-class gain (init N(1, 0.02)) and bias (init 0) when there are classes."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.bn = batch_norm2d(features, affine=num_classes == 0)
        if num_classes:
            self.gain, self.bias = nn.Embedding(num_classes, features), \
                nn.Embedding(num_classes, features)
            nn.init.normal_(self.gain.weight, 1.0, 0.02)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x, labels):
        x = self.bn(x)
        if self.num_classes:
            x = x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]
        return x


class NoiseInjection(nn.Module):
    """The official NoiseInjection: x + weight * noise (B, 1, H, W), weight from 0."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, noise=None):
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
        return x + self.weight * noise.to(x.dtype)


class SEBlock(nn.Module):
    """The official SEBlock (skip-layer excitation)."""

    def __init__(self, cin: int, cout: int, spectral: bool):
        super().__init__()
        self.conv1 = conv2d(cin, cout, 4, 1, 0, spectral)
        self.conv2 = conv2d(cout, cout, 1, 1, 0, spectral)
        self.sn_order = ("conv1", "conv2")

    def forward(self, small, big):
        gate = self.conv1(F.adaptive_avg_pool2d(small, 4))
        gate = self.conv2(gate * torch.sigmoid(gate))  # Swish
        return big * torch.sigmoid(gate)


class UpBlock(nn.Module):
    """The official UpBlock, or UpBlockComp (`comp`: noise, and a second conv3x3 stage)."""

    def __init__(self, cin: int, features: int, comp: bool, num_classes: int, spectral: bool,
                 size: int):
        super().__init__()
        self.comp, self.size = comp, size
        self.conv1 = conv2d(cin, 2 * features, 3, 1, 1, spectral)
        self.bn1 = Norm(2 * features, num_classes)
        self.sn_order = ("conv1",)
        if comp:
            self.noise1, self.noise2 = NoiseInjection(), NoiseInjection()
            self.conv2 = conv2d(features, 2 * features, 3, 1, 1, spectral)
            self.bn2 = Norm(2 * features, num_classes)
            self.sn_order = ("conv1", "conv2")

    def noise_indices(self):
        """jaxgan's fold_in indices of this block's two noise maps (2 * size, 2 * size + 1)."""
        return (2 * self.size, 2 * self.size + 1) if self.comp else ()

    def forward(self, x, labels, noise: dict | None = None):
        noise = noise or {}
        x = self.conv1(up2x(x))
        if self.comp:
            x = self.noise1(x, noise.get(2 * self.size))
        x = glu(self.bn1(x, labels))
        if self.comp:
            x = self.noise2(self.conv2(x), noise.get(2 * self.size + 1))
            x = glu(self.bn2(x, labels))
        return x


def generator_excitations(resolution: int) -> dict:
    """jaxgan.models.fastgan.generator_excitations: target size -> source size of G's SLEs."""
    pairs = {16 * s: s for s in (4, 8, 16, 32) if 16 * s <= resolution}
    return pairs or {resolution: 4}


class Generator(nn.Module):
    """G(z, labels, noise) -> images in [-1, 1] (B, C, R, R): the official Generator."""

    def __init__(self, resolution: int, channels: int, num_classes: int, latent_dim: int,
                 width: int, spectral: bool = True):
        super().__init__()
        nfc = lambda size: int(G_MULT[size] * width)
        self.num_classes, self.latent_dim = num_classes, latent_dim
        self.init = conv_transpose4x4(latent_dim, 2 * nfc(4), spectral)
        self.init_bn = Norm(2 * nfc(4), num_classes)
        self.sizes = [2 ** k for k in range(3, int(math.log2(resolution)) + 1)]
        self.excitations = generator_excitations(resolution)
        cin = nfc(4)
        for size in self.sizes:
            comp = math.log2(size) % 2 == 1  # 8, 32, 128, 512: the official UpBlockComp
            setattr(self, f"up{size}", UpBlock(cin, nfc(size), comp, num_classes, spectral, size))
            if size in self.excitations:
                setattr(self, f"sle{size}", SEBlock(nfc(self.excitations[size]), nfc(size),
                                                    spectral))
            cin = nfc(size)
        self.to_big = conv2d(cin, channels, 3, 1, 1, spectral)
        self.sn_order = ("init", "to_big")

    def up_blocks(self):
        return [getattr(self, f"up{size}") for size in self.sizes]

    def noise_shapes(self) -> dict:
        """{jaxgan fold_in index: (H, W)} of every noise map G draws."""
        return {index: (block.size, block.size) for block in self.up_blocks()
                for index in block.noise_indices()}

    def forward(self, z, labels=None, noise: dict | None = None):
        x = glu(self.init_bn(self.init(z.view(z.shape[0], -1, 1, 1)), labels))
        maps = {4: x}
        for size in self.sizes:
            x = getattr(self, f"up{size}")(x, labels, noise)
            if size in self.excitations:
                x = getattr(self, f"sle{size}")(maps[self.excitations[size]], x)
            maps[size] = x
        return torch.tanh(self.to_big(x).float())


class DownBlock(nn.Module):
    """The official DownBlock, or DownBlockComp (`comp`)."""

    def __init__(self, cin: int, features: int, comp: bool, spectral: bool):
        super().__init__()
        self.comp = comp
        self.conv1 = conv2d(cin, features, 4, 2, 1, spectral)
        self.bn1 = batch_norm2d(features)
        self.sn_order = ("conv1",)
        if comp:
            self.conv2 = conv2d(features, features, 3, 1, 1, spectral)
            self.bn2 = batch_norm2d(features)
            self.direct = conv2d(cin, features, 1, 1, 0, spectral)
            self.bn_direct = batch_norm2d(features)
            self.sn_order = ("conv1", "conv2", "direct")

    def forward(self, x):
        h = lrelu(self.bn1(self.conv1(x)))
        if not self.comp:
            return h
        h = lrelu(self.bn2(self.conv2(h)))
        return (h + lrelu(self.bn_direct(self.direct(F.avg_pool2d(x, 2))))) / 2


class SimpleDecoder(nn.Module):
    """The official SimpleDecoder, from an 8x8 map up to `size` (official: 128)."""

    def __init__(self, cin: int, size: int, channels: int, width: int, spectral: bool):
        super().__init__()
        self.sizes = [2 ** k for k in range(4, int(math.log2(size)) + 1)]
        for s in self.sizes:
            features = int(G_MULT[s] * width)
            setattr(self, f"conv{s}", conv2d(cin, 2 * features, 3, 1, 1, spectral))
            setattr(self, f"bn{s}", batch_norm2d(2 * features))
            cin = features
        self.to_image = conv2d(cin, channels, 3, 1, 1, spectral)
        self.sn_order = tuple(f"conv{s}" for s in self.sizes) + ("to_image",)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(x, 8)
        for s in self.sizes:
            x = glu(getattr(self, f"bn{s}")(getattr(self, f"conv{s}")(up2x(x))))
        return torch.tanh(self.to_image(x).float())


def quadrant(x, quadrant_B):
    """Each image's quadrant 0-3 (the official crop_image_by_part / feat_32[:, :, :8, :8] ...)."""
    h, w = x.shape[2] // 2, x.shape[3] // 2
    quarters = torch.stack([x[:, :, :h, :w], x[:, :, :h, w:], x[:, :, h:, :w], x[:, :, h:, w:]],
                           dim=1)
    return quarters[torch.arange(x.shape[0], device=x.device), quadrant_B]


class Discriminator(nn.Module):
    """D(x, labels) -> patch logits (B, 50); D(x, labels, quadrant_B) -> (logits,
    reconstruction loss): the official Discriminator with its three SimpleDecoders."""

    def __init__(self, resolution: int, channels: int, num_classes: int, width: int,
                 spectral: bool = True):
        super().__init__()
        nfc = lambda size: int(D_MULT[size] * width)
        self.resolution, self.num_classes = resolution, num_classes
        order = []
        size = resolution
        if size <= TRUNK_MAX:
            self.stem = conv2d(channels, nfc(2 * size), 3, 1, 1, spectral)
            order.append("stem")
            cin = nfc(2 * size)
        else:
            cin = channels
        self.stem_sizes = []
        while size > TRUNK_MAX:  # the official 512 and 1024 px down_from_big: strided convs
            size //= 2
            setattr(self, f"stem{size}", conv2d(cin, nfc(2 * size), 4, 2, 1, spectral))
            order.append(f"stem{size}")
            if size < resolution // 2:
                setattr(self, f"stem_bn{size}", batch_norm2d(nfc(2 * size)))
            self.stem_sizes.append(size)
            cin = nfc(2 * size)
        self.trunk_size = size
        channels_at = {size: cin}
        self.down_sizes = []
        while size > 8:
            size //= 2
            setattr(self, f"down{size}", DownBlock(cin, nfc(2 * size), True, spectral))
            cin = nfc(2 * size)
            if 8 * size in channels_at:
                setattr(self, f"sle{size}", SEBlock(channels_at[8 * size], cin, spectral))
            channels_at[size] = cin
            self.down_sizes.append(size)
        self.features = cin
        self.rf_big_conv1 = conv2d(cin, nfc(8), 1, 1, 0, spectral)
        self.rf_big_bn = batch_norm2d(nfc(8))
        self.rf_big_conv2 = conv2d(nfc(8), 1, 4, 1, 0, spectral)

        self.small_size = min(resolution // 2, SMALL_MAX)
        s = self.small_size // 2
        self.small_stem = conv2d(channels, nfc(4 * s), 4, 2, 1, spectral)
        cin_small = nfc(4 * s)
        self.small_sizes = []
        while s > 8:
            s //= 2
            setattr(self, f"small_down{s}", DownBlock(cin_small, nfc(4 * s), False, spectral))
            cin_small = nfc(4 * s)
            self.small_sizes.append(s)
        self.rf_small = conv2d(cin_small, 1, 4, 1, 0, spectral)
        order += ["rf_big_conv1", "rf_big_conv2", "small_stem", "rf_small"]
        self.sn_order = tuple(order)
        if num_classes:
            self.projection = nn.Embedding(num_classes, cin)
            nn.init.normal_(self.projection.weight, 0.0, 0.02)
        decoder_width = width // 2  # the official 32 at ndf 64
        self.decoder_big = SimpleDecoder(cin, self.small_size, channels, decoder_width, spectral)
        self.decoder_small = SimpleDecoder(cin_small, self.small_size, channels, decoder_width,
                                           spectral)
        self.decoder_part = SimpleDecoder(channels_at[16], self.small_size, channels,
                                          decoder_width, spectral)

    def forward(self, x_in, labels=None, quadrant_B=None):
        x = lrelu(self.stem(x_in)) if self.resolution <= TRUNK_MAX else x_in
        for size in self.stem_sizes:
            x = getattr(self, f"stem{size}")(x)
            if size < self.resolution // 2:
                x = getattr(self, f"stem_bn{size}")(x)
            x = lrelu(x)
        maps = {self.trunk_size: x}
        for size in self.down_sizes:
            x = getattr(self, f"down{size}")(x)
            if 8 * size in maps:
                x = getattr(self, f"sle{size}")(maps[8 * size], x)
            maps[size] = x
        logits_big = self.rf_big_conv2(lrelu(self.rf_big_bn(self.rf_big_conv1(x))))
        small = F.interpolate(x_in, size=self.small_size)  # nearest: every f-th pixel
        y = lrelu(self.small_stem(small))
        for s in self.small_sizes:
            y = getattr(self, f"small_down{s}")(y)
        logits_small = self.rf_small(y)
        batch = x_in.shape[0]
        logits = torch.cat([logits_big.reshape(batch, -1), logits_small.reshape(batch, -1)],
                           dim=1).float()
        if self.num_classes:
            features = x.float().sum(dim=(2, 3))
            logits = logits + (self.projection(labels) * features).sum(dim=1, keepdim=True)
        if quadrant_B is None:
            return logits
        target = F.interpolate(x_in, size=self.small_size).float()
        part_target = F.interpolate(quadrant(x_in, quadrant_B), size=self.small_size).float()
        loss = (F.mse_loss(self.decoder_big(x), target)
                + F.mse_loss(self.decoder_small(y), target)
                + F.mse_loss(self.decoder_part(quadrant(maps[16], quadrant_B)), part_target))
        return logits, loss


# ---------------------------------------------------------------------------------------------
# flax paths -> the twin's tensors.

def _weight(conv: nn.Module) -> torch.Tensor:
    if hasattr(conv, "parametrizations"):
        return conv.parametrizations.weight.original
    return conv.weight


def _walk(module: nn.Module, path: tuple, params: dict, stats: dict, vectors: dict) -> None:
    """Record `module`'s parameters and buffers under jaxgan's flax paths, then its children's."""
    for k, name in enumerate(getattr(module, "sn_order", ())):
        conv = getattr(module, name)
        kind = "upconv" if isinstance(conv, nn.ConvTranspose2d) else "conv"
        params[path + (name, "kernel")] = (_weight(conv), kind)
        if hasattr(conv, "parametrizations"):
            vectors[path + (f"SpectralNorm_{k}", f"{name}/kernel/u")] = \
                conv.parametrizations.weight[0]._u
    for name, child in module.named_children():
        if isinstance(child, Norm):
            bn_path = path + (name, "BatchNorm_0")
            if child.num_classes:
                params[path + (name, "gain", "embedding")] = (child.gain.weight, "copy")
                params[path + (name, "bias", "embedding")] = (child.bias.weight, "copy")
            else:
                params[bn_path + ("scale",)] = (child.bn.weight, "copy")
                params[bn_path + ("bias",)] = (child.bn.bias, "copy")
            stats[bn_path + ("mean",)] = child.bn.running_mean
            stats[bn_path + ("var",)] = child.bn.running_var
        elif isinstance(child, nn.BatchNorm2d):
            params[path + (name, "scale")] = (child.weight, "copy")
            params[path + (name, "bias")] = (child.bias, "copy")
            stats[path + (name, "mean")] = child.running_mean
            stats[path + (name, "var")] = child.running_var
        elif isinstance(child, NoiseInjection):
            params[path + (name, "weight")] = (child.weight, "copy")
        elif isinstance(child, nn.Embedding):
            params[path + (name, "embedding")] = (child.weight, "copy")
        elif isinstance(child, (nn.Conv2d, nn.ConvTranspose2d)):
            if name not in getattr(module, "sn_order", ()):
                raise ValueError(f"{'/'.join(path + (name,))}: a convolution not in sn_order")
        else:
            _walk(child, path + (name,), params, stats, vectors)


def param_table(G: Generator, D: Discriminator):
    """({(net, flax path): (tensor, kind)}, {(net, path): BatchNorm buffer},
    {(net, batch_stats path): spectral-norm u buffer}) for both networks."""
    params, stats, vectors = {}, {}, {}
    for net, module in (("g", G), ("d", D)):
        p, s, v = {}, {}, {}
        _walk(module, (), p, s, v)
        params.update({(net, k): t for k, t in p.items()})
        stats.update({(net, k): t for k, t in s.items()})
        vectors.update({(net, k): t for k, t in v.items()})
    return params, stats, vectors
