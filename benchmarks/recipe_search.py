"""Which recipe makes the best pictures of a folder for a fixed CPU budget: a resumable Optuna
search with successive halving over CPU-time budgets.

  python benchmarks/drawn_folder.py --out /tmp/drawn                      # the folder, once
  python benchmarks/recipe_search.py --source folder:/tmp/drawn --out benchmarks/results/search \
      --budgets 200,600,1800 --trials 9 --core 1
  python benchmarks/recipe_search.py --out benchmarks/results/search --table   # the table only
  python benchmarks/recipe_search.py --source folder:/tmp/drawn --out benchmarks/results/search \
      --repeat 0,1 --seeds 1,2 --budget 600 --cores 0,1        # the finalists with two more seeds
  python benchmarks/recipe_search.py --source folder:/tmp/drawn --out /tmp/r3gan-search \
      --study r3gan --budgets 1000 --trials 1 --picks 5 --cores 0,1  # R3GAN against the baseline

A trial is one recipe (a point of the search space below) trained by `train.py` on the folder at
`--resolution` (32 px) and stopped when its CPU budget is spent; its EMA generator is then scored
by jaxgan's evaluator (own-data classifier features, `--num` generated images against the whole
folder: C2ST, GAN-test against the real held-out accuracy, fd_classifier, precision/recall,
density/coverage, memorisation) and a grid (one row per class) is saved beside the results.

**The budget is CPU time, not wall-clock.** The machine this was written on has 2 cores shared by
several people, so wall-clock would favour whichever trial ran while the others were idle. Each
trial is pinned to one core (`taskset -c CORE`) and stopped (SIGTERM: train.py checkpoints and
exits) when the user+sys CPU seconds of the train.py process tree (psutil, children included,
compilation and folder decoding included) reach the budget. On an idle core this equals
wall-clock seconds on one core; on a laptop with more cores, wall-clock is shorter than the budget
(train.py then uses them all). The checkpoint written after SIGTERM is counted too, so trials end
slightly over their budget (the table gives the CPU seconds each used).

**Search.** Optuna (TPE sampler, seed 0, RDB storage in `<out>/study.sqlite3`) proposes the
recipes; the first bracket also runs hand-picked recipes (`CANDIDATES`), and every bracket runs
the DCGAN baseline (`configs/folder.py` at 32 px, unchanged) at every budget. Successive halving
(eta = `--eta`, Jamieson & Talwalkar 2016; Hyperband's inner loop) is done synchronously per
bracket by this script: all of a bracket's trials are trained to budget b0 and scored, the best
1/eta (and the baseline) are continued (train.py resumes from the checkpoint, its CPU counted
again from its new start) to b1, and so on. Optuna's own SuccessiveHalvingPruner is asynchronous:
run one trial at a time, it promotes each rung's first trial unopposed. Trials that are not
continued are told PRUNED, the last rung's are COMPLETE with their score.

Score (lower is better): C2ST accuracy + (1 - GAN-test / real held-out accuracy, clipped to
[0, 1]): the issue's two targets (C2ST <= 0.7, GAN-test >= 0.9 x real) on one scale.

Stop it with SIGTERM or Ctrl-C (running trials are stopped and checkpointed as their budget would
stop them) and rerun the same command: finished segments are read back from `<out>/trials/N/`, a
stopped trial resumes from its checkpoint with the CPU it already used counted. With --stop-at,
no segment starts that would not end (at the wall/CPU ratio seen so far) before that time.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
NEVER = 10**8  # steps: the CPU budget stops the run first
# Set by SIGTERM/SIGINT: running trials are stopped as their budget would stop them (train.py
# checkpoints), their CPU is kept in the ledger, and a rerun continues them.
STOPPING = threading.Event()
EVALUATION_WALL_GUESS = 240.0  # seconds, for the stop-time check (measured: 1-4 min when shared)


class Interrupted(Exception):
    pass
METRICS = ("fid", "pr", "gan_test", "memorisation", "c2st")
FAMILY_CONFIGS = {"dcgan": "configs/folder.py", "resnet": "configs/art.py",
                  "fastgan": "configs/fastgan_cpu.py", "r3gan": "configs/r3gan_cpu.py"}
WIDTHS = {"dcgan": (32, 64, 96), "resnet": (16, 24, 32), "fastgan": (16, 32), "r3gan": (32, 56)}
# Families whose config is the recipe: the search varies their width only. R3GAN's objective
# (RpGAN + R1 + R2), Adam settings, StyleGAN2-ADA augmentation and cosine schedules (over the
# config's 20,000 steps) are one design, and the search's loss and regulariser choices would
# take it apart. (Studies made before R3GAN was a family have 3 families: a study's space must
# not change, so R3GAN is searched in a new --study.)
OWN_RECIPE = ("r3gan",)
AUGMENTS = ("", "translation", "color,translation", "color,translation,cutout")

# configs/folder.py's own values: the baseline is this point of the space, so its overrides are
# only data.resolution=32 (and what every trial sets, below).
BASELINE = {"family": "dcgan", "dcgan_width": 64, "loss": "non_saturating", "b1": 0.5,
            "g_lr": 2e-4, "d_lr": 2e-4, "batch_size": 64, "n_critic": 1, "augment": "",
            "ema_decay": 0.999, "mode_seeking": 0.1, "lecam": 0.0}
# Hand-picked starting points from the small-data literature: DiffAugment (Zhao et al. 2020),
# hinge + spectral norm + LeCam (Tseng et al. 2021; configs/art.py), ADA (Karras et al. 2020),
# R3GAN's RpGAN + R1 + R2 with Adam beta1 = 0 (Huang et al. 2024), FastGAN (Liu et al. 2021) at a
# CPU's batch size.
CANDIDATES = (
    dict(BASELINE, augment="color,translation,cutout", ada=False),
    dict(BASELINE, loss="hinge", b1=0.0, augment="translation", ada=False, lecam=0.3,
         mode_seeking=0.0, ema_decay=0.995),
    {"family": "resnet", "resnet_width": 16, "loss": "hinge", "b1": 0.0, "g_lr": 2e-4,
     "d_lr": 2e-4, "batch_size": 32, "n_critic": 1, "augment": "color,translation,cutout",
     "ada": False, "ema_decay": 0.999, "mode_seeking": 0.0, "lecam": 0.3},
    {"family": "fastgan", "fastgan_width": 16, "loss": "hinge", "b1": 0.5, "g_lr": 2e-4,
     "d_lr": 2e-4, "batch_size": 32, "n_critic": 1, "augment": "color,translation",
     "ada": False, "ema_decay": 0.999, "mode_seeking": 0.0, "lecam": 0.0},
    dict(BASELINE, loss="rpgan", gamma=0.1, b1=0.0, augment="translation", ada=True,
         mode_seeking=0.0, ema_decay=0.995),
    {"family": "r3gan", "r3gan_width": 56},  # configs/r3gan_cpu.py as it is
    # The first winner (configs/art_cpu.py until the r3gan study's bracket made this candidate
    # the winner) at batch 32: 1.8x the updates per CPU-second for 0.9x the images (its step on
    # one Zen 4 core: 242 ms at batch 32, 436 ms at 64; step_throughput.py, 2026-12-07).
    dict(BASELINE, loss="hinge", b1=0.0, augment="translation", ada=False, lecam=0.3,
         mode_seeking=0.0, ema_decay=0.995, batch_size=32),
    # The first winner at batch 128: more images per CPU-second (the 32-px DCGAN step's
    # images/s grows with the batch, benchmarks/README.md), and on the digits at 1,000 CPU-s it
    # was the best of the laptop recipe's variants (benchmarks/results/recipe_check/).
    dict(BASELINE, loss="hinge", b1=0.0, augment="translation", ada=False, lecam=0.3,
         mode_seeking=0.0, ema_decay=0.995, batch_size=128),
    # The same at batch 16, after batch 32 beat 64 and 128 at 1,000 CPU-s: 4x the updates of
    # batch 64 per CPU-second.
    dict(BASELINE, loss="hinge", b1=0.0, augment="translation", ada=False, lecam=0.3,
         mode_seeking=0.0, ema_decay=0.995, batch_size=16),
    # Batch 16 with P2GAN's class loss (train.class_loss; Han et al. 2021) at 0.3: GAN-test was
    # the unmet target, and the class loss presses on it directly (at 1.0 it over-did it: class
    # templates, C2ST 0.74 at 1,000 CPU-s).
    dict(BASELINE, loss="hinge", b1=0.0, augment="translation", ada=False, lecam=0.3,
         mode_seeking=0.0, ema_decay=0.995, batch_size=16, class_loss=0.3),
)


# ----------------------------------------------------------------------------- the space

def suggest(trial) -> dict:
    """A recipe: Optuna's define-by-run space (parameters that only apply to one branch are
    drawn only there)."""
    family = trial.suggest_categorical("family", tuple(FAMILY_CONFIGS))
    params = {"family": family,
              "width": trial.suggest_categorical(f"{family}_width", WIDTHS[family])}
    if family in OWN_RECIPE:
        return params
    params["loss"] = trial.suggest_categorical("loss", ("non_saturating", "hinge", "rpgan"))
    if params["loss"] == "rpgan":
        params["gamma"] = trial.suggest_float("gamma", 0.01, 1.0, log=True)
    params["b1"] = trial.suggest_categorical("b1", (0.0, 0.5))
    params["g_lr"] = trial.suggest_float("g_lr", 1e-4, 1e-3, log=True)
    params["d_lr"] = trial.suggest_float("d_lr", 1e-4, 1e-3, log=True)
    params["batch_size"] = trial.suggest_categorical("batch_size", (8, 16, 32, 64, 128))
    params["n_critic"] = trial.suggest_categorical("n_critic", (1, 2))
    params["augment"] = trial.suggest_categorical("augment", AUGMENTS)
    params["ada"] = bool(params["augment"]) and trial.suggest_categorical("ada", (False, True))
    params["ema_decay"] = trial.suggest_categorical("ema_decay", (0.99, 0.995, 0.999))
    params["mode_seeking"] = trial.suggest_categorical("mode_seeking", (0.0, 0.1))
    params["lecam"] = trial.suggest_categorical("lecam", (0.0, 0.3))
    return params


def overrides(params: dict, source: str, resolution: int) -> tuple[str, dict]:
    """(config file, --config.KEY=VALUE overrides) of a recipe."""
    config = FAMILY_CONFIGS[params["family"]]
    flags = {"data.source": source, "data.resolution": resolution,
             "model.g_width": params["width"], "model.d_width": params["width"]}
    if "seed" in params:  # a finalist repeated with another seed (--repeat)
        flags["seed"] = params["seed"]
    if params["family"] in OWN_RECIPE:
        return config, flags
    flags.update({
        "train.loss": params["loss"], "train.b1": params["b1"], "train.g_lr": params["g_lr"],
        "train.d_lr": params["d_lr"], "train.batch_size": params["batch_size"],
        "train.n_critic": params["n_critic"], "train.augment": params["augment"],
        "train.ema_decay": params["ema_decay"], "train.mode_seeking": params["mode_seeking"],
        "train.lecam": params["lecam"]})
    if params.get("class_loss"):  # P2GAN's class loss (not in the searched space: added trials)
        flags["train.class_loss"] = params["class_loss"]
    if params["loss"] == "rpgan":
        # R3GAN: R1 and R2 with the same gamma; lazily every 4th step to halve their CPU cost.
        flags.update({"train.r1_gamma": params["gamma"], "train.r2_gamma": params["gamma"],
                      "train.r1_every": 4})
    else:
        flags.update({"train.r1_gamma": 0.0, "train.r2_gamma": 0.0})
    if params["ada"]:
        # ADA's target 0.6; its speed set for short runs (ADA's 500 kimg would never move p here).
        flags.update({"train.augment_p": 0.0, "train.ada_target": 0.6, "train.ada_kimg": 10.0})
    else:
        flags.update({"train.augment_p": 1.0, "train.ada_target": 0.0})
    return config, flags


def params_from_trial(trial_params: dict) -> dict:
    """The recipe of a stored trial (its Optuna params, branch names folded back)."""
    family = trial_params["family"]
    params = {k: v for k, v in trial_params.items() if not k.endswith("_width")}
    params["width"] = trial_params[f"{family}_width"]
    params.setdefault("ada", False)
    return params


def describe(params: dict) -> str:
    text = f"{params['family']} w{params['width']}"
    if params["family"] in OWN_RECIPE:
        return text + f" ({FAMILY_CONFIGS[params['family']]}'s own recipe)" + (
            f" seed{params['seed']}" if "seed" in params else "")
    text += f" {params['loss']}"
    if params["loss"] == "rpgan":
        text += f" g{params['gamma']:.2g}"
    text += (f" b1={params['b1']:g} lr {params['g_lr']:.1e}/{params['d_lr']:.1e} "
             f"bs{params['batch_size']} nc{params['n_critic']} "
             f"aug[{params['augment'] or '-'}{' ada' if params['ada'] else ''}] "
             f"ema{params['ema_decay']:g}")
    if params["mode_seeking"]:
        text += " ms0.1"
    if params["lecam"]:
        text += " lecam0.3"
    if params.get("class_loss"):
        text += f" class{params['class_loss']:g}"
    if "seed" in params:
        text += f" seed{params['seed']}"
    return text


# ------------------------------------------------------------------- training to a CPU budget

def tree_cpu_seconds(process) -> float:
    """user+sys CPU seconds of `process` and its descendants (reaped children included)."""
    import psutil
    total = 0.0
    try:
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def train_to(trial_dir: pathlib.Path, config: str, flags: dict, budget: float, core: int) -> dict:
    """Train (or resume) `train.py --config CONFIG` with `flags` (--config.KEY=VALUE) in the
    trial's folder until its CPU seconds reach `budget`; returns the ledger
    {"cpu_seconds", "wall_seconds", "segments"}. The ledger is written after every segment, and
    its running segment's CPU every few seconds, so an interrupted search loses little."""
    import psutil
    ledger_path = trial_dir / "cpu.json"
    ledger = (json.loads(ledger_path.read_text()) if ledger_path.exists()
              else {"cpu_seconds": 0.0, "wall_seconds": 0.0, "segments": 0})
    # Killed mid-segment (SIGKILL, a crash): the run resumes from the checkpoint the segment
    # started from, so the CPU it had spent since bought nothing and is not counted.
    ledger.pop("running", None)
    if ledger["cpu_seconds"] >= budget:
        return ledger
    flags = {**flags, "train.num_steps": NEVER, "checkpoint.every_steps": NEVER,
             "train.sample_every_steps": NEVER, "eval.every_steps": 0,
             "train.log_every_steps": 100, "checkpoint.keep": 1}
    command = ["taskset", "-c", str(core), "nice", "-n", "10", sys.executable, "train.py",
               "--config", config, "--workdir", str(trial_dir / "run")]
    command += [f"--config.{k}={v}" for k, v in flags.items()]
    target = budget - ledger["cpu_seconds"]
    start = time.time()
    with open(trial_dir / "train.log", "a") as log:
        log.write(f"\n# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC, "
                  f"{target:.0f} CPU-s to spend\n# {' '.join(command)}\n")
        log.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        watched = psutil.Process(process.pid)
        used, last_saved, stopped, interrupted = 0.0, 0.0, False, False
        while process.poll() is None:
            used = max(used, tree_cpu_seconds(watched))
            if (used >= target or STOPPING.is_set()) and not stopped:
                process.send_signal(signal.SIGTERM)  # train.py saves a checkpoint and exits
                stopped = True
                interrupted = used < target
            if used - last_saved > 20:
                ledger_path.write_text(json.dumps(dict(ledger, running=used)))
                last_saved = used
            time.sleep(0.5)
        used = max(used, tree_cpu_seconds(watched))
    if interrupted and process.returncode != 0:  # stopped before its first step: nothing saved
        raise Interrupted
    if process.returncode != 0:
        raise RuntimeError(f"train.py failed (exit {process.returncode}): see "
                           f"{trial_dir / 'train.log'}")
    if not stopped:
        raise RuntimeError(f"train.py ended before its budget: see {trial_dir / 'train.log'}")
    ledger = {"cpu_seconds": ledger["cpu_seconds"] + used,
              "wall_seconds": ledger["wall_seconds"] + time.time() - start,
              "segments": ledger["segments"] + 1}
    ledger_path.write_text(json.dumps(ledger))
    if interrupted:
        raise Interrupted
    return ledger


