"""R3GAN's grouped 3x3 convolutions on this machine: XLA's grouped convolution against the
per-tap form (nine shifted copies contracted with the kernel in one batched matrix product), both
in jaxgan/models/r3gan.py. Decides r3gan.GROUPED_IMPL on CPUs.

  python benchmarks/grouped_conv.py                 # configs/r3gan_cpu.py's shapes, batch 32
  python benchmarks/grouped_conv.py --batch 8 --reps 3

Prints per shape (H = W, expanded channels, channels per group) the median time of the forward
pass, of forward + both gradients, and of R1's double backward (the gradient of the squared input
gradient's sum with respect to the kernel), for each form, and the largest relative difference
between their outputs.
"""
from __future__ import annotations


import _common

# (H = W, expanded channels 2C, channels per group) of configs/r3gan_cpu.py's blocks (widths 64
# at 4-32 px, groups of 16), and one of the CIFAR-10 preset's 32x32 blocks at a tenth of its width.
SHAPES = ((32, 128, 16), (16, 128, 16), (8, 128, 16), (32, 160, 16))


def main(argv=None):
    args = _common.timing_arguments(__doc__, argv, batch=32)
    import jax
    import jax.numpy as jnp
    from jaxgan.models.r3gan import grouped_conv3x3_taps, grouped_conv3x3_xla

    _common.print_machine()

    def timed(fn, *inputs):
        fn = jax.jit(fn)
        return _common.time_calls(lambda: _common.block(fn(*inputs)), args.reps)

    def both_grads(conv):
        return lambda x, w, dy: jax.vjp(conv, x, w)[1](dy)

    def r1_grad(conv):  # d/dw sum((d/dx sum(conv(x, w)^2))^2): a penalty's double backward
        def penalty(w, x):
            g = jax.grad(lambda x: jnp.sum(jnp.square(conv(x, w))))(x)
            return jnp.sum(jnp.square(g))
        return lambda x, w: jax.grad(penalty)(w, x)

    print(f"{'H, 2C, group':>14s} {'fwd XLA':>9s} {'fwd taps':>9s} {'fwd+bwd XLA':>12s} "
          f"{'fwd+bwd taps':>13s} {'R1 XLA':>9s} {'R1 taps':>9s} {'max rel diff':>13s}")
    for size, channels, per_group in SHAPES:
        groups = channels // per_group
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (args.batch, size, size, channels))
        w = jax.random.normal(keys[1], (3, 3, per_group, channels)) * 0.05
        dy = jax.random.normal(keys[2], (args.batch, size, size, channels))
        xla = lambda x, w: grouped_conv3x3_xla(x, w, groups)
        taps = lambda x, w: grouped_conv3x3_taps(x, w, groups)
        a, b = jax.jit(xla)(x, w), jax.jit(taps)(x, w)
        diff = float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
        times = [timed(xla, x, w), timed(taps, x, w), timed(both_grads(xla), x, w, dy),
                 timed(both_grads(taps), x, w, dy), timed(r1_grad(xla), x, w),
                 timed(r1_grad(taps), x, w)]
        times[2] += times[0]
        times[3] += times[1]
        print(f"{f'{size}, {channels}, {per_group}':>14s}" + "".join(
            f" {_common.fmt_time(t):>{width}s}" for t, width in zip(times, (9, 9, 12, 13, 9, 9)))
            + f" {diff:>13.1e}", flush=True)


if __name__ == "__main__":
    main()
