"""FastGAN at a laptop CPU's size: configs/fastgan.py at 32x32 with a quarter of its channels.

  python train.py --config configs/fastgan_cpu.py --config.data.source=folder:/path/to/paintings
  python sample.py --workdir runs/fastgan_cpu --seeds 0-15 --grid out.png

Everything else is the official recipe (configs/fastgan.py: hinge loss, DiffAugment
'color,translation', spectral norm, D's reconstruction decoders, G's EMA), with z of 128.
Expected: on a 2-core CPU (AMD EPYC, AVX2) about 0.21 s per step, 38 images/s at batch 8
(steps 100-200 on a folder of 300 photo crops, benchmarks/recipes.py's, other jobs sharing the
CPU), so 10 minutes make about 2,800 steps and the 20,000 about 70 minutes.
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import fastgan


def get_config():
    config = fastgan.get_config()
    config.data.resolution = 32
    config.model.latent_dim = 128
    config.model.g_width = 16
    config.model.d_width = 16
    config.train.num_steps = 20_000
    return config
