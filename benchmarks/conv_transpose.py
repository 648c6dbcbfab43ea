"""Forward+backward time of nn.ConvTranspose(4, stride 2, SAME) vs jaxgan.models.cpu_conv.UpConv2x.

The four transposed convolutions of the PyTorch DCGAN generator (64x64x3, ngf=64) at batch 64,
float32: value_and_grad of <layer(x), cotangent> w.r.t. the params and the input, jitted; time
after compilation, median of --reps runs, the implementations interleaved run by run.

Command (repo root, with jaxgan installed, e.g. `pip install -e .`, or PYTHONPATH=.):

    python benchmarks/conv_transpose.py              # --batch 64 --reps 7
    python benchmarks/conv_transpose.py --variants   # also impl="phases"/"fused" and a custom VJP

Measured on a 2-core AMD EPYC x86 CPU (no GPU), Python 3.11.7, with
`python benchmarks/conv_transpose.py --variants`. CAUTION: the machine was shared with another
engineer's training runs during every measurement (load average 3-4 on the 2 cores), so absolute
times are inflated and +-15% noisy; the ratios are what matter (the implementations were
interleaved run by run, so they saw the same load). Forward+backward, ms, median of 7:

                              nn.ConvTranspose   UpConv2x   phases   fused   custom VJP
  jax 0.10.2 / flax 0.12.8 (run 1: idle at start, a training run started during layer 2)
    4x4x512   -> 8x8x256            722.7          42.0       42.2   115.7      50.4
    8x8x256   -> 16x16x128         1661.8         107.8      110.7   193.2     116.3
    16x16x128 -> 32x32x64          1794.5         137.3      138.7   208.5     127.7
    32x32x64  -> 64x64x3             94.8          32.1       81.9    36.4      30.4
    total                          4273.7         319.2      373.3   553.9     324.8  (13.4x)
  jax 0.10.2 / flax 0.12.8 (run 2, loaded throughout)
    total                          5040.5         377.4      410.4   656.2     383.4  (13.4x)
  jax 0.7.2 / flax 0.11.2 (loaded throughout)
    4x4x512   -> 8x8x256           1300.7          78.0       68.6   178.1      76.4
    8x8x256   -> 16x16x128         1605.1          69.4       69.0   146.4      70.0
    16x16x128 -> 32x32x64          1538.4         105.4      104.8   167.8      86.9
    32x32x64  -> 64x64x3             92.9          46.4      103.3    46.5      46.3
    total                          4537.2         299.2      345.7   538.8     279.7  (15.2x)

An earlier, mostly idle run of the same computations (scratch script, jax 0.10.2) gave
nn.ConvTranspose 799 / 1052 / 987 / 94 ms = 2.93 s total against the four-phase form
42 / 53 / 93 / 107 ms = 0.29 s, and the single fused 3x3 conv 39 ms on the last layer.

Reading: UpConv2x (impl="auto": four 2x2 phase convs, or the single fused 3x3 conv when
features <= 8, i.e. the RGB output layer) is 13-15x faster than nn.ConvTranspose end to end.
The fused conv alone loses on wide layers (2.25x the FLOPs) and wins 2-3x on the 3-channel
output layer, hence "auto". The custom VJP (input gradient as one stride-2 conv) is within noise
of plain autodiff (+2% / -7% total), so UpConv2x keeps plain autodiff.
"""
from __future__ import annotations

import argparse
import sys
import time

import _common

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from jaxgan.models.cpu_conv import DownConv2x, UpConv2x, upconv2x  # noqa: E402

# (H = W, Cin, Cout) of the DCGAN generator's stride-2 transposed convolutions.
DCGAN_LAYERS = [(4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 3)]
DN = ("NHWC", "HWIO", "NHWC")


@jax.custom_vjp
def upconv2x_custom_vjp(x, kernel):
    """upconv2x with a hand-written VJP: the input gradient as ONE stride-2 convolution of the
    output gradient with the spatially flipped, in/out-swapped kernel (the adjoint of the
    transposed conv; dx[i] = sum_t dy[2i + 2 - t] w[t]); the kernel gradient by autodiff of the
    phase form. Only benchmarked, not used: it was not faster than plain autodiff."""
    return upconv2x(x, kernel)


def _custom_fwd(x, kernel):
    return upconv2x(x, kernel), (x, kernel)


def _custom_bwd(res, dy):
    x, kernel = res
    dx = lax.conv_general_dilated(dy, jnp.swapaxes(kernel[::-1, ::-1], 2, 3), (2, 2),
                                  ((1, 1), (1, 1)), dimension_numbers=DN)
    (dk,) = jax.vjp(lambda k: upconv2x(x, k), kernel)[1](dy)
    return dx, dk


