"""Score finished recipe-search runs again: more generated images, or a sampling truncation.

  python benchmarks/rescore.py --shared /work/art30/long/shared \
      --run art_cpu/0=/work/art30/long/trials/002/run --run baseline/0=/work/art30/long/trials/000/run \
      --num 2000 --truncation 1.0,0.7,0.5 --out benchmarks/results/recipe_search_long/rescored.jsonl

Each run's latest checkpoint is scored as benchmarks/recipe_search.py scores a trial (the same
metrics and the classifier cached in --shared, so the numbers compare with the search's), with
--num generated images (the search uses 500: GAN-test's standard error is then about 0.022, at
2,000 about 0.011) at each sampling truncation psi (1.0: the training distribution; below 1,
BigGAN's truncation trick as `sample.py --truncation` applies it). One JSON line per run and psi
is appended to --out; lines already there are not computed again.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", required=True, help="the search's shared folder (its classifier)")
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=WORKDIR")
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--truncation", default="1.0", help="comma list of psi in (0, 1]")
    parser.add_argument("--out", required=True, help="a .jsonl file, appended to")
    args = parser.parse_args(argv)
    runs = dict(item.split("=", 1) for item in args.run if "=" in item)
    if len(runs) != len(args.run):
        parser.error("--run takes LABEL=WORKDIR")
    sys.path.insert(0, str(ROOT))
    from absl import logging
    logging.set_verbosity(logging.ERROR)
    from jaxgan.evaluation.evaluator import evaluate, load_real
    from jaxgan.sampler import load_sampler

    out = pathlib.Path(args.out)
    lines = out.read_text().splitlines() if out.exists() else []
    done = {(r["run"], r["psi"], r["num"]) for r in map(json.loads, lines)}
    for psi in (float(p) for p in args.truncation.split(",")):
        for label, workdir in runs.items():
            if (label, psi, args.num) in done:
                continue
            sampler = load_sampler(workdir)
            real, _ = load_real(sampler.config.data)
            metrics = evaluate(sampler, num=args.num, metrics=("pr", "gan_test", "c2st", "fid"),
                               extractor="classifier", write=False, workdir=args.shared,
                               real=real, truncation=psi)["metrics"]
            row = {"run": label, "psi": psi, "num": args.num, "step": int(sampler.step),
                   "c2st": metrics["c2st_classifier_accuracy"],
                   "gan_test": metrics["gan_test_accuracy"],
                   "fd_classifier": metrics["fd_classifier"],
                   "coverage": metrics["coverage_classifier"]}
            print(json.dumps(row), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
