"""Test setup: 8 fake CPU devices (before JAX is imported) and a tiny config."""
import importlib.util
import os
import pathlib
import tempfile

TEST_XLA_FLAGS = "--xla_force_host_platform_device_count=8"
# (pytest-xdist's workers inherit the environment this file leaves in the main process, below)
os.environ["XLA_FLAGS"] = os.environ.setdefault("JAXGAN_TEST_XLA_FLAGS",
                                                os.environ.get("XLA_FLAGS", TEST_XLA_FLAGS))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One compilation cache for the whole session, shared with the train.py / sample.py subprocesses
# the tests start: the same tiny programs are compiled once, not once per process.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"jaxgan-test-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# JAX writes a cache entry in place, unlocked (unless a size limit is set, whose eviction then
# races with processes started without it): a process can read an entry another is still
# writing, warn on stderr, and compile the program itself. Correct, but the exact-stderr tests
# of train.py / sample.py would see the warning, so the processes the tests start ignore it.
os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [
    os.environ.get("PYTHONWARNINGS"), "ignore:Error reading persistent compilation cache entry",
    "ignore:Error writing persistent compilation cache entry"]))

import jax  # noqa: E402
import pytest  # noqa: E402

# The train.py / sample.py / notebook processes the tests start get 2 devices, not 8: still data
# parallel, and each start is ~2.5 s shorter (8 devices' sharded saves and compilations). JAX has
# read XLA_FLAGS once this process's backend is up, so the change reaches the children only.
# (Other flags given with the 8 devices, e.g. JAXGAN_TEST_XLA_FLAGS="... --xla_cpu_max_isa=AVX"
# to run the suite with another CPU's arithmetic, reach the children too.)
SUBPROCESS_XLA_FLAGS = os.environ["XLA_FLAGS"].replace(TEST_XLA_FLAGS,
                                                       "--xla_force_host_platform_device_count=2")
if os.environ["XLA_FLAGS"].startswith(TEST_XLA_FLAGS):
    jax.devices()
    os.environ["XLA_FLAGS"] = SUBPROCESS_XLA_FLAGS

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_config(name: str = "digits"):
    spec = importlib.util.spec_from_file_location(f"configs.{name}", ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


# The same shrinking, as command-line overrides, for runs through train.py.
TINY_OVERRIDES = {
    "model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16, "train.batch_size": 16,
    "train.num_steps": 4, "train.steps_per_call": 1, "train.log_every_steps": 2,
    "train.sample_every_steps": 4, "checkpoint.every_steps": 2, "eval.every_steps": 0,
}


def tiny_config(name: str = "digits", **overrides):
    config = load_config(name)
    for key, value in {**TINY_OVERRIDES, **overrides}.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def override_flags(**overrides) -> list[str]:
    return [f"--config.{k}={v}" for k, v in {**TINY_OVERRIDES, **overrides}.items()]


@pytest.fixture
def config():
    return tiny_config()