upconv2x_custom_vjp.defvjp(_custom_fwd, _custom_bwd)


class CustomVJPUpConv2x(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (4, 4, x.shape[-1], self.features))
        return upconv2x_custom_vjp(x, kernel)


def implementations(features: int, variants: bool) -> dict[str, nn.Module]:
    impls = {
        "nn.ConvTranspose": nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding="SAME",
                                             use_bias=False),
        "UpConv2x": UpConv2x(features),
    }
    if variants:
        impls["UpConv2x phases"] = UpConv2x(features, impl="phases")
        impls["UpConv2x fused"] = UpConv2x(features, impl="fused")
        impls["custom VJP"] = CustomVJPUpConv2x(features)
    return impls


def make_step(module: nn.Module, cot):
    """Jitted value_and_grad of <module(x), cot> w.r.t. (params, x)."""
    def loss(params, x):
        return jnp.sum(module.apply({"params": params}, x) * cot)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def time_layers(layers, implementations, reference: str, out_side, batch: int, reps: int,
                max_error: float) -> None:
    """For each (side, cin, cout): check every implementation against `reference` (loss, input
    and kernel gradients), then time them interleaved run by run and print medians and totals."""
    rng = np.random.default_rng(0)
    totals: dict[str, float] = {}
    for h, cin, cout in layers:
        x = jnp.asarray(rng.standard_normal((batch, h, h, cin)), jnp.float32)
        side = out_side(h)
        cot = jnp.asarray(rng.standard_normal((batch, side, side, cout)), jnp.float32)
        params = {"kernel": jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)),
                                        jnp.float32)}
        steps = {name: make_step(module, cot) for name, module in implementations(cout).items()}
        results = {name: jax.block_until_ready(step(params, x)) for name, step in steps.items()}
        ref_loss, (ref_gp, ref_gx) = results[reference]
        for name, (loss, (gp, gx)) in results.items():  # same maths, so the same numbers
            for got, want in [(loss, ref_loss), (gx, ref_gx), (gp["kernel"], ref_gp["kernel"])]:
                err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
                assert err < max_error, f"{name}: relative error {err:.2e}"
        times = {name: [] for name in steps}
        for _ in range(reps):
            for name, step in steps.items():
                start = time.perf_counter()
                jax.block_until_ready(step(params, x))
                times[name].append(time.perf_counter() - start)
        layer = f"{h}x{h}x{cin} -> {side}x{side}x{cout}"
        ref_ms = 1e3 * float(np.median(times[reference]))
        for name, ts in times.items():
            ms = 1e3 * float(np.median(ts))
            totals[name] = totals.get(name, 0.0) + ms
            print(f"  {layer:22s} {name:18s} {ms:9.1f} ms   x{ref_ms / ms:5.2f}", flush=True)
    for name, ms in totals.items():
        print(f"  {'total':22s} {name:18s} {ms:9.1f} ms   x{totals[reference] / ms:5.2f}")


def parse_args(doc: str, variants_help: str, down: bool = False):
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    if down:
        parser.add_argument("--down", action="store_true", required=True)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=7, help="timed runs per layer (>= 5)")
    parser.add_argument("--variants", action="store_true", help=variants_help)
    args = parser.parse_args()
    _common.print_machine()
    print(f"batch {args.batch}, float32, median of {args.reps}")
    return args


def main():
    args = parse_args(__doc__, "also time impl='phases', impl='fused' and a custom-VJP version")
    time_layers(DCGAN_LAYERS, lambda cout: implementations(cout, args.variants),
                "nn.ConvTranspose", lambda h: 2 * h, args.batch, args.reps, 1e-3)
    _common.print_load("at end")


# ---------------------------------------------------------------------------------------------
# DownConv2x section: nn.Conv(4, stride 2, padding 1) vs jaxgan.models.cpu_conv.DownConv2x
# ---------------------------------------------------------------------------------------------
DOWN_DOC = """Forward+backward time of nn.Conv(4, stride 2, padding 1) vs jaxgan.models.cpu_conv.DownConv2x.

The four stride-2 convolutions of the PyTorch DCGAN discriminator (64x64x3, ndf=64) at batch
64, float32: value_and_grad of <layer(x), cotangent> w.r.t. the kernel AND the input, jitted;
time after compilation, median of --reps runs, the implementations interleaved run by run.

    python benchmarks/conv_transpose.py --down              # nn.Conv vs DownConv2x (impl="auto")
    python benchmarks/conv_transpose.py --down --variants   # also impl="fused"/"phases"/"s2d"

See DOWN_RESULTS below for measurements and the reading.
"""

