"""The PyTorch twin of a jaxgan config: the same networks and the same training step, in eager PyTorch.

Used by benchmarks/step_throughput.py and benchmarks/layer_profile.py (timings) and by
benchmarks/twin_check.py and tests/test_pytorch_twin.py (equivalence). A benchmark-only
dependency: nothing in jaxgan/ imports torch.

Networks (jaxgan.models.dcgan, NCHW here). Every layer is stored under the name of its parameters
in jaxgan's tree (`G.layers["UpConv2x_0"]`, `D.layers["DownConv2x_1"]`, ...), so weights are
copied by name and a layer jaxgan adds or renames makes `param_table` fail instead of being missed.
For `configs/dcgan64.py` the networks are exactly pytorch/examples `dcgan/main.py`'s netG / netD
(ConvTranspose2d / Conv2d 4x4 stride 2 padding 1, bias-free, BatchNorm, ReLU / LeakyReLU(0.2),
tanh, N(0, 0.02) init), except that netD ends in a logit and the loss is BCE-with-logits (the
same maths). jaxgan writes netG's first layer (1x1 -> 4x4 transposed conv) as a bias-free Dense
layer; the twin keeps the ConvTranspose2d (same parameters, same function). UpConv2x is exactly
ConvTranspose2d(4, 2, 1) and DownConv2x exactly Conv2d(4, 2, 1) (jaxgan.models.layers).
Conditional configs: G concatenates a label embedding to z and uses conditional BatchNorm
(BatchNorm2d without affine, then per-class gain (init 1) and bias (init 0)); D adds the
projection <embed(label), features summed over H, W of the last block>.

One training step (`TwinGAN.step`), as jaxgan.training.step.local_step does it, given the draws
of jaxgan's make_train_step (z (K, B, Z), fake labels (K, B), DiffAugment shifts (K, 3, B, 2)):
  for k < K - 1: fake = G(z[k]) (train-mode BatchNorm, no gradient); one D update;
  fake = G(z[-1]) (kept for G's backward); one D update on fake.detach():
      D(aug(real)), D(aug(fake)) (two BatchNorm passes), loss softplus(-D(x)) + softplus(D(fake))
      (or hinge), Adam;
  G update through the UPDATED D, on the same fake: softplus(-D(aug(fake))) (or -D(aug(fake))) +
      mode_seeking * MSGAN(fake, z) (pairs (2k, 2k+1) share a label), Adam on G only;
  EMA of G's weights and BatchNorm statistics with jaxgan's warm-up decay.
`freeze_d_in_g_step=False` (default) computes D's weight gradients in the G step too (and
discards them), as pytorch/examples does; True turns them off, which is the work jaxgan does.

Not modelled, refused by name (`unsupported`): other model families than `dcgan`, and
`model.dtype='float16'` (bfloat16 runs as CPU autocast, for timing only). One difference is
known and left alone: BatchNorm's running variance, which PyTorch updates with the unbiased batch
variance and flax with the biased one (training-mode outputs, losses and parameters do not
depend on it; the equivalence check compares the running means only).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def unsupported(config) -> list[str]:
    """The config settings the twin does not model, as 'key=value'."""
    bad = []
    if config.model.arch != "dcgan":
        bad.append(f"model.arch={config.model.arch!r}")
    if str(config.model.dtype) not in ("float32", "bfloat16"):
        bad.append(f"model.dtype={config.model.dtype!r}")
    return bad


def num_doublings(resolution: int) -> int:
    if resolution not in (16, 32, 64, 128):
        raise ValueError(f"resolution must be 16, 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2


def dcgan_init(module: nn.Module) -> None:
    """N(0, 0.02) weights (jaxgan's DCGAN_INIT); BatchNorm scale 1 and bias 0 (flax's)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
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
    """jaxgan's dcgan Generator (NCHW). Unconditional + 64x64x3 + width 64 = netG."""

    def __init__(self, resolution: int, channels: int, num_classes: int, latent_dim: int,
                 width: int):
        super().__init__()
        n = num_doublings(resolution)
        self.n, self.num_classes = n, num_classes
        width = width * 2 ** (n - 1)
        layers = {}
        z_dim = latent_dim
        if num_classes:
            layers["label_embedding"] = nn.Embedding(num_classes, latent_dim)
            z_dim += latent_dim
        layers["Dense_0"] = nn.ConvTranspose2d(z_dim, width, 4, 1, 0, bias=False)
        layers["ConditionalBatchNorm_0"] = ConditionalBatchNorm2d(width, num_classes)
        for i in range(n - 1):
            layers[f"UpConv2x_{i}"] = nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False)
            width //= 2
            layers[f"ConditionalBatchNorm_{i + 1}"] = ConditionalBatchNorm2d(width, num_classes)
        layers[f"UpConv2x_{n - 1}"] = nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False)
        self.layers = nn.ModuleDict(layers)
        self.apply(dcgan_init)

    def forward(self, z, labels=None):
        L = self.layers
        if self.num_classes:
            z = torch.cat([z, L["label_embedding"](labels)], dim=1)
        x = F.relu(L["ConditionalBatchNorm_0"](L["Dense_0"](z[:, :, None, None]), labels))
        for i in range(self.n - 1):
            x = F.relu(L[f"ConditionalBatchNorm_{i + 1}"](L[f"UpConv2x_{i}"](x), labels))
        return torch.tanh(L[f"UpConv2x_{self.n - 1}"](x))


