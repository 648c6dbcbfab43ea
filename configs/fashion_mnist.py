"""Class-conditional DCGAN on Fashion-MNIST (TFDS `fashion_mnist`), 32x32x1, 10 classes.

  python train.py --config configs/fashion_mnist.py
With pip install 'jaxgan[tf]' it is downloaded and read through tf.data; without TensorFlow,
prepare it once: tfds build fashion_mnist --file_format=array_record
Expected: as configs/mnist.py (~15 minutes on a 2-core CPU).
"""
from configs import mnist


def get_config():
    config = mnist.get_config()
    config.data.source = "tfds:fashion_mnist"
    return config