DOWN_RESULTS = """
Measured on the same 2-core x86 CPU (no GPU), float32, batch 64, median of 9, interleaved.
CAUTION: a CI run shared the 2 cores (load average 2.3 -> 3.7 during these runs), so times are
inflated and +-15% noisy (the same layer moved 15-20% between runs); compare ratios.
Forward + grad w.r.t. kernel AND input, ms:

  `python benchmarks/conv_transpose.py --down --variants --reps 9`
                           nn.Conv  DownConv2x(auto)  fused  phases    s2d
  jax 0.10.2 / flax 0.12.8 (load 2.4 -> 3.0)
    64x64x3   -> 32x32x64     14.5       15.7         15.2    21.1     18.3
    32x32x64  -> 16x16x128   123.4       99.9         94.8    89.7    282.6
    16x16x128 -> 8x8x256     109.4       98.5         96.5    92.1    280.7
    8x8x256   -> 4x4x512      97.4       93.7        109.0    97.4    146.4
    total                    344.7      307.8 (1.12x) 315.4   300.4    728.0 (0.47x)
  jax 0.7.2 / flax 0.11.2 (load 3.0 -> 3.7)
    64x64x3   -> 32x32x64     20.7       21.4         20.1    47.4     25.7
    32x32x64  -> 16x16x128   121.6       88.9         84.8    88.9    116.9
    16x16x128 -> 8x8x256      89.5       77.3         76.4    76.2     91.7
    8x8x256   -> 4x4x512      74.7       71.2         88.7    69.6     99.4
    total                    306.4      258.9 (1.18x) 270.0   282.0    333.7 (0.92x)

  `python benchmarks/conv_transpose.py --down --reps 9` (load 3.1 -> 3.7)
                             jax 0.10.2             jax 0.7.2
                           nn.Conv  DownConv2x   nn.Conv  DownConv2x
    64x64x3   -> 32x32x64     15.8     16.4        22.6     22.6
    32x32x64  -> 16x16x128   126.7    103.7       120.4     87.2
    16x16x128 -> 8x8x256     106.6     98.5        76.5     79.6
    8x8x256   -> 4x4x512     101.9     96.0        75.0     71.8
    total                    351.0    314.6 (1.12x) 294.4   261.2 (1.13x)

Reading: the requested pure space-to-depth form (impl="s2d", plain autodiff) is exact but
SLOWER than nn.Conv (0.47x with jax 0.10, 0.92x with jax 0.7): XLA:CPU runs the stride-1 2x2
VALID conv on 4*Cin channels ~3x slower than the equivalent 4x4 stride-2 conv (e.g. 92 vs
33 ms forward at 32x32x64, jax 0.10), and its kernel gradient ~4x slower (147 vs 39 ms).
What wins is only the input gradient: written as one stride-1 2x2 conv + depth-to-space it
took 27-29 ms against XLA's 54 ms at 32x32x64 -> 16x16x128. So DownConv2x keeps XLA's strided
conv forward and XLA's kernel gradient and swaps in that input gradient with a custom VJP
(impl="fused"), or the four-phase form (impl="phases", no wasted border) when H/2 or W/2 < 8.
Net: ~1.1-1.2x on the discriminator's four convs, mostly from the 32x32 layer (1.2-1.4x);
the other layers are within noise. Also tried and dropped: the kernel gradient as matmuls on
the space-to-depth patches (faster standalone for Cin = 3 but slower in the full step: 14.6 vs
13.0 ms nn.Conv at 64x64x3; 163 vs 140 ms at 32x32x64), the forward as four or one matmuls
(slower except at 8x8x256).
"""

# (H = W, Cin, Cout) of the DCGAN discriminator's stride-2 convolutions.
DCGAN_D_LAYERS = [(64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512)]


def down_implementations(features: int, variants: bool) -> dict[str, nn.Module]:
    impls = {
        "nn.Conv": nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                           use_bias=False),
        "DownConv2x": DownConv2x(features),
    }
    if variants:
        impls["DownConv2x fused"] = DownConv2x(features, impl="fused")
        impls["DownConv2x phases"] = DownConv2x(features, impl="phases")
        impls["DownConv2x s2d"] = DownConv2x(features, impl="s2d")
    return impls


def main_down():
    args = parse_args(DOWN_DOC, 'also time impl="fused", "phases" and "s2d"', down=True)
    time_layers(DCGAN_D_LAYERS, lambda cout: down_implementations(cout, args.variants),
                "nn.Conv", lambda h: h // 2, args.batch, args.reps, 1e-4)
    _common.print_load("at end")


if __name__ == "__main__":
    if "--down" in sys.argv:
        main_down()
    else:
        main()
