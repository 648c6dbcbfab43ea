"""The best checkpoint by an evaluation metric, from the results in `<workdir>/eval/step_N.json`
(numpy + json only: sampling imports it without the evaluation's dependencies)."""
from __future__ import annotations

import glob
import json
import os
import re

from jaxgan.errors import UserError

# Distances, shares of copies and the two-sample test's accuracy (0.5 = indistinguishable):
# lower is better; every other metric (accuracies, IS, precision, recall, density, coverage):
# higher.
LOWER_IS_BETTER = re.compile(r"^(fid|fd_|kid|kd_|intra_fid|intra_fd|memorisation|c2st)")
DEFAULT_METRICS = ("fid", "fd_classifier")


def lower_is_better(metric: str) -> bool:
    return bool(LOWER_IS_BETTER.match(metric))


def evaluated_steps(workdir) -> dict[int, dict]:
    """{step: metrics} of every evaluation result in the workdir."""
    results = {}
    for path in glob.glob(os.path.join(os.fspath(workdir), "eval", "step_*.json")):
        match = re.search(r"step_(\d+)\.json$", path)
        try:
            with open(path) as f:
                results[int(match.group(1))] = json.load(f)["metrics"]
        except (OSError, ValueError, KeyError):
            continue  # a damaged result file names no best step
    return results


def best_step(workdir, available_steps, metric: str | None = None) -> int:
    """The step among `available_steps` (the checkpoints kept) with the best `metric` (default:
    fid, else fd_classifier) in its evaluation result."""
    results = {s: m for s, m in evaluated_steps(workdir).items() if s in set(available_steps)}
    if metric is None:
        metric = next((m for m in DEFAULT_METRICS if any(m in r for r in results.values())), None)
    scored = {s: r[metric] for s, r in results.items() if metric is not None and metric in r}
    if not scored:
        raise UserError(f"no evaluated checkpoint in {workdir} to pick the best from (kept steps: "
                        f"{', '.join(map(str, sorted(available_steps)))}); run "
                        f"python -m jaxgan.evaluate --workdir {workdir} --step N, or train with "
                        "eval.every_steps > 0")
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda s: (scored[s], -s) if pick is min else (scored[s], s))
