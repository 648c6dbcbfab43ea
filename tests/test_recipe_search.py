"""benchmarks/recipe_search.py: its recipes are valid configs, its baseline is configs/folder.py
unchanged, its CPU budget counts a process tree's CPU, and its successive halving keeps the best
1/eta (and the baseline) and resumes without redoing finished work."""
import json
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import _common  # noqa: E402
import recipe_search  # noqa: E402

SOURCE = "folder:/path/to/drawings"


def resolved(params):
    config, flags = recipe_search.overrides(recipe_search.params_from_trial(params), SOURCE, 32)
    return _common.load_config(config, [f"{k}={v}" for k, v in flags.items()])


def test_baseline_is_folder_config_at_32_px():
    baseline = resolved(recipe_search.BASELINE)
    folder = _common.load_config("configs/folder.py", [f"data.source={SOURCE}",
                                                       "data.resolution=32"])
    assert baseline.to_dict() == folder.to_dict()


def test_every_candidate_is_a_valid_config():
    for params in recipe_search.CANDIDATES:
        config = resolved(params)
        assert config.model.arch == params["family"]
        assert config.data.resolution == 32
        if params["family"] in recipe_search.OWN_RECIPE:  # the family's config, widths aside
            own = _common.load_config(recipe_search.FAMILY_CONFIGS[params["family"]], [
                f"data.source={SOURCE}", "data.resolution=32",
                *(f"model.{side}_width={params[params['family'] + '_width']}" for side in "gd")])
            assert config.to_dict() == own.to_dict()
            continue
        if params.get("ada"):
            assert (config.train.augment_p, config.train.ada_target) == (0.0, 0.6)
        if params["loss"] == "rpgan":
            assert config.train.r1_gamma == config.train.r2_gamma == params["gamma"]


def test_tree_cpu_counts_grandchildren():
    # A child starts a grandchild that burns 0.3 CPU-s and then waits: the tree's CPU must
    # include it (the budget would otherwise miss work done in worker processes).
    burn = ("import time\nwhile time.process_time() < 0.3: pass\nprint('burnt', flush=True)\n"
            "time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c",
                               f"import subprocess, sys; subprocess.run([sys.executable, '-c', "
                               f"{burn!r}])"], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "burnt"
        import psutil
        assert recipe_search.tree_cpu_seconds(psutil.Process(parent.pid)) >= 0.3
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()


def test_successive_halving_keeps_best_and_baseline_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    runs = []

    def fake_segment(args, number, params, budget, core):
        result_path = pathlib.Path(args.out) / "trials" / f"{number:03d}" / f"budget_{budget:.0f}.json"
        if result_path.exists():
            return json.loads(result_path.read_text())
        if len(runs) == stop_after[0]:
            recipe_search.STOPPING.set()  # as SIGTERM would: this segment does not finish
            return None
        runs.append((number, budget))
        # The baseline scores worst; the others by trial number (0.1 apart).
        c2st = 0.99 if params == recipe_search.params_from_trial(recipe_search.BASELINE) \
            else 0.5 + 0.05 * number
        result = {"trial": number, "budget": budget, "params": params, "step": 1,
                  "recipe": recipe_search.describe(params), "cpu_seconds": budget,
                  "wall_seconds": budget, "c2st_classifier_accuracy": c2st,
                  "gan_test_accuracy": 0.7, "real_held_out_accuracy": 0.7, "grid": "g.png"}
        result["score"] = recipe_search.score(result)
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(result))
        return result

    def run_segment(args, number, params, budget, core):
        result = fake_segment(args, number, params, budget, core)
        if result is None:
            raise recipe_search.Interrupted
        return result

    monkeypatch.setattr(recipe_search, "run_segment", run_segment)
    argv = ["--source", SOURCE, "--out", str(tmp_path), "--budgets", "10,30,90", "--trials", "5",
            "--eta", "3", "--cores", "0"]
    stop_after = [8]  # interrupted in the second rung
    recipe_search.main(argv)
    recipe_search.STOPPING.clear()
    first = list(runs)
    stop_after[0] = -1
    recipe_search.main(argv)
    # 6 trials (the baseline first) at 10; the best 6 // 3 = 2 and the baseline at 30; the best
    # of those 3 (1 of them) and the baseline at 90; nothing run twice.
    assert sorted(n for n, b in runs if b == 10) == [0, 1, 2, 3, 4, 5]
    at_30 = sorted(n for n, b in runs if b == 30)
    assert len(at_30) == 3 and 0 in at_30
    assert sorted(n for n, b in runs if b == 90) == [0, min(set(at_30) - {0})]
    assert len(runs) == len(set(runs)) and runs[:len(first)] == first
    import optuna
    study = optuna.load_study(study_name="recipes", storage=f"sqlite:///{tmp_path / 'study.sqlite3'}")
    states = {t.number: t.state.name for t in study.trials}
    assert sorted(n for n, s in states.items() if s == "COMPLETE") == [0, min(set(at_30) - {0})]
    assert "| 90 |" in (tmp_path / "results.md").read_text()
    done = len(runs)
    recipe_search.main(argv)  # the bracket is done: a rerun trains nothing and asks no trial
    assert len(runs) == done
    assert len(optuna.load_study(study_name="recipes", storage=f"sqlite:///{tmp_path / 'study.sqlite3'}").trials) == 6


