"""FastGAN (Liu, Zhu, Song, Elgammal, ICLR 2021, "Towards Faster and Stabilized GAN Training for
High-fidelity Few-shot Image Synthesis"), written from its official PyTorch code
(github odegeasslbc/FastGAN-pytorch, models.py and train.py) for NHWC, conditional or not.

Generator: z -> 4x4 (a 4x4 transposed convolution of z, BatchNorm, GLU), then one up-sampling block
  per doubling (nearest 2x -> conv3x3 -> BatchNorm -> GLU; at 8, 32, 128 and 512 px a second
  conv3x3 with per-pixel noise injection before both BatchNorms), skip-layer excitation (SLE: the
  16x smaller feature map, pooled to 4x4, gates the channels of the larger one: 4 -> 64, 8 -> 128,
  16 -> 256, 32 -> 512; below 64 px, 4 -> the output), then conv3x3 -> tanh.
Discriminator: two branches whose patch logits (5x5 each) are concatenated into (B, 50):
  the image at full size through down-sampling residual blocks ((conv4x4/2 -> BN -> LReLU ->
  conv3x3 -> BN -> LReLU) + (avg-pool -> conv1x1 -> BN -> LReLU), halved) to 8x8, SLE from the
  map 8x larger, conv1x1 -> BN -> LReLU -> conv4x4; and the image at half size (at most 128 px)
  through plain down blocks to 8x8 and a conv4x4. On real images D also decodes (self-supervised
  reconstruction): its 8x8 maps of both branches back to the half-size image, and a random
  quadrant of its 16x16 map back to that quadrant of the image, with small decoders (nearest 2x ->
  conv3x3 -> BN -> GLU per doubling, conv3x3 -> tanh).
Every convolution is spectrally normalised (`model.d_norm="spectral"`, `model.g_spectral_norm`),
weights start N(0, 0.02), BatchNorm gains N(1, 0.02); channel widths are the official tables'
multiples of g_width (ngf) and d_width (ndf), the decoders' of d_width / 2 (the official 32 at
ndf 64). Widths are keyed by feature-map size as in the official code, so 32-128 px models are the
official ones' smaller end; at 256 px with ngf = ndf = 64 and z of 256 the parameter counts equal
the official code's (tests/test_fastgan.py).

Where jaxgan differs, and why:
- G has one output, like every family: the official G also returns a 128-px image from a 1x1
  conv (`to_128`, 192 parameters at 256 px) that D's small branch sees for fakes; here that branch
  sees the image nearest-downsampled, as the official code does for real images. G ends in tanh
  (the official code has none below 1024 px) because jaxgan's generators output [-1, 1].
- The reconstruction loss is the mean squared error (what the `lightweight-gan` package uses),
  not LPIPS: its pretrained weights are not available offline. Weight 1 per reconstruction.
- The noise maps of noise injection are a function of z (each image's key is made from the bits
  of its latent vector), so that sampling stays seed -> image and a batch split over devices
  draws the same noise; the official code draws fresh noise every call.
- Class conditioning (the official model is unconditional): class-conditional BatchNorm in G, a
  projection <embedding(label), sum-pooled 8x8 features> added to every patch logit of D.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from jaxgan.errors import UserError
from jaxgan.models.cpu_conv import DownConv2x, conv_same
from jaxgan.models.norms import (ConditionalBatchNorm, batch_norm, projection,
                                 spectrally_normalised, upsample2x)

MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024
# The official nfc_multi tables: channels = multiple * ngf (G, decoders) or * ndf (D), by map size.
G_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
D_MULT = {4: 16, 8: 16, 16: 8, 32: 4, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
WEIGHT_INIT = nn.initializers.normal(0.02)
SN_EPSILON = 1e-12  # the official spectral_norm's (PyTorch's default)
TRUNK_MAX = 256    # D's full-size branch starts at most at 256x256 (strided stems above)
SMALL_MAX = 128    # D's half-size branch and the reconstructions: at most 128x128


def gain_init(key, shape, dtype=jnp.float32):
    """The official weights_init of BatchNorm gains: N(1, 0.02)."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def conditional_norm(num_classes: int, axis_name: str | None, dtype,
                     name: str) -> ConditionalBatchNorm:
    """G's BatchNorm: the official one (exact variance, N(1, 0.02) gains), with class-conditional
    gain and bias (looked up per class, or blended by class weights) when `num_classes` > 0."""
    return ConditionalBatchNorm(num_classes, axis_name, dtype, two_pass_variance=True,
                                gain_init=gain_init, plain_scale_init=gain_init, name=name)


