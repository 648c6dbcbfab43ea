"""The PyTorch twin of a jaxgan config: the same networks and the same training step, in eager PyTorch.

Imported by `benchmarks/step_throughput.py` (a benchmark-only dependency: nothing in jaxgan/ imports
torch). For `configs/dcgan64.py` the networks are exactly pytorch/examples `dcgan/main.py`'s
netG / netD (ConvTranspose2d / Conv2d 4x4 stride 2 padding 1, bias-free, BatchNorm, ReLU /
LeakyReLU(0.2, inplace), tanh, N(0, 0.02) init), except that netD ends in a logit (no Sigmoid) and
the loss is BCE-with-logits, which is the same maths. jaxgan writes netG's first layer (a 1x1 ->
4x4 ConvTranspose2d) as a bias-free Dense layer; the twin keeps the ConvTranspose2d (same
parameter count, same function).

For conditional configs (the digits default) the twin mirrors jaxgan.models:
  G: the label embedding concatenated to z; conditional BatchNorm = BatchNorm2d(affine=False)
     followed by per-class gain (init 1) and bias (init 0) embeddings;
  D: projection head: logit += <embed(label), features summed over H, W> of the last block.

One training step (`TwinGAN.step`), as jaxgan's `make_train_step` does it:
  z ~ N(0, 1), fake labels ~ U{0..K-1}; fake = G(z, y_fake)           (train-mode BatchNorm)
  D update: D(real), D(fake.detach()) (two BatchNorm passes), loss softplus(-D(x)) + softplus(D(fake))
            (or hinge), Adam step;
  G update: loss softplus(-D(fake)) (or -D(fake)) through the UPDATED D, reusing the same fake
            (the PyTorch DCGAN example's order), Adam step on G only;
  EMA of G's weights and BatchNorm statistics with jaxgan's warm-up decay.
  With n_critic > 1 the first n_critic - 1 D updates use fresh fakes made under no_grad.

`freeze_d_in_g_step=False` (default) reproduces the PyTorch example, whose G step also computes
(and then discards) D's weight gradients; True turns them off, which is the work jaxgan does.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def num_doublings(resolution: int) -> int:
    if resolution not in (16, 32, 64, 128):
        raise ValueError(f"resolution must be 16, 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2


def dcgan_weights_init(module: nn.Module) -> None:
    """pytorch/examples dcgan `weights_init`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d; when conditional, without affine and with per-class gain and bias."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(features, eps=1e-5, momentum=0.1, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, features)
            self.bias = nn.Embedding(num_classes, features)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x, labels=None):
        x = self.bn(x)
        if self.num_classes:
            x = x * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]
        return x


class Generator(nn.Module):
    """jaxgan.models.Generator in PyTorch (NCHW). Unconditional + 64x64x3 + width 64 = netG."""

    def __init__(self, resolution: int, channels: int, num_classes: int, latent_dim: int,
                 width: int):
        super().__init__()
        n = num_doublings(resolution)
        self.num_classes, self.latent_dim = num_classes, latent_dim
        width = width * 2 ** (n - 1)
        z_dim = latent_dim
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, latent_dim)
            z_dim += latent_dim
        self.convs = nn.ModuleList([nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=False)])
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(width, num_classes)])
        for _ in range(n - 1):
            self.convs.append(nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False))
            width //= 2
            self.norms.append(ConditionalBatchNorm2d(width, num_classes))
        self.convs.append(nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False))
        self.apply(dcgan_weights_init)

    def forward(self, z, labels=None):
        if self.num_classes:
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        x = z[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x), labels), inplace=True)
        return torch.tanh(self.convs[-1](x))


