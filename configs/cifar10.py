"""Class-conditional DCGAN on CIFAR-10 (TFDS `cifar10`), 32x32x3, 10 classes, hinge loss.

  python train.py --config configs/cifar10.py
With pip install 'jaxgan[tf]' it is downloaded and read through tf.data; without TensorFlow,
prepare it once: tfds build cifar10 --file_format=array_record
Expected: ~3.4 hours on a 2-core CPU (measured 245 ms/step with another job on the machine;
50,000 steps); on a GPU or TPU well under an hour (not measured here). For reference, StudioGAN's
DCGAN reaches FID 48 on CIFAR-10.
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import digits


def get_config():
    config = digits.get_config()
    config.data.source = "tfds:cifar10"
    config.data.split = "train"
    config.data.tfds_data_dir = ""
    config.data.tfds_reader = "auto"  # "data_source" (array_record, no TensorFlow) | "tf.data"
    config.data.download = True       # with TensorFlow: download and prepare when missing
    config.data.resolution = 32
    config.data.channels = 3
    config.data.random_flip = True
    config.model.latent_dim = 128
    config.model.g_width = 64
    config.model.d_width = 64
    config.train.loss = "hinge"
    config.train.num_steps = 50_000
    config.train.augment = ""  # the digits' DiffAugment is for their 1,797 images
    config.train.sample_every_steps = 2000
    config.checkpoint.every_steps = 2000
    return config
