"""Your drawings on a laptop CPU, 32x32, for a 30-minute run: the recipe search's winner there.

  python train.py --config configs/art_cpu.py --config.data.source=folder:/path/to/drawings
  python sample.py --workdir runs/art_cpu --label animals --seeds 0-15 --grid out.png

configs/folder.py's class-conditional DCGAN at 32 px with what the equal-CPU-time search
(benchmarks/recipe_search.py; README, "A recipe for a laptop") found best for half an hour on
2 cores: the hinge loss with Adam beta1 = 0, DiffAugment translation (Zhao et al. 2020), the
LeCam regulariser at 0.3 (Tseng et al. 2021), an EMA decay of 0.995 and no mode seeking.
On the drawn folder (benchmarks/drawn_folder.py: 1,134 openclipart drawings in 4 categories) at
3,000 CPU-seconds on one core (about 30 minutes on 2 cores) it reached C2ST 0.62 and GAN-test
0.62 (real held-out 0.71), against folder.py's 0.72 and 0.56; at 1,000 CPU-seconds (about 10
minutes) folder.py was still slightly ahead (0.70 / 0.52 against 0.76 / 0.50). One seed at
3,000 CPU-seconds: the spread over seeds is in the README.
For a GPU or TPU use configs/art.py (resnet, 64 px).
Expected (AMD EPYC, Zen 4): 6,746 steps (batch 64) in 3,000 CPU-seconds on one core, compilation
and folder decoding included; two cores run this DCGAN's step 1.66x as fast as one, so its 6,500
steps take about 30 minutes on 2 cores.
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import folder


def get_config():
    config = folder.get_config()
    config.data.resolution = 32
    config.train.loss = "hinge"
    config.train.b1 = 0.0
    config.train.augment = "translation"
    config.train.lecam = 0.3
    config.train.ema_decay = 0.995
    config.train.mode_seeking = 0.0
    # Half an hour on 2 cores (the searched budget); the learning rates are constant
    # (train.lr_decay = 0), so the step count only says when to stop.
    config.train.num_steps = 6_500
    # The search measured training alone: evaluating FID during a laptop's half hour would take
    # much of it. Evaluate afterwards: python -m jaxgan.evaluate --workdir runs/art_cpu
    config.eval.every_steps = 0
    return config
