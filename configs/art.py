"""An artist's folder of 100-5,000 pictures: ResNet GAN with the small-data tools, 64x64 RGB.

  python train.py --config configs/art.py --config.data.source=folder:/path/to/paintings
  python sample.py --workdir runs/art --seeds 0-15 --grid out.png

Subfolders are classes (class-conditional GAN), or images directly in the folder give an
unconditional one. What makes it work on few images:
  - the resnet family (SNGAN-style: residual blocks, spectral norm in D, projection head);
  - hinge loss;
  - DiffAugment (color, translation, cutout) on every image D sees, real and fake: D cannot
    memorise the folder, and what it learns still teaches G (Zhao et al. 2020). For adaptive
    augmentation instead: --config.train.augment_p=0 --config.train.ada_target=0.6;
  - LeCam regularisation (weight 0.3, as StudioGAN's *-DiffAug-LeCam recipes; Tseng et al. 2021);
  - the generator's EMA (decay 0.999) for sampling.
For 128 px: --config.data.resolution=128 (twice the steps' cost per doubling, at least).
Expected: on one NVIDIA H200 13.9 ms per step (float32), so the 20,000 steps take about 5
minutes plus compilation (--config.train.steps_per_call=50 on GPUs and TPUs); on a 2-core CPU
(AMD EPYC, AVX2) 15 s per step, days for 20,000. On a CPU shrink it: --config.model.g_width=16
--config.model.d_width=16 --config.train.n_critic=1 (3.2 s per step there; after 10 minutes its
fd_classifier on a 300-image photo folder was 14 against DCGAN's 2,130: README's model section,
benchmarks/recipes.py).
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import folder


def get_config():
    config = folder.get_config()
    config.model.arch = "resnet"
    config.model.d_norm = "spectral"
    config.model.latent_dim = 128
    config.model.g_width = 32
    config.model.d_width = 32
    config.train.loss = "hinge"
    config.train.n_critic = 2
    config.train.augment = "color,translation,cutout"
    config.train.augment_p = 1.0
    config.train.lecam = 0.3
    config.train.ema_decay = 0.999
    config.train.mode_seeking = 0.0
    config.train.num_steps = 20_000
    return config
