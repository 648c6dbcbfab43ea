"""Training-step throughput of jaxgan for a config, against its PyTorch twin, with a per-layer profile.

Command (repo root):

    python benchmarks/step_throughput.py --config configs/dcgan64.py
    python benchmarks/step_throughput.py --config configs/digits.py --steps 20
    python benchmarks/step_throughput.py --config configs/digits.py --override model.dtype=bfloat16
    python benchmarks/step_throughput.py --config configs/dcgan64.py --override model.g_width=8 \
        --override model.d_width=8 --steps 3 --no-profile      # a quick smoke run
    python benchmarks/step_throughput.py --config configs/digits.py --check-twin --check-only

Overrides: `--override KEY=VALUE` (repeatable) or `--config.KEY=VALUE`, as train.py takes them.

On the current JAX backend, after compilation, as medians of several timed runs:
  (a) the bare step: jax.jit(make_train_step(...), donate_argnums=0) on a fixed synthetic batch
      (the calls of one timed run are dispatched back to back; the run ends with a block);
  (b) make_device_data_runner, batches drawn on the device from a device-resident synthetic
      uint8 data set, as train.py runs it with the config's `train.steps_per_call`: with 1 (the
      CPU configs) one jitted step per dispatch, dispatched back to back; with N > 1 a fori_loop
      of N steps per dispatch. When the config says 1, the fori_loop path is timed as well
      (--loop_steps, default 10; the GPU/TPU setting), within --runner_budget seconds. Printed:
      per-step time, images/s, the overhead over (a), and how many convolutions of the
      optimised HLO are not in XLA:CPU's canonical (fast) form.
It prints the device, versions, parameter counts, compile time (first call minus a steady call),
step time, images/s, XLA's own FLOP count of the step (`compiled.cost_analysis()["flops"]`) as
achieved FLOP/s and, for known GPUs, the fraction of the dense peak. On a CPU the peak is not
printed (the VM exposes no clock); a large matmul's measured FLOP/s is printed as a reference.

The PyTorch twin (benchmarks/pytorch_twin.py; --no-torch skips it): the same networks and step
(asserted: equal parameter counts), timed eagerly with torch.set_num_threads(os.cpu_count()),
both as pytorch/examples does it (D weight gradients computed in the G step) and with D frozen in
the G step (what jaxgan computes). `--check-twin` loads jaxgan's initial weights into the twin,
feeds it jaxgan's own noise and compares three steps' losses.

The profile (--no-profile skips it): jitted forward / forward+backward of G, D on real and fake,
D's input gradient (the G step), the optimiser updates, and each layer fwd+bwd at the config's
shapes; the same for PyTorch.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import pathlib
import platform
import re
import statistics
import sys
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jaxlib  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from jaxgan.layers import FUSED_MAX_FEATURES, UpConv2x  # noqa: E402
from jaxgan.models import DCGAN_INIT, ConditionalBatchNorm, build_models, num_doublings  # noqa: E402
from jaxgan.state import create_state, make_optimizers  # noqa: E402
from jaxgan.train_step import (AXIS, make_device_data_runner, make_mesh,  # noqa: E402
                               make_train_step)

warnings.filterwarnings("ignore", message=".*[Dd]onated buffers.*")

# Dense (no sparsity) peaks in FLOP/s from NVIDIA's data sheets; matched against device_kind in
# this order (H200 before H100, PCIe before the SXM default).
GPU_PEAKS = [
    ("H200", "H200 SXM", {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}),
    ("H100 PCIe", "H100 PCIe", {"fp32": 51.2e12, "tf32": 378e12, "bf16": 756e12}),
    ("H100", "H100 SXM", {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}),
    ("A100", "A100", {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12}),
]


# ------------------------------------------------------------------------------------- config

def load_config(path: str):
    path = pathlib.Path(path)
    if not path.is_absolute() and not path.exists():
        path = ROOT / path
    spec = importlib.util.spec_from_file_location(f"configs.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _parse_value(text: str, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"not a bool: {text!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text


def apply_overrides(config, overrides):
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"override {item!r} must look like KEY=VALUE")
        *sections, field = key.split(".")
        node = config
        for section in sections:
            node = node[section]
        node[field] = _parse_value(text, node[field]) if field in node else text
    return config


# ------------------------------------------------------------------------------------- timing

def block(tree):
    jax.block_until_ready(tree)
    return tree


def median_time(fn, reps: int, inner: int = 1) -> float:
    """Median over `reps` timed runs of `inner` back-to-back calls of fn(); seconds per call."""
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(inner)
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times)


def inner_for(seconds_per_call: float, target: float = 0.25) -> int:
    return max(1, min(200, int(target / max(seconds_per_call, 1e-6))))


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def fmt_flops(flops_per_s: float) -> str:
    return f"{flops_per_s / 1e9:.1f} GFLOP/s" if flops_per_s < 1e12 else \
        f"{flops_per_s / 1e12:.2f} TFLOP/s"


def xla_flops(compiled) -> float | None:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    if not analysis:
        return None
    flops = analysis.get("flops")
    return float(flops) if flops is not None and flops >= 0 else None


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description():
    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu ({cpu_name()}, {os.cpu_count()} logical cores)"
    return f"{device.platform} ({device.device_kind}) x{jax.device_count()}"


def gpu_peak(dtype_name: str):
    device = jax.devices()[0]
    if device.platform != "gpu":
        return None
    for key, label, peaks in GPU_PEAKS:
        if key.lower() in device.device_kind.lower():
            if dtype_name == "bfloat16":
                return label, {"bf16": peaks["bf16"]}
            return label, {"fp32": peaks["fp32"], "tf32 (tensor cores)": peaks["tf32"]}
    return None


def matmul_reference(dtype, n: int = 2048, reps: int = 5) -> float:
    """Measured FLOP/s of one n^3 matmul in XLA (a practical ceiling, not the hardware peak)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    mm = jax.jit(lambda a, b: a @ b)
    block(mm(a, b))
    return 2 * n ** 3 / median_time(lambda k: [block(mm(a, b)) for _ in range(k)], reps)


