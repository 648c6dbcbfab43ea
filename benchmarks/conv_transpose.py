"""Forward+backward time of nn.ConvTranspose(4, stride 2, SAME) vs jaxgan.layers.UpConv2x.

The four transposed convolutions of the PyTorch DCGAN generator (64x64x3, ngf=64) at batch 64,
float32: value_and_grad of <layer(x), cotangent> w.r.t. the params and the input, jitted; time
after compilation, median of --reps runs, the implementations interleaved run by run.

Command (repo root):

    python benchmarks/conv_transpose.py              # --batch 64 --reps 7
    python benchmarks/conv_transpose.py --variants   # also impl="phases"/"fused" and a custom VJP

MEASURED_PLACEHOLDER
"""
from __future__ import annotations

import argparse
import platform
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.layers import UpConv2x, upconv2x

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--reps", type=int, default=7, help="timed runs per layer (>= 5)")
    parser.add_argument("--variants", action="store_true",
                        help="also time impl='phases', impl='fused' and a custom-VJP version")
    args = parser.parse_args()

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}, "
          f"{platform.processor() or platform.machine()}; batch {args.batch}, float32, "
          f"median of {args.reps}")
    rng = np.random.default_rng(0)
    totals: dict[str, float] = {}
    for h, cin, cout in DCGAN_LAYERS:
        x = jnp.asarray(rng.standard_normal((args.batch, h, h, cin)), jnp.float32)
        cot = jnp.asarray(rng.standard_normal((args.batch, 2 * h, 2 * h, cout)), jnp.float32)
        params = {"kernel": jnp.asarray(0.02 * rng.standard_normal((4, 4, cin, cout)),
                                        jnp.float32)}
        steps = {name: make_step(m, cot) for name, m in implementations(cout, args.variants).items()}
        results = {name: jax.block_until_ready(step(params, x)) for name, step in steps.items()}
        ref_loss, (ref_gp, ref_gx) = results["nn.ConvTranspose"]
        for name, (loss, (gp, gx)) in results.items():  # same maths, so the same numbers
            for got, want in [(loss, ref_loss), (gx, ref_gx), (gp["kernel"], ref_gp["kernel"])]:
                err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
                assert err < 1e-3, f"{name}: relative error {err:.2e}"
        times = {name: [] for name in steps}
        for _ in range(args.reps):
            for name, step in steps.items():
                start = time.perf_counter()
                jax.block_until_ready(step(params, x))
                times[name].append(time.perf_counter() - start)
        layer = f"{h}x{h}x{cin} -> {2 * h}x{2 * h}x{cout}"
        ref_ms = 1e3 * float(np.median(times["nn.ConvTranspose"]))
        for name, ts in times.items():
            ms = 1e3 * float(np.median(ts))
            totals[name] = totals.get(name, 0.0) + ms
            print(f"  {layer:22s} {name:18s} {ms:9.1f} ms   x{ref_ms / ms:5.1f}", flush=True)
    ref_total = totals["nn.ConvTranspose"]
    for name, ms in totals.items():
        print(f"  {'total':22s} {name:18s} {ms:9.1f} ms   x{ref_total / ms:5.1f}")


if __name__ == "__main__":
    main()