def test_picks_choose_the_first_brackets_candidates(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    seen = []

    def run_segment(args, number, params, budget, core):
        seen.append(params)
        result = {"trial": number, "budget": budget, "params": params, "step": 1,
                  "recipe": recipe_search.describe(params), "cpu_seconds": budget,
                  "wall_seconds": budget, "c2st_classifier_accuracy": 0.6,
                  "gan_test_accuracy": 0.7, "real_held_out_accuracy": 0.7, "grid": "g.png"}
        return dict(result, score=recipe_search.score(result))

    monkeypatch.setattr(recipe_search, "run_segment", run_segment)
    r3gan = recipe_search.CANDIDATES.index({"family": "r3gan", "r3gan_width": 56})
    recipe_search.main(["--source", SOURCE, "--out", str(tmp_path), "--budgets", "10",
                        "--trials", "1", "--picks", str(r3gan), "--cores", "0"])
    # The baseline and the one pick, nothing else (--trials 1: one trial beside the baseline).
    assert seen == [recipe_search.params_from_trial(recipe_search.BASELINE),
                    {"family": "r3gan", "width": 56, "ada": False}]
    assert recipe_search.describe(seen[1]) == "r3gan w56 (configs/r3gan_cpu.py's own recipe)"
    with pytest.raises(SystemExit):
        recipe_search.main(["--source", SOURCE, "--out", str(tmp_path), "--picks", "99"])


def test_art_cpu_is_the_recipe_the_search_chose():
    # configs/art_cpu.py is the search's leader (README, "A recipe for a laptop"): the same
    # config as that trial trained, so the numbers quoted for it are its numbers.
    # DCGAN with hinge, beta1 0, translation, LeCam, EMA 0.995, batches of 16 and the class loss
    # at 0.3: ahead of DCGAN at 1,000 and 3,000 CPU-s, the only recipe to meet GAN-test's target.
    chosen = dict(recipe_search.CANDIDATES[9])
    art_cpu = _common.load_config("configs/art_cpu.py", [f"data.source={SOURCE}"]).to_dict()
    searched = resolved(chosen).to_dict()
    # What the search stopped by CPU time and never evaluated during training: when to stop
    # (the learning rates are constant, so nothing else depends on it) and evaluations.
    assert searched["train"]["lr_decay"] == 0.0
    for section, key in (("train", "num_steps"), ("eval", "every_steps")):
        del art_cpu[section][key], searched[section][key]
    assert searched == art_cpu


def test_stop_time_is_the_next_occurrence_of_a_clock_time():
    import datetime
    utc = datetime.timezone.utc
    evening = datetime.datetime(2026, 12, 6, 23, 49, tzinfo=utc)
    # Said before midnight, 01:50 is the next morning's, not the one 22 hours ago.
    assert recipe_search.stop_time("01:50", evening) == datetime.datetime(2026, 12, 7, 1, 50,
                                                                         tzinfo=utc)
    assert recipe_search.stop_time("23:55", evening) == datetime.datetime(2026, 12, 6, 23, 55,
                                                                         tzinfo=utc)
    assert recipe_search.stop_time("2026-12-06T23:00", evening) == datetime.datetime(
        2026, 12, 6, 23, 0, tzinfo=utc)


def test_a_repeated_finalist_trains_with_its_seed_and_the_table_gives_the_spread():
    assert resolved(dict(recipe_search.BASELINE, seed=2)).seed == 2
    assert resolved(recipe_search.BASELINE).seed == 0  # the search's own runs: the config's seed
    params = recipe_search.params_from_trial(dict(recipe_search.BASELINE, seed=2))
    assert recipe_search.describe(params).endswith(" seed2")
    row = lambda trial, seed, c2st, gan_test: {
        "trial": trial, "seed": seed, "step": 10, "c2st_classifier_accuracy": c2st,
        "gan_test_accuracy": gan_test, "fd_classifier": 1.0, "score": c2st + 1 - gan_test,
        "recipe": "dcgan" + (f" seed{seed}" if seed else "")}
    table = recipe_search.repeat_table(
        [row(0, 0, 0.70, 0.50)], [row(0, 1, 0.80, 0.40), row(0, 2, 0.90, 0.60)])
    assert "| 0 | dcgan | 3 | 0.800 (0.700-0.900) | 0.500 (0.400-0.600) | 1.300 (1.200-1.400) |" in table
    for seed, c2st in ((0, "0.700"), (1, "0.800"), (2, "0.900")):  # one row per run
        assert f"\n| 0 | {seed} | 10 | {c2st} |" in table
