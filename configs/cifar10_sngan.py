"""Class-conditional SNGAN on CIFAR-10 (TFDS `cifar10`), 32x32x3: StudioGAN's CIFAR10/SNGAN.yaml.

  python train.py --config configs/cifar10_sngan.py

StudioGAN's `resnet` backbone (g_conv_dim = d_conv_dim = 64, z_dim 128), conditional BatchNorm in
G, projection D with spectral norm on every layer, hinge loss, Adam 2e-4 (0.5, 0.999), batch 64,
5 D updates per G update, 100,000 steps, random flips, no EMA (ema_decay 0: sampling uses G
itself). Parameters: G 4,304,387 and D 1,055,105, the counts of StudioGAN's models for this
config (computed layer by layer from its src/models/resnet.py and utils/ops.py: torch's
spectral_norm adds buffers, not parameters; tested in tests/test_resnet.py). StudioGAN reports
FID 9.0 on CIFAR-10 for it (not reproduced here: 100,000 steps are days on a CPU).
Expected on this 2-core CPU: not measured at full width (hours per thousand steps); on a GPU or
TPU, use --config.train.steps_per_call=50.
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import cifar10


def get_config():
    config = cifar10.get_config()
    config.model.arch = "resnet"
    config.model.d_norm = "spectral"
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.train.loss = "hinge"
    config.train.n_critic = 5
    config.train.batch_size = 64
    config.train.g_lr = config.train.d_lr = 2e-4
    config.train.b1, config.train.b2 = 0.5, 0.999
    config.train.ema_decay = 0.0
    config.train.mode_seeking = 0.0
    config.train.num_steps = 100_000
    return config
