"""The config schema: every key has a default and is validated before anything is written."""
import subprocess
import sys

import ml_collections
import pytest
from conftest import ROOT

from jaxgan import config as config_lib
from jaxgan.errors import UserError
from jaxgan.families import FAMILIES, family_keys

# Keys any string is right for: paths (a directory TFDS may still create; a weights file checked
# when an evaluation needs it).
FREE_FORM = {"data.tfds_data_dir", "eval.inception_weights"}


def test_every_key_has_a_default_and_a_refused_value():
    for name, key in config_lib.all_keys().items():
        assert key.ok(key.default), f"{name}: its default {key.default!r} is refused"
        if name not in FREE_FORM:
            assert key.bad is not None and not key.ok(key.bad), f"{name} is not validated"


@pytest.mark.parametrize("name", sorted(set(config_lib.all_keys()) - FREE_FORM))
def test_bad_value_through_train_py_is_one_line_and_writes_nothing(tmp_path, name):
    bad = config_lib.all_keys()[name].bad
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


def refusals():
    """(family, a key of another family's, a value it allows) for every family and key it does
    not take."""
    for arch, family in FAMILIES.items():
        for name, key in family_keys().items():
            if name not in family.keys:
                value = next(v for v in (1, 8, 16, True) if key.ok(v) and v != key.default)
                yield arch, name, value


@pytest.mark.parametrize("arch, name, value", list(refusals()))
def test_a_key_the_family_does_not_take_is_refused_naming_both(arch, name, value):
    config = config_lib.default_config()
    config.model.arch = arch
    config.model[name] = value
    takers = [a for a, f in FAMILIES.items() if name in f.keys]
    with pytest.raises(UserError, match=rf"^model.{name}: the {arch} family has no such option "
                                        rf"\(it is the {' and '.join(takers)} famil"):
        config_lib.resolve(config)
    config.model[name] = family_keys()[name].default  # at its default: how every config holds it
    config.model.d_norm = "none"
    assert config_lib.resolve(config).model[name] == family_keys()[name].default


def test_a_family_takes_its_own_keys_and_the_refusal_reaches_train_py(tmp_path):
    config = config_lib.default_config()
    config.model.arch, config.model.group_width = "r3gan", 16
    assert config_lib.resolve(config).model.group_width == 16
    workdir = tmp_path / "run"
    result = subprocess.run([sys.executable, "train.py", f"--workdir={workdir}",
                             "--config.model.group_width=16"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1 and result.stderr.strip() == (
        "error: model.group_width: the dcgan family has no such option (it is the r3gan "
        "family's: model.arch='r3gan')"), result.stderr
    assert not workdir.exists()


def test_families_that_share_a_key_declare_it_once():
    # g_spectral_norm: resnet's and fastgan's, one Key (family_keys refuses two that differ)
    assert FAMILIES["resnet"].keys["g_spectral_norm"] is FAMILIES["fastgan"].keys["g_spectral_norm"]
    assert [k for k in config_lib.all_keys() if k.startswith("model.")] == [
        "model.arch", "model.latent_dim", "model.g_width", "model.d_width", "model.d_norm",
        "model.g_spectral_norm", "model.attention_resolution", "model.shared_embedding_dim",
        "model.hierarchical_latent", "model.blocks_per_stage", "model.group_width", "model.dtype"]


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
