"""The metrics' table, the declarative half: each metric's name, what it needs, its direction and
the values it reports; and the extractor names. No JAX: config validation and the command line's
--help stay instant. Below config.py (which validates `eval.metrics` and `eval.extractor`
against it) and below training/checkpoint.py (whose best-checkpoint policy reads the direction).

The other half, the function that computes each metric, is `COMPUTE` in
jaxgan/evaluation/metric_table.py, keyed by the same names (README, "Adding a metric").
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    needs_labels: bool         # class labels on both sides (else skipped, with a note)
    needs_real: bool           # the real images, not only reference statistics (mu, sigma)
    lower_is_better: bool      # the direction the best-checkpoint policy picks by
    values: tuple[str, ...]    # stems of the value names it reports, in the Inception space
                               # (`fid` reports fid / fd_classifier, fid_sqrtm_imaginary ...)


# Computed in this order whatever the order asked for (the result's keys keep it).
METRICS: dict[str, Metric] = {
    "fid": Metric(needs_labels=False, needs_real=False, lower_is_better=True, values=("fid",)),
    "kid": Metric(needs_labels=False, needs_real=True, lower_is_better=True, values=("kid",)),
    "is": Metric(needs_labels=False, needs_real=False, lower_is_better=False, values=("is",)),
    "pr": Metric(needs_labels=False, needs_real=True, lower_is_better=False,
                 values=("precision", "recall", "density", "coverage")),
    "intra_fid": Metric(needs_labels=True, needs_real=True, lower_is_better=True,
                        values=("intra_fid",)),
    "gan_test": Metric(needs_labels=True, needs_real=True, lower_is_better=False,
                       values=("gan_test", "real_held_out")),
    "gan_train": Metric(needs_labels=True, needs_real=True, lower_is_better=False,
                        values=("gan_train", "real_held_out")),
    # The share of generated images closer to a real one than real ones are to each other.
    "memorisation": Metric(needs_labels=False, needs_real=True, lower_is_better=True,
                           values=("memorisation",)),
    # A classifier's accuracy at telling generated from real: 0.5 = indistinguishable.
    "c2st": Metric(needs_labels=False, needs_real=True, lower_is_better=True, values=("c2st",)),
}
ALL_METRICS = tuple(METRICS)    # the built-in ones, for defaults and help texts
CONDITIONAL_METRICS = tuple(n for n, m in METRICS.items() if m.needs_labels)
EXTRACTORS = ("auto", "inception", "classifier")
MAX_REAL = 50_000            # real images used by default: the whole set, up to this many

# Outside pytorch-fid's Inception space a distance is not a FID: its values are renamed.
_RENAMED = {"fid": "fd", "kid": "kd", "intra_fid": "intra_fd"}


def metric_name(base: str, extractor: str) -> str:
    """`fid` in Inception space; `fd_classifier` etc. in the classifier's (never `fid`)."""
    if extractor == "inception":
        return base
    return f"{_RENAMED.get(base, base)}_{extractor}"


def metric_of_value(value: str) -> str | None:
    """The metric that reports the value named `value` (`fd_classifier` -> `fid`), or None."""
    for name, metric in METRICS.items():
        stems = {s for stem in metric.values for s in (stem, _RENAMED.get(stem, stem))}
        if any(value == s or value.startswith(s + "_") for s in stems):
            return name
    return None


def lower_is_better(value: str) -> bool:
    """The direction of a reported value, from its metric's row (an unknown name: higher)."""
    name = metric_of_value(value)
    return name is not None and METRICS[name].lower_is_better
