"""The augmentation policies' cost on this machine: DiffAugment's operations against StyleGAN2-ADA's
pipeline (train.augment="ada"), per device, as the train step runs them.

  python benchmarks/augment_speed.py                      # batch 64, 32x32x3
  python benchmarks/augment_speed.py --batch 16 --resolution 16 --channels 1 --reps 3

Prints per policy the median time of the forward pass, of forward + the gradient with respect to
the images (what G's update takes through it), and of R1's double backward through it (the
gradient of the squared input gradient's norm, what R3GAN's penalties take), at p = 0.5 (a
traced p, as adaptive and scheduled runs have it).
"""
from __future__ import annotations

import argparse

import _common

POLICIES = ("translation", "color,translation,cutout", "ada", "bgc")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    import jax
    import jax.numpy as jnp
    from jaxgan.training import augment

    _common.print_machine()
    shape = (args.batch, args.resolution, args.resolution, args.channels)
    x = jax.random.uniform(jax.random.key(0), shape, minval=-1, maxval=1)
    p = jnp.float32(0.5)
    print(f"images {shape}")
    print(f"{'policy':>26s} {'forward':>10s} {'fwd+grad':>10s} {'R1 double':>10s}")
    for name in POLICIES:
        policy = augment.parse_policy(name)
        numbers = augment.draw(jax.random.key(1), policy, (args.batch,), args.resolution)

        def forward(x, p):
            return augment.apply(x, numbers, policy, p)

        def with_grad(x, p):
            return jax.grad(lambda x: jnp.sum(jnp.tanh(forward(x, p)) ** 2))(x)

        def double(x, p):
            return jax.grad(lambda x: jnp.sum(with_grad(x, p) ** 2))(x)

        times = [_common.time_calls(lambda fn=jax.jit(fn): _common.block(fn(x, p)), args.reps)
                 for fn in (forward, with_grad, double)]
        print(f"{name:>26s}" + "".join(f" {_common.fmt_time(t):>10s}" for t in times),
              flush=True)
    _common.print_load("at end")


if __name__ == "__main__":
    main()
