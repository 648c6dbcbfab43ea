"""Class-conditional R3GAN on ImageNet 32x32 (TFDS `imagenet_resized/32x32`): the official
ImageNet-32 preset.

  python train.py --config configs/imagenet32_r3gan.py
  python sample.py --workdir runs/imagenet32_r3gan --seeds 0-63 --label 207 --grid dogs.png

R3GAN (Huang et al., NeurIPS 2024), as its official code (github brownvc/R3GAN, train.py's
ImageNet-32 preset and the README's command: --gpus=32 --batch=4096 --mirror=1 --aug=1 --cond=1):
widths 1536 at every stage (4, 8, 16, 32 px), 2 blocks per stage, grouped 3x3 convolutions of 32
channels per group (cardinality 96), z of 64, label embeddings of 64 (G) and 1536 (D); the
relativistic pairing loss with R1 and R2 (gamma 0.5 -> 0.05), Adam with beta1 0 and beta2
0.9 -> 0.99, learning rate 2e-4 -> 5e-5, augmentation probability 0 -> 0.5, G's EMA half-life
0 -> 50 M images, each along R3GAN's cosine over 200 M images; batch 4096, random x-flips.
Parameters (1,000 classes): G 82,914,304 and D 86,548,992, equal to the official code's
(tests/test_r3gan.py).
Their result (not reproduced here): FID 1.27, as quoted from the paper by secondary sources;
their protocol is fid50k_full (50,000 samples of G's EMA against the full training set,
Inception-v3 features).
Where this config departs from theirs: as configs/cifar10_r3gan.py (the augmentation pipeline
without 2x supersampling; train.num_steps is the end of the schedules, 200 M images, where the
official code runs until stopped).
Data: TFDS downloads and prepares imagenet_resized/32x32 (about 1.3 M images, a few GB) with
TensorFlow installed; without it, prepare it once: tfds build imagenet_resized/32x32
--file_format=array_record.
Expected: not measured (an accelerator pod's job: the official run used 32 GPUs).
Smoke run: --config.train.num_steps=4 --config.train.batch_size=16 --config.model.g_width=16
--config.model.d_width=16 --config.model.blocks_per_stage=1 --config.model.group_width=16
"""
from configs import cifar10_r3gan


def get_config():
    config = cifar10_r3gan.get_config()
    config.data.source = "tfds:imagenet_resized/32x32"
    config.model.g_width = config.model.d_width = 1536
    config.model.group_width = 32            # 3072 expanded channels / cardinality 96
    config.train.batch_size = 4096
    config.train.num_steps = 48_829          # 200 M images: where the schedules end
    config.train.r1_gamma = config.train.r2_gamma = 0.5
    config.train.schedule_kimg = 200_000     # decay_nimg = 2e8
    config.train.final_augment_p = 0.5
    config.train.ema_kimg = 50_000
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 1000
    return config
