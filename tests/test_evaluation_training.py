"""The evaluation's hook in the training loop: results in metrics.jsonl and eval/, the best
checkpoint kept besides the newest, load_sampler(step="best")."""
import json

import jaxgan
from conftest import tiny_config
from jaxgan.evaluation import classifier
from jaxgan.training import checkpoint


def test_training_evaluates_on_schedule_and_keeps_the_best_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier, "TRAIN_STEPS", 100)  # a quick classifier; the default is longer
    config = tiny_config(**{"train.num_steps": 6, "checkpoint.every_steps": 100,
                            "checkpoint.keep": 1, "eval.every_steps": 2,
                            "eval.num_samples": 64, "checkpoint.best_metric": "fd_classifier"})
    config.eval.metrics, config.eval.extractor = "fid,gan_test", "classifier"
    jaxgan.train_and_evaluate(config, tmp_path)

    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evaluated = {line["step"]: line for line in lines if "eval/fd_classifier" in line}
    assert sorted(evaluated) == [2, 4, 6]
    for step, line in evaluated.items():
        saved = json.loads((tmp_path / "eval" / f"step_{step}.json").read_text())
        assert saved["metrics"]["fd_classifier"] == line["eval/fd_classifier"]
        assert 0.0 <= line["eval/gan_test_accuracy"] <= 1.0
    best = min(evaluated, key=lambda s: evaluated[s]["eval/fd_classifier"])
    kept = checkpoint.make_manager(tmp_path, read_only=True).all_steps()
    assert sorted(kept) == sorted({best, 6})  # the newest (keep=1) and the best
    assert jaxgan.load_sampler(tmp_path, step="best").step == best