def evaluate_trial(trial_dir: pathlib.Path, shared_dir: pathlib.Path, num: int, core: int,
                   grid: pathlib.Path) -> dict:
    """The evaluator's numbers for the trial's latest checkpoint (in a pinned subprocess: the
    search process itself never starts JAX)."""
    out = trial_dir / "evaluation.json"
    command = ["taskset", "-c", str(core), "nice", "-n", "10", sys.executable, __file__,
               "evaluate-one", "--run", str(trial_dir / "run"), "--shared", str(shared_dir),
               "--num", str(num), "--json", str(out), "--grid", str(grid)]
    with open(trial_dir / "evaluate.log", "a") as log:
        result = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise RuntimeError(f"evaluation failed: see {trial_dir / 'evaluate.log'}")
    return json.loads(out.read_text())


def evaluate_one(argv) -> None:
    """Subcommand: evaluate one run's EMA generator and draw its grid (rows: classes)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True)
    parser.add_argument("--shared", required=True)
    parser.add_argument("--num", type=int, required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--grid", required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import numpy as np
    from absl import logging
    logging.set_verbosity(logging.ERROR)
    from jaxgan.evaluation.evaluator import evaluate, load_real
    from jaxgan.sampler import load_sampler
    started = time.process_time()
    sampler = load_sampler(args.run)
    real, _ = load_real(sampler.config.data)
    # The classifier that scores every trial is trained once, cached in the shared folder.
    result = evaluate(sampler, num=args.num, metrics=METRICS, extractor="classifier",
                      write=False, workdir=args.shared, real=real)
    per_row = 8
    labels = np.repeat(np.arange(max(sampler.num_classes, 1)), per_row)
    images = sampler.generate(np.arange(len(labels)), labels if sampler.num_classes else None)
    save_grid(images, per_row, args.grid)
    values = {k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))}
    values["step"] = int(sampler.step)
    values["eval_cpu_seconds"] = round(time.process_time() - started, 1)
    values["class_names"] = list(sampler.class_names)
    values["per_class"] = result.get("per_class", {})
    pathlib.Path(args.json).write_text(json.dumps(values, default=float))


def save_grid(images_NHWC, per_row: int, path: str, scale: int = 3) -> None:
    from PIL import Image
    import numpy as np
    n, h, w, c = images_NHWC.shape
    rows = math.ceil(n / per_row)
    canvas = np.full((rows * (h + 2), per_row * (w + 2), c), 255, np.uint8)
    for i, image in enumerate(images_NHWC):
        r, col = divmod(i, per_row)
        canvas[r * (h + 2) + 1:r * (h + 2) + 1 + h, col * (w + 2) + 1:col * (w + 2) + 1 + w] = image
    grid = Image.fromarray(canvas.squeeze(-1) if c == 1 else canvas)
    grid = grid.resize((grid.width * scale, grid.height * scale), Image.NEAREST)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def score(values: dict) -> float:
    relative = values["gan_test_accuracy"] / max(values["real_held_out_accuracy"], 1e-9)
    return values["c2st_classifier_accuracy"] + (1.0 - min(max(relative, 0.0), 1.0))


# ------------------------------------------------------------------------------- the search

def study_of(out: pathlib.Path, name: str):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name, storage=f"sqlite:///{out / 'study.sqlite3'}", load_if_exists=True,
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=8))


def run_segment(args, number: int, params: dict, budget: float, core: int) -> dict:
    trial_dir = pathlib.Path(args.out) / "trials" / f"{number:03d}"
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "params.json").write_text(json.dumps(params))
    return train_and_score(args, trial_dir, params, budget, core,
                           f"trial{number:03d}_{budget:.0f}s.png", {"trial": number})


def train_and_score(args, run_dir: pathlib.Path, params: dict, budget: float, core: int,
                    grid_name: str, identity: dict) -> dict:
    """Train the run in `run_dir` to `budget` CPU-s, evaluate it and keep the result (read back,
    not redone, once there): a search trial's segment or a repeated finalist's run."""
    result_path = run_dir / f"budget_{budget:.0f}.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    ledger = train_to(run_dir, *overrides(params, args.source, args.resolution), budget, core)
    grid = results_dir(args) / "grids" / grid_name
    values = evaluate_trial(run_dir, pathlib.Path(args.out) / "shared", args.num, core, grid)
    result = {**identity, "budget": budget, "params": params, "recipe": describe(params),
              **ledger, **values, "score": score(values), "grid": str(grid),
              "finished": f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"}
    result_path.write_text(json.dumps(result, default=float))
    return result


def on_cores(cores, job, items):
    """`job(item, core)` for every item, one at a time per core (a core is taken for the job's
    whole run, training and evaluation); yields (item, result) in the items' order."""
    free = queue.Queue()
    for core in cores:
        free.put(core)

    def run(item):
        core = free.get()
        try:
            return item, job(item, core)
        finally:
            free.put(core)

    with concurrent.futures.ThreadPoolExecutor(len(cores)) as pool:
        yield from pool.map(run, items)


