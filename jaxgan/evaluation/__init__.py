"""Evaluation of generators: feature extractors (pytorch-fid's Inception, the run's own
classifier) and metrics (FID, KID, IS, precision/recall, density/coverage, intra-class FID,
GAN-test / GAN-train, memorisation). `evaluate(workdir_or_sampler, ...) -> dict`.

JAX is imported on first use of `evaluate` etc., not by `import jaxgan.evaluation`."""
import importlib

from jaxgan.metric_names import ALL_METRICS

__all__ = ["ALL_METRICS", "evaluate", "evaluate_images", "format_table"]


def __getattr__(name):
    if name in ("evaluate", "evaluate_images", "format_table"):
        return getattr(importlib.import_module("jaxgan.evaluation.evaluator"), name)
    raise AttributeError(f"module 'jaxgan.evaluation' has no attribute {name!r}")
