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
ConvTranspose2d(4, 2, 1) and DownConv2x exactly Conv2d(4, 2, 1) (jaxgan.models.cpu_conv).
Conditional configs: G concatenates a label embedding to z and uses conditional BatchNorm
(BatchNorm2d without affine, then per-class gain (init 1) and bias (init 0)); D adds the
projection <embed(label), features summed over H, W of the last block>.

The resnet family's networks (jaxgan.models.resnet: SNGAN's G and D, spectral norm, self-attention)
are in benchmarks/pytorch_twin_resnet.py; the step below is shared.

One training step (`TwinGAN.step`), as jaxgan.training.step.local_step does it, given the draws
of jaxgan's make_train_step (z (K, B, Z), fake labels (K, B), and DiffAugment's numbers: a dict
of arrays with leading axes (K, 3, B), as jaxgan.training.augment.draw makes them):
  for k < K - 1: fake = G(z[k]) (train-mode BatchNorm, no gradient); one D update;
  fake = G(z[-1]) (kept for G's backward); one D update on fake.detach():
      D(aug(real)), D(aug(fake)) (two BatchNorm passes), loss softplus(-D(x)) + softplus(D(fake))
      (or hinge) + lecam * LeCam(D's outputs, their moving averages), Adam;
  G update through the UPDATED D, on the same fake: softplus(-D(aug(fake))) (or -D(aug(fake))) +
      mode_seeking * MSGAN(fake, z) (pairs (2k, 2k+1) share a label), Adam on G only;
  EMA of G's weights and BatchNorm statistics with jaxgan's warm-up decay.
`freeze_d_in_g_step=False` (default) computes D's weight gradients in the G step too (and
discards them), as pytorch/examples does; True turns them off, which is the work jaxgan does.

aug = DiffAugment's color, translation and cutout, each applied to an image with probability
train.augment_p. The twin runs on the CPU or, with `device="cuda"`, on a GPU (bfloat16 as
autocast, for timing only).

Not modelled, refused by name (`unsupported`): model families other than `dcgan` and `resnet`,
BigGAN's options (shared embedding, hierarchical latent, spectral norm in G), R1, adaptive
augmentation (ADA) and `model.dtype='float16'`. One difference is
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

# DiffAugment's ranges and LeCam's decay are jaxgan's own constants (no JAX work at import).
from jaxgan.training.augment import cutout_centres, cutout_size, max_shift
from jaxgan.training.losses import LECAM_DECAY


def unsupported(config) -> list[str]:
    """The config settings the twin does not model, as 'key=value'."""
    model, train = config.model, config.train
    bad = []
    if model.arch not in ("dcgan", "resnet", "fastgan"):
        bad.append(f"model.arch={model.arch!r}")
    if str(model.dtype) not in ("float32", "bfloat16"):
        bad.append(f"model.dtype={model.dtype!r}")
    if model.arch == "resnet":
        bad += [f"model.{key}={model[key]!r}" for key in
                ("shared_embedding_dim", "hierarchical_latent", "g_spectral_norm") if model[key]]
    if train.loss not in ("non_saturating", "hinge"):
        bad.append(f"train.loss={train.loss!r}")
    if train.r1_gamma:
        bad.append(f"train.r1_gamma={train.r1_gamma!r}")
    if train.augment and train.ada_target > 0:
        bad.append(f"train.ada_target={train.ada_target!r}")
    if train.lr_decay:
        bad.append(f"train.lr_decay={train.lr_decay!r}")
    bad += [f"train.{key}={train[key]!r}" for key in ("r2_gamma", "schedule_kimg", "ema_kimg")
            if train[key]]
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


def translate(x, shifts_B2):
    """jaxgan.training.augment.translate in NCHW: image i shifted by shifts[i] = (dy, dx), zero
    fill, s = max_shift(H); one gather (DiffAugment's own code indexes a padded grid too)."""
    b, _, h, w = x.shape
    s = max_shift(h)
    padded = F.pad(x, (s, s, s, s))
    rows = torch.arange(h, device=x.device)[None] + s - shifts_B2[:, 0:1]   # (B, H)
    cols = torch.arange(w, device=x.device)[None] + s - shifts_B2[:, 1:2]   # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def color(x, factors_B3):
    """jaxgan.training.augment.color: brightness, saturation, contrast with factors U[0, 1)."""
    brightness, saturation, contrast = (factors_B3[:, i].view(-1, 1, 1, 1) for i in range(3))
    x = x + (brightness - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (saturation * 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (contrast + 0.5) + mean


def cutout(x, centre_B2):
    """jaxgan.training.augment.cutout: a zeroed square of half the side around each centre."""
    _, _, h, w = x.shape
    size = cutout_size(h)
    top, left = centre_B2[:, 0:1] - size // 2, centre_B2[:, 1:2] - size // 2
    rows, cols = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    inside_rows = (rows >= top) & (rows < top + size)
    inside_cols = (cols >= left) & (cols < left + size)
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


AUGMENTATIONS = {"color": color, "translation": translate, "cutout": cutout}


def augment(x, numbers: dict, policy: tuple, p: float):
    """jaxgan.training.augment.apply: each operation in turn, to each image with probability p."""
    for i, name in enumerate(policy):
        chosen = (numbers["apply"][:, i] < p).view(-1, 1, 1, 1)
        x = torch.where(chosen, AUGMENTATIONS[name](x, numbers[name]), x)
    return x


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TwinGAN:
    """Networks, optimisers, EMA and the training step of a jaxgan config, in PyTorch."""

    def __init__(self, config, image_shape, num_classes: int, freeze_d_in_g_step: bool = False,
                 seed: int = 0, device: str = "cpu"):
        bad = unsupported(config)
        if bad:
            raise ValueError(f"the PyTorch twin does not model {', '.join(bad)}")
        torch.manual_seed(seed)
        resolution, _, channels = image_shape
        model, train = config.model, config.train
        self.arch, self.device = model.arch, torch.device(device)
        self.num_classes, self.latent_dim, self.resolution = num_classes, model.latent_dim, \
            resolution
        self.loss, self.n_critic, self.ema_decay = train.loss, train.n_critic, train.ema_decay
        self.mode_seeking = float(train.mode_seeking)
        self.policy = tuple(name for name in train.augment.split(",") if name)
        self.augment_p, self.lecam = float(train.augment_p), float(train.lecam)
        self.lecam_real = self.lecam_fake = torch.zeros((), device=self.device)
        self.d_updates = 0
        if model.arch == "fastgan":
            import pytorch_twin_fastgan as fastgan
            self.G = fastgan.Generator(resolution, channels, num_classes, model.latent_dim,
                                       model.g_width, spectral=model.g_spectral_norm)
            self.D = fastgan.Discriminator(resolution, channels, num_classes, model.d_width,
                                           spectral=model.d_norm == "spectral")
        elif model.arch == "resnet":
            import pytorch_twin_resnet as resnet
            attention = model.attention_resolution
            self.G = resnet.Generator(resolution, channels, num_classes, model.latent_dim,
                                      model.g_width, attention)
            self.D = resnet.Discriminator(resolution, channels, num_classes, model.d_width,
                                          attention, spectral=model.d_norm == "spectral")
        else:
            self.G = Generator(resolution, channels, num_classes, model.latent_dim, model.g_width)
            self.D = Discriminator(resolution, channels, num_classes, model.d_width, model.d_norm)
        self.G.to(self.device)
        self.D.to(self.device)
        if self.device.type == "cuda":  # cuDNN's autotuner, as StudioGAN and most GAN scripts run
            torch.backends.cudnn.benchmark = True
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
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def draw(self, batch_size: int):
        """Noise, fake labels and DiffAugment numbers drawn here, on the twin's device, with
        jaxgan's shapes and ranges (for timing; the check feeds jaxgan's own draws)."""
        k, n, dev = self.n_critic, self.resolution, self.device
        z = torch.randn(k, batch_size, self.latent_dim, device=dev)
        y = torch.randint(0, max(self.num_classes, 1), (k, batch_size), device=dev)
        if self.mode_seeking:
            y = y[:, ::2].repeat_interleave(2, dim=1)
        shape = (k, 3, batch_size)
        numbers = {"apply": torch.rand(*shape, len(self.policy), device=dev)}
        if "color" in self.policy:
            numbers["color"] = torch.rand(*shape, 3, device=dev)
        if "translation" in self.policy:
            s = max_shift(n)
            numbers["translation"] = torch.randint(-s, s + 1, (*shape, 2), device=dev)
        if "cutout" in self.policy:
            numbers["cutout"] = torch.randint(0, cutout_centres(n), (*shape, 2), device=dev)
        if self.arch == "fastgan":  # which quadrant of each real image D reconstructs
            numbers["quadrant"] = torch.randint(0, 4, shape, device=dev)
        return z, y, numbers

    def _labels(self, y):
        return y if self.num_classes else None

    def _seen(self, x, numbers, k: int, j: int):
        """What D sees of a batch: augmented with the numbers of D update k, batch j (real 0,
        fake 1, G's fake 2)."""
        if not self.policy:
            return x
        return augment(x, {name: v[k, j] for name, v in numbers.items()}, self.policy,
                       self.augment_p)

    def _lecam(self, real_logits, fake_logits):
        """jaxgan.training.losses.lecam with the moving averages updated first (lecam_update)."""
        decay = 0.0 if self.d_updates == 0 else LECAM_DECAY
        self.lecam_real = decay * self.lecam_real + (1 - decay) * real_logits.detach().mean()
        self.lecam_fake = decay * self.lecam_fake + (1 - decay) * fake_logits.detach().mean()
        return (F.relu(real_logits - self.lecam_fake).square().mean()
                + F.relu(self.lecam_real - fake_logits).square().mean())

    def _generate(self, z, y, noise):
        """G(z, labels); the fastgan G also takes its noise maps ({index: (B, 1, H, W)}, None:
        drawn fresh, as the official code does)."""
        if self.arch == "fastgan":
            return self.G(z, self._labels(y), noise)
        return self.G(z, self._labels(y))

    def _d_update(self, real, real_y, fake, fake_y, numbers, k: int):
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            seen_real = self._seen(real, numbers, k, 0)
            reconstruction = None
            if self.arch == "fastgan":  # D also reconstructs the real images it sees
                real_logits, reconstruction = self.D(seen_real, self._labels(real_y),
                                                     numbers["quadrant"][k, 0])
                real_logits = real_logits.float()
            else:
                real_logits = self.D(seen_real, self._labels(real_y)).float()
            fake_logits = self.D(self._seen(fake, numbers, k, 1), self._labels(fake_y)).float()
            adversarial = loss = d_loss(self.loss, real_logits, fake_logits)
            if reconstruction is not None:
                loss = loss + reconstruction.float()
            regulariser = None
            if self.lecam:
                regulariser = self._lecam(real_logits, fake_logits)
                loss = loss + self.lecam * regulariser
        loss.backward()
        self.opt_d.step()
        self.d_updates += 1
        return adversarial, real_logits, fake_logits, regulariser, reconstruction

    def step(self, real, real_y, z=None, fake_y=None, numbers=None, noise=None):
        """One jaxgan step. real: (B, C, H, W) float32 in [-1, 1]; real_y: (B,) int64;
        z (K, B, Z), fake_y (K, B) and the DiffAugment numbers (a dict of (K, 3, B, ...)
        tensors; for fastgan also "quadrant") as jaxgan's make_train_step draws them (drawn here
        when not given); noise: the fastgan G's noise maps {index: (K, B, 1, H, W)} (None: drawn
        fresh). Returns the metrics dict of 0-d tensors."""
        if z is None:
            z, fake_y, numbers = self.draw(real.shape[0])
        noise_of = lambda k: None if noise is None else {i: v[k] for i, v in noise.items()}
        for k in range(self.n_critic - 1):
            with torch.no_grad(), self.autocast():
                fake = self._generate(z[k], fake_y[k], noise_of(k))
            self._d_update(real, real_y, fake, fake_y[k], numbers, k)
        last = self.n_critic - 1
        z_last, y = z[-1], fake_y[-1]
        with self.autocast():
            fake = self._generate(z_last, y, noise_of(last))
        d, real_logits, fake_logits, regulariser, reconstruction = self._d_update(
            real, real_y, fake.detach(), y, numbers, last)

        self.opt_g.zero_grad(set_to_none=True)
        if self.freeze_d_in_g_step:
            self.D.requires_grad_(False)
        with self.autocast():
            logits = self.D(self._seen(fake, numbers, last, 2), self._labels(y))
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
        metrics = {"d_loss": d.detach(), "g_loss": g.detach(),
                   "d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        if regulariser is not None:
            metrics["lecam"] = regulariser.detach()
        if reconstruction is not None:
            metrics["reconstruction"] = reconstruction.detach()
        return metrics


# ---------------------------------------------------------------------------------------------
# jaxgan's parameter trees <-> the twin's tensors (for the equivalence check).

# How a flax array becomes the twin's tensor (and back), by layer kind.
def _to_torch(kind: str, array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, dtype=np.float32))
    if kind == "dense":        # (Z, 16 C) -> ConvTranspose2d (Z, C, 4, 4)
        return t.reshape(t.shape[0], 4, 4, -1).permute(0, 3, 1, 2)
    if kind == "upconv":       # (4, 4, Cin, Cout), lax.conv_transpose unflipped -> (Cin, Cout, 4, 4)
        return t.flip(0, 1).permute(2, 3, 0, 1)
    if kind == "conv":         # HWIO -> (Cout, Cin, kh, kw)
        return t.permute(3, 2, 0, 1)
    if kind == "linear":       # (in, out) -> nn.Linear's (out, in)
        return t.t()
    return t


def _to_flax(kind: str, t: torch.Tensor) -> np.ndarray:
    t = t.detach().float().cpu()
    if kind == "dense":
        return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1).numpy()
    if kind == "upconv":
        return t.permute(2, 3, 0, 1).flip(0, 1).numpy()
    if kind == "conv":
        return t.permute(2, 3, 1, 0).numpy()
    if kind == "linear":
        return t.t().numpy()
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
    if twin.arch == "fastgan":
        import pytorch_twin_fastgan as fastgan
        return fastgan.param_table(twin.G, twin.D)[:2]
    if twin.arch == "resnet":
        import pytorch_twin_resnet as resnet
        return resnet.param_table(twin.G, twin.D)[:2]
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


def spectral_vectors(twin: TwinGAN) -> dict:
    """{(net, flax batch_stats path): the twin's power-iteration vector u} (the resnet D's and
    the fastgan G's and D's with spectral norm; none otherwise)."""
    if twin.arch == "fastgan":
        import pytorch_twin_fastgan as fastgan
        return fastgan.param_table(twin.G, twin.D)[2]
    if twin.arch != "resnet":
        return {}
    import pytorch_twin_resnet as resnet
    return resnet.param_table(twin.G, twin.D)[2]


def load_jaxgan_params(twin: TwinGAN, g_params, d_params, d_stats=None, g_stats=None) -> None:
    """Copy jaxgan's generator / discriminator params (flax trees, host numpy) into the twin,
    and its spectral-norm vectors from the networks' `batch_stats` (`d_stats`, `g_stats`); the
    twin's optimiser, EMA and LeCam state are reset to match a fresh jaxgan state. Fails naming
    any parameter or vector one side has and the other lacks."""
    vectors = spectral_vectors(twin)
    if vectors:
        given_u = {(net, p): v for net, stats in (("g", g_stats), ("d", d_stats))
                   for p, v in flat(stats or {}).items() if p[-1].endswith("/u")}
        if set(given_u) != set(vectors):
            raise ValueError(f"the twin's spectral-norm vectors differ from jaxgan's: only in "
                             f"jaxgan {sorted(set(given_u) - set(vectors))}, only in the twin "
                             f"{sorted(set(vectors) - set(given_u))}")
        with torch.no_grad():
            for key, buffer in vectors.items():
                buffer.copy_(torch.from_numpy(np.array(given_u[key], np.float32)).reshape(-1))
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
            tensor.copy_(value.to(tensor.device))
    twin.opt_g.state.clear()
    twin.opt_d.state.clear()
    twin.ema = [t.detach().clone() for t in twin.g_tensors()]
    twin.step_count = twin.d_updates = 0


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


def twin_buffers(twin: TwinGAN) -> dict:
    """{(net, flax batch_stats path): array}: BatchNorm running means and spectral-norm u."""
    out = {key: buffer.detach().cpu().numpy().copy() for key, buffer in param_table(twin)[1].items()
           if key[1][-1] == "mean"}
    out.update({key: u.detach().cpu().numpy()[None] for key, u in spectral_vectors(twin).items()})
    return out
