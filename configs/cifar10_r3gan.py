"""Class-conditional R3GAN on CIFAR-10 (TFDS `cifar10`), 32x32x3: the official CIFAR10 preset.

  python train.py --config configs/cifar10_r3gan.py
  python sample.py --workdir runs/cifar10_r3gan --seeds 0-63 --label airplane --grid planes.png

R3GAN (Huang et al., NeurIPS 2024), as its official code (github brownvc/R3GAN, train.py's
CIFAR10 preset and the README's command: --batch=512 --mirror=1 --aug=1 --cond=1): widths 768 at
every stage (4, 8, 16, 32 px), 2 blocks per stage, grouped 3x3 convolutions of 16 channels per
group (cardinality 96), z of 64, label embeddings of 64 (G) and 768 (D); the relativistic pairing
loss with R1 and R2 (gamma 0.05 -> 0.005), Adam with beta1 0 and beta2 0.9 -> 0.99, learning
rate 2e-4 -> 5e-5 for both networks, the augmentation probability 0 -> 0.55 and G's EMA half-life
0 -> 5 M images, each along R3GAN's cosine over 20 M images (jaxgan/config.py's train.schedule_*
keys), batch 512, random x-flips. Parameters: G 20,781,952 and D 21,280,512, equal to the
official code's (tests/test_r3gan.py; counted from its Networks.py).
Their result (not reproduced here): FID 1.96, as quoted from the paper by secondary sources; their
protocol is fid50k_full: 50,000 samples of G's EMA with uniformly drawn labels against the full
training set, Inception-v3 features (NVIDIA's TorchScript port of the TF model).
As the official code: StyleGAN2-ADA's augmentation pipeline with R3GAN's multipliers
(train.augment="ada") on its probability schedule; each step reads two real batches (D's, and
G's own) and the fakes carry real labels. Where this config departs from theirs: the pipeline
samples at the image's own resolution (the official supersamples 2x through a wavelet filter:
jaxgan/training/augment_pipe.py says why); the official code does not fix a length (runs go on at
the final values until stopped): train.num_steps here is the end of the schedules, 20 M images.
Expected: not measured at this size (no accelerator lent; a step of batch 512 at 42 M parameters
is minutes on a CPU); on a GPU or TPU use --config.train.steps_per_call=10 or more.
Smoke run (seconds per step on a CPU):
  python train.py --config configs/cifar10_r3gan.py --config.train.num_steps=4 \
      --config.train.batch_size=16 --config.model.g_width=16 --config.model.d_width=16 \
      --config.model.blocks_per_stage=1
"""
from configs import cifar10


def get_config():
    config = cifar10.get_config()
    config.data.random_flip = True           # --mirror=1
    config.model.arch = "r3gan"
    config.model.d_norm = "none"             # no normalisation anywhere
    config.model.latent_dim = 64             # NoiseDimension
    config.model.g_width = config.model.d_width = 768
    config.model.blocks_per_stage = 2
    config.model.group_width = 16            # 1536 expanded channels / cardinality 96
    config.train.batch_size = 512
    config.train.num_steps = 39_063          # 20 M images: where the schedules end
    config.train.loss = "rpgan"
    config.train.n_critic = 1
    config.train.r1_gamma = config.train.r2_gamma = 0.05
    config.train.r1_every = 1                # not lazy
    config.train.g_lr = config.train.d_lr = 2e-4
    config.train.b1, config.train.b2 = 0.0, 0.9
    config.train.schedule_kimg = 20_000      # decay_nimg = 2e7
    config.train.final_lr_scale = 0.25       # 2e-4 -> 5e-5
    config.train.final_gamma_scale = 0.1     # 0.05 -> 0.005
    config.train.final_b2 = 0.99
    config.train.augment = "ada"  # StyleGAN2-ADA's pipeline, R3GAN's multipliers
    config.train.augment_p = 0.0
    config.train.final_augment_p = 0.55
    config.train.ema_kimg = 5_000            # EMA half-life 0 -> 5 M images
    config.train.mode_seeking = 0.0
    return config
