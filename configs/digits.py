"""Class-conditional DCGAN on scikit-learn's handwritten digits: 16x16x1, 10 classes (the default).

  python train.py                       # same as: --config configs/digits.py --workdir runs/digits
  python sample.py --workdir runs/digits --grid digits.png

Expected: 3 minutes on a 2-core CPU (12,000 steps of batch 64, compilation and four evaluations
included; measured on an AMD EPYC, Zen 4; 5.5 minutes on an older AVX2 one). Measured result:
fd_classifier 2.24 (two halves of the real digits: 2.09 apart), GAN-test 99.85%, weakest class
99.0% (benchmarks/digits_quality.py; README's model section has the runs that chose this recipe).
Smoke run (under a minute on a CPU):
  python train.py --workdir /tmp/smoke --config.train.num_steps=20 \
      --config.model.g_width=8 --config.model.d_width=8
"""
from jaxgan.config import default_config


def get_config():
    # The defaults are this recipe; jaxgan/config.py says what every key means and allows.
    config = default_config()
    config.data.source = "digits"
    config.data.resolution = 16
    config.data.channels = 1
    config.model.arch = "dcgan"
    config.model.latent_dim = 64
    config.model.g_width = config.model.d_width = 32
    config.train.num_steps = 12_000
    config.train.batch_size = 64
    config.train.mode_seeking = 0.1  # MSGAN regulariser: keeps each class from collapsing
    # DiffAugment's translation on every image D sees: with 1,797 training images D otherwise
    # learns them by heart, and G's digits stay far less varied than the real ones.
    config.train.augment = "translation"
    # P2GAN's class loss (Han et al. 2021): D's projection head also learns to classify the real
    # digits and G to make digits it classifies as their labels. Without it about 3% of the
    # digits were ambiguous (GAN-test 96.9%); with it 99.8%, the distance to the real digits
    # unchanged (README, the digits default).
    config.train.class_loss = 0.3
    # At the end: GAN-test accuracy and the Frechet distance in the space of a classifier trained
    # on the digits (no Inception weights needed), from 2,000 generated digits.
    config.eval.every_steps = 3000
    config.eval.num_samples = 2000
    config.eval.metrics = "fid,gan_test"
    config.eval.extractor = "classifier"
    return config