class Discriminator(nn.Module):
    """jaxgan's dcgan Discriminator (NCHW): one logit per image."""

    def __init__(self, resolution: int, channels: int, num_classes: int, width: int,
                 norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"d_norm must be 'batch' or 'none', got {norm!r}")
        n = num_doublings(resolution)
        self.n, self.num_classes, self.norm = n, num_classes, norm
        bias = norm == "none"
        layers = {"DownConv2x_0": nn.Conv2d(channels, width, 4, 2, 1, bias=bias)}
        for i in range(1, n):
            layers[f"DownConv2x_{i}"] = nn.Conv2d(width, width * 2, 4, 2, 1, bias=bias)
            width *= 2
            if norm == "batch":
                layers[f"BatchNorm_{i - 1}"] = nn.BatchNorm2d(width, eps=1e-5, momentum=0.1)
        layers["Conv_0"] = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        if num_classes:
            layers["projection"] = nn.Embedding(num_classes, width)
            nn.init.normal_(layers["projection"].weight, 0.0, 0.02)
        self.layers = nn.ModuleDict(layers)
        self.apply(dcgan_init)

    def forward(self, x, labels=None):
        L = self.layers
        x = F.leaky_relu(L["DownConv2x_0"](x), 0.2)
        for i in range(1, self.n):
            x = L[f"DownConv2x_{i}"](x)
            if self.norm == "batch":
                x = L[f"BatchNorm_{i - 1}"](x)
            x = F.leaky_relu(x, 0.2)
        logits = L["Conv_0"](x).view(-1)
        if self.num_classes:
            logits = logits + (L["projection"](labels) * x.sum(dim=(2, 3))).sum(dim=1)
        return logits


