"""Class-conditional DCGAN on MNIST (TFDS `mnist`), 28x28 resized to 32x32, 1 channel, 10 classes.

  python train.py --config configs/mnist.py
With TensorFlow installed (pip install 'jaxgan[tf]') the set is downloaded, prepared and read
through tf.data. Without it, prepare it once in array_record format somewhere TensorFlow is:
  tfds build mnist --file_format=array_record
Expected: ~15 minutes on a 2-core CPU (measured 82 ms/step with another job on the machine, so
an upper bound; 10,000 steps); on a GPU or TPU minutes (not measured here: no accelerator).
Smoke run: --config.train.num_steps=10 --config.model.g_width=8 --config.model.d_width=8
"""
from configs import digits


def get_config():
    config = digits.get_config()
    config.data.source = "tfds:mnist"
    config.data.split = "train"
    config.data.tfds_data_dir = ""  # "" = TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR)
    config.data.tfds_reader = "auto"  # "data_source" (array_record, no TensorFlow) | "tf.data"
    config.data.download = True       # with TensorFlow: download and prepare when missing
    config.data.resolution = 32
    config.data.channels = 1
    config.train.num_steps = 10_000
    config.train.augment = ""  # the digits' DiffAugment is for their 1,797 images
    config.train.sample_every_steps = 1000
    config.checkpoint.every_steps = 1000
    return config
