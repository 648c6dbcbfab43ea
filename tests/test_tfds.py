"""TFDS sources without TensorFlow: mocked cifar10 and mnist train; clear errors otherwise."""
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds
from conftest import ROOT, tiny_config

import jaxgan


@pytest.mark.parametrize("name, shape", [("cifar10", (32, 32, 3)), ("mnist", (32, 32, 1))])
def test_mocked_tfds_set_trains_and_keeps_class_names(tmp_path, name, shape):
    config = tiny_config(name, **{"train.num_steps": 2})
    with tfds.testing.mock_data(num_examples=40):
        jaxgan.train_and_evaluate(config, tmp_path)
        expected_names = tuple(tfds.builder(name).info.features["label"].names)
    sampler = jaxgan.load_sampler(tmp_path)
    assert sampler.image_shape == shape
    assert sampler.num_classes == 10 and sampler.class_names == expected_names
    assert sampler.generate([0, 1], labels=expected_names[9]).shape == (2, *shape)


def test_unknown_tfds_name_is_a_clear_error(tmp_path):
    config = tiny_config(**{"data.source": "tfds:no_such_set_xyz"})
    with pytest.raises(jaxgan.UserError, match="unknown TFDS data set 'no_such_set_xyz'"):
        jaxgan.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unprepared_tfds_set_says_how_to_prepare_it(tmp_path):
    config = tiny_config("mnist", **{"data.tfds_data_dir": str(tmp_path / "tfds")})
    with pytest.raises(jaxgan.UserError, match=r"'mnist' \(split 'train'\) is not prepared in .*"
                                               r"tfds build mnist --file_format=array_record"):
        jaxgan.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_import_and_sampling_never_import_tensorflow(tmp_path):
    jaxgan.train_and_evaluate(tiny_config(**{"train.num_steps": 2}), tmp_path)
    code = ("import sys, jax, jaxgan; s = jaxgan.load_sampler(sys.argv[1]); "
            "s.generate([0], labels=1); "
            "bad = [m for m in ('tensorflow', 'tensorflow_datasets') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