def d_loss(kind: str, real_logits, fake_logits):
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss(kind: str, fake_logits):
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def mode_seeking(fake, z, eps: float = 1e-5):
    """jaxgan.training.losses.mode_seeking: pairs (2k, 2k+1), mean of 1 / (ratio + eps)."""
    x = fake.reshape(fake.shape[0] // 2, 2, -1)
    z = z.reshape(z.shape[0] // 2, 2, -1)
    ratio = (x[:, 0] - x[:, 1]).abs().mean(-1) / (z[:, 0] - z[:, 1]).abs().mean(-1)
    return (1.0 / (ratio + eps)).mean()


def translate(x, shifts):
    """jaxgan.training.augment.translate in NCHW: image i shifted by shifts[i] = (dy, dx), zero
    fill, s = max(1, H // 8)."""
    _, _, h, w = x.shape
    s = max(1, h // 8)
    padded = F.pad(x, (s, s, s, s))
    return torch.stack([padded[i, :, s - dy:s - dy + h, s - dx:s - dx + w]
                        for i, (dy, dx) in enumerate(shifts.tolist())])


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TwinGAN:
    """Networks, optimisers, EMA and the training step of a jaxgan config, in PyTorch."""

    def __init__(self, config, image_shape, num_classes: int, freeze_d_in_g_step: bool = False,
                 seed: int = 0):
        bad = unsupported(config)
        if bad:
            raise ValueError(f"the PyTorch twin does not model {', '.join(bad)}")
        torch.manual_seed(seed)
        resolution, _, channels = image_shape
        model, train = config.model, config.train
        self.num_classes, self.latent_dim, self.resolution = num_classes, model.latent_dim, \
            resolution
        self.loss, self.n_critic, self.ema_decay = train.loss, train.n_critic, train.ema_decay
        self.mode_seeking = float(train.mode_seeking)
        self.augment = train.augment == "translation"
        self.G = Generator(resolution, channels, num_classes, model.latent_dim, model.g_width)
        self.D = Discriminator(resolution, channels, num_classes, model.d_width, model.d_norm)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=train.g_lr, betas=(train.b1, train.b2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=train.d_lr, betas=(train.b1, train.b2))
        self.freeze_d_in_g_step = freeze_d_in_g_step
        self.autocast_dtype = torch.bfloat16 if str(model.dtype) == "bfloat16" else None
        self.G.train()
        self.D.train()
        self.step_count = 0
        self.ema = [t.detach().clone() for t in self.g_tensors()]

    def g_tensors(self):
        """G's parameters and BatchNorm running statistics: what the EMA averages."""
        stats = [b for name, b in self.G.named_buffers() if name.endswith(("running_mean",
                                                                           "running_var"))]
        return list(self.G.parameters()) + stats

    def autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cpu", dtype=self.autocast_dtype)

    def draw(self, batch_size: int):
        """Noise, fake labels and shifts drawn here (for timing; the check feeds jaxgan's)."""
        k = self.n_critic
        z = torch.randn(k, batch_size, self.latent_dim)
        y = torch.randint(0, max(self.num_classes, 1), (k, batch_size))
        if self.mode_seeking:
            y = y[:, ::2].repeat_interleave(2, dim=1)
        s = max(1, self.resolution // 8)
        shifts = torch.randint(-s, s + 1, (k, 3, batch_size, 2))
        return z, y, shifts

    def _labels(self, y):
        return y if self.num_classes else None

    def _seen(self, x, shifts):
        return translate(x, shifts) if self.augment else x

    def _d_update(self, real, real_y, fake, fake_y, shifts_3B2):
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            real_logits = self.D(self._seen(real, shifts_3B2[0]), self._labels(real_y))
            fake_logits = self.D(self._seen(fake, shifts_3B2[1]), self._labels(fake_y))
            loss = d_loss(self.loss, real_logits.float(), fake_logits.float())
        loss.backward()
        self.opt_d.step()
        return loss, real_logits, fake_logits

    def step(self, real, real_y, z=None, fake_y=None, shifts=None):
        """One jaxgan step. real: (B, C, H, W) float32 in [-1, 1]; real_y: (B,) int64;
        z (K, B, Z), fake_y (K, B), shifts (K, 3, B, 2) as jaxgan's make_train_step draws them
        (drawn here when not given). Returns the metrics dict of 0-d tensors."""
        if z is None:
            z, fake_y, shifts = self.draw(real.shape[0])
        for k in range(self.n_critic - 1):
            with torch.no_grad(), self.autocast():
                fake = self.G(z[k], self._labels(fake_y[k]))
            self._d_update(real, real_y, fake, fake_y[k], shifts[k])
        z_last, y = z[-1], fake_y[-1]
        with self.autocast():
            fake = self.G(z_last, self._labels(y))
        d, real_logits, fake_logits = self._d_update(real, real_y, fake.detach(), y, shifts[-1])

        self.opt_g.zero_grad(set_to_none=True)
        if self.freeze_d_in_g_step:
            self.D.requires_grad_(False)
        with self.autocast():
            logits = self.D(self._seen(fake, shifts[-1, 2]), self._labels(y))
            g = g_loss(self.loss, logits.float())
            if self.mode_seeking:
                g = g + self.mode_seeking * mode_seeking(fake.float(), z_last)
        g.backward()
        if self.freeze_d_in_g_step:
            self.D.requires_grad_(True)
        self.opt_g.step()

        with torch.no_grad():
            step = self.step_count
            decay = min(self.ema_decay, (1.0 + step) / (10.0 + step))
            torch._foreach_lerp_(self.ema, self.g_tensors(), 1.0 - decay)
        self.step_count += 1
        return {"d_loss": d.detach(), "g_loss": g.detach(),
                "d_real": real_logits.detach().float().mean(),
                "d_fake": fake_logits.detach().float().mean()}


# ---------------------------------------------------------------------------------------------
# jaxgan's parameter trees <-> the twin's tensors (for the equivalence check).

# How a flax array becomes the twin's tensor (and back), by layer kind.
def _to_torch(kind: str, array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, dtype=np.float32))
    if kind == "dense":        # (Z, 16 C) -> ConvTranspose2d (Z, C, 4, 4)
        return t.reshape(t.shape[0], 4, 4, -1).permute(0, 3, 1, 2)
    if kind == "upconv":       # (4, 4, Cin, Cout), lax.conv_transpose unflipped -> (Cin, Cout, 4, 4)
        return t.flip(0, 1).permute(2, 3, 0, 1)
    if kind == "conv":         # HWIO -> (Cout, Cin, 4, 4)
        return t.permute(3, 2, 0, 1)
    return t


def _to_flax(kind: str, t: torch.Tensor) -> np.ndarray:
    t = t.detach().float()
    if kind == "dense":
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1).numpy()
    if kind == "upconv":
        return t.permute(2, 3, 0, 1).flip(0, 1).numpy()
    if kind == "conv":
        return t.permute(2, 3, 1, 0).numpy()
    return t.numpy()


def _kind(name: str) -> str:
    if name.startswith("Dense"):
        return "dense"
    if name.startswith("UpConv2x"):
        return "upconv"
    if name.startswith(("DownConv2x", "Conv_")):
        return "conv"
    return "copy"


def param_table(twin: TwinGAN):
    """{("g" | "d", flax path tuple): (twin tensor, kind)} for every parameter of both networks,
    and {(net, path): twin buffer} for the BatchNorm running means and variances."""
    params, stats = {}, {}
    for net, module in (("g", twin.G), ("d", twin.D)):
        for name, layer in module.layers.items():
            kind = _kind(name)
            if isinstance(layer, nn.Embedding):
                params[net, (name, "embedding")] = (layer.weight, kind)
            elif isinstance(layer, ConditionalBatchNorm2d):
                if layer.num_classes:
                    params[net, (name, "gain", "embedding")] = (layer.gain.weight, kind)
                    params[net, (name, "bias", "embedding")] = (layer.bias.weight, kind)
                else:
                    params[net, (name, "BatchNorm_0", "scale")] = (layer.bn.weight, kind)
                    params[net, (name, "BatchNorm_0", "bias")] = (layer.bn.bias, kind)
                stats[net, (name, "BatchNorm_0", "mean")] = layer.bn.running_mean
                stats[net, (name, "BatchNorm_0", "var")] = layer.bn.running_var
            elif isinstance(layer, nn.BatchNorm2d):
                params[net, (name, "scale")] = (layer.weight, kind)
                params[net, (name, "bias")] = (layer.bias, kind)
                stats[net, (name, "mean")] = layer.running_mean
                stats[net, (name, "var")] = layer.running_var
            else:
                params[net, (name, "kernel")] = (layer.weight, kind)
                if layer.bias is not None:
                    params[net, (name, "bias")] = (layer.bias, "copy")
    return params, stats


def flat(tree, prefix=()) -> dict:
    """{path tuple: leaf} of a nested dict (a flax parameter tree)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) or hasattr(value, "items"):
            out.update(flat(value, prefix + (key,)))
        else:
            out[prefix + (key,)] = value
    return out


def load_jaxgan_params(twin: TwinGAN, g_params, d_params) -> None:
    """Copy jaxgan's generator / discriminator params (flax trees, host numpy) into the twin;
    its optimiser and EMA state are reset to match a fresh jaxgan state. Fails naming any
    parameter one side has and the other lacks."""
    table, _ = param_table(twin)
    given = {("g", p): v for p, v in flat(g_params).items()}
    given.update({("d", p): v for p, v in flat(d_params).items()})
    if set(given) != set(table):
        raise ValueError(f"the twin's parameters differ from jaxgan's: only in jaxgan "
                         f"{sorted(set(given) - set(table))}, only in the twin "
                         f"{sorted(set(table) - set(given))}")
    with torch.no_grad():
        for key, (tensor, kind) in table.items():
            value = _to_torch(kind, given[key])
            if value.shape != tensor.shape:
                raise ValueError(f"{key}: jaxgan {tuple(value.shape)} vs twin {tuple(tensor.shape)}")
            tensor.copy_(value)
    twin.opt_g.state.clear()
    twin.opt_d.state.clear()
    twin.ema = [t.detach().clone() for t in twin.g_tensors()]
    twin.step_count = 0


def twin_params(twin: TwinGAN) -> dict:
    """{(net, flax path): numpy array in flax's layout} of the twin's current parameters."""
    return {key: _to_flax(kind, tensor) for key, (tensor, kind) in param_table(twin)[0].items()}


def twin_adam_moments(twin: TwinGAN) -> dict:
    """{(net, flax path): (Adam first moment, second moment)} in flax's layout (optax's mu, nu)."""
    out = {}
    for key, (tensor, kind) in param_table(twin)[0].items():
        state = (twin.opt_g if key[0] == "g" else twin.opt_d).state[tensor]
        out[key] = (_to_flax(kind, state["exp_avg"]), _to_flax(kind, state["exp_avg_sq"]))
    return out


def twin_running_means(twin: TwinGAN) -> dict:
    return {key: buffer.detach().numpy().copy() for key, buffer in param_table(twin)[1].items()
            if key[1][-1] == "mean"}
