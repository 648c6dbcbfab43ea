"""The metrics' table, the computing half: `COMPUTE[name](run)` adds metric `name`'s values to
`run.report`, from the features the evaluator extracted once for all of them.

The declarative half (what each metric needs, its direction, the values it reports) is
`jaxgan.metric_names.METRICS`, keyed by the same names; `evaluator.evaluate_images` skips the
metrics whose needs are not met and calls the others in the table's order. Adding a metric is a
row there and a function here (README, "Adding a metric").
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import numpy as np

from jaxgan.errors import UserError
from jaxgan.evaluation import metrics as metrics_lib
from jaxgan.metric_names import metric_name

MEMORISATION_PAIRS = 8       # closest (generated, real) pairs shown in the PNG


@dataclasses.dataclass
class Report:
    """What the metrics write: the result of `evaluate_images` less its timing."""
    values: dict[str, float] = dataclasses.field(default_factory=dict)
    per_class: dict[str, dict] = dataclasses.field(default_factory=dict)
    protocol: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)
    files: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Run:
    """One evaluation's inputs, shared by every metric, and its report."""
    fake: Any                          # evaluator.ImageSet
    real: Any                          # evaluator.ImageSet, or None with reference statistics
    kind: str                          # the feature space: "inception" or "classifier"
    fake_out: dict                     # the extractor's outputs: "features", maybe "logits"
    real_out: dict | None              # the same for the real images, with "mu" and "sigma"
    reference_stats: tuple | None      # (mu, sigma) given instead of real images
    seed: int
    real_classifier: Callable[[], tuple]   # () -> (classifier, info), trained on first call
    out_dir: str | None = None
    tag: str = "eval"
    progress: bool = False
    report: Report = dataclasses.field(default_factory=Report)

    def name(self, base: str) -> str:
        return metric_name(base, self.kind)

    @functools.cached_property
    def fake_f(self) -> np.ndarray:
        return self.fake_out["features"]

    @functools.cached_property
    def real_f(self) -> np.ndarray | None:
        return self.real_out["features"] if self.real_out is not None else None


def fid(run: Run) -> None:
    report, name, fake_f = run.report, run.name("fid"), run.fake_f
    stats = run.reference_stats if run.real_out is None else (run.real_out["mu"],
                                                              run.real_out["sigma"])
    if stats[0].shape[-1] != fake_f.shape[1]:
        raise UserError(f"the reference statistics have {stats[0].shape[-1]} dimensions, the "
                        f"features {fake_f.shape[1]}")
    report.values[name], fid_notes = metrics_lib.fid_from_features(fake_f, real_stats=stats)
    _report_fid_notes(name, fid_notes, report)
    dim = fake_f.shape[1]
    smallest = min(len(fake_f), len(run.real_f) if run.real_f is not None else len(fake_f))
    if smallest < max(dim, metrics_lib.FID_MIN_SAMPLES if run.kind == "inception" else dim):
        report.notes.append(f"{name} from {smallest} samples in {dim} dimensions: the covariance "
                            "is rank-deficient and the value biased high; compare runs with "
                            f"{run.name('kid')} instead, or use more samples")


def _report_fid_notes(fid_name: str, fid_notes: dict, report: Report) -> None:
    if "sqrtm_eps_retry" in fid_notes:
        report.notes.append(f"{fid_name}: the covariance product was singular; "
                            f"{fid_notes['sqrtm_eps_retry']} was added to the diagonals (as "
                            "pytorch-fid)")
    if "sqrtm_max_imaginary" in fid_notes:
        report.values[fid_name + "_sqrtm_imaginary"] = fid_notes["sqrtm_max_imaginary"]
        report.notes.append(f"{fid_name}: the matrix square root has an imaginary part of "
                            f"{fid_notes['sqrtm_max_imaginary']:.3g} (beyond pytorch-fid's 1e-3 "
                            "tolerance, where it raises); the value uses the real part and is "
                            "unreliable")


def kid(run: Run) -> None:
    result, name = metrics_lib.kid(run.fake_f, run.real_f), run.name("kid")
    run.report.values[name + "_mean"], run.report.values[name + "_std"] = (result["mean"],
                                                                           result["std"])
    run.report.protocol["kid"] = {"subsets": result["subsets"],
                                  "subset_size": result["subset_size"],
                                  "kernel": "(x.y/d + 1)^3", "estimator": "unbiased MMD^2"}


def inception_score(run: Run) -> None:
    if run.fake_out.get("logits") is None:
        run.report.notes.append("is skipped: the extractor has no class logits")
        return
    score, name = metrics_lib.inception_score(run.fake_out["logits"]), run.name("is")
    run.report.values[name + "_mean"], run.report.values[name + "_std"] = (score["mean"],
                                                                           score["std"])
    run.report.protocol["is_splits"] = metrics_lib.IS_SPLITS


