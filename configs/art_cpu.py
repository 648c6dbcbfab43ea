"""Your drawings on a laptop CPU, 32x32: the recipe search's leader at the largest budget it reached.

  python train.py --config configs/art_cpu.py --config.data.source=folder:/path/to/drawings
  python sample.py --workdir runs/art_cpu --label animals --seeds 0-15 --grid out.png

configs/folder.py's class-conditional DCGAN at 32 px, nothing else changed. benchmarks/recipe_search.py
trained it on the drawn folder (benchmarks/drawn_folder.py: 1,134 openclipart drawings in 4
categories) against DCGAN with DiffAugment, with hinge + LeCam, with R3GAN's RpGAN + R1 + R2, the
CPU-sized resnet and FastGAN, all for the same CPU time (README, "A recipe for a laptop"). DCGAN
with DiffAugment led at 150 CPU-seconds and fell behind this one at 300 (C2ST 0.935 against
0.969, GAN-test 0.41 against 0.26); the search reached no further on a shared machine, far short
of the 10 and 30 minutes it is meant for, and at 300 CPU-seconds its samples are colour blobs,
not recognisable drawings. Nothing searched has yet beaten plain DCGAN on a CPU.
For a GPU or TPU use configs/art.py (resnet, 64 px).
Expected: about 0.5 CPU-seconds per step at batch 64 on one core of a 2-core AMD EPYC (Zen 4)
shared with other jobs, after about 20 CPU-seconds of compilation (542 steps in 300, compiled twice).
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import folder


def get_config():
    config = folder.get_config()
    config.data.resolution = 32
    return config