def exact_batch_norm(train: bool, axis_name: str | None, dtype=None, **kwargs) -> nn.BatchNorm:
    """BatchNorm whose variance is the mean of squared deviations (two passes, as PyTorch's), not
    E[x^2] - E[x]^2: after GLU gates, means are large next to spreads of a batch of 8 and the
    subtraction cancels. Measured one train step at 32 px: G's Adam moments 1 vs 8 devices were
    up to 3e-3 of a leaf's scale apart with the one-pass form, within 1e-5 with this."""
    return batch_norm(train, axis_name, dtype, use_fast_variance=False, **kwargs)


def glu(x):
    """Gated linear unit over channels: the first half gated by the sigmoid of the second."""
    a, b = jnp.split(x, 2, axis=-1)
    return a * nn.sigmoid(b)


def nearest_downsample(x_BHWC, size: int):
    """PyTorch's F.interpolate(x, size) (mode 'nearest') for an integer factor: every f-th pixel."""
    factor = x_BHWC.shape[1] // size
    return x_BHWC[:, ::factor, ::factor]


def quadrant(x_BHWC, quadrant_B):
    """Each image's quadrant 0 (top left), 1 (top right), 2 (bottom left) or 3 (bottom right), as
    the official crop_image_by_part and feat_32[:, :, :8, :8] ... slicing."""
    h, w = x_BHWC.shape[1] // 2, x_BHWC.shape[2] // 2
    quarters = jnp.stack([x_BHWC[:, :h, :w], x_BHWC[:, :h, w:], x_BHWC[:, h:, :w],
                          x_BHWC[:, h:, w:]], axis=1)
    return jnp.take_along_axis(quarters, quadrant_B[:, None, None, None, None], axis=1)[:, 0]


def noise_keys(z_BZ):
    """One PRNG key per image from the bits of its first and last latent entries."""
    bits = lax.bitcast_convert_type(z_BZ.astype(jnp.float32), jnp.uint32)
    data = jnp.stack([bits[:, 0], bits[:, -1]], axis=-1)
    return jax.vmap(lambda d: jax.random.wrap_key_data(d, impl="threefry2x32"))(data)


class Convs:
    """Bias-free convolutions of one network, spectrally normalised or not (the official conv2d)."""

    def __init__(self, spectral: bool, train: bool, dtype):
        self.spectral, self.train, self.dtype = spectral, train, dtype

    def __call__(self, x, features, kernel, stride=1, padding="SAME", name=None):
        if kernel == 4 and stride == 2:  # exactly nn.Conv(k4, s2, pad 1), faster on XLA:CPU
            layer = DownConv2x(features, kernel_init=WEIGHT_INIT, dtype=self.dtype, name=name)
        else:
            layer = nn.Conv(features, (kernel, kernel), padding=padding, use_bias=False,
                            kernel_init=WEIGHT_INIT, dtype=self.dtype, name=name,
                            conv_general_dilated=conv_same)
        return spectrally_normalised(layer, self.spectral, self.train, SN_EPSILON)(x)

    def transpose4x4(self, x, features, name=None):
        """The official InitLayer's ConvTranspose2d(nz, C, 4, 1, 0) on a 1x1 map."""
        layer = nn.ConvTranspose(features, (4, 4), padding="VALID", use_bias=False,
                                 kernel_init=WEIGHT_INIT, dtype=self.dtype, name=name)
        return spectrally_normalised(layer, self.spectral, self.train, SN_EPSILON)(x)


class SkipLayerExcitation(nn.Module):
    """The official SEBlock: `big` times sigmoid(conv1x1(swish(conv4x4(avg-pool_4x4(small)))))."""
    spectral: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, small_BHWC, big_BHWC, train: bool):
        convs = Convs(self.spectral, train, self.dtype)
        window = small_BHWC.shape[1] // 4  # AdaptiveAvgPool2d(4) of a power-of-two map
        pooled = nn.avg_pool(small_BHWC, (window, window), (window, window))
        gate = convs(pooled, big_BHWC.shape[-1], 4, padding="VALID", name="conv1")
        gate = convs(nn.swish(gate), big_BHWC.shape[-1], 1, name="conv2")
        return big_BHWC * nn.sigmoid(gate)