# -------------------------------------------------------------------------------- the jax step

class JaxBench:
    def __init__(self, config, image_shape, num_classes):
        self.config, self.image_shape, self.num_classes = config, image_shape, num_classes
        self.batch_size = config.train.batch_size
        self.mesh = make_mesh()
        if self.batch_size % self.mesh.size:
            raise SystemExit(f"train.batch_size={self.batch_size} is not a multiple of the "
                             f"{self.mesh.size} devices")
        state = create_state(config, image_shape, num_classes, jax.random.key(config.seed))
        self.state = jax.device_put(state, NamedSharding(self.mesh, P()))
        self.g_count = sum(x.size for x in jax.tree.leaves(state.g_params))
        self.d_count = sum(x.size for x in jax.tree.leaves(state.d_params))
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (self.batch_size, *image_shape)).astype(np.float32)
        labels = rng.integers(0, max(num_classes, 1), self.batch_size).astype(np.int32)
        self.batch_np = {"image": images, "label": labels}
        self.batch = jax.device_put(self.batch_np, NamedSharding(self.mesh, P(AXIS)))
        self.step_fn = make_train_step(config, self.mesh, image_shape, num_classes)
        self.jitted = jax.jit(self.step_fn, donate_argnums=0)
        self.base_key = jax.random.key(config.seed)
        self.count = 0

    def call(self, k: int = 1):
        for _ in range(k):
            key = jax.random.fold_in(self.base_key, self.count)
            self.state, self.metrics = self.jitted(self.state, self.batch, key)
            self.count += 1
        block((self.state, self.metrics))

    def flops(self):
        lowered = self.jitted.lower(self.state, self.batch, self.base_key)
        return xla_flops(lowered.compile())


def measure_jax_step(bench: JaxBench):
    start = time.perf_counter()
    bench.call()
    first = time.perf_counter() - start
    steady = median_time(bench.call, 3)
    inner = inner_for(steady)
    return first, steady, inner


def conv_layouts(compiled_text: str):
    """(non-canonical, total) convolutions in optimised HLO text. XLA:CPU runs a convolution
    with its fast library kernels only in the canonical NHWC form b01f_01io->b01f."""
    labels = re.findall(r"convolution\(.*?dim_labels=([^,\s]+)", compiled_text)
    return sum(label != "b01f_01io->b01f" for label in labels), len(labels)


def _jitted_inside(fn):
    """`fn` if it is jitted, else a jitted function its closure holds (for HLO inspection)."""
    if hasattr(fn, "lower"):
        return fn
    for cell in getattr(fn, "__closure__", None) or ():
        if hasattr(cell.cell_contents, "lower"):
            return cell.cell_contents
    return None


def measure_runner(bench: JaxBench, data, steps_per_call: int, calls: int, budget_s: float):
    """make_device_data_runner built with `train.steps_per_call = steps_per_call`, timed.

    1: one jitted step per dispatch, dispatched back to back (as train.py runs it); a timed run
    is `inner` such calls ended by a block. > 1: a fori_loop of `steps_per_call` steps per dispatch
    (a traced count: one compilation serves any count); when steps_per_call x calls would exceed
    `budget_s`, fewer steps per dispatch (down to the 1-step probe itself) are timed.
    """
    config = copy.deepcopy(bench.config)
    config.train.steps_per_call = steps_per_call
    runner = make_device_data_runner(config, bench.mesh, bench.image_shape, bench.num_classes)
    holder = {"state": bench.state}
    bench.state = None

    def call(reps=1, num_steps=steps_per_call):
        for _ in range(reps):
            holder["state"], metrics = runner(holder["state"], data, bench.base_key,
                                              jnp.int32(num_steps))
        block((holder["state"], metrics))
        holder["metrics"] = metrics

    start = time.perf_counter()
    call(num_steps=1)
    first = time.perf_counter() - start
    probe = median_time(lambda k: call(k, num_steps=1), 1)
    used_steps, used_calls, inner = steps_per_call, calls, 1
    if steps_per_call == 1:
        inner = inner_for(probe)
        per_call = median_time(lambda k: call(k, num_steps=1), calls, inner)
    else:
        if probe * steps_per_call * calls > budget_s:
            used_steps = int(max(1, min(steps_per_call, budget_s / (probe * calls))))
            if probe * used_steps * calls > budget_s:
                used_calls = int(max(1, budget_s / (probe * used_steps)))
        if used_steps == 1 and probe * calls > budget_s:
            per_call, used_calls = probe, 1  # the probe was already one timed 1-step dispatch
        else:
            per_call = median_time(lambda k: call(k, num_steps=used_steps), used_calls)
    bench.state = holder["state"]
    layouts = None
    jitted = _jitted_inside(runner)
    if jitted is not None:
        args = (bench.state, data, bench.base_key) + ((jnp.int32(1),) if steps_per_call > 1
                                                      else ())
        layouts = conv_layouts(jitted.lower(*args).compile().as_text())
    return dict(compile=first - probe, per_step=per_call / used_steps, per_call=per_call,
                steps=used_steps, calls=used_calls, inner=inner,
                finite=float(holder["metrics"]["finite"]), layouts=layouts)


