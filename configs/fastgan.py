"""FastGAN (Liu et al., ICLR 2021) on your own folder: the few-shot family, 64x64 RGB.

  python train.py --config configs/fastgan.py --config.data.source=folder:/path/to/paintings
  python sample.py --workdir runs/fastgan --seeds 0-15 --grid out.png

Subfolders are classes (class-conditional: conditional BatchNorm in G, a projection head in D),
or images directly in the folder give an unconditional model, as the official one is.
The official configuration (github odegeasslbc/FastGAN-pytorch, train.py): 1024 or 256 px,
ngf = ndf = 64, z of 256, batch 8, Adam lr 2e-4, betas (0.5, 0.999), hinge loss, DiffAugment
'color,translation', G's EMA with decay 0.999, spectral norm on every convolution of G and D,
50,000-100,000 iterations. At 256 px that model has 29,127,846 generator parameters and 11,526,160
discriminator parameters (counted from its models.py); jaxgan's has 29,127,654 and 11,526,160 (its G
drops the 192-parameter 1x1 `to_128` head, see jaxgan/models/fastgan.py; tests/test_fastgan.py).
This config keeps all of that but the size: --config.data.resolution=256 for the paper's.
Where jaxgan departs from it (MSE for the reconstruction loss instead of LPIPS, noise maps drawn
from z, tanh on G's output, the one-output G): jaxgan/models/fastgan.py's docstring.
Expected: not measured at this size on an accelerator (none lent); on a 2-core CPU (AMD EPYC,
AVX2) use the CPU-sized variant: configs/fastgan_cpu.py.
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
--config.data.resolution=32
"""
from configs import folder


def get_config():
    config = folder.get_config()
    config.model.arch = "fastgan"
    config.model.d_norm = "spectral"
    config.model.g_spectral_norm = True
    config.model.latent_dim = 256
    config.model.g_width = 64
    config.model.d_width = 64
    config.train.batch_size = 8
    config.train.loss = "hinge"
    config.train.n_critic = 1
    config.train.augment = "color,translation"
    config.train.augment_p = 1.0
    config.train.ema_decay = 0.999
    config.train.mode_seeking = 0.0
    config.train.num_steps = 50_000
    return config
