"""The config schema: every key has a default and is validated before anything is written."""
import subprocess
import sys

import ml_collections
import pytest
from conftest import ROOT

from jaxgan import config as config_lib
from jaxgan.errors import UserError

# Keys any string is right for: paths (a directory TFDS may still create; a weights file checked
# when an evaluation needs it).
FREE_FORM = {"data.tfds_data_dir", "eval.inception_weights"}


def test_every_key_has_a_default_and_a_refused_value():
    for name, key in config_lib.KEYS.items():
        assert key.ok(key.default), f"{name}: its default {key.default!r} is refused"
        if name not in FREE_FORM:
            assert key.bad is not None and not key.ok(key.bad), f"{name} is not validated"


@pytest.mark.parametrize("name", sorted(set(config_lib.KEYS) - FREE_FORM))
def test_bad_value_through_train_py_is_one_line_and_writes_nothing(tmp_path, name):
    bad = config_lib.KEYS[name].bad
    workdir = tmp_path / "run"
    result = subprocess.run([sys.executable, "train.py", f"--workdir={workdir}",
                             f"--config.{name}={bad}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert name in lines[0] and "Traceback" not in result.stderr
    assert not workdir.exists()


def test_resolve_completes_an_old_config_with_the_defaults():
    old = ml_collections.ConfigDict({"seed": 3, "model": {"g_width": 8}, "train": {"g_lr": 1}})
    config = config_lib.resolve(old)
    assert config.seed == 3 and config.model.g_width == 8 and config.model.arch == "dcgan"
    assert config.train.g_lr == 1.0 and isinstance(config.train.g_lr, float)
    assert config.train.batch_size == config_lib.KEYS["train.batch_size"].default


def test_unknown_key_and_bad_values_are_named():
    with pytest.raises(UserError, match=r"^unknown config key 'train.learning_rate'$"):
        config_lib.resolve(ml_collections.ConfigDict({"train": {"learning_rate": 1e-3}}))
    config = config_lib.default_config()
    config.train.ema_decay = 2.0
    with pytest.raises(UserError, match=r"^config key train.ema_decay=2.0 is not allowed: it must "
                                        r"be a number >= 0.0 and < 1.0$"):
        config_lib.validate(config)
    config = config_lib.default_config()
    config.train.g_lr = float("nan")
    with pytest.raises(UserError, match=r"train.g_lr=nan is not allowed"):
        config_lib.validate(config)


def test_device_count_checks():
    config = config_lib.default_config()
    config.train.batch_size, config.train.mode_seeking = 24, 0.0
    config_lib.check_for_devices(config, 8)  # 3 per device: fine without pairs
    config.train.mode_seeking = 0.1
    with pytest.raises(UserError, match=r"even batch per device \(8 devices\)"):
        config_lib.check_for_devices(config, 8)
    config.train.batch_size = 12
    with pytest.raises(UserError, match=r"multiple of the number of devices \(8\); try 16"):
        config_lib.check_for_devices(config, 8)


def test_every_shipped_config_is_valid():
    from conftest import load_config
    for path in sorted((ROOT / "configs").glob("*.py")):
        if path.stem == "__init__":
            continue
        config = load_config(path.stem)
        if config.data.source == "folder:":  # configs/folder.py: the user adds the path
            with pytest.raises(UserError, match="data.source='folder:' is not allowed"):
                config_lib.resolve(config)
            config.data.source = "folder:/path/to/paintings"
        config_lib.resolve(config)