def synthetic_data(bench: JaxBench, n: int = 1024):
    """A device-resident uint8 data set like data.to_device's, replicated."""
    rng = np.random.default_rng(1)
    data = {"image": rng.integers(0, 256, (n, *bench.image_shape), dtype=np.uint8),
            "label": rng.integers(0, max(bench.num_classes, 1), n).astype(np.int32)}
    return jax.device_put(data, NamedSharding(bench.mesh, P()))


def print_runner(r, label, step, batch, bare_layouts):
    print(f"compile       {r['compile']:.2f} s  (first call minus a steady call, both 1 step)")
    if r["inner"] > 1 or r["steps"] == 1:
        how = f"median of {r['calls']} runs x {r['inner']} dispatches of {r['steps']} step(s)"
    else:
        how = f"median of {r['calls']} dispatches of {r['steps']} steps, " \
              f"{fmt_time(r['per_call'])} each"
    print(f"per step      {fmt_time(r['per_step'])}  ({how}); metrics finite: "
          f"{r['finite'] == 1.0}")
    print(f"images/s      {batch / r['per_step']:,.0f}")
    d = r["per_step"] - step
    print(f"overhead      {1e3 * d:+.2f} ms per step vs the bare step ({100 * d / step:+.1f}%, "
          f"{r['per_step'] / step:.2f}x its time): {label}")
    if r["layouts"] is not None:
        print(f"conv layouts  convolutions not in XLA:CPU's fast canonical form b01f_01io->b01f "
              f"in the optimised HLO: {r['layouts'][0]} of {r['layouts'][1]} (bare step: "
              f"{bare_layouts[0]} of {bare_layouts[1]})")


# ----------------------------------------------------------------------------------- profile

class _Layer(nn.Module):
    """One layer of G or D, as jaxgan.models builds it, for per-layer timing."""
    kind: str
    features: int = 0
    num_classes: int = 0
    dtype: object = None

    @nn.compact
    def __call__(self, x, labels):
        if self.kind == "dense":
            return nn.Dense(self.features, use_bias=False, kernel_init=DCGAN_INIT,
                            dtype=self.dtype)(x)
        if self.kind == "upconv":
            return UpConv2x(self.features, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
        if self.kind == "conv_s2":
            return nn.Conv(self.features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                           use_bias=False, kernel_init=DCGAN_INIT, dtype=self.dtype)(x)
        if self.kind == "head":
            return nn.Conv(1, (4, 4), padding="VALID", use_bias=False, kernel_init=DCGAN_INIT,
                           dtype=self.dtype)(x)
        if self.kind == "g_norm":
            return nn.relu(ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(x, labels,
                                                                                   True))
        if self.kind == "d_norm":
            x = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                             dtype=self.dtype)(x)
            return nn.leaky_relu(x, 0.2)
        raise ValueError(self.kind)


