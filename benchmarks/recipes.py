"""DCGAN vs the resnet recipes for the same wall-clock budget, judged by the evaluator.

  python benchmarks/recipes.py --budget 600 --out /tmp/recipes            # both data sets
  python benchmarks/recipes.py --budget 300 --datasets photos --out /tmp/r
  python benchmarks/recipes.py --budget 600 --datasets photos \
      --runs "dcgan (folder.py),dcgan+DiffAug,resnet (art.py),resnet (art.py at widths 16)"

Data: (a) the built-in digits (16x16x1, 10 classes); (b) a 64x64 RGB folder of real photographs
built offline from the two photographs scikit-learn ships (`load_sample_images`: a Chinese temple
and a flower): `--photos` random square crops of each (side 96-256 px, resized to 64 px), one
subfolder per photograph, so two classes.
Each run is `train.py` with a huge train.num_steps, stopped by SIGTERM when the budget (counted
from the process start, so compilation included) is spent: the loop checkpoints and exits. Then
`jaxgan.evaluation.evaluate` (own-data classifier features) scores the EMA generator against the
training set and one table prints every run's numbers side by side. The CPU may be shared with
other jobs: the steps each run reached are printed with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NEVER = 10**8  # steps: the budget stops the run first

RUNS = {
    "digits": {
        "dcgan (default)": ("configs/digits.py", {}),
        "resnet+DiffAug": ("configs/digits.py", {
            "model.arch": "resnet", "model.d_norm": "spectral", "model.g_width": 16,
            "model.d_width": 16, "train.loss": "hinge", "train.mode_seeking": 0.0,
            "train.augment": "translation,cutout", "train.lecam": 0.3}),
    },
    "photos": {
        "dcgan (folder.py)": ("configs/folder.py", {}),
        "dcgan+DiffAug": ("configs/folder.py", {"train.augment": "color,translation,cutout"}),
        "resnet (art.py)": ("configs/art.py", {}),
        # art.py at a CPU's size: a quarter of the channels' FLOPs, one D step per G step.
        "resnet (art.py at widths 16)": ("configs/art.py", {"model.g_width": 16,
                                                           "model.d_width": 16,
                                                           "train.n_critic": 1}),
        "resnet (art.py with ADA)": ("configs/art.py", {"train.augment_p": 0.0,
                                                    "train.ada_target": 0.6,
                                                    "train.ada_kimg": 10.0}),
        # At 32 px, a laptop's size: DCGAN against FastGAN at the same resolution.
        "dcgan (folder.py at 32 px)": ("configs/folder.py", {"data.resolution": 32}),
        "fastgan (fastgan_cpu.py)": ("configs/fastgan_cpu.py", {}),
        "r3gan (r3gan_cpu.py)": ("configs/r3gan_cpu.py", {}),
    },
}


def build_photo_folder(path: pathlib.Path, count: int, seed: int = 0) -> str:
    """`count` 64-px crops of each of scikit-learn's two sample photographs, a class each."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    photos = load_sample_images()
    rng = np.random.default_rng(seed)
    for name, photo in zip(("china", "flower"), photos.images):
        folder = path / name
        folder.mkdir(parents=True, exist_ok=True)
        height, width, _ = photo.shape
        for i in range(count):
            side = int(rng.integers(96, min(256, height, width) + 1))
            top, left = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            crop = Image.fromarray(photo[top:top + side, left:left + side])
            crop.resize((64, 64), Image.LANCZOS).save(folder / f"{i:04d}.png")
    return f"folder:{path}"


def train_for(config: str, overrides: dict, workdir: pathlib.Path, budget: float) -> dict:
    flags = {"train.num_steps": NEVER, "checkpoint.every_steps": NEVER,
             "train.sample_every_steps": NEVER, "train.log_every_steps": 50, **overrides}
    command = [sys.executable, "train.py", "--config", config, "--workdir", str(workdir)] + \
        [f"--config.{k}={v}" for k, v in flags.items()]
    start = time.time()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        process.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{config} failed:\n{stderr[-3000:]}")
    step = int(stdout.split("checkpoint at step ")[1].split()[0])
    return {"steps": step, "seconds": round(time.time() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per run")
    parser.add_argument("--datasets", default="digits,photos")
    parser.add_argument("--photos", type=int, default=150, help="crops per photograph")
    parser.add_argument("--num", type=int, default=1000, help="images generated per evaluation")
    parser.add_argument("--out", default="/tmp/jaxgan-recipes")
    parser.add_argument("--runs", default="", help="comma-separated run names to keep (default: "
                        "all), e.g. 'dcgan (folder.py),resnet (art.py)'")
    args = parser.parse_args(argv)
    from jaxgan.evaluation.evaluator import evaluate

    out = pathlib.Path(args.out)
    results = {}
    for dataset in args.datasets.split(","):
        # The photographs live beside the runs' workdirs, never above them: a workdir inside the
        # folder would be read as one more class.
        source = "digits" if dataset == "digits" else build_photo_folder(out / "photo_folder",
                                                                         args.photos)
        for name, (config, overrides) in RUNS[dataset].items():
            if args.runs and name not in args.runs.split(","):
                continue
            workdir = out / "runs" / dataset / "".join(c if c.isalnum() else "_" for c in name)
            run = train_for(config, {"data.source": source, **overrides}, workdir, args.budget)
            evaluation = evaluate(str(workdir), num=args.num, extractor="classifier",
                                  metrics=("fid", "pr", "gan_test", "memorisation", "c2st"))
            results[f"{dataset}: {name}"] = {**run, **evaluation["metrics"]}
            print(json.dumps({f"{dataset}: {name}": results[f"{dataset}: {name}"]}), flush=True)
    names = sorted({k for r in results.values() for k, v in r.items()
                    if isinstance(v, (int, float))})
    print(f"\nbudget {args.budget:.0f} s per run (compilation included), {os.cpu_count()} CPUs")
    print(f"{'run':32s}" + "".join(f"{n[:18]:>20s}" for n in names))
    for run, values in results.items():
        print(f"{run:32s}" + "".join(f"{values.get(n, float('nan')):>20.4g}" for n in names))


if __name__ == "__main__":
    main()
