"""Evaluation of generators: feature extractors (pytorch-fid's Inception, the run's own
classifier) and metrics (FID, KID, IS, precision/recall, density/coverage, intra-class FID,
GAN-test / GAN-train, memorisation). `evaluate(workdir_or_sampler, ...) -> dict`."""
from jaxgan.evaluation.evaluator import ALL_METRICS, evaluate, evaluate_images, format_table

__all__ = ["ALL_METRICS", "evaluate", "evaluate_images", "format_table"]
