"""The PyTorch DCGAN example's exact model and recipe (pytorch/examples/dcgan), unconditional.

64x64x3, nz=100, ngf=ndf=64, BatchNorm, bias-free convolutions, N(0, 0.02) init, the
non-saturating BCE loss (on logits), Adam 2e-4 with betas (0.5, 0.999), batch 64, no EMA tricks
beyond jaxgan's sampling copy. Its data here are the digits upscaled to 64x64 RGB (a stand-in that
needs no download); with your own images use --config.data.source=folder:/path.

  python train.py --config configs/dcgan64.py
  python benchmarks/step_throughput.py --config configs/dcgan64.py     # vs the PyTorch twin

Expected: at most 1.4 s per step on a 2-core CPU (measured with another job on the machine;
benchmarks/README.md has the figures against the PyTorch twin); GPU not measured here. Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import digits


def get_config():
    config = digits.get_config()
    config.data.resolution = 64
    config.data.channels = 3
    config.data.conditional = False
    config.model.latent_dim = 100
    config.model.g_width = 64
    config.model.d_width = 64
    config.model.d_norm = "batch"
    config.train.loss = "non_saturating"
    config.train.batch_size = 64
    config.train.g_lr = config.train.d_lr = 2e-4
    config.train.b1, config.train.b2 = 0.5, 0.999
    config.train.n_critic = 1
    config.train.mode_seeking = 0.0  # the plain DCGAN recipe: no regulariser, no augmentation
    config.train.augment = ""
    config.train.num_steps = 25_000
    config.train.steps_per_call = 1  # 10-100 on GPUs and TPUs
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 1000
    return config
