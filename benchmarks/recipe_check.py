"""Is the laptop recipe (configs/art_cpu.py, chosen on the drawn folder) no worse than DCGAN on
other data? Equal CPU time on the built-in digits and on crops of two photographs, each run
trained and scored exactly as benchmarks/recipe_search.py trains and scores its trials.

  python benchmarks/recipe_check.py --out /tmp/check --results benchmarks/results/recipe_check \
      --cores 0,1                     # about 95 minutes on 2 idle cores
  python benchmarks/recipe_check.py --out /tmp/check --results benchmarks/results/recipe_check \
      --table                         # the table only, from the runs on disk

Runs (`CHECKS`): on the digits (16x16x1, 10 classes) the digits default against art_cpu.py
pointed at the digits, and art_cpu.py's training settings on the digits default's network; on the
photo crops (benchmarks/recipes.py's folder: 150 random 64-px crops of each of scikit-learn's two
sample photographs, trained at 32 px) folder.py at 32 px (the search's DCGAN baseline) against
art_cpu.py. Budgets are CPU seconds on one pinned core, compilation included (1,000 CPU-s is
about 10 minutes on 2 cores, 3,000 about 30; the digits default's 12,000 steps take about 300);
a larger budget continues the run of the smaller one. Rerunning the command continues where it
stopped; finished runs are read back. benchmarks/results/recipe_check/ was made with art_cpu.py
at batch 64, as it was until the r3gan study's bracket (README) set it to 32.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import recipe_search  # noqa: E402

# art_cpu.py's training settings (its loss, optimiser, regulariser and EMA) on another network.
ART_CPU_TRAINING = {"train.loss": "hinge", "train.b1": 0.0, "train.lecam": 0.3,
                    "train.ema_decay": 0.995, "train.mode_seeking": 0.0,
                    "train.augment": "translation"}
CHECKS = {
    "digits": {
        "budgets": (300, 1000), "num": 2000,  # the digits default's protocol: 2,000 digits
        "recipes": {
            "dcgan (digits.py, the default)": ("configs/digits.py", {}),
            "art_cpu.py": ("configs/art_cpu.py", {"data.source": "digits",
                                                  "data.resolution": 16, "data.channels": 1,
                                                  "data.random_flip": False}),
            "digits.py + art_cpu's training": ("configs/digits.py", ART_CPU_TRAINING),
            "digits.py + art_cpu's training, batch 128": (
                "configs/digits.py", {**ART_CPU_TRAINING, "train.batch_size": 128}),
            # P2GAN's class loss (train.class_loss): aimed at the digits' GAN-test target
            "digits.py + class loss 1": ("configs/digits.py", {"train.class_loss": 1.0}),
            "digits.py + class loss 0.3": ("configs/digits.py", {"train.class_loss": 0.3}),
        }},
    "photos": {
        "budgets": (1000, 3000), "num": 500,  # as the search on the drawn folder
        "recipes": {
            "dcgan (folder.py at 32 px)": ("configs/folder.py", {"data.resolution": 32}),
            "art_cpu.py": ("configs/art_cpu.py", {}),  # (run at batch 64, before the r3gan study)
            "art_cpu.py at batch 16 with the class loss": ("configs/art_cpu.py", {}),
        }},
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def source_of(dataset: str, out: pathlib.Path) -> str:
    if dataset == "digits":
        return "digits"
    # The photographs live beside the runs, never above them: a run inside the folder would be
    # read as one more class.
    from recipes import build_photo_folder
    return build_photo_folder(out / "photo_folder", 150)


def run(args, dataset: str, name: str, budget: float, core: int) -> dict | None:
    config, flags = CHECKS[dataset]["recipes"][name]
    run_dir = pathlib.Path(args.out) / dataset / slug(name)
    result_path = run_dir / f"budget_{budget:.0f}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    if recipe_search.STOPPING.is_set():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    flags = {"data.source": source_of(dataset, pathlib.Path(args.out)), **flags}
    try:
        ledger = recipe_search.train_to(run_dir, config, flags, budget, core)
    except recipe_search.Interrupted:
        return None
    grid = pathlib.Path(args.results) / "grids" / f"{dataset}_{slug(name)}_{budget:.0f}s.png"
    values = recipe_search.evaluate_trial(run_dir, pathlib.Path(args.out) / f"shared_{dataset}",
                                          CHECKS[dataset]["num"], core, grid)
    result = {"dataset": dataset, "recipe": name, "config": config, "flags": flags,
              "budget": budget, **ledger, **values, "score": recipe_search.score(values),
              "grid": grid.name}
    result_path.write_text(json.dumps(result, default=float))
    return result


def table(out: pathlib.Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*/*/budget_*.json"))]
    rows = ["| data | CPU-s | recipe | steps | C2ST | GAN-test | real held-out | fd_classifier "
            "| coverage | memorisation | score | grid |", "|---" * 12 + "|"]
    for r in sorted(results, key=lambda r: (r["dataset"], r["budget"], r["score"])):
        rows.append(
            f"| {r['dataset']} | {r['budget']:.0f} | {r['recipe']} | {r['step']} "
            f"| {r['c2st_classifier_accuracy']:.3f} | {r['gan_test_accuracy']:.3f} "
            f"| {r['real_held_out_accuracy']:.3f} | {r['fd_classifier']:.2f} "
            f"| {r['coverage_classifier']:.3f} | {r['memorisation_classifier']:.3f} "
            f"| {r['score']:.3f} | {r['grid']} |")
    return "\n".join(rows)


def write_table(args) -> str:
    text = table(pathlib.Path(args.out))
    results = pathlib.Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "results.md").write_text(
        "# The laptop recipe against DCGAN on other data, at equal CPU time\n\n"
        "Command: `python benchmarks/recipe_check.py` (its docstring says what runs); budgets are "
        "CPU seconds on one pinned core, compilation included; own-data classifier features; "
        "score = C2ST + (1 - GAN-test / real held-out), lower is better.\n\n"
        f"Machine: {recipe_search.machine()}; load average {os.getloadavg()[0]:.1f} when this "
        f"table was written.\n\n{text}\n")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the runs")
    parser.add_argument("--results", required=True, help="results.md and the grids")
    parser.add_argument("--cores", default="1", help="comma list: one run at a time per core")
    parser.add_argument("--datasets", default=",".join(CHECKS))
    parser.add_argument("--table", action="store_true", help="print the table and exit")
    args = parser.parse_args(argv)
    if args.table:
        print(write_table(args))
        return
    datasets = args.datasets.split(",")
    unknown = [d for d in datasets if d not in CHECKS]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; known: {', '.join(CHECKS)}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: recipe_search.STOPPING.set())
    cores = [int(c) for c in args.cores.split(",")]
    # Budget by budget, so a larger budget continues a finished smaller one.
    for budget in sorted({b for d in datasets for b in CHECKS[d]["budgets"]}):
        jobs = [(d, name) for d in datasets if budget in CHECKS[d]["budgets"]
                for name in CHECKS[d]["recipes"]]
        for _ in recipe_search.on_cores(
                cores, lambda job, core: run(args, *job, budget, core), jobs):
            write_table(args)
    print(write_table(args))


if __name__ == "__main__":
    main()
