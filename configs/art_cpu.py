"""Your drawings on a laptop CPU: the recipe search's leader on a folder of drawn pictures, 32x32.

  python train.py --config configs/art_cpu.py --config.data.source=folder:/path/to/drawings
  python sample.py --workdir runs/art_cpu --label animals --seeds 0-15 --grid out.png

configs/folder.py's class-conditional DCGAN at 32 px with DiffAugment (color, translation,
cutout; Zhao et al. 2020) on everything D sees. Chosen by benchmarks/recipe_search.py on the drawn
folder (benchmarks/drawn_folder.py: 1,134 openclipart drawings in 4 categories) against the
plain DCGAN, DCGAN with hinge/LeCam, with R3GAN's RpGAN + R1 + R2, the CPU-sized resnet and
FastGAN, all for the same CPU time (README, "A recipe for a laptop"). It led at the budgets the
shared machine allowed (150 and 300 CPU-seconds, a few minutes on one core), far short of the
issue's 10 and 30 minutes: its samples there are still colour blobs, not recognisable drawings.
For a GPU or TPU use configs/art.py (resnet, 64 px).
Expected: about 0.5 CPU-s per step at batch 64 on one core of a 2-core AMD EPYC (Zen 4) shared
with other jobs, compilation about 20 CPU-s; 20,000 steps take hours on a laptop.
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import folder


def get_config():
    config = folder.get_config()
    config.data.resolution = 32
    config.train.augment = "color,translation,cutout"
    config.train.augment_p = 1.0
    return config