class Discriminator(nn.Module):
    """jaxgan.models.Discriminator in PyTorch (NCHW): one logit per image."""

    def __init__(self, resolution: int, channels: int, num_classes: int, width: int,
                 norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"d_norm must be 'batch' or 'none', got {norm!r}")
        n = num_doublings(resolution)
        self.num_classes = num_classes
        bias = norm == "none"
        layers = [nn.Conv2d(channels, width, 4, 2, 1, bias=bias), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n - 1):
            layers.append(nn.Conv2d(width, width * 2, 4, 2, 1, bias=bias))
            width *= 2
            if norm == "batch":
                layers.append(nn.BatchNorm2d(width, eps=1e-5, momentum=0.1))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.main = nn.Sequential(*layers)
        self.head = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        if num_classes:
            self.projection = nn.Embedding(num_classes, width)
            nn.init.normal_(self.projection.weight, 0.0, 0.02)
        self.apply(dcgan_weights_init)
        if bias:
            for module in self.modules():
                if isinstance(module, nn.Conv2d) and module.bias is not None:
                    nn.init.zeros_(module.bias)  # flax's default bias init

    def forward(self, x, labels=None):
        features = self.main(x)
        logits = self.head(features).view(-1)
        if self.num_classes:
            logits = logits + (self.projection(labels) * features.sum(dim=(2, 3))).sum(dim=1)
        return logits


def d_loss(kind: str, real_logits, fake_logits):
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(kind: str, fake_logits):
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TwinGAN:
    """Networks, optimisers, EMA and the training step of a jaxgan config, in PyTorch."""

    def __init__(self, config, image_shape, num_classes: int, freeze_d_in_g_step: bool = False,
                 seed: int = 0):
        torch.manual_seed(seed)
        resolution, _, channels = image_shape
        model, train = config.model, config.train
        self.num_classes, self.latent_dim = num_classes, model.latent_dim
        self.loss, self.n_critic, self.ema_decay = train.loss, train.n_critic, train.ema_decay
        self.G = Generator(resolution, channels, num_classes, model.latent_dim, model.g_width)
        self.D = Discriminator(resolution, channels, num_classes, model.d_width, model.d_norm)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train.g_lr, betas=(train.b1, train.b2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train.d_lr, betas=(train.b1, train.b2))
        self.freeze_d_in_g_step = freeze_d_in_g_step
        # bfloat16 compute (jaxgan's model.dtype) as CPU autocast; float32 otherwise.
        self.autocast_dtype = torch.bfloat16 if str(model.get("dtype", "float32")) == "bfloat16" \
            else None
        self.G.train()
        self.D.train()
        self.step_count = 0
        self.ema = [t.detach().clone() for t in self._g_tensors()]

    def _g_tensors(self):
        stats = [b for name, b in self.G.named_buffers() if name.endswith(("running_mean",
                                                                           "running_var"))]
        return list(self.G.parameters()) + stats

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cpu", dtype=self.autocast_dtype)

    def draw(self, batch_size: int):
        z = torch.randn(self.n_critic, batch_size, self.latent_dim)
        y = torch.randint(0, max(self.num_classes, 1), (self.n_critic, batch_size))
        return z, y

    def _labels(self, y):
        return y if self.num_classes else None

    def _d_update(self, real, real_y, fake, fake_y):
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            real_logits = self.D(real, self._labels(real_y))
            fake_logits = self.D(fake, self._labels(fake_y))
            loss = d_loss(self.loss, real_logits.float(), fake_logits.float())
        loss.backward()
        self.opt_d.step()
        return loss, real_logits, fake_logits

    def step(self, real, real_y, z=None, fake_y=None):
        """One jaxgan step. real: (B, C, H, W) float32 in [-1, 1]; real_y: (B,) int64.

        z (n_critic, B, latent) and fake_y (n_critic, B) may be given (the equivalence check
        feeds jaxgan's own draws); by default they are drawn here. Returns a metrics dict of
        0-d tensors.
        """
        if z is None:
            z, fake_y = self.draw(real.shape[0])
        for i in range(self.n_critic - 1):
            with torch.no_grad(), self._autocast():
                fake = self.G(z[i], self._labels(fake_y[i]))
            self._d_update(real, real_y, fake, fake_y[i])
        y = fake_y[-1]
        with self._autocast():
            fake = self.G(z[-1], self._labels(y))
        d, real_logits, fake_logits = self._d_update(real, real_y, fake.detach(), y)

        self.opt_g.zero_grad(set_to_none=True)
        if self.freeze_d_in_g_step:
            self.D.requires_grad_(False)
        with self._autocast():
            g = g_loss(self.loss, self.D(fake, self._labels(y)).float())
        g.backward()
        if self.freeze_d_in_g_step:
            self.D.requires_grad_(True)
        self.opt_g.step()

        with torch.no_grad():
            step = self.step_count
            decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
            torch._foreach_lerp_(self.ema, self._g_tensors(), 1.0 - decay)
        self.step_count += 1
        return {"d_loss": d.detach(), "g_loss": g.detach(),
                "d_real": real_logits.detach().float().mean(),
                "d_fake": fake_logits.detach().float().mean()}


