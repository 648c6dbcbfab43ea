"""Training-step throughput of jaxgan for a config, against its PyTorch twin.

Command (repo root):

    python benchmarks/step_throughput.py --config configs/dcgan64.py
    python benchmarks/step_throughput.py --config configs/digits.py --steps 20
    python benchmarks/step_throughput.py --config configs/digits.py --config.model.dtype=bfloat16
    python benchmarks/step_throughput.py --config configs/dcgan64.py --config.model.g_width=8 \
        --config.model.d_width=8 --steps 3                  # a quick smoke run

Overrides: `--config.KEY=VALUE` as train.py takes them (or `--override KEY=VALUE`), validated by
jaxgan.config. The per-layer profile is benchmarks/layer_profile.py; the check that the twin is
the same GAN is benchmarks/twin_check.py (and tests/test_pytorch_twin.py).

On the current JAX backend, after compilation, as medians of several timed runs:
  (a) the bare step: jax.jit(make_train_step(gan, config.train, mesh), donate_argnums=0) on a
      fixed synthetic batch (the calls of one timed run are dispatched back to back; the run ends
      with a block);
  (b) make_device_data_runner(config, gan, mesh), batches drawn on the device from a
      device-resident synthetic uint8 data set, as training runs it with the config's
      `train.steps_per_call`: with 1 (the CPU configs) one jitted step per dispatch, dispatched
      back to back; with N > 1 a fori_loop of N steps per dispatch. When the config says 1, the
      fori_loop path is timed as well (--loop_steps, default 10; the GPU/TPU setting), within
      --runner_budget seconds. Printed: per-step time, images/s, the overhead over (a), and how
      many convolutions of the optimised HLO are not in XLA:CPU's canonical (fast) form.
It prints the device, versions, parameter counts, compile time (first call minus a steady call),
step time, images/s, XLA's own FLOP count of the step (`compiled.cost_analysis()["flops"]`) as
achieved FLOP/s and, for known GPUs, the fraction of the dense peak. On a CPU the peak is not
printed (the VM exposes no clock); a large matmul's measured FLOP/s is printed as a reference.

The PyTorch twin (benchmarks/pytorch_twin.py; --no-torch skips it): the same networks and step
(asserted: equal parameter counts), timed eagerly on the GPU when JAX runs on one (each timed run
ends with torch.cuda.synchronize()), else with torch.set_num_threads(os.cpu_count()),
both as pytorch/examples does it (D weight gradients computed in the G step) and with D frozen in
the G step (what jaxgan computes). jaxgan and the twin are timed in interleaved rounds, so that a
change of machine load hits both: on a shared machine compare the ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import time
import warnings

import _common
from _common import block, fmt_flops, fmt_time, inner_for, median_time

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxgan import mesh as mesh_lib  # noqa: E402
from jaxgan.training.pipeline import make_device_data_runner  # noqa: E402

warnings.filterwarnings("ignore", message=".*[Dd]onated buffers.*")

# Dense (no sparsity) peaks in FLOP/s from NVIDIA's data sheets; matched against device_kind in
# this order (H200 before H100, PCIe before the SXM default).
GPU_PEAKS = [
    ("H200", "H200 SXM", {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}),
    ("H100 PCIe", "H100 PCIe", {"fp32": 51.2e12, "tf32": 378e12, "bf16": 756e12}),
    ("H100", "H100 SXM", {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12}),
    ("A100", "A100", {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12}),
]


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


def measure_jax_step(bench: _common.JaxStep):
    start = time.perf_counter()
    bench.call()
    first = time.perf_counter() - start
    steady = median_time(bench.call, 3)
    return first, steady, inner_for(steady)


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


def measure_runner(bench: _common.JaxStep, data, steps_per_call: int, calls: int, budget_s: float):
    """make_device_data_runner built with `train.steps_per_call = steps_per_call`, timed.

    1: one jitted step per dispatch, dispatched back to back (as train.py runs it); a timed run
    is `inner` such calls ended by a block. > 1: a fori_loop of `steps_per_call` steps per dispatch
    (a traced count: one compilation serves any count); when steps_per_call x calls would exceed
    `budget_s`, fewer steps per dispatch (down to the 1-step probe itself) are timed.
    """
    config = copy.deepcopy(bench.config)
    config.train.steps_per_call = steps_per_call
    runner = make_device_data_runner(config, bench.gan, bench.mesh)
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


def synthetic_data(bench: _common.JaxStep, n: int = 1024):
    """A device-resident uint8 data set like training.pipeline.to_device's, replicated."""
    rng = np.random.default_rng(1)
    data = {"image": rng.integers(0, 256, (n, *bench.image_shape), dtype=np.uint8),
            "label": rng.integers(0, max(bench.num_classes, 1), n).astype(np.int32)}
    return jax.device_put(data, mesh_lib.replicated(bench.mesh))


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


