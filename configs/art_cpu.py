"""Your drawings on a laptop CPU, 32x32, for a 30-minute run: the recipe search's winner there.

  python train.py --config configs/art_cpu.py --config.data.source=folder:/path/to/drawings
  python sample.py --workdir runs/art_cpu --label animals --seeds 0-15 --grid out.png

configs/folder.py's class-conditional DCGAN at 32 px with what the equal-CPU-time search
(benchmarks/recipe_search.py; README, "A recipe for a laptop") found best for 10 and 30 minutes
on 2 cores: the hinge loss with Adam beta1 = 0, DiffAugment translation (Zhao et al. 2020), the
LeCam regulariser at 0.3 (Tseng et al. 2021), an EMA decay of 0.995, no mode seeking, batches of
16 (4x the updates per CPU-second of folder.py's 64), and P2GAN's class loss at 0.3 (Han et al.
2021: D's projection head also classifies the real drawings, G makes drawings it classifies as
their labels).
On the drawn folder (benchmarks/drawn_folder.py: 1,134 openclipart drawings in 4 categories),
CPU-seconds on one core (1,000 about 10 minutes on 2 cores, 3,000 about 30), C2ST / GAN-test
(real held-out 0.71): at 1,000 CPU-s 0.62 / 0.69, where folder.py made 0.68-0.72 / 0.48-0.52
over 4 runs; at 3,000 CPU-s 0.60 / 0.74 (34,185 steps), where folder.py made 0.71-0.74 /
0.54-0.59 and the same recipe without the class loss 0.57 / 0.66: the class loss buys GAN-test
(its animals have legs and heads) for some distance to the drawings (fd_classifier 1.4
against 0.8).
For a GPU or TPU use configs/art.py (resnet, 64 px).
Expected (AMD EPYC, Zen 4): 34,185 steps in 3,000 CPU-seconds on one core, compilation and
folder decoding included; its step takes 65 ms on 2 cores (84 on one; step_throughput.py), so
its 28,000 steps take about 30 minutes on 2 cores.
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
    config.train.batch_size = 16
    config.train.class_loss = 0.3
    # Half an hour on 2 cores (the searched budget); the learning rates are constant
    # (train.lr_decay = 0), so the step count only says when to stop.
    config.train.num_steps = 28_000
    # The search measured training alone: evaluating FID during a laptop's half hour would take
    # much of it. Evaluate afterwards: python -m jaxgan.evaluate --workdir runs/art_cpu
    config.eval.every_steps = 0
    return config
