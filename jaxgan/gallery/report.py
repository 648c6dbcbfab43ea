"""`python -m jaxgan.gallery report`: the judgements of a workdir, summarised.

- Ratings: each rater's latest rating of each image counts once. Mean with a 95% confidence
  interval from Student's t (mean +- t(0.975, n-1) * sd / sqrt(n)), per class and overall. It
  treats ratings as independent draws, which ratings by the same person are not quite: with few
  raters read the interval as a lower bound on the uncertainty.
- Blind trials (HYPE-infinity, Zhou et al. 2019): each rater's first answer per trial counts.
  Fooling rate of generated images = fraction judged real; of real images = fraction judged
  generated; HYPE error = all wrong answers / all answers (50% = people cannot tell). 95% Wilson
  score intervals (right at 0% and 100% and for small counts, where the normal one is not).
- Favourites and "looks copied": images a rater currently flags (the newest flag row is set);
  drawn again from (step, seed, class) into contact sheets.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import os

import numpy as np
import scipy.stats

from jaxgan.gallery import store as store_lib

ALL = None  # the key of the overall figures (None: no class name can clash with it)


@dataclasses.dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float
    low: float   # nan when n < 2 (no spread to estimate)
    high: float


@dataclasses.dataclass(frozen=True)
class Proportion:
    k: int
    n: int
    rate: float  # nan when n == 0
    low: float
    high: float


def mean_ci(values, confidence: float = 0.95) -> MeanCI:
    values = np.asarray(values, np.float64)
    n = len(values)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if n < 2:
        return MeanCI(n, mean, math.nan, math.nan)
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return MeanCI(n, mean, mean - half, mean + half)


def wilson(k: int, n: int, confidence: float = 0.95) -> Proportion:
    if n == 0:
        return Proportion(0, 0, math.nan, math.nan, math.nan)
    interval = scipy.stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
    return Proportion(k, n, k / n, float(interval.low), float(interval.high))


def _class_key(row) -> str:
    return ALL if row["class_name"] is None else row["class_name"]


@dataclasses.dataclass
class Report:
    raters: int
    judgements: int
    ratings: dict          # class -> MeanCI (and ALL)
    raters_per_class: dict  # class -> number of raters who rated it
    fooled_generated: dict  # class -> Proportion (generated judged real)
    fooled_real: dict       # class -> Proportion (real judged generated)
    hype_error: Proportion
    favourites: list        # [(row, number of raters)] of images currently flagged
    copied: list


def summarise(rows) -> Report:
    ratings = store_lib.latest(rows, "rating")
    trials = _first_answers([r for r in rows if r["kind"] == "trial"])
    classes = sorted({_class_key(r) for r in ratings + trials} - {ALL})
    by_class = {c: [r for r in ratings if _class_key(r) == c] for c in classes}
    by_class[ALL] = ratings
    report = Report(
        raters=len({r["rater"] for r in rows}), judgements=len(rows),
        ratings={c: mean_ci([r["value"] for r in rs]) for c, rs in by_class.items()},
        raters_per_class={c: len({r["rater"] for r in rs}) for c, rs in by_class.items()},
        fooled_generated={}, fooled_real={}, hype_error=wilson(
            sum(r["value"] != (r["source"] == "real") for r in trials), len(trials)),
        favourites=_flagged(rows, "favourite"), copied=_flagged(rows, "copied"))
    for c in classes + [ALL]:
        rs = [r for r in trials if c == ALL or _class_key(r) == c]
        generated = [r for r in rs if r["source"] == "generated"]
        real = [r for r in rs if r["source"] == "real"]
        report.fooled_generated[c] = wilson(sum(r["value"] == 1 for r in generated), len(generated))
        report.fooled_real[c] = wilson(sum(r["value"] == 0 for r in real), len(real))
    return report


def _first_answers(trials):
    first = {}
    for row in trials:
        first.setdefault((row["rater"], row["step"], row["image_id"]), row)
    return list(first.values())


def _flagged(rows, kind: str):
    """[(row, count)] of images whose newest `kind` row is set for at least one rater."""
    counts, example = {}, {}
    for row in store_lib.latest(rows, kind):
        if row["value"]:
            key = (row["step"], row["image_id"])
            counts[key] = counts.get(key, 0) + 1
            example[key] = row
    return [(example[key], counts[key]) for key in sorted(counts)]


def _fmt_mean(m: MeanCI) -> str:
    if m.n == 0:
        return "-"
    interval = "" if math.isnan(m.low) else f" [{m.low:.2f}, {m.high:.2f}]"
    return f"{m.mean:.2f}{interval}"


def _fmt_prop(p: Proportion) -> str:
    if p.n == 0:
        return "-"
    return f"{100 * p.rate:.1f}% [{100 * p.low:.1f}, {100 * p.high:.1f}] ({p.k}/{p.n})"


def format_report(report: Report) -> list[str]:
    lines = [f"{report.raters} raters, {report.judgements} judgements.", "",
             "Ratings (1-5; each rater's latest per image), mean [95% CI]; blind trials: fooling "
             "rate [95% Wilson] (count)",
             f"{'class':<14} {'raters':>6} {'ratings':>7}  {'mean rating':<20} "
             f"{'generated judged real':<30} real judged generated"]
    for c in [k for k in report.ratings if k != ALL] + [ALL]:
        name = "all" if c is ALL else c
        lines.append(f"{name[:14]:<14} {report.raters_per_class[c]:>6} {report.ratings[c].n:>7}  "
                     f"{_fmt_mean(report.ratings[c]):<20} "
                     f"{_fmt_prop(report.fooled_generated[c]):<30} "
                     f"{_fmt_prop(report.fooled_real[c]):<30}".rstrip())
    lines.append(f"HYPE error (all wrong answers / all answers; 50% = cannot tell): "
                 f"{_fmt_prop(report.hype_error)}")
    for title, flagged in (("Favourites", report.favourites), ("Looks copied", report.copied)):
        names = ", ".join(f"{row['image_id']} (x{count})" for row, count in flagged) or "none"
        lines.append(f"{title}: {names}")
    return lines


def write_csv(rows, path) -> None:
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=store_lib.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def contact_sheet(workdir, flagged, path, load_sampler) -> None:
    """The flagged images drawn again from (step, seed, class), 8 per row, as a PNG with
    provenance text."""
    from jaxgan.gallery import making
    from jaxgan.images import auto_upscale, make_grid
    images = []
    by_step: dict = {}
    for row, _ in flagged:
        by_step.setdefault(row["step"], []).append(row)
    for step, rows in sorted(by_step.items()):
        sampler = load_sampler(workdir, step)
        labels = None if sampler.num_classes == 0 else [r["class_index"] for r in rows]
        images.append(sampler.generate([r["seed"] for r in rows], labels))
    pixels = np.concatenate(images)
    grid = make_grid(pixels, 8, auto_upscale(pixels.shape[1]))
    seeds = ", ".join(f"{r['image_id']}" for r, _ in flagged)
    making.write_sheet(path, grid, sorted(by_step), seeds)