class NoiseInjection(nn.Module):
    """x + weight * noise, one noise map per image (shared over channels), weight from 0."""
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, keys_B, index: int):
        weight = self.param("weight", nn.initializers.zeros, (1,))
        shape = x_BHWC.shape[1:3] + (1,)
        noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, index), shape))(keys_B)
        return x_BHWC + (weight * noise).astype(x_BHWC.dtype)


class UpBlock(nn.Module):
    """Nearest 2x -> conv3x3 -> BN -> GLU; `comp` (the official UpBlockComp): noise before the
    BatchNorm, and a second conv3x3 -> noise -> BN -> GLU."""
    features: int
    comp: bool
    num_classes: int = 0
    spectral: bool = True
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x, labels, keys_B, train: bool):
        convs = Convs(self.spectral, train, self.dtype)
        norm = lambda name: conditional_norm(self.num_classes, self.axis_name, self.dtype, name=name)
        x = convs(upsample2x(x), 2 * self.features, 3, name="conv1")
        if self.comp:
            x = NoiseInjection(self.dtype, name="noise1")(x, keys_B, 2 * x.shape[1])
        x = glu(norm("bn1")(x, labels, train))
        if self.comp:
            x = convs(x, 2 * self.features, 3, name="conv2")
            x = NoiseInjection(self.dtype, name="noise2")(x, keys_B, 2 * x.shape[1] + 1)
            x = glu(norm("bn2")(x, labels, train))
        return x


def generator_excitations(resolution: int) -> dict:
    """Target map size -> source map size of G's skip-layer excitations."""
    pairs = {16 * s: s for s in (4, 8, 16, 32) if 16 * s <= resolution}
    return pairs or {resolution: 4}


class Generator(nn.Module):
    """G(z, labels) -> images in [-1, 1], shape (B, resolution, resolution, channels)."""
    resolution: int = 64
    channels: int = 3
    num_classes: int = 0
    latent_dim: int = 256
    width: int = 64
    spectral: bool = True
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, z_BZ, labels_B=None, train: bool = False):
        convs = Convs(self.spectral, train, self.dtype)
        width = lambda size: int(G_MULT[size] * self.width)
        keys_B = noise_keys(z_BZ)
        x = convs.transpose4x4(z_BZ.reshape(-1, 1, 1, self.latent_dim), 2 * width(4), name="init")
        x = glu(conditional_norm(self.num_classes, self.axis_name, self.dtype, name="init_bn")(
            x, labels_B, train))
        maps, excitations = {4: x}, generator_excitations(self.resolution)
        for size in (2 ** k for k in range(3, int(math.log2(self.resolution)) + 1)):
            comp = math.log2(size) % 2 == 1  # 8, 32, 128, 512: the official UpBlockComp
            x = UpBlock(width(size), comp, self.num_classes, self.spectral, self.axis_name,
                        self.dtype, name=f"up{size}")(x, labels_B, keys_B, train)
            if size in excitations:
                x = SkipLayerExcitation(self.spectral, self.dtype, name=f"sle{size}")(
                    maps[excitations[size]], x, train)
            maps[size] = x
        x = convs(x, self.channels, 3, name="to_big")
        return jnp.tanh(x.astype(jnp.float32))


class DownBlock(nn.Module):
    """conv4x4/2 -> BN -> LReLU; `comp` (the official DownBlockComp): then conv3x3 -> BN -> LReLU,
    averaged with an avg-pool -> conv1x1 -> BN -> LReLU shortcut."""
    features: int
    comp: bool
    spectral: bool = True
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x, train: bool):
        convs = Convs(self.spectral, train, self.dtype)
        bn = lambda h, name: exact_batch_norm(train, self.axis_name, self.dtype,
                                              scale_init=gain_init, name=name)(h)
        lrelu = lambda h: nn.leaky_relu(h, 0.2)
        h = lrelu(bn(convs(x, self.features, 4, 2, name="conv1"), "bn1"))
        if not self.comp:
            return h
        h = lrelu(bn(convs(h, self.features, 3, name="conv2"), "bn2"))
        direct = convs(nn.avg_pool(x, (2, 2), (2, 2)), self.features, 1, name="direct")
        return (h + lrelu(bn(direct, "bn_direct"))) / 2