# --------------------------------------------------------------------------------------------
# Loading jaxgan's initial parameters (only for the equivalence check; needs jax + numpy).

def _t(array):
    import numpy as np
    return torch.from_numpy(np.array(array, dtype=np.float32))


def load_jaxgan_params(twin: TwinGAN, g_params, d_params) -> None:
    """Copy jaxgan's generator / discriminator params (flax trees, NHWC / HWIO) into the twin.

    Dense (Zin, 16 C) -> ConvTranspose2d (Zin, C, 4, 4); UpConv2x (4, 4, Cin, Cout), which is
    lax.conv_transpose with an unflipped kernel -> ConvTranspose2d (Cin, Cout, 4, 4) flipped
    spatially; Conv (4, 4, Cin, Cout) -> Conv2d (Cout, Cin, 4, 4). Optimiser and EMA state are
    reset to match a fresh jaxgan state.
    """
    G, D = twin.G, twin.D
    with torch.no_grad():
        dense = _t(g_params["Dense_0"]["kernel"])
        c = G.convs[0].weight.shape[1]
        G.convs[0].weight.copy_(dense.reshape(-1, 4, 4, c).permute(0, 3, 1, 2))
        for i, conv in enumerate(G.convs[1:]):
            k = _t(g_params[f"UpConv2x_{i}"]["kernel"])
            conv.weight.copy_(k.flip(0, 1).permute(2, 3, 0, 1))
        for i, norm in enumerate(G.norms):
            p = g_params[f"ConditionalBatchNorm_{i}"]
            if twin.num_classes:
                norm.gain.weight.copy_(_t(p["gain"]["embedding"]))
                norm.bias.weight.copy_(_t(p["bias"]["embedding"]))
            else:
                norm.bn.weight.copy_(_t(p["BatchNorm_0"]["scale"]))
                norm.bn.bias.copy_(_t(p["BatchNorm_0"]["bias"]))
        if twin.num_classes:
            G.label_embedding.weight.copy_(_t(g_params["label_embedding"]["embedding"]))

        convs = [m for m in D.main if isinstance(m, nn.Conv2d)] + [D.head]
        for i, conv in enumerate(convs):
            conv.weight.copy_(_t(d_params[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1))
            if conv.bias is not None:
                conv.bias.copy_(_t(d_params[f"Conv_{i}"]["bias"]))
        for i, bn in enumerate(m for m in D.main if isinstance(m, nn.BatchNorm2d)):
            bn.weight.copy_(_t(d_params[f"BatchNorm_{i}"]["scale"]))
            bn.bias.copy_(_t(d_params[f"BatchNorm_{i}"]["bias"]))
        if twin.num_classes:
            D.projection.weight.copy_(_t(d_params["projection"]["embedding"]))
    twin.opt_g.state.clear()
    twin.opt_d.state.clear()
    twin.ema = [t.detach().clone() for t in twin._g_tensors()]
    twin.step_count = 0