def layer_specs(config, image_shape, num_classes):
    """(name, kind, input shape NHWC or (B, Z), features) for every timed layer of G and D."""
    resolution, _, channels = image_shape
    batch, model = config.train.batch_size, config.model
    n = num_doublings(resolution)
    width = model.g_width * 2 ** (n - 1)
    z_dim = model.latent_dim * (2 if num_classes else 1)
    specs = [(f"G Dense {z_dim} -> 4x4x{width}", "dense", (batch, z_dim), 16 * width),
             (f"G BN+ReLU 4x4x{width}", "g_norm", (batch, 4, 4, width), width)]
    h = 4
    for _ in range(n - 1):
        specs.append((f"G UpConv2x {h}x{h}x{width} -> {2 * h}x{2 * h}x{width // 2}", "upconv",
                      (batch, h, h, width), width // 2))
        h, width = 2 * h, width // 2
        specs.append((f"G BN+ReLU {h}x{h}x{width}", "g_norm", (batch, h, h, width), width))
    impl = "fused" if channels <= FUSED_MAX_FEATURES else "phases"
    specs.append((f"G UpConv2x {h}x{h}x{width} -> {2 * h}x{2 * h}x{channels} ({impl})", "upconv",
                  (batch, h, h, width), channels))
    h, width = resolution, model.d_width
    specs.append((f"D Conv {h}x{h}x{channels} -> {h // 2}x{h // 2}x{width}", "conv_s2",
                  (batch, h, h, channels), width))
    h //= 2
    for _ in range(n - 1):
        specs.append((f"D Conv {h}x{h}x{width} -> {h // 2}x{h // 2}x{2 * width}", "conv_s2",
                      (batch, h, h, width), 2 * width))
        h, width = h // 2, 2 * width
        if model.d_norm == "batch":
            specs.append((f"D BN+LReLU {h}x{h}x{width}", "d_norm", (batch, h, h, width), width))
    specs.append((f"D Conv {h}x{h}x{width} -> 1 (valid)", "head", (batch, h, h, width), 1))
    return specs


def _softplus_mean(logits):
    return jnp.mean(jax.nn.softplus(-logits))


def profile_jax(config, image_shape, num_classes, state, reps):
    """{name: seconds} for the step's parts and every layer's fwd+bwd."""
    generator, discriminator = build_models(config.model, image_shape, num_classes)
    dtype = jnp.dtype(config.model.get("dtype", "float32"))
    batch = config.train.batch_size
    keys = jax.random.split(jax.random.key(7), 6)
    z = jax.random.normal(keys[0], (batch, config.model.latent_dim))
    y = jax.random.randint(keys[1], (batch,), 0, max(num_classes, 1))
    real = jax.random.uniform(keys[2], (batch, *image_shape), minval=-1, maxval=1)
    cot = jax.random.normal(keys[3], (batch, *image_shape))
    gp, gs, dp, ds = state.g_params, state.g_stats, state.d_params, state.d_stats
    g_vars = lambda p: {"params": p, "batch_stats": gs} if gs else {"params": p}
    d_vars = lambda p: {"params": p, "batch_stats": ds} if ds else {"params": p}

    def g_apply(p):
        return generator.apply(g_vars(p), z, y, train=True, mutable=["batch_stats"])[0]

    def d_apply(p, x):
        return discriminator.apply(d_vars(p), x, y, train=True, mutable=["batch_stats"])[0]

    fake = jax.jit(g_apply)(gp)
    g_tx, d_tx = make_optimizers(config.train)
    g_opt, d_opt = g_tx.init(gp), d_tx.init(dp)
    g_grads = jax.tree.map(jnp.ones_like, gp)
    d_grads = jax.tree.map(jnp.ones_like, dp)

    def optimise(gp, dp, g_opt, d_opt, ema):
        gu, g_opt = g_tx.update(g_grads, g_opt, gp)
        du, d_opt = d_tx.update(d_grads, d_opt, dp)
        gp, dp = optax.apply_updates(gp, gu), optax.apply_updates(dp, du)
        return gp, dp, g_opt, d_opt, optax.incremental_update(gp, ema, 0.001)

    parts = {
        "G forward (train-mode BN)": (jax.jit(g_apply), (gp,)),
        "G forward+backward": (jax.jit(jax.grad(lambda p: jnp.vdot(g_apply(p), cot))), (gp,)),
        "D fwd+bwd real (weights)": (jax.jit(jax.grad(lambda p: _softplus_mean(d_apply(p, real)))),
                                     (dp,)),
        "D fwd+bwd fake (weights)": (jax.jit(jax.grad(lambda p: _softplus_mean(-d_apply(p, fake)))),
                                     (dp,)),
        "D fwd+bwd fake (input grad, G step)": (
            jax.jit(jax.grad(lambda x: _softplus_mean(d_apply(dp, x)))), (fake,)),
        "Adam G + Adam D + EMA": (jax.jit(optimise), (gp, dp, g_opt, d_opt, gp)),
    }
    results = {}
    for name, (fn, args) in parts.items():
        block(fn(*args))
        results[name] = median_time(lambda k: [block(fn(*args)) for _ in range(k)], reps)

    for name, kind, shape, features in layer_specs(config, image_shape, num_classes):
        module = _Layer(kind, features, num_classes, dtype)
        x = jax.random.normal(keys[4], shape)
        variables = module.init(keys[5], x, y)
        out = jax.eval_shape(lambda v, x: module.apply(v, x, y, mutable=["batch_stats"])[0],
                             variables, x)
        layer_cot = jax.random.normal(keys[3], out.shape)

        def loss(params, x, variables=variables, module=module, layer_cot=layer_cot):
            out, _ = module.apply({**variables, "params": params}, x, y, mutable=["batch_stats"])
            return jnp.vdot(out.astype(jnp.float32), layer_cot)
        fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
        block(fn(variables["params"], x))
        results[name] = median_time(
            lambda k: [block(fn(variables["params"], x)) for _ in range(k)], reps)
    return results


def profile_torch(twin, config, image_shape, num_classes, reps):
    import torch
    from torch import nn as tnn
    import pytorch_twin as pt

    batch = config.train.batch_size
    resolution, _, channels = image_shape
    torch.manual_seed(7)
    z = torch.randn(batch, config.model.latent_dim)
    y = torch.randint(0, max(num_classes, 1), (batch,)) if num_classes else None
    real = torch.rand(batch, channels, resolution, resolution) * 2 - 1
    cot = torch.randn(batch, channels, resolution, resolution)
    G, D = twin.G, twin.D
    autocast = twin._autocast

    def timed(fn):
        fn()
        return median_time(lambda k: [fn() for _ in range(k)], reps)

    def g_fwd():
        with autocast():
            return G(z, y)

    def g_fwd_bwd():
        G.zero_grad(set_to_none=True)
        g_fwd().float().backward(cot)

    with torch.no_grad(), autocast():
        fake = G(z, y).float()

    def d_weights(x):
        def fn():
            D.zero_grad(set_to_none=True)
            with autocast():
                loss = tnn.functional.softplus(-D(x, y).float()).mean()
            loss.backward()
        return fn

    def d_input(freeze):
        def fn():
            D.zero_grad(set_to_none=True)
            x = fake.clone().requires_grad_(True)
            if freeze:
                D.requires_grad_(False)
            with autocast():
                loss = tnn.functional.softplus(-D(x, y).float()).mean()
            loss.backward()
            D.requires_grad_(True)
        return fn

    def optimise():
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = torch.ones_like(p)
        twin.opt_g.step()
        twin.opt_d.step()
        with torch.no_grad():
            torch._foreach_lerp_(twin.ema, twin._g_tensors(), 0.001)

    state = {k: v.clone() for k, v in G.state_dict().items()}, \
        {k: v.clone() for k, v in D.state_dict().items()}
    results = {
        "G forward (train-mode BN)": timed(g_fwd),
        "G forward+backward": timed(g_fwd_bwd),
        "D fwd+bwd real (weights)": timed(d_weights(real)),
        "D fwd+bwd fake (weights)": timed(d_weights(fake)),
        "D fwd+bwd fake (input grad, G step)": timed(d_input(True)),
        "D fwd+bwd fake (input + weight grads, as the example)": timed(d_input(False)),
    }
    opt_states = [{k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
                   for k, v in opt.state.items()} for opt in (twin.opt_g, twin.opt_d)]
    results["Adam G + Adam D + EMA"] = timed(optimise)
    # The profile must not leave the twin changed.
    G.load_state_dict(state[0])
    D.load_state_dict(state[1])
    for opt, saved in zip((twin.opt_g, twin.opt_d), opt_states):
        opt.state.clear()
        opt.state.update(saved)

    k = num_classes
    for name, kind, shape, features in layer_specs(config, image_shape, num_classes):
        nchw = (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else shape
        if kind == "dense":  # netG's first layer: 1x1 -> 4x4 ConvTranspose2d
            layer = tnn.ConvTranspose2d(shape[1], features // 16, 4, 1, 0, bias=False)
            nchw = (shape[0], shape[1], 1, 1)
        elif kind == "upconv":
            layer = tnn.ConvTranspose2d(nchw[1], features, 4, 2, 1, bias=False)
        elif kind == "conv_s2":
            layer = tnn.Conv2d(nchw[1], features, 4, 2, 1, bias=False)
        elif kind == "head":
            layer = tnn.Conv2d(nchw[1], 1, 4, 1, 0, bias=False)
        elif kind == "g_norm":
            norm = pt.ConditionalBatchNorm2d(features, k)
            layer = lambda x, norm=norm: torch.relu(norm(x, y))
        else:
            layer = tnn.Sequential(tnn.BatchNorm2d(features), tnn.LeakyReLU(0.2))
        x = torch.randn(nchw, requires_grad=True)
        with torch.no_grad():
            out_cot = torch.randn_like(layer(x))

        def fn(layer=layer, x=x, out_cot=out_cot):
            x.grad = None
            with autocast():
                out = layer(x)
            out.float().backward(out_cot)
        results[name] = timed(fn)
    return results


def print_profile(jax_times, torch_times, step_jax, step_torch):
    names = list(torch_times or jax_times) + [n for n in jax_times if n not in (torch_times or {})]
    width = max(len(n) for n in names) + 2
    header = f"  {'part':<{width}}{'jaxgan':>11}{'% step':>8}"
    if torch_times:
        header += f"{'PyTorch':>11}{'% step':>8}{'jax/torch':>11}"
    print(header)
    layer_section = False
    for name in names:
        if not layer_section and name.startswith(("G Dense", "G BN", "G Up", "D Conv", "D BN")):
            layer_section = True
            print("  -- layers, fwd+bwd (weight and input gradients) --")
        j, t = jax_times.get(name), (torch_times or {}).get(name)
        line = f"  {name:<{width}}"
        line += f"{j * 1e3:>9.1f}ms{100 * j / step_jax:>7.1f}%" if j is not None else " " * 19
        if torch_times:
            line += f"{t * 1e3:>9.1f}ms{100 * t / step_torch:>7.1f}%" if t is not None else " " * 19
            if j is not None and t is not None:
                line += f"{j / t:>10.2f}x"
        print(line)
    sums = []
    for times, step in ((jax_times, step_jax), (torch_times, step_torch)):
        if not times:
            continue
        parts = ["G forward+backward", "D fwd+bwd real (weights)", "D fwd+bwd fake (weights)",
                 "D fwd+bwd fake (input grad, G step)", "Adam G + Adam D + EMA"]
        sums.append(f"{sum(times[p] for p in parts) * 1e3:.1f} ms vs step {step * 1e3:.1f} ms")
    print("  sum of G fwd+bwd, D real, D fake, D input grad, Adam+EMA: " + "; ".join(sums))


# ------------------------------------------------------------------------------- twin checks

def check_twin(config, image_shape, num_classes, steps: int = 3):
    """Load jaxgan's initial weights into the twin, feed both the same noise and batch, and
    compare the losses and logits of `steps` steps."""
    import torch
    import pytorch_twin as pt

    bench = JaxBench(config, image_shape, num_classes)
    twin = pt.TwinGAN(config, image_shape, num_classes)
    pt.load_jaxgan_params(twin, jax.device_get(bench.state.g_params),
                          jax.device_get(bench.state.d_params))
    real = torch.from_numpy(bench.batch_np["image"]).permute(0, 3, 1, 2).contiguous()
    real_y = torch.from_numpy(bench.batch_np["label"]).long()
    worst = 0.0
    n_critic, batch, latent = config.train.n_critic, config.train.batch_size, \
        config.model.latent_dim
    for i in range(steps):
        key = jax.random.fold_in(bench.base_key, i)
        z_key, y_key = jax.random.split(key)  # exactly what make_train_step draws
        z = jax.random.normal(z_key, (n_critic, batch, latent), jnp.float32)
        y = jax.random.randint(y_key, (n_critic, batch), 0, max(num_classes, 1))
        bench.state, metrics = bench.jitted(bench.state, bench.batch, key)
        ours = {k: float(v) for k, v in metrics.items() if k != "finite"}
        theirs = {k: float(v) for k, v in twin.step(
            real, real_y, torch.from_numpy(np.asarray(z)),
            torch.from_numpy(np.asarray(y)).long()).items()}
        diffs = {k: abs(ours[k] - theirs[k]) for k in ours}
        worst = max(worst, *diffs.values())
        print(f"  step {i + 1}: " + ", ".join(f"{k} jax {ours[k]:.6f} torch {theirs[k]:.6f}"
                                              for k in ours))
    print(f"  largest |jax - torch| over {steps} steps' metrics: {worst:.2e}")
    return worst


# ------------------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/digits.py")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed runs of the bare step and of the PyTorch step (median)")
    parser.add_argument("--runner_calls", "--runner-calls", type=int, default=3,
                        help="timed runs of the device-data runner (median)")
    parser.add_argument("--steps_per_call", "--steps-per-call", type=int, default=None,
                        help="default: the config's train.steps_per_call")
    parser.add_argument("--loop_steps", "--loop-steps", type=int, default=10,
                        help="when the config has steps_per_call = 1, also time the fori_loop "
                             "runner at this many steps per dispatch (0: skip)")
    parser.add_argument("--runner_budget", "--runner-budget", type=float, default=150.0,
                        help="seconds the fori_loop runner's timed dispatches may take in all")
    parser.add_argument("--num_classes", "--num-classes", type=int, default=10,
                        help="classes of a conditional config (the digits have 10)")
    parser.add_argument("--no_torch", "--no-torch", action="store_true")
    parser.add_argument("--torch_one_thread", "--torch-one-thread", action="store_true",
                        help="also time the twin with torch.set_num_threads(1)")
    parser.add_argument("--no_profile", "--no-profile", action="store_true")
    parser.add_argument("--profile_reps", "--profile-reps", type=int, default=5)
    parser.add_argument("--check_twin", "--check-twin", action="store_true",
                        help="compare the twin's losses with jaxgan's on the same weights/noise")
    parser.add_argument("--check_only", "--check-only", action="store_true",
                        help="with --check-twin: stop after the check (exit 1 if it differs)")
    args, unknown = parser.parse_known_args(argv)
    overrides = list(args.override)
    for item in unknown:
        if not item.startswith("--config."):
            parser.error(f"unrecognized argument {item}")
        overrides.append(item[len("--config."):])

    config = apply_overrides(load_config(args.config), overrides)
    resolution, channels = config.data.resolution, config.data.channels
    image_shape = (resolution, resolution, channels)
    num_classes = args.num_classes if config.data.conditional else 0
    dtype_name = str(config.model.get("dtype", "float32"))
    batch = config.train.batch_size
    steps_per_call = args.steps_per_call or config.train.steps_per_call

    print(f"config        {args.config} {' '.join(overrides)}")
    print(f"              image {image_shape}, {num_classes or 'no'} classes, batch {batch}, "
          f"latent {config.model.latent_dim}, g_width {config.model.g_width}, d_width "
          f"{config.model.d_width}, d_norm {config.model.d_norm}, loss {config.train.loss}, "
          f"n_critic {config.train.n_critic}, dtype {dtype_name}")
    print(f"backend       {jax.default_backend()}: {device_description()}")
    print(f"versions      python {platform.python_version()}, jax {jax.__version__}, "
          f"jaxlib {jaxlib.__version__}, "
          f"flax {flax.__version__}, optax {optax.__version__}")
    if os.environ.get("XLA_FLAGS"):
        print(f"XLA_FLAGS     {os.environ['XLA_FLAGS']}")
    try:
        load = os.getloadavg()
        print(f"load average  {' '.join(f'{x:.2f}' for x in load)} (at start)")
        if load[0] > 0.6 * os.cpu_count():
            print("WARNING       the machine is busy: timings (PyTorch's OpenMP threads most of "
                  "all) will be slow and noisy")
    except OSError:
        pass

    if args.check_twin:
        print("\n== twin equivalence check (jaxgan's initial weights and noise in the twin) ==")
        worst = check_twin(config, image_shape, num_classes)
        if args.check_only:
            raise SystemExit(0 if worst < 1e-3 else 1)

    bench = JaxBench(config, image_shape, num_classes)
    print(f"\nparams        G {bench.g_count:,}  D {bench.d_count:,}")

    print("\n== jaxgan: bare jitted step (fixed synthetic batch, state donated) ==")
    first, steady, inner = measure_jax_step(bench)
    flops = bench.flops()

    twin = None
    if not args.no_torch:
        import torch
        import pytorch_twin as pt
        torch.set_num_threads(os.cpu_count())
        twin = pt.TwinGAN(config, image_shape, num_classes)
        twin_frozen = pt.TwinGAN(config, image_shape, num_classes, freeze_d_in_g_step=True)
        g_t, d_t = pt.num_params(twin.G), pt.num_params(twin.D)
        assert (g_t, d_t) == (bench.g_count, bench.d_count), \
            f"parameter counts differ: jaxgan G {bench.g_count} D {bench.d_count}, " \
            f"PyTorch G {g_t} D {d_t}"
        real = torch.from_numpy(bench.batch_np["image"]).permute(0, 3, 1, 2).contiguous()
        real_y = torch.from_numpy(bench.batch_np["label"]).long()

        def torch_call(model):
            def call(k=1):
                for _ in range(k):
                    metrics = model.step(real, real_y)
                return metrics
            return call
        start = time.perf_counter()
        torch_call(twin)()
        torch_first = time.perf_counter() - start
        torch_call(twin_frozen)()
        torch_steady = median_time(torch_call(twin), 2)
        torch_inner = inner_for(torch_steady)

    # Timed runs, interleaved in two rounds so that a change of machine load hits both.
    jax_runs, torch_runs, frozen_runs, one_thread_runs = [], [], [], []
    rounds = 2
    for r in range(rounds):
        reps = (args.steps + rounds - 1 - r) // rounds
        for _ in range(max(1, reps)):
            jax_runs.append(median_time(bench.call, 1, inner))
        if twin is not None:
            for _ in range(max(1, reps)):
                torch_runs.append(median_time(torch_call(twin), 1, torch_inner))
                frozen_runs.append(median_time(torch_call(twin_frozen), 1, torch_inner))
            if args.torch_one_thread:
                torch.set_num_threads(1)
                for _ in range(max(1, reps // 2)):
                    one_thread_runs.append(median_time(torch_call(twin), 1, torch_inner))
                torch.set_num_threads(os.cpu_count())
    step = statistics.median(jax_runs)
    finite = float(bench.metrics["finite"])
    print(f"params        G {bench.g_count:,}  D {bench.d_count:,} (jaxgan)")
    print(f"compile       {first - steady:.2f} s  (first call {first:.2f} s minus a steady call)")
    print(f"step          {fmt_time(step)}  median of {len(jax_runs)} runs x {inner} steps "
          f"(min {fmt_time(min(jax_runs))}, max {fmt_time(max(jax_runs))}); metrics finite: "
          f"{finite == 1.0}")
    print(f"images/s      {batch / step:,.0f}")
    if flops:
        print(f"XLA FLOPs     {flops / 1e9:.2f} GFLOP per step ({flops / batch / 1e9:.3f} GFLOP "
              f"per image) -> {fmt_flops(flops / step)}")
        peak = gpu_peak(dtype_name)
        if peak:
            label, peaks = peak
            print(f"peak          {label}: " + ", ".join(
                f"{100 * flops / step / v:.2f}% of {k} {v / 1e12:.0f} TFLOP/s"
                for k, v in peaks.items()))
        elif jax.default_backend() == "cpu":
            ref_dtype = jnp.bfloat16 if dtype_name == "bfloat16" else jnp.float32
            ref = matmul_reference(ref_dtype)
            print(f"peak          unknown for this CPU (the VM exposes no clock frequency); "
                  f"reference: a 2048^3 {jnp.dtype(ref_dtype).name} matmul in XLA runs at "
                  f"{fmt_flops(ref)} here, the step reaches {100 * flops / step / ref:.0f}% "
                  f"of that")
        else:
            print(f"peak          unknown for {jax.devices()[0].device_kind}")
    else:
        print("XLA FLOPs     cost_analysis() gave no 'flops' on this backend")

    data = synthetic_data(bench)
    bare_layouts = conv_layouts(bench.jitted.lower(bench.state, bench.batch, bench.base_key)
                                .compile().as_text())
    paths = [steps_per_call] + ([args.loop_steps] if steps_per_call == 1 and args.loop_steps > 1
                                else [])
    runs = {}
    for n in paths:
        if n == 1:
            title = ("device-data runner, train.steps_per_call = 1 (the config's): one jitted step "
                     "per dispatch, dispatched ahead")
            label = "device batch draw + per-call dispatch"
        else:
            title = (f"device-data runner, train.steps_per_call = {n}"
                     f"{' (the config' + chr(39) + 's)' if n == steps_per_call else ''}: a "
                     f"fori_loop of {n} steps per dispatch (the GPU/TPU setting)")
            label = "device batch draw + XLA while loop"
        print(f"\n== jaxgan: {title} ==")
        r = measure_runner(bench, data, n, args.runner_calls, args.runner_budget)
        if n > 1 and (r["steps"] != n or r["calls"] != args.runner_calls):
            print(f"note          timed {r['calls']} dispatch(es) of {r['steps']} step(s) instead "
                  f"of {args.runner_calls} x {n} to stay within --runner_budget "
                  f"{args.runner_budget:.0f} s (num_steps is traced: same compiled loop)")
        print_runner(r, label, step, batch, bare_layouts)
        runs[n] = r

    torch_step = None
    if twin is not None:
        torch_step = statistics.median(torch_runs)
        frozen_step = statistics.median(frozen_runs)
        print("\n== PyTorch twin (eager, CPU) ==")
        print(f"versions      torch {torch.__version__}, threads {torch.get_num_threads()} "
              f"(os.cpu_count() {os.cpu_count()}), mkldnn {torch.backends.mkldnn.is_available()}"
              f"{', bf16 autocast' if twin.autocast_dtype else ''}")
        print(f"params        G {g_t:,}  D {d_t:,}  (equal to jaxgan's: asserted)")
        print(f"first step    {fmt_time(torch_first)}")
        print(f"step          {fmt_time(torch_step)}  median of {len(torch_runs)} runs x "
              f"{torch_inner} steps (min {fmt_time(min(torch_runs))}, max "
              f"{fmt_time(max(torch_runs))}), as pytorch/examples (D weight grads in the G step)")
        print(f"images/s      {batch / torch_step:,.0f}")
        if one_thread_runs:
            one = statistics.median(one_thread_runs)
            print(f"step, 1 thread {fmt_time(one)} ({batch / one:,.0f} images/s; median of "
                  f"{len(one_thread_runs)}; torch.set_num_threads(1), a check on OpenMP under load)")
        print(f"step, D frozen in G step  {fmt_time(frozen_step)} ({batch / frozen_step:,.0f} "
              f"images/s)")
        try:
            from torch.utils.flop_counter import FlopCounterMode
            with FlopCounterMode(display=False) as counter:
                twin_frozen.step(real, real_y)
            torch_flops = counter.get_total_flops()
            print(f"torch FLOPs   {torch_flops / 1e9:.2f} GFLOP per step (matmuls/convs, D frozen "
                  f"in G step) -> {fmt_flops(torch_flops / frozen_step)}")
        except Exception as error:  # the counter is a convenience only
            print(f"torch FLOPs   not counted ({error})")
        print("\n== jaxgan / PyTorch (images/s ratio; >1: jaxgan faster) ==")
        print(f"bare step     {torch_step / step:.2f}x  vs example-faithful twin, "
              f"{frozen_step / step:.2f}x vs twin with D frozen in G step")
        for n, r in runs.items():
            print(f"runner x{n:<4} {torch_step / r['per_step']:.2f}x  vs example-faithful twin, "
                  f"{frozen_step / r['per_step']:.2f}x vs twin with D frozen in G step"
                  f"{'  (as configured)' if n == steps_per_call else ''}")

    if not args.no_profile:
        print(f"\n== per-part profile (jitted parts, median of {args.profile_reps}; batch {batch}) ==")
        jax_times = profile_jax(config, image_shape, num_classes, bench.state, args.profile_reps)
        torch_times = profile_torch(twin, config, image_shape, num_classes, args.profile_reps) \
            if twin is not None else None
        print_profile(jax_times, torch_times, step, torch_step)
    try:
        print(f"\nload average  {' '.join(f'{x:.2f}' for x in os.getloadavg())} (at end)")
    except OSError:
        pass


if __name__ == "__main__":
    main()
