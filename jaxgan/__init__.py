"""jaxgan: train GANs and class-conditional GANs in JAX, and draw new images from them.

  import jaxgan
  jaxgan.train_and_evaluate(config, workdir)     # train or resume
  sampler = jaxgan.load_sampler(workdir)         # the trained generator, from the workdir alone

Importing jaxgan never imports TensorFlow.
"""
__version__ = "0.1.0"

from jaxgan.errors import UserError
from jaxgan.sampling import Sampler, load_sampler
from jaxgan.train import train_and_evaluate

__all__ = ["Sampler", "UserError", "__version__", "load_sampler", "train_and_evaluate"]