def wall_needed(out: pathlib.Path, number: int, budget: float) -> float:
    """Wall seconds to take trial `number` to `budget` and evaluate it, at the wall/CPU ratio
    of the search's finished segments (the machine may be shared)."""
    ledgers = [json.loads(p.read_text()) for p in out.glob("trials/*/cpu.json")]
    ledgers = [l for l in ledgers if l["cpu_seconds"] > 0 and not l.get("running")]
    ratio = (sum(l["wall_seconds"] for l in ledgers) / sum(l["cpu_seconds"] for l in ledgers)
             if ledgers else 1.0)
    path = out / "trials" / f"{number:03d}" / "cpu.json"
    used = json.loads(path.read_text())["cpu_seconds"] if path.exists() else 0.0
    return max(budget - used, 0.0) * ratio + EVALUATION_WALL_GUESS


def time_left(args) -> float:
    if not args.stop_at:
        return math.inf
    return (stop_time(args.stop_at) - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def stop_time(text: str, now: datetime.datetime | None = None) -> datetime.datetime:
    """--stop-at as a UTC time: HH:MM is its next occurrence (01:50 said at 23:49 is tomorrow's),
    YYYY-MM-DDTHH:MM is that minute."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if "T" in text:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)
    hour, minute = map(int, text.split(":"))
    stop = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return stop if stop > now else stop + datetime.timedelta(days=1)


def finished_brackets(study) -> int:
    from optuna.trial import TrialState
    brackets = {}
    for t in study.get_trials(deepcopy=False):
        if "bracket" in t.user_attrs:
            running = t.state == TrialState.RUNNING
            brackets[t.user_attrs["bracket"]] = brackets.get(t.user_attrs["bracket"], False) or running
    return sum(not running for running in brackets.values())


def run_bracket(args, study, cores) -> bool:
    """One successive-halving bracket; False when the stop time came first."""
    import optuna
    from optuna.trial import TrialState
    budgets = [float(b) for b in args.budgets.split(",")]
    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if running:  # an interrupted bracket: finish it first
        bracket = running[0].user_attrs["bracket"]
        members = [t for t in study.get_trials(deepcopy=False)
                   if t.user_attrs.get("bracket") == bracket]
    else:
        bracket = 1 + max([t.user_attrs.get("bracket", -1) for t in study.get_trials(
            deepcopy=False)], default=-1)
        study.enqueue_trial(BASELINE, user_attrs={"baseline": True}, skip_if_exists=False)
        picks = [CANDIDATES[i] for i in args.picks] if bracket == 0 else ()
        for pick in picks[:args.trials]:
            study.enqueue_trial(pick)
        for _ in range(args.trials + 1):  # the enqueued ones first
            trial = study.ask()
            trial.set_user_attr("bracket", bracket)
            suggest(trial)
        members = [t for t in study.get_trials(deepcopy=False)
                   if t.user_attrs.get("bracket") == bracket]
    alive = {t.number: t for t in members if t.state == TrialState.RUNNING}
    for rung, budget in enumerate(budgets):
        todo = sorted(n for n, t in alive.items() if budget not in
                      {float(s) for s in t.intermediate_values})
        results = {}

        def job(number, core):
            needed = wall_needed(pathlib.Path(args.out), number, budget)
            if STOPPING.is_set() or time_left(args) < needed:
                return None
            try:
                return run_segment(args, number, params_from_trial(alive[number].params), budget,
                                   core)
            except Interrupted:
                return None

        for number, result in on_cores(cores, job, todo):
            if result is None:
                continue
            results[number] = result
            optuna.trial.Trial(study, alive[number]._trial_id).report(result["score"], int(budget))
            write_tables(args)
        if any(n not in results for n in todo):
            print(f"stopped in the {budget:.0f} CPU-s rung ("
                  + ("interrupted" if STOPPING.is_set() else f"the stop time {args.stop_at} UTC "
                     "is near") + "); rerun the same command to continue", flush=True)
            return False
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        # Every trial of the bracket that reached this rung, also those a resumed search had
        # already told (the promotions must not change when the search is interrupted).
        scores = {t.number: trials[t.number].intermediate_values[int(budget)] for t in members
                  if int(budget) in trials[t.number].intermediate_values}
        if rung == len(budgets) - 1:
            for n in alive:
                study.tell(n, scores[n])
            return True
        keep = max(1, len(scores) // args.eta)
        promoted = set(sorted(scores, key=scores.get)[:keep])
        promoted |= {n for n in alive if trials[n].user_attrs.get("baseline")}
        for n in list(alive):
            if n not in promoted:
                study.tell(n, state=optuna.trial.TrialState.PRUNED)
                del alive[n]
        alive = {n: trials[n] for n in alive}
    return True


# ----------------------------------------------------------------------------------- table

def load_results(out: pathlib.Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("trials/*/budget_*.json"))]


COLUMNS = (("c2st_classifier_accuracy", "C2ST", "{:.3f}"), ("gan_test_accuracy", "GAN-test", "{:.3f}"),
           ("real_held_out_accuracy", "real held-out", "{:.3f}"),
           ("fd_classifier", "fd_classifier", "{:.1f}"), ("coverage_classifier", "coverage", "{:.3f}"),
           ("memorisation_classifier", "memorisation", "{:.3f}"), ("score", "score", "{:.3f}"))


def table(results: list[dict]) -> str:
    rows = ["| budget (CPU-s) | trial | recipe | steps | CPU-s used | wall-s | "
            + " | ".join(title for _, title, _ in COLUMNS) + " | grid |",
            "|" + "---|" * (7 + len(COLUMNS))]
    for r in sorted(results, key=lambda r: (r["budget"], r["score"])):
        baseline = " (baseline: folder.py at 32 px)" if r["params"] == params_from_trial(
            dict(BASELINE)) else ""
        cells = [fmt.format(r[key]) if key in r else "-" for key, _, fmt in COLUMNS]
        rows.append(f"| {r['budget']:.0f} | {r['trial']} | {r['recipe']}{baseline} | {r['step']} "
                    f"| {r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} | " + " | ".join(cells)
                    + f" | {pathlib.Path(r['grid']).name} |")
    return "\n".join(rows)


def results_dir(args) -> pathlib.Path:
    return pathlib.Path(args.results or args.out)


def machine() -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import cpu_description
    return cpu_description()


def write_tables(args) -> str:
    results = load_results(pathlib.Path(args.out))
    text = table(results)
    out = results_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(
        f"# Recipe search on {args.source} at {args.resolution} px\n\n"
        f"Budgets are CPU seconds (user+sys of train.py's process tree, one core via taskset, "
        f"compilation included); {args.num} generated images per evaluation, own-data "
        f"classifier features; score = C2ST + (1 - GAN-test / real held-out), lower is "
        f"better.\n\nMachine: {machine()}; load average {os.getloadavg()[0]:.1f} when this "
        f"table was written (the wall-s column is how long each trial's CPU took to get).\n\n"
        f"{text}\n")
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return text


# ------------------------------------------------------------------- finalists, other seeds

def repeat(args, cores) -> str:
    """Trials `--repeat` of the study again with each seed of `--seeds` at `--budget` CPU-s
    (fresh runs, one per core at a time, under <out>/repeats/); the table of every run and each
    recipe's spread (its seed-0 run from the search included) goes to repeats.md."""
    out = pathlib.Path(args.out)
    study = study_of(out, args.study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    unknown = [n for n in args.repeat if n not in trials]
    if unknown:
        raise SystemExit(f"error: no trial {unknown[0]} in {out / 'study.sqlite3'}")
    # Seed by seed, so a repeat cut short still has every finalist at its first seeds.
    jobs = [(n, seed) for seed in args.seeds for n in args.repeat]

    def job(item, core):
        number, seed = item
        if STOPPING.is_set():
            return None
        run_dir = out / "repeats" / f"{number:03d}_seed{seed}"
        run_dir.mkdir(parents=True, exist_ok=True)
        params = dict(params_from_trial(trials[number].params), seed=seed)
        try:
            return train_and_score(args, run_dir, params, args.budget, core,
                                   f"trial{number:03d}_seed{seed}_{args.budget:.0f}s.png",
                                   {"trial": number, "seed": seed})
        except Interrupted:
            return None

    list(on_cores(cores, job, jobs))
    return write_repeats(args)


def write_repeats(args) -> str:
    """repeats.md from the runs on disk."""
    out = pathlib.Path(args.out)
    # Every repeat of these trials on disk, at every budget (other seeds and budgets were run by
    # other commands too): one section per budget, so a new budget does not hide the old ones.
    repeats = [json.loads(p.read_text()) for n in args.repeat
               for p in sorted(out.glob(f"repeats/{n:03d}_seed*/budget_*.json"))]
    originals = [r for r in load_results(out) if r["trial"] in args.repeat]
    sections = []
    for budget in sorted({r["budget"] for r in repeats}):
        text = repeat_table([r for r in originals if r["budget"] == budget],
                            [r for r in repeats if r["budget"] == budget])
        sections.append(f"## {budget:.0f} CPU-s each\n\n{text}\n")
    results_dir(args).mkdir(parents=True, exist_ok=True)
    (results_dir(args) / "repeats.md").write_text(
        f"# Finalists with other seeds\n\nMachine: {machine()}\n\n" + "\n".join(sections))
    return "\n".join(sections)


def repeat_table(originals: list[dict], repeats: list[dict]) -> str:
    """Every run (seed 0 = the search's own), then per trial the mean and range over seeds."""
    runs = [dict(r, seed=0) for r in originals] + repeats
    rows = ["| trial | seed | steps | C2ST | GAN-test | fd_classifier | score |", "|---|---|---|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r["trial"], r["seed"])):
        rows.append(f"| {r['trial']} | {r['seed']} | {r['step']} | {r['c2st_classifier_accuracy']:.3f} "
                    f"| {r['gan_test_accuracy']:.3f} | {r['fd_classifier']:.1f} | {r['score']:.3f} |")
    rows += ["", "| trial | recipe | seeds | C2ST mean (range) | GAN-test mean (range) | score mean (range) |",
             "|---|---|---|---|---|---|"]
    for number in sorted({r["trial"] for r in runs}):
        mine = [r for r in runs if r["trial"] == number]
        cells = []
        for key in ("c2st_classifier_accuracy", "gan_test_accuracy", "score"):
            values = [r[key] for r in mine]
            cells.append(f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        recipe = mine[0]["recipe"].split(" seed")[0]
        rows.append(f"| {number} | {recipe} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def dict_args(args, **changes):
    return argparse.Namespace(**{**vars(args), **changes})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate-one"]:
        return evaluate_one(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="", help="folder:PATH (the drawn folder)")
    parser.add_argument("--out", required=True, help="the study and the trials' runs")
    parser.add_argument("--results", default="", help="where results.md, results.json and the "
                        "grids go (default: --out)")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--budgets", default="200,600,1800", help="CPU seconds per rung")
    parser.add_argument("--eta", type=int, default=3, help="keep the best 1/eta at each rung")
    parser.add_argument("--trials", type=int, default=9,
                        help="trials per bracket besides the baseline (the first bracket's "
                        "include the hand-picked CANDIDATES)")
    parser.add_argument("--brackets", type=int, default=1,
                        help="brackets in all (a rerun after they are done runs nothing)")
    parser.add_argument("--cores", default="1", help="comma list: one trial at a time per core")
    parser.add_argument("--num", type=int, default=1000, help="images generated per evaluation")
    parser.add_argument("--stop-at", default="", help="HH:MM UTC (its next occurrence) or "
                        "YYYY-MM-DDTHH:MM UTC: start no segment that could end after it")
    parser.add_argument("--study", default="recipes")
    parser.add_argument("--picks", default="", help="comma list: which of CANDIDATES (0-based) "
                        "the first bracket runs beside the baseline (default: all, in order)")
    parser.add_argument("--table", action="store_true", help="print the table and exit")
    parser.add_argument("--repeat", default="", help="comma list of trial numbers: run them again "
                        "with each of --seeds at --budget (the finalists' spread), no search")
    parser.add_argument("--seeds", default="1,2", help="with --repeat: the seeds")
    parser.add_argument("--budget", type=float, default=0.0, help="with --repeat: CPU-s per run")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.table:  # (with --repeat: the repeats' tables, rewritten from the runs on disk)
        print(write_repeats(dict_args(args, repeat=[int(n) for n in args.repeat.split(",")]))
              if args.repeat else table(load_results(out)))
        return
    if not args.source.startswith("folder:"):
        parser.error("--source folder:PATH is required")
    try:
        args.picks = ([int(i) for i in args.picks.split(",")] if args.picks
                      else list(range(len(CANDIDATES))))
        [CANDIDATES[i] for i in args.picks]  # noqa: B018 (checks the numbers)
    except (ValueError, IndexError):
        parser.error(f"--picks: comma list of 0-{len(CANDIDATES) - 1}, not {args.picks!r}")
    out.mkdir(parents=True, exist_ok=True)
    previous = {sig: signal.signal(sig, lambda *_: STOPPING.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    cores = [int(c) for c in args.cores.split(",")]
    try:
        if args.repeat:
            if args.budget <= 0:
                parser.error("--repeat needs --budget (CPU-s per run)")
            args.repeat = [int(n) for n in args.repeat.split(",")]
            args.seeds = [int(n) for n in args.seeds.split(",")]
            print(repeat(args, cores))
            return
        study = study_of(out, args.study)
        while finished_brackets(study) < args.brackets:
            if not run_bracket(args, study, cores) or STOPPING.is_set():
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(write_tables(args))


if __name__ == "__main__":
    main()
