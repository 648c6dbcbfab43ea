"""jaxgan: train GANs and class-conditional GANs in JAX, and draw new images from them.

  import jaxgan
  jaxgan.train_and_evaluate(config, workdir)     # train or resume
  sampler = jaxgan.load_sampler(workdir)         # the trained generator, from the workdir alone

Importing jaxgan never imports TensorFlow; JAX itself is imported on first use of the API (so
`python -m jaxgan.watermark` starts fast).

Package map, bottom to top (imports point down, tests/test_import_layers.py):
  errors.py, fileio.py, images.py, mesh.py, metric_names.py   shared by all of the below
  keys.py, families.py   what a config key is; the model families' registry (model.arch -> its
                 module and its own model.* keys; no JAX)
  config.py      every config key's default and validation (no JAX)
  models/        the model families (built by config.model.arch), layers, norms
  data/          sources: digits, folder:PATH, tfds:NAME -> Dataset (uint8 images, labels)
  training/      state, step, pipeline (device / host / disk tiers), checkpoint (and the best
                 checkpoint), writers
  sampler.py     load_sampler / Sampler: the generator rebuilt from a checkpoint
  evaluation/    feature extractors and metrics
  loop.py        the training loop, train_and_evaluate (above the evaluation, which it runs)
  art/           apps: export (provenance, GIFs, novelty), watermark, sample.py's logic
  gallery/       people rate generated images and take blind trials (python -m jaxgan.gallery)
"""
import importlib

__version__ = "0.1.0"

from jaxgan.errors import UserError

_LAZY = {"train_and_evaluate": "jaxgan.loop", "load_sampler": "jaxgan.sampler",
         "Sampler": "jaxgan.sampler", "evaluate": "jaxgan.evaluation"}
__all__ = ["Sampler", "UserError", "__version__", "evaluate", "load_sampler", "train_and_evaluate"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
