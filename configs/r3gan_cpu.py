"""R3GAN at a laptop CPU's size: a folder of pictures at 32x32 RGB, the official recipe shrunk.

  python train.py --config configs/r3gan_cpu.py --config.data.source=folder:/path/to/paintings
  python sample.py --workdir runs/r3gan_cpu --seeds 0-15 --grid out.png

configs/cifar10_r3gan.py's network and objective (the r3gan family: normalisation-free residual
blocks with grouped 3x3 convolutions of 16 channels per group; relativistic pairing with R1 and
R2, Adam with beta1 0, R3GAN's cosine schedules) at widths 56 instead of 768 (2 blocks per
stage, z of 64), with every schedule fitted to this run's length (20,000 steps of 64 images:
1,280 kimg; the EMA half-life grows to a quarter of it, as in the CIFAR-10 preset). Parameters
(2 classes): G 239,528 and D 235,480, about the resnet family's at widths 16 (configs/art.py
shrunk as its docstring says: G 369,539, D 66,913).
Expected: slow on a CPU: XLA counts 3.1 GFLOP per image per step (R1 and R2 differentiate D
twice). Measured 1.6 s per step at batch 16 on one core of a 2-core AMD EPYC Zen 4 (the resnet
family at widths 16 with the same objective: 0.39 s; README's model section), so seconds per
step at batch 64. For more steps per minute: --config.train.batch_size=16, or lazy
penalties (--config.train.r1_every=16, StyleGAN2's; not R3GAN's). In the recipe search on the
drawn folder (benchmarks/recipe_search.py, study r3gan, before the grouped convolution ran per
group) it made 40 steps in 1,000 CPU-seconds: blobs (C2ST 0.965), where DCGAN made 2,560.
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
--config.model.group_width=4 --config.model.blocks_per_stage=1
"""
from configs import cifar10_r3gan, folder


def get_config():
    config = folder.get_config()
    r3gan = cifar10_r3gan.get_config()
    config.model = r3gan.model
    config.train = r3gan.train
    config.data.resolution = 32
    config.model.g_width = config.model.d_width = 56
    config.train.batch_size = 64
    config.train.num_steps = 20_000
    config.train.schedule_kimg = 20_000 * 64 / 1000   # the schedules end with the run
    config.train.ema_kimg = config.train.schedule_kimg / 4
    config.train.steps_per_call = 1
    config.train.sample_every_steps = 1000
    config.train.log_every_steps = 100
    return config