# ------------------------------------------------------------------------------------- sweep

# The families at 32 px, as a CPU owner trains them (the art recipes' sizes): DCGAN is
# configs/folder.py at 32 px, the resnet family configs/art.py shrunk as its docstring says for a
# CPU (widths 16, one D update per step), FastGAN configs/fastgan_cpu.py. The data source only
# has to pass validation: the step runs on a synthetic batch.
FAMILIES = {
    "dcgan": ("configs/folder.py", ["data.resolution=32"]),
    "resnet": ("configs/art.py", ["data.resolution=32", "model.g_width=16", "model.d_width=16",
                                  "train.n_critic=1"]),
    "fastgan": ("configs/fastgan_cpu.py", []),
}


def usable_cores() -> int:
    """CPUs this process may run on (taskset / cgroups), not the machine's count: torch's
    OpenMP threads beyond them only contend."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def sweep_cell(config, num_classes: int, reps: int, with_torch: bool):
    """(jaxgan step s, twin step s or None, compile s) for one config, timed interleaved: one
    jaxgan run, one twin run (pytorch/examples' way: D weight grads in the G step), `reps`
    times; medians."""
    image_shape = _common.image_shape_of(config)
    bench = _common.JaxStep(config, image_shape, num_classes)
    first, steady, inner = measure_jax_step(bench)
    twin_call = None
    if with_torch:
        import torch
        import pytorch_twin as pt
        twin = pt.TwinGAN(config, image_shape, num_classes)
        g_t, d_t = pt.num_params(twin.G), pt.num_params(twin.D)
        assert (g_t, d_t) == (bench.g_count, bench.d_count), \
            f"parameter counts differ: jaxgan {bench.g_count}/{bench.d_count}, twin {g_t}/{d_t}"
        real = torch.from_numpy(bench.batch_np["image"]).permute(0, 3, 1, 2).contiguous()
        real_y = torch.from_numpy(bench.batch_np["label"]).long()

        def twin_call(k=1):
            for _ in range(k):
                twin.step(real, real_y)
        twin_call()  # warm-up (oneDNN primitive creation)
        torch_inner = inner_for(median_time(twin_call, 1))
    jax_runs, torch_runs = [], []
    for _ in range(reps):
        jax_runs.append(median_time(bench.call, 1, inner))
        if twin_call is not None:
            torch_runs.append(median_time(twin_call, 1, torch_inner))
    return (statistics.median(jax_runs), statistics.median(torch_runs) if torch_runs else None,
            first - steady, float(bench.metrics["finite"]))


def sweep(args) -> None:
    """The throughput table: every family x dtype x batch size, jaxgan against its twin."""
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"error: --families: unknown {', '.join(unknown)} (known: "
                         f"{', '.join(FAMILIES)})")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    dtypes = [d for d in args.dtypes.split(",") if d]
    if not args.no_torch:
        import torch
        torch.set_num_threads(usable_cores())
        print(f"torch         {torch.__version__}, threads {torch.get_num_threads()} (usable "
              f"cores), mkldnn {torch.backends.mkldnn.is_available()}, bf16 as CPU autocast")
    _common.print_machine()
    print(f"usable cores  {usable_cores()} (os.sched_getaffinity)")
    rows = []
    header = (f"{'family':8s} {'dtype':9s} {'batch':>5s} {'jaxgan ms':>10s} {'img/s':>7s} "
              f"{'twin ms':>9s} {'img/s':>7s} {'jax/twin':>8s} {'compile s':>9s}")
    print("\n" + header)
    for family in families:
        path, overrides = FAMILIES[family]
        for dtype in dtypes:
            for batch in batches:
                config = _common.load_config(path, [
                    "data.source=folder:/tmp", *overrides, f"train.batch_size={batch}",
                    f"model.dtype={dtype}", *args.override])
                num_classes = args.num_classes if config.data.conditional else 0
                step, twin_step, compile_s, finite = sweep_cell(config, num_classes, args.steps,
                                                                not args.no_torch)
                ratio = twin_step / step if twin_step else float("nan")
                row = (family, dtype, batch, step, twin_step, ratio, compile_s, finite)
                rows.append(row)
                print(f"{family:8s} {dtype:9s} {batch:5d} {1e3 * step:10.1f} {batch / step:7.0f} "
                      + (f"{1e3 * twin_step:9.1f} {batch / twin_step:7.0f} {ratio:8.2f}"
                         if twin_step else f"{'-':>9s} {'-':>7s} {'-':>8s}")
                      + f" {compile_s:9.1f}" + ("" if finite == 1.0 else "  (non-finite!)"),
                      flush=True)
    print("\nMarkdown (jax/twin: images/s of jaxgan over the twin's; > 1: jaxgan faster):\n")
    print("| family | dtype | batch | jaxgan step | jaxgan img/s | twin step | twin img/s | "
          "jax/twin |")
    print("|---|---|---|---|---|---|---|---|")
    for family, dtype, batch, step, twin_step, ratio, _, _ in rows:
        twin_cells = (f"{1e3 * twin_step:.1f} ms | {batch / twin_step:,.0f} | {ratio:.2f}x"
                      if twin_step else "- | - | -")
        print(f"| {family} | {dtype} | {batch} | {1e3 * step:.1f} ms | {batch / step:,.0f} | "
              f"{twin_cells} |")
    print()
    _common.print_load("at end")


# ------------------------------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
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
    parser.add_argument("--no_runner", "--no-runner", action="store_true",
                        help="time the bare step only (skips (b) and its compilations)")
    parser.add_argument("--no_torch", "--no-torch", action="store_true")
    parser.add_argument("--torch_one_thread", "--torch-one-thread", action="store_true",
                        help="also time the twin with torch.set_num_threads(1)")
    parser.add_argument("--families", default="",
                        help="the throughput table instead of one config: these families at 32 "
                             "px (comma-separated, of " + ", ".join(FAMILIES) + "), every "
                             "--batch-sizes and --dtypes, jaxgan against the twin")
    parser.add_argument("--batch_sizes", "--batch-sizes", default="8,16,32,64,128")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args, config, overrides = _common.parse_with_config(parser, argv)
    if args.families:
        args.override = overrides
        return sweep(args)
    image_shape = _common.image_shape_of(config)
    num_classes = args.num_classes if config.data.conditional else 0
    dtype_name = str(config.model.dtype)
    batch = config.train.batch_size
    steps_per_call = args.steps_per_call or config.train.steps_per_call

    print(f"config        {args.config} {' '.join(overrides)}")
    print(f"              image {image_shape}, {num_classes or 'no'} classes, batch {batch}, "
          f"latent {config.model.latent_dim}, g_width {config.model.g_width}, d_width "
          f"{config.model.d_width}, d_norm {config.model.d_norm}, loss {config.train.loss}, "
          f"n_critic {config.train.n_critic}, mode_seeking {config.train.mode_seeking}, "
          f"augment {config.train.augment or 'none'}, dtype {dtype_name}")
    _common.print_machine()

    bench = _common.JaxStep(config, image_shape, num_classes)
    print(f"\nparams        G {bench.g_count:,}  D {bench.d_count:,}")

    print("\n== jaxgan: bare jitted step (fixed synthetic batch, state donated) ==")
    first, steady, inner = measure_jax_step(bench)
    compiled = bench.compiled()
    flops = _common.xla_flops(compiled)

    twin = None
    if not args.no_torch:
        import torch
        import pytorch_twin as pt
        torch.set_num_threads(os.cpu_count())
        if pt.unsupported(config):
            raise SystemExit(f"error: the PyTorch twin does not model "
                             f"{', '.join(pt.unsupported(config))} (--no-torch skips it)")
        # The twin runs where jaxgan runs: on the GPU when JAX's backend is one.
        device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
        twin = pt.TwinGAN(config, image_shape, num_classes, device=device)
        twin_frozen = pt.TwinGAN(config, image_shape, num_classes, freeze_d_in_g_step=True,
                                 device=device)
        g_t, d_t = pt.num_params(twin.G), pt.num_params(twin.D)
        assert (g_t, d_t) == (bench.g_count, bench.d_count), \
            f"parameter counts differ: jaxgan G {bench.g_count} D {bench.d_count}, " \
            f"PyTorch G {g_t} D {d_t}"
        real = torch.from_numpy(bench.batch_np["image"]).permute(0, 3, 1, 2).contiguous()
        real, real_y = real.to(device), torch.from_numpy(bench.batch_np["label"]).long().to(device)

        def torch_call(model):
            def call(k=1):
                for _ in range(k):
                    metrics = model.step(real, real_y)
                if device == "cuda":  # CUDA runs asynchronously: wait for the steps' kernels
                    torch.cuda.synchronize()
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
    bare_layouts = conv_layouts(compiled.as_text())
    paths = [steps_per_call] + ([args.loop_steps] if steps_per_call == 1 and args.loop_steps > 1
                                else [])
    paths = [] if args.no_runner else paths
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
        print(f"\n== PyTorch twin (eager, {device}) ==")
        if device == "cuda":
            print(f"versions      torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
                  f"{torch.backends.cudnn.version()}, {torch.cuda.get_device_name()}; TF32: "
                  f"matmul {torch.backends.cuda.matmul.allow_tf32}, cuDNN convolutions "
                  f"{torch.backends.cudnn.allow_tf32} (torch's defaults), cudnn.benchmark "
                  f"{torch.backends.cudnn.benchmark}; JAX's "
                  f"default_matmul_precision {jax.config.jax_default_matmul_precision}"
                  f"{'; bf16 autocast' if twin.autocast_dtype else ''}")
        else:
            print(f"versions      torch {torch.__version__}, threads {torch.get_num_threads()} "
                  f"(os.cpu_count() {os.cpu_count()}), mkldnn "
                  f"{torch.backends.mkldnn.is_available()}"
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
                  f"in G step) -> {fmt_flops(torch_flops / frozen_step)}; jaxgan's step at "
                  f"this count -> {fmt_flops(torch_flops / step)} (on GPUs XLA's cost_analysis "
                  f"leaves out cuDNN convolutions)")
        except Exception as error:  # the counter is a convenience only
            print(f"torch FLOPs   not counted ({error})")
        print("\n== jaxgan / PyTorch (images/s ratio; >1: jaxgan faster) ==")
        print(f"bare step     {torch_step / step:.2f}x  vs example-faithful twin, "
              f"{frozen_step / step:.2f}x vs twin with D frozen in G step")
        for n, r in runs.items():
            print(f"runner x{n:<4} {torch_step / r['per_step']:.2f}x  vs example-faithful twin, "
                  f"{frozen_step / r['per_step']:.2f}x vs twin with D frozen in G step"
                  f"{'  (as configured)' if n == steps_per_call else ''}")

    print()
    _common.print_load("at end")


if __name__ == "__main__":
    main()
