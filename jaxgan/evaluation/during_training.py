"""Evaluation inside a training run: what the loop calls every `eval.every_steps` steps.

    evaluator = TrainingEvaluator.from_config(config, workdir, data_facts)   # once
    values = evaluator(generator_variables, step)   # {"fd_classifier": ..., "gan_test_accuracy": ...}

The real images are loaded once, the real-data classifier is trained once (cached in
`<workdir>/eval/`) and the real features are computed once (cached in $JAXGAN_CACHE); each call
generates `num_samples` images from the EMA generator and writes `<workdir>/eval/step_N.json`.
"""
from __future__ import annotations

import os

from jaxgan.evaluation import evaluator as evaluator_lib
from jaxgan.sampler import Sampler


class TrainingEvaluator:
    def __init__(self, config, workdir: str, data_facts: dict, num_samples: int = 2000,
                 metrics=("fid", "kid", "pr", "intra_fid", "gan_test"), extractor: str = "auto",
                 inception_weights: str | None = None, seed: int = 0):
        self.config, self.workdir, self.facts = config, os.path.abspath(workdir), data_facts
        self.num_samples, self.extractor, self.seed = num_samples, extractor, seed
        self.metrics = evaluator_lib.parse_metrics(metrics)
        self.inception_weights = inception_weights or None
        self._real = None

    @classmethod
    def from_config(cls, config, workdir: str, data_facts: dict) -> "TrainingEvaluator":
        """From the `eval.*` keys: num_samples, metrics (comma-separated), extractor,
        inception_weights ('' = the cache)."""
        e = config.eval
        return cls(config, workdir, data_facts, e.num_samples, e.metrics, e.extractor,
                   e.inception_weights, config.seed)

    def __call__(self, generator_variables, step: int) -> dict:
        """The metrics of the generator with these variables, flat {name: float}, and the
        result JSON written to <workdir>/eval/step_<step>.json."""
        if self._real is None:
            self._real, _ = evaluator_lib.load_real(self.config.data, evaluator_lib.MAX_REAL,
                                                    self.seed)
        sampler = Sampler(self.config, self.facts, generator_variables, int(step))
        result = evaluator_lib.evaluate(
            sampler, num=self.num_samples, metrics=self.metrics, extractor=self.extractor,
            inception_weights=self.inception_weights, seed=self.seed, workdir=self.workdir,
            real=self._real)
        self.last_result = result
        return dict(result["metrics"])
