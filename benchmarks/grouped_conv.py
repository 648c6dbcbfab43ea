"""R3GAN's grouped 3x3 convolutions on this machine: XLA's grouped convolution against the
per-tap form (nine shifted copies contracted with the kernel in one batched matrix product) and
the per-group form (one dense convolution per group), all in jaxgan/models/r3gan.py. Decides
r3gan.GROUPED_IMPL on CPUs.

  python benchmarks/grouped_conv.py                 # configs/r3gan_cpu.py's shapes, batch 32
  python benchmarks/grouped_conv.py --batch 8 --reps 3

Prints per shape (H = W, expanded channels, channels per group) the median time of the forward
pass, of forward + both gradients, and of R1's double backward (the gradient of the squared input
gradient's sum with respect to the kernel), for each form, and the largest difference of the
other forms' outputs from XLA's, relative to its largest output.
"""
from __future__ import annotations


import _common

# (H = W, expanded channels 2C, channels per group) of configs/r3gan_cpu.py's blocks (widths 64
# at 4-32 px, groups of 16), and one of the CIFAR-10 preset's 32x32 blocks at a tenth of its width.
# configs/r3gan_cpu.py's blocks at widths 56 (112 expanded channels), and the CIFAR-10 preset's
# 8x8 blocks (1,536 expanded channels: 96 groups).
SHAPES = ((32, 128, 16), (16, 128, 16), (8, 128, 16), (32, 160, 16), (32, 112, 16),
          (8, 1536, 16))
FORMS = ("XLA", "taps", "per group")


def main(argv=None):
    args = _common.timing_arguments(__doc__, argv, batch=32)
    import jax
    import jax.numpy as jnp
    from jaxgan.models import r3gan
    convolutions = {"XLA": r3gan.grouped_conv3x3_xla, "taps": r3gan.grouped_conv3x3_taps,
                    "per group": r3gan.grouped_conv3x3_per_group}

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

    print(f"{'H, 2C, group':>14s} {'form':>10s} {'forward':>9s} {'fwd+bwd':>9s} {'R1':>9s} "
          f"{'rel diff':>9s}")
    for size, channels, per_group in SHAPES:
        groups = channels // per_group
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (args.batch, size, size, channels))
        w = jax.random.normal(keys[1], (3, 3, per_group, channels)) * 0.05
        dy = jax.random.normal(keys[2], (args.batch, size, size, channels))
        reference = None
        for form in FORMS:
            conv = lambda x, w, form=form: convolutions[form](x, w, groups)
            y = jax.jit(conv)(x, w)
            reference = y if reference is None else reference
            diff = float(jnp.max(jnp.abs(y - reference)) / jnp.max(jnp.abs(reference)))
            forward = timed(conv, x, w)
            times = (forward, forward + timed(both_grads(conv), x, w, dy),
                     timed(r1_grad(conv), x, w))
            print(f"{f'{size}, {channels}, {per_group}':>14s} {form:>10s}" + "".join(
                f" {_common.fmt_time(t):>9s}" for t in times) + f" {diff:>9.1e}", flush=True)

if __name__ == "__main__":
    main()
