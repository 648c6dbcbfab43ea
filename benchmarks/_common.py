"""What the benchmark scripts share: config loading, the machine's description, timing helpers,
and a GAN + state + synthetic batch built the way training builds them.

Configs are loaded as train.py loads them: a file of configs/ (its `get_config()`), then
`--config.KEY=VALUE` / `--override KEY=VALUE` overrides (values parsed as the key's type), then
`jaxgan.config.resolve` (defaults filled in, every key validated: a bad override is one line).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
for path in (str(ROOT), str(ROOT / "benchmarks")):
    if path not in sys.path:
        sys.path.insert(0, path)


# ------------------------------------------------------------------------------------- config

def load_config(path, overrides=()):
    """The resolved (validated, locked) config of a configs/*.py file with KEY=VALUE overrides."""
    from jaxgan.config import resolve
    from jaxgan.errors import UserError

    path = pathlib.Path(path)
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    spec = importlib.util.spec_from_file_location(f"configs.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    try:
        for item in overrides:
            apply_override(config, item)
        return resolve(config)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None


def apply_override(config, item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep:
        raise SystemExit(f"error: override {item!r} must look like KEY=VALUE")
    *sections, field = key.split(".")
    node = config
    try:
        for section in sections:
            node = node[section]
        current = node[field]
    except (KeyError, AttributeError):
        raise SystemExit(f"error: unknown config key {key!r}") from None
    node[field] = parse_value(text, current)


def parse_value(text: str, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise SystemExit(f"error: not True or False: {text!r}")
    try:
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
    except ValueError:
        raise SystemExit(f"error: not a {type(current).__name__}: {text!r}") from None
    return text


def timing_arguments(doc: str, argv=None, batch: int = 64) -> argparse.Namespace:
    """--batch and --reps of the convolution timing scripts."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--reps", type=int, default=5)
    return parser.parse_args(argv)


def config_arguments(parser: argparse.ArgumentParser, default="configs/digits.py"):
    parser.add_argument("--config", default=default)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="repeatable; --config.KEY=VALUE works as well (as train.py takes it)")


def parse_with_config(parser: argparse.ArgumentParser, argv=None, base_overrides=()):
    """(args, config, overrides): unknown `--config.KEY=VALUE` arguments become overrides
    (applied after `base_overrides`, the script's own)."""
    args, unknown = parser.parse_known_args(argv)
    overrides = list(base_overrides) + list(args.override)
    for item in unknown:
        if not item.startswith("--config."):
            parser.error(f"unrecognized argument {item}")
        overrides.append(item[len("--config."):])
    return args, load_config(args.config, overrides), overrides


def image_shape_of(config) -> tuple[int, int, int]:
    return (config.data.resolution, config.data.resolution, config.data.channels)


# ------------------------------------------------------------------------------------ machine

def cpu_description() -> str:
    """'AMD EPYC, 2 cores, AVX2, no AVX-512' from lscpu (or /proc/cpuinfo)."""
    fields = {}
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    name = fields.get("Model name") or platform.processor() or platform.machine()
    flags = set(fields.get("Flags", "").split())
    if not flags and os.path.exists("/proc/cpuinfo"):
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    vector = ("AVX-512" if "avx512f" in flags else
              "AVX2, no AVX-512" if "avx2" in flags else "no AVX2") if flags else "flags unknown"
    if flags:  # bf16 units: what model.dtype=bfloat16 and torch's autocast could use
        bf16 = [f for f in ("avx512_bf16", "amx_bf16", "avx_ne_convert") if f in flags]
        vector += f", bf16 units: {' '.join(bf16)}" if bf16 else ", no bf16 units"
    family = fields.get("CPU family")
    return f"{name}{f' (family {family})' if family else ''}, {os.cpu_count()} logical cores, " \
           f"{vector}"


def device_description() -> str:
    import jax
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu ({cpu_description()}), {jax.device_count()} JAX device(s)"
    return f"{device.platform} ({device.device_kind}) x{jax.device_count()}"


def print_machine() -> None:
    """Backend, versions, XLA_FLAGS and the load average (other jobs make timings noisy)."""
    import flax
    import jax
    import jaxlib
    import optax
    print(f"backend       {jax.default_backend()}: {device_description()}")
    print(f"versions      python {platform.python_version()}, jax {jax.__version__}, jaxlib "
          f"{jaxlib.__version__}, flax {flax.__version__}, optax {optax.__version__}")
    if os.environ.get("XLA_FLAGS"):
        print(f"XLA_FLAGS     {os.environ['XLA_FLAGS']}")
    print_load("at start")


def print_load(when: str) -> None:
    try:
        load = os.getloadavg()
    except OSError:
        return
    print(f"load average  {' '.join(f'{x:.2f}' for x in load)} ({when})")
    if when == "at start" and load[0] > 0.6 * os.cpu_count():
        print("WARNING       the machine is busy: absolute timings are slow and noisy; compare "
              "only ratios measured in one run")


# ------------------------------------------------------------------------------------- timing

def block(tree):
    import jax
    jax.block_until_ready(tree)
    return tree


def median_time(fn, reps: int, inner: int = 1) -> float:
    """Median over `reps` timed runs of fn(inner) (`inner` back-to-back calls); s per call."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(inner)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def time_calls(fn, reps: int) -> float:
    """fn() once to compile / warm up, then the median of `reps` timed runs of a few calls."""
    fn()
    once = median_time(lambda k: [fn() for _ in range(k)], 1)
    inner = inner_for(once)
    return median_time(lambda k: [fn() for _ in range(k)], reps, inner)


def inner_for(seconds_per_call: float, target: float = 0.25) -> int:
    """How many back-to-back calls make a timed run of about `target` seconds."""
    return max(1, min(200, int(target / max(seconds_per_call, 1e-6))))


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def fmt_flops(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e9:.1f} GFLOP/s" if flops_per_s < 1e12 else \
        f"{flops_per_s / 1e12:.2f} TFLOP/s"


def xla_flops(compiled) -> float | None:
    """XLA's own FLOP count of a compiled computation (None where the backend gives none)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis:
        return None
    flops = analysis.get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


# ---------------------------------------------------------------------------------- GAN setup

def synthetic_batch(config, image_shape, num_classes: int, seed: int = 0) -> dict:
    """A fixed host batch: images uniform in [-1, 1] (B, H, W, C), labels (B,) int32 (and the
    generator update's own real batch, g_image and g_label, where the step takes one)."""
    import numpy as np
    from jaxgan.training.step import needs_generator_batch
    rng = np.random.default_rng(seed)
    batch, result = config.train.batch_size, {}
    for prefix in ("", "g_") if needs_generator_batch(config.train) else ("",):
        result[f"{prefix}image"] = rng.uniform(-1, 1, (batch, *image_shape)).astype(np.float32)
        result[f"{prefix}label"] = rng.integers(0, max(num_classes, 1), batch).astype(np.int32)
    return result


def build_gan(config, image_shape, num_classes: int, mesh=None):
    """(gan, mesh, state): jaxgan.training.state.GAN.build, its initial state from config.seed
    replicated over the mesh (all devices by default), as the training loop makes them."""
    import jax
    from jaxgan import mesh as mesh_lib
    from jaxgan.config import check_for_devices
    from jaxgan.errors import UserError
    from jaxgan.training.state import GAN

    mesh = mesh or mesh_lib.make_mesh()
    try:
        check_for_devices(config, mesh.size)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    gan = GAN.build(config, image_shape, num_classes)
    state = jax.device_put(gan.create_state(jax.random.key(config.seed)),
                           mesh_lib.replicated(mesh))
    return gan, mesh, state


class JaxStep:
    """The bare training step of a config: jax.jit(make_train_step(...), donate_argnums=0) on a
    fixed synthetic batch sharded over the mesh, keys fold_in(seed key, call count)."""

    def __init__(self, config, image_shape, num_classes: int):
        import jax
        from jaxgan import mesh as mesh_lib
        from jaxgan.training.step import make_train_step

        self.config, self.image_shape, self.num_classes = config, image_shape, num_classes
        self.batch_size = config.train.batch_size
        self.gan, self.mesh, self.state = build_gan(config, image_shape, num_classes)
        self.g_count = sum(x.size for x in jax.tree.leaves(self.state.g_params))
        self.d_count = sum(x.size for x in jax.tree.leaves(self.state.d_params))
        self.batch_np = synthetic_batch(config, image_shape, num_classes)
        self.batch = jax.device_put(self.batch_np, mesh_lib.split(self.mesh))
        self.jitted = jax.jit(make_train_step(self.gan, config.train, self.mesh),
                              donate_argnums=0)
        self.base_key = jax.random.key(config.seed)
        self.count = 0
        self.metrics = None

    def call(self, k: int = 1):
        """k steps dispatched back to back, then a block."""
        import jax
        for _ in range(k):
            key = jax.random.fold_in(self.base_key, self.count)
            self.state, self.metrics = self.jitted(self.state, self.batch, key)
            self.count += 1
        block((self.state, self.metrics))

    def compiled(self):
        return self.jitted.lower(self.state, self.batch, self.base_key).compile()