class Decoder(nn.Module):
    """The official SimpleDecoder: an 8x8 map -> an image of `size` in [-1, 1]."""
    size: int
    channels: int
    width: int = 32
    spectral: bool = True
    axis_name: str | None = None
    dtype: Any = None

    @nn.compact
    def __call__(self, x_BHWC, train: bool):
        convs = Convs(self.spectral, train, self.dtype)
        for size in (2 ** k for k in range(4, int(math.log2(self.size)) + 1)):
            x_BHWC = convs(upsample2x(x_BHWC), 2 * int(G_MULT[size] * self.width), 3,
                           name=f"conv{size}")
            x_BHWC = glu(exact_batch_norm(train, self.axis_name, self.dtype, scale_init=gain_init,
                                    name=f"bn{size}")(x_BHWC))
        return jnp.tanh(convs(x_BHWC, self.channels, 3, name="to_image").astype(jnp.float32))


class Discriminator(nn.Module):
    """D(x, labels) -> (patch logits (B, 50): 25 of the full-size branch, 25 of the half-size
    one; its own loss).

    Given its `numbers` ({"quadrant": (B,)}: which quadrant of each real image to reconstruct,
    0-3; `draw_numbers`, which the train step draws for the real batch of every D update), its
    own loss is the mean squared error of its three reconstructions; 0 without them."""
    aux_loss_name: ClassVar[str] = "reconstruction"  # what the step reports its own loss as

    resolution: int = 64
    channels: int = 3
    num_classes: int = 0
    width: int = 64
    decoder_width: int = 32
    spectral: bool = True
    axis_name: str | None = None
    dtype: Any = None

    @staticmethod
    def draw_numbers(key, n_updates: int, batch_size: int) -> dict:
        """Which quadrant of each real image D reconstructs, for `n_updates` D updates of the
        global batch: {"quadrant": int32 (n_updates, batch_size)}. Drawn as (n_updates, 3, B)
        and the first row kept: the numbers of the versions before D declared them (the same
        steps, old workdirs resumed alike)."""
        return {"quadrant": jax.random.randint(key, (n_updates, 3, batch_size), 0, 4)[:, 0]}

    @nn.compact
    def __call__(self, x_BHWC, labels_B=None, train: bool = False, numbers=None):
        convs = Convs(self.spectral, train, self.dtype)
        width = lambda size: int(D_MULT[size] * self.width)
        block = lambda features, comp, name: DownBlock(features, comp, self.spectral,
                                                       self.axis_name, self.dtype, name=name)
        lrelu = lambda h: nn.leaky_relu(h, 0.2)
        x, size = x_BHWC, self.resolution
        if size <= TRUNK_MAX:
            x = lrelu(convs(x, width(2 * size), 3, name="stem"))
        while size > TRUNK_MAX:  # the official 512 and 1024 px stems: strided convolutions
            size //= 2
            x = convs(x, width(2 * size), 4, 2, name=f"stem{size}")
            if size < self.resolution // 2:
                x = exact_batch_norm(train, self.axis_name, self.dtype, scale_init=gain_init,
                               name=f"stem_bn{size}")(x)
            x = lrelu(x)
        maps = {size: x}
        while size > 8:
            size //= 2
            x = block(width(2 * size), True, f"down{size}")(x, train)
            if 8 * size in maps:
                x = SkipLayerExcitation(self.spectral, self.dtype, name=f"sle{size}")(
                    maps[8 * size], x, train)
            maps[size] = x
        h = convs(x, width(8), 1, name="rf_big_conv1")
        h = lrelu(exact_batch_norm(train, self.axis_name, self.dtype, scale_init=gain_init,
                             name="rf_big_bn")(h))
        logits_big = convs(h, 1, 4, padding="VALID", name="rf_big_conv2")
        # The half-size branch, on the image downsampled.
        small_size = min(self.resolution // 2, SMALL_MAX)
        small = nearest_downsample(x_BHWC, small_size)
        s = small_size // 2
        y = lrelu(convs(small, width(4 * s), 4, 2, name="small_stem"))
        while s > 8:
            s //= 2
            y = block(width(4 * s), False, f"small_down{s}")(y, train)
        logits_small = convs(y, 1, 4, padding="VALID", name="rf_small")
        batch = x_BHWC.shape[0]
        logits = jnp.concatenate([logits_big.reshape(batch, -1), logits_small.reshape(batch, -1)],
                                 axis=1).astype(jnp.float32)
        if self.num_classes > 0:
            features_BC = x.astype(jnp.float32).sum(axis=(1, 2))
            embed = nn.Embed(self.num_classes, features_BC.shape[-1], embedding_init=WEIGHT_INIT,
                             name="projection")
            logits = logits + projection(self, embed, labels_B, features_BC)[:, None]
        if numbers is None and not self.is_initializing():
            return logits, jnp.zeros((), jnp.float32)
        parts = jnp.zeros((batch,), jnp.int32) if numbers is None else numbers["quadrant"]
        return logits, self.reconstruction_loss(x_BHWC, x, y, maps[16], parts, train)

    def reconstruction_loss(self, x_BHWC, big_8x8, small_8x8, map_16x16, parts_B, train):
        """The mean squared errors of the three reconstructions: both branches' 8x8 maps back
        to the half-size image, quadrant `parts_B` of the 16x16 map back to that quadrant."""
        small_size = min(self.resolution // 2, SMALL_MAX)
        decoder = lambda name: Decoder(small_size, self.channels, self.decoder_width,
                                       self.spectral, self.axis_name, self.dtype, name=name)
        target = nearest_downsample(x_BHWC, small_size).astype(jnp.float32)
        part_target = nearest_downsample(quadrant(x_BHWC, parts_B), small_size).astype(
            jnp.float32)
        mse = lambda a, b: jnp.mean(jnp.square(a - b))
        return (mse(decoder("decoder_big")(big_8x8, train), target)
                + mse(decoder("decoder_small")(small_8x8, train), target)
                + mse(decoder("decoder_part")(quadrant(map_16x16, parts_B), train), part_target))


def _check(model_config, image_shape):
    resolution, _, channels = image_shape
    if not (MIN_RESOLUTION <= resolution <= MAX_RESOLUTION):
        raise UserError(f"data.resolution: the fastgan family supports powers of two from "
                        f"{MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution}")
    if channels not in (1, 3):
        raise UserError(f"data.channels: the fastgan family supports 1 or 3, got {channels}")
    if model_config.d_norm not in ("spectral", "none"):
        raise UserError(f"model.d_norm={model_config.d_norm!r}: the fastgan family's "
                        "discriminator takes 'spectral' (the official) or 'none'")
    narrowest = min(int(G_MULT[resolution] * model_config.g_width),
                    int(D_MULT[2 * min(resolution, TRUNK_MAX)] * model_config.d_width),
                    model_config.d_width // 2)
    if narrowest < 1:
        raise UserError(f"model.g_width={model_config.g_width}, model.d_width="
                        f"{model_config.d_width}: at {resolution} px the fastgan family's "
                        "narrowest layer would have no channels; raise them")


def build(model_config, image_shape, num_classes: int, axis_name: str | None = None):
    """The (generator, discriminator) pair `model_config` describes (jaxgan.models.build_models)."""
    image_shape = tuple(image_shape)
    _check(model_config, image_shape)
    resolution, _, channels = image_shape
    dtype = jnp.dtype(model_config.dtype)
    generator = Generator(resolution=resolution, channels=channels, num_classes=num_classes,
                          latent_dim=model_config.latent_dim, width=model_config.g_width,
                          spectral=model_config.g_spectral_norm, axis_name=axis_name,
                          dtype=dtype)
    discriminator = Discriminator(resolution=resolution, channels=channels,
                                  num_classes=num_classes, width=model_config.d_width,
                                  decoder_width=model_config.d_width // 2,
                                  spectral=model_config.d_norm == "spectral",
                                  axis_name=axis_name, dtype=dtype)
    return generator, discriminator
