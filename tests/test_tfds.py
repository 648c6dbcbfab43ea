"""TFDS sources through both readers (data_source without TensorFlow, tf.data with it): mocked
cifar10 and mnist train, a set larger than the host cache streams from disk; clear errors."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import ROOT, tiny_config

import jaxgan
from jaxgan import data as data_lib
from jaxgan.data import tfds_source

# The tf.data reader's tests; the README's test command installs the tf extra, so CI runs them.
NEEDS_TF = pytest.mark.skipif(not tfds_source.tensorflow_installed(),
                              reason="TensorFlow is not installed (pip install -e '.[tf]')")


# At 16 px (the sets' configs say 32) the runs compile the programs the 16-px digits tests compile.
@pytest.mark.parametrize("name, shape, reader", [
    ("cifar10", (16, 16, 3), "auto"), ("mnist", (16, 16, 1), "auto"),
    pytest.param("cifar10", (16, 16, 3), "tf.data", marks=NEEDS_TF),
    pytest.param("mnist", (16, 16, 1), "tf.data", marks=NEEDS_TF)])
def test_mocked_tfds_set_trains_and_keeps_class_names(tmp_path, name, shape, reader):
    config = tiny_config(name, **{"train.num_steps": 2, "data.tfds_reader": reader,
                                  "data.resolution": 16})
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


def test_set_larger_than_the_host_cache_is_read_from_disk_with_the_same_pixels(tmp_path):
    with tfds.testing.mock_data(num_examples=12):
        held = data_lib.load(tiny_config("cifar10").data)
        streamed = data_lib.load(tiny_config("cifar10", **{"data.host_cache_mb": 0}).data)
        assert isinstance(streamed.images, data_lib.StreamedImages)
        index = np.array([11, 0, 5, 5])
        np.testing.assert_array_equal(streamed.images[index], held.images[index])
        np.testing.assert_array_equal(streamed.labels, held.labels)
        config = tiny_config("cifar10", **{"data.host_cache_mb": 0, "train.steps_per_call": 1,
                                           "train.num_steps": 2, "data.resolution": 16})
        jaxgan.train_and_evaluate(config, tmp_path)
    assert jaxgan.load_sampler(tmp_path).step == 2


def test_unprepared_tfds_set_without_tensorflow_says_how_to_prepare_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "tensorflow_installed", lambda: False)
    config = tiny_config("mnist", **{"data.tfds_data_dir": str(tmp_path / "tfds")})
    with pytest.raises(jaxgan.UserError, match=r"'mnist' \(split 'train'\) is not prepared in .*"
                                               r"tfds build mnist --file_format=array_record"):
        jaxgan.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@NEEDS_TF
def test_unprepared_tfds_set_with_downloads_off_is_a_clear_error(tmp_path):
    config = tiny_config("mnist", **{"data.tfds_data_dir": str(tmp_path / "tfds"),
                                     "data.download": False})
    with pytest.raises(jaxgan.UserError, match=r"'mnist' is not prepared in .* data.download is False"):
        jaxgan.train_and_evaluate(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_tfds_reader_is_a_clear_error(tmp_path):
    config = tiny_config("mnist", **{"data.tfds_reader": "tfrecord"})
    with pytest.raises(jaxgan.UserError, match="config key data.tfds_reader='tfrecord' is not "
                                               "allowed: it must be one of 'auto', 'data_source', "
                                               "'tf.data'"):
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


@pytest.mark.parametrize("flags, message", [
    (["--config.data.source=tfds:no_such_set_xyz"], "unknown TFDS data set 'no_such_set_xyz'"),
    pytest.param(["--config.data.download=False"], "'mnist' is not prepared in", marks=NEEDS_TF),
])
def test_tfds_errors_through_train_py_are_one_line_and_exit_1(tmp_path, flags, message):
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "mnist.py"),
         f"--workdir={workdir}", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not workdir.exists()


def test_auto_reader_reads_an_array_record_set_without_tf_data(monkeypatch):
    def no_tf_data(*args, **kwargs):
        raise AssertionError("tf.data used for a set prepared in array_record format")
    monkeypatch.setattr(tfds_source, "_from_tf_data", no_tf_data)
    with tfds.testing.mock_data(num_examples=6):
        dataset = data_lib.load(tiny_config("cifar10").data)
    assert dataset.images.shape == (6, 32, 32, 3) and dataset.num_classes == 10
