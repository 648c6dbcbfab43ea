"""Class-conditional DCGAN on scikit-learn's handwritten digits: 16x16x1, 10 classes (the default).

  python train.py                       # same as: --config configs/digits.py --workdir runs/digits
  python sample.py --workdir runs/digits --grid digits.png

Expected: 35 seconds on a 2-core CPU (3,000 steps of batch 64, compilation included; measured),
99.6% of generated digits recognised as their class (benchmarks/digits_quality.py).
Smoke run (under a minute on a CPU):
  python train.py --workdir /tmp/smoke --config.train.num_steps=20 \
      --config.model.g_width=8 --config.model.d_width=8
"""
import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.data = ml_collections.ConfigDict()
    config.data.source = "digits"      # digits
    config.data.resolution = 16        # a power of two, 16 to 128
    config.data.channels = 1           # 1 (grayscale) or 3 (RGB)
    config.data.conditional = True     # use the labels (False: an unconditional GAN)
    config.data.random_flip = False    # digits must not be mirrored
    config.data.device_cache_mb = 512  # larger sets stream from host memory
    config.data.host_cache_mb = 4096   # larger still: left on disk, decoded a batch at a time

    config.model = ml_collections.ConfigDict()
    config.model.latent_dim = 64
    config.model.g_width = 32          # generator channels at the last block (DCGAN's ngf)
    config.model.d_width = 32          # discriminator channels at the first block (DCGAN's ndf)
    config.model.d_norm = "batch"      # "batch" | "none"
    config.model.dtype = "float32"     # compute dtype; "bfloat16" for mixed precision

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = 3000
    config.train.batch_size = 64       # global, over all devices
    config.train.loss = "non_saturating"  # "non_saturating" | "hinge"
    config.train.n_critic = 1          # D updates per G update
    config.train.g_lr = 2e-4
    config.train.d_lr = 2e-4
    config.train.b1 = 0.5
    config.train.b2 = 0.999
    config.train.ema_decay = 0.999
    config.train.mode_seeking = 0.1    # MSGAN regulariser: keeps each class from collapsing
    config.train.augment = ""          # "translation": DiffAugment shifts for D (small data sets)
    config.train.steps_per_call = 1    # steps per dispatch: 1 on CPUs; 10-100 on GPUs and TPUs
    config.train.log_every_steps = 100
    config.train.sample_every_steps = 500

    config.checkpoint = ml_collections.ConfigDict()
    config.checkpoint.every_steps = 1000
    config.checkpoint.keep = 3
    return config
