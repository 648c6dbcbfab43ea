"""The resnet family's stride-1 3x3 convolutions on XLA:CPU: forward, input gradient and kernel
gradient by XLA, against jaxgan.models.cpu_conv.conv_same's kernel gradient (one matmul per tap).

  python benchmarks/conv_same.py              # art.py's (64 px, widths 32) shapes, batch 64
  python benchmarks/conv_same.py --batch 16   # quicker

Prints per shape the median time of each part and of forward + both gradients with each kernel
gradient, and the largest relative difference between the two kernel gradients. Under 8 outputs
(MATMUL_MIN_FEATURES) conv_same is XLA's own convolution (the last shape): both kernel-gradient
columns are then XLA's and the difference is 0.
"""
from __future__ import annotations


import _common

# (H = W, Cin, Cout) of the 3x3 convolutions of configs/art.py's G and D at 64 px, widths 32.
SHAPES = ((64, 64, 32), (64, 32, 32), (32, 128, 64), (32, 64, 64), (16, 256, 128),
          (16, 128, 128), (8, 256, 256), (64, 32, 3))


def main(argv=None):
    args = _common.timing_arguments(__doc__, argv)
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jaxgan.models.cpu_conv import conv_same

    _common.print_machine()
    dn = ("NHWC", "HWIO", "NHWC")

    def xla(x, w):
        return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def ours(x, w):
        return conv_same(x, w, (1, 1), "SAME", dimension_numbers=dn)

    def timed(fn, *inputs):
        fn = jax.jit(fn)
        return _common.time_calls(lambda: _common.block(fn(*inputs)), args.reps)

    def grad(conv, wrt):  # the gradient with respect to input 0 (x) or 1 (the kernel)
        return lambda x, w, dy: jax.vjp(conv, x, w)[1](dy)[wrt]

    def both(conv):
        return lambda x, w, dy: jax.vjp(conv, x, w)[1](dy)

    print(f"{'H x W, Cin -> Cout':>20s} {'forward':>10s} {'input grad':>11s} {'XLA kernel grad':>16s}"
          f" {'matmul kernel grad':>19s} {'all, XLA':>10s} {'all, ours':>10s} {'max rel diff':>13s}")
    for size, cin, cout in SHAPES:
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (args.batch, size, size, cin))
        w = jax.random.normal(keys[1], (3, 3, cin, cout)) * 0.05
        dy = jax.random.normal(keys[2], (args.batch, size, size, cout))
        dk_xla, dk_ours = jax.jit(grad(xla, 1))(x, w, dy), jax.jit(grad(ours, 1))(x, w, dy)
        diff = float(jnp.max(jnp.abs(dk_xla - dk_ours)) / jnp.max(jnp.abs(dk_xla)))
        times = [timed(xla, x, w), timed(grad(xla, 0), x, w, dy), timed(grad(xla, 1), x, w, dy),
                 timed(grad(ours, 1), x, w, dy), timed(both(xla), x, w, dy),
                 timed(both(ours), x, w, dy)]
        times[4] += times[0]
        times[5] += times[0]
        print(f"{f'{size}x{size}, {cin} -> {cout}':>20s}" + "".join(
            f" {_common.fmt_time(t):>{width}s}" for t, width in zip(times, (10, 11, 16, 19, 10, 10)))
            + f" {diff:>13.1e}", flush=True)


if __name__ == "__main__":
    main()
