"""`python -m jaxgan.evaluate` and `jaxgan.evaluate(...)` as a user runs them, on a tiny run, in
the classifier's feature space (no Inception forward: see test_evaluation_parity.py)."""
import json
import os

import numpy as np
import pytest
from conftest import tiny_config

import jaxgan
from jaxgan.evaluation import classifier

CLASSIFIER_STEPS = 300  # enough for >90% on held-out digits; the default is longer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    jaxgan.train_and_evaluate(tiny_config(**{"train.num_steps": 2}), workdir)
    return workdir


@pytest.fixture(autouse=True)
def short_training(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(classifier, "TRAIN_STEPS", CLASSIFIER_STEPS)
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run_cli(capsys, *args):
    import importlib
    code = importlib.import_module("jaxgan.evaluate").main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_workdir_evaluation_prints_a_table_and_writes_json(workdir, capsys):
    code, out, err = run_cli(capsys, "--workdir", workdir, "--num", 100, "--extractor", "classifier",
                             "--metrics", "fid,kid,pr,intra_fid,gan_test,gan_train,memorisation")
    assert code == 0, err
    rows = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert {"fd_classifier", "kd_classifier_mean", "precision_classifier", "gan_test_accuracy",
            "gan_train_accuracy", "real_held_out_accuracy", "memorisation_classifier"} <= rows
    assert "fid" not in rows
    result = json.loads((workdir / "eval" / "step_2.json").read_text())
    protocol = result["protocol"]
    assert result["step"] == 2 and protocol["num_fake"] == 100 and protocol["num_real"] == 1797
    assert protocol["extractor"] == "classifier" and protocol["generator"] == "EMA"
    assert protocol["truncation"] == 1.0 and protocol["seed"] == 0
    assert protocol["classifier_split"]["num_held_out"] == 179
    assert result["metrics"]["real_held_out_accuracy"] > 0.9
    assert 0.0 <= result["metrics"]["gan_test_accuracy"] <= 1.0
    assert os.path.isfile(workdir / "eval" / "memorisation_step_2.png")
    assert any("rank-deficient" in note for note in result["notes"])  # 100 fakes, 128-d features
    assert jaxgan.load_sampler(workdir, "best").step == 2  # the one evaluated checkpoint


def test_jaxgan_evaluate_is_callable_with_a_sampler(workdir):
    import jaxgan.evaluate  # noqa: F401  (the submodule import must not break jaxgan.evaluate(...))
    sampler = jaxgan.load_sampler(workdir)
    result = jaxgan.evaluate(sampler, num=100, metrics="gan_test", extractor="classifier",
                             workdir=str(workdir), write=False)
    assert set(result["metrics"]) == {"gan_test_accuracy", "real_held_out_accuracy"}
    assert result["protocol"]["num_fake"] == 100


def test_folders_against_a_data_source(tmp_path, capsys):
    """Real digits written as files, judged against the digits source: the classifier knows them."""
    from jaxgan.data import load_digits
    from jaxgan.images import save_png
    digits = load_digits(16, 1)
    _, held = classifier.held_out_split(digits.labels, 0)
    for i in held:
        save_png(tmp_path / "fake" / str(digits.labels[i]) / f"{i}.png", digits.images[i])
    code, out, err = run_cli(capsys, "--fake", tmp_path / "fake", "--real", "digits", "--metrics",
                             "fid,pr,gan_test", "--extractor", "classifier", "--out",
                             tmp_path / "result.json")
    assert code == 0, err
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["metrics"]["gan_test_accuracy"] > 0.9
    assert result["metrics"]["precision_classifier"] > 0.9
    assert result["protocol"]["num_fake"] == len(held)


@pytest.mark.parametrize("args, message", [
    (["--extractor", "inception", "--inception-weights", "/nonexistent.pth"],
     "no such Inception weights file: /nonexistent.pth"),
    (["--metrics", "fid,bogus"], "unknown metric 'bogus'"),
    (["--step", "99"], "no checkpoint for step 99"),
])
def test_user_mistakes_are_one_line(workdir, capsys, args, message):
    code, out, err = run_cli(capsys, "--workdir", workdir, "--num", 20, *args)
    assert code == 1 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (workdir / "eval" / "step_99.json").exists()


def test_reference_statistics_file_is_checked(tmp_path, capsys, workdir):
    bad = tmp_path / "stats.npz"
    np.savez(bad, mu=np.zeros(3), sigma=np.eye(4))
    code, _, err = run_cli(capsys, "--workdir", workdir, "--num", 20, "--reference", bad)
    assert code == 1 and "do not match" in err


def test_training_evaluator_scores_live_generator_variables(workdir):
    """What the training loop's hook calls: variables in, flat metrics out, JSON written."""
    from jaxgan.evaluation.during_training import TrainingEvaluator
    sampler = jaxgan.load_sampler(workdir)
    facts = {"class_names": list(sampler.class_names), "num_classes": sampler.num_classes,
             "image_shape": list(sampler.image_shape)}
    evaluator = TrainingEvaluator(sampler.config, str(workdir), facts, num_samples=50,
                                  metrics="gan_test", extractor="classifier")
    values = evaluator(sampler.variables, 7)
    assert set(values) == {"gan_test_accuracy", "real_held_out_accuracy"}
    saved = json.loads((workdir / "eval" / "step_7.json").read_text())
    assert saved["metrics"] == values and saved["protocol"]["num_fake"] == 50
