"""Class-conditional BigGAN on CIFAR-10 (TFDS `cifar10`), 32x32x3: StudioGAN's CIFAR10 BigGAN
(configs/CIFAR10/BigGAN.json, = BigGAN-Mod.yaml's model).

  python train.py --config configs/cifar10_biggan.py

StudioGAN's `big_resnet` backbone: g_conv_dim = d_conv_dim = 96, z_dim 80 split hierarchically
over the Dense layer and the 3 blocks (20 each), a shared 128-d class embedding, spectral norm in
G and D, self-attention at 16x16 in both, hinge loss, Adam 2e-4 (0.5, 0.999), batch 64, 5 D
updates per G update, 100,000 steps, G's EMA with decay 0.9999 (StudioGAN starts it at step
1,000; here it warms up as (1 + step) / (10 + step)), random flips. Parameters: G 9,416,196 and
D 2,415,170, the counts of StudioGAN's models for this config (computed layer by layer from its
src/models/big_resnet.py and utils/ops.py; tested in tests/test_resnet.py). StudioGAN reports
FID 4.2 for it, 3.4 with DiffAugment (--config.train.augment=color,translation,cutout).
Expected on this 2-core CPU: not measured at full width; on a GPU or TPU, use
--config.train.steps_per_call=50.
Smoke run: --config.train.num_steps=4 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import cifar10_sngan


def get_config():
    config = cifar10_sngan.get_config()
    config.model.latent_dim = 80
    config.model.g_width = 96
    config.model.d_width = 96
    config.model.attention_resolution = 16
    config.model.shared_embedding_dim = 128
    config.model.hierarchical_latent = True
    config.model.g_spectral_norm = True
    config.train.ema_decay = 0.9999
    return config