def precision_recall(run: Run) -> None:
    pr = metrics_lib.precision_recall(run.fake_f, run.real_f, k=3)
    dc = metrics_lib.density_coverage(run.fake_f, run.real_f, k=5)
    for key in ("precision", "recall"):
        run.report.values[run.name(key)] = pr[key]
    for key in ("density", "coverage"):
        run.report.values[run.name(key)] = dc[key]
    run.report.protocol["pr_k"], run.report.protocol["dc_k"] = 3, 5


def intra_fid(run: Run) -> None:
    fake, real, name, scores = run.fake, run.real, run.name("intra_fid"), {}
    for c, class_name in enumerate(real.class_names):
        f, r = run.fake_f[fake.labels == c], run.real_f[real.labels == c]
        if len(f) < 2 or len(r) < 2:
            run.report.notes.append(f"{name}: class {class_name!r} has too few images")
            continue
        scores[class_name], class_notes = metrics_lib.fid_from_features(f, r)
        if "sqrtm_max_imaginary" in class_notes:
            run.report.notes.append(f"{name} of class {class_name!r}: sqrtm left an imaginary "
                                    f"part of {class_notes['sqrtm_max_imaginary']:.3g}")
    if scores:
        run.report.values[name + "_mean"] = float(np.mean(list(scores.values())))
        run.report.per_class[name] = scores


def gan_test(run: Run) -> None:
    classifier, _ = run.real_classifier()
    run.report.values["gan_test_accuracy"] = classifier.accuracy(run.fake.images, run.fake.labels)
    _real_held_out(run)


def gan_train(run: Run) -> None:
    from jaxgan.evaluation import classifier as classifier_lib
    fake, real = run.fake, run.real
    _, held = classifier_lib.held_out_split(real.labels, run.seed)
    run.report.values["gan_train_accuracy"] = classifier_lib.gan_train_accuracy(
        fake.images, fake.labels, len(real.class_names), real.images[held], real.labels[held],
        run.seed, run.progress)
    _real_held_out(run)


def _real_held_out(run: Run) -> None:
    """The real classifier's held-out accuracy, the yardstick of gan_test and gan_train: after
    the last of them (popped and set again, so that it follows both in the result)."""
    _, info = run.real_classifier()
    if "held_out_accuracy" not in info:
        return
    report = run.report
    report.values.pop("real_held_out_accuracy", None)
    report.values["real_held_out_accuracy"] = info["held_out_accuracy"]
    report.protocol.pop("classifier_split", None)
    report.protocol["classifier_split"] = {k: v for k, v in info.items()
                                           if k != "held_out_accuracy"}


def memorisation(run: Run) -> None:
    memo = metrics_lib.memorisation(run.fake_f, run.real_f)
    run.report.values[run.name("memorisation")] = memo["fraction"]
    run.report.protocol["memorisation_threshold"] = ("median real-to-real nearest-neighbour "
                                                     f"distance ({memo['threshold']:.4g})")
    if run.out_dir:
        run.report.files["memorisation_pairs"] = _write_pairs(
            run.fake.images, run.real.images, memo, run.out_dir, run.tag)


def _write_pairs(fake_images, real_images, memo, out_dir: str, tag: str) -> str:
    """A PNG of the closest (generated | nearest real) pairs, one pair per row."""
    from jaxgan.images import auto_upscale, make_grid, save_png
    order = np.argsort(memo["distance"])[:MEMORISATION_PAIRS]
    pairs = np.stack([image for i in order
                      for image in (fake_images[i], real_images[memo["index"][i]])])
    path = os.path.join(out_dir, f"memorisation_{tag}.png")
    save_png(path, make_grid(pairs, 2, auto_upscale(pairs.shape[1])),
             {"Software": "jaxgan", "Comment": "left: generated, right: nearest real image "
              "(feature space), closest pairs first"})
    return path


def c2st(run: Run) -> None:
    name = run.name("c2st")
    if min(len(run.fake_f), len(run.real_f)) < metrics_lib.C2ST_MIN_SAMPLES:
        run.report.notes.append(f"{name} skipped: needs at least {metrics_lib.C2ST_MIN_SAMPLES} "
                                "images on each side")
        return
    test = metrics_lib.c2st(run.fake_f, run.real_f, run.seed)
    run.report.values[name + "_accuracy"] = test["accuracy"]
    run.report.protocol["c2st"] = test["protocol"]


# name -> the function that reports it; the names are jaxgan.metric_names.METRICS's.
COMPUTE: dict[str, Callable[[Run], None]] = {
    "fid": fid,
    "kid": kid,
    "is": inception_score,
    "pr": precision_recall,
    "intra_fid": intra_fid,
    "gan_test": gan_test,
    "gan_train": gan_train,
    "memorisation": memorisation,
    "c2st": c2st,
}
