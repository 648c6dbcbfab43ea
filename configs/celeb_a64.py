"""Unconditional DCGAN on CelebA faces (TFDS `celeb_a`), centre-cropped and resized to 64x64x3.

  python train.py --config configs/celeb_a64.py
Prepare once: pip install 'jaxgan[tf]' && tfds build celeb_a --file_format=array_record
(162,770 training images: ~2.0 GB at 64x64x3, held in host memory and streamed to the devices;
with data.host_cache_mb below that, read from disk a batch at a time instead.)
Expected: days on a 2-core CPU; a few hours on a GPU or TPU.
"""
from configs import dcgan64


def get_config():
    config = dcgan64.get_config()
    config.data.source = "tfds:celeb_a"
    config.data.split = "train"
    config.data.tfds_data_dir = ""
    config.data.tfds_reader = "auto"  # "data_source" (array_record, no TensorFlow) | "tf.data"
    config.data.download = True       # with TensorFlow: download and prepare when missing
    config.data.conditional = False
    config.data.random_flip = True
    return config
