"""Every convolution form the CPU recipes use at 32 px, XLA:CPU's own against matrix-product
rewrites: forward, input gradient and kernel gradient of each, side by side.

  python benchmarks/conv_taps.py                 # batch 64 (configs/folder.py's)
  python benchmarks/conv_taps.py --batch 32 --reps 3

Forms and shapes (H x W x Cin -> Cout of the layer's input):
- "up 4x4 s2": the DCGAN generator's transposed convolutions (configs/art_cpu.py: widths 64).
  XLA = jaxgan's UpConv2x as it runs (four 2x2 phase convolutions, or one fused 3x3 for at most 8
  outputs); "taps" = each phase as the sum over its four taps of a shifted input times the tap's
  matrix; "im2col" = the four phases' shifted inputs stacked along the channels, one product.
- "down 4x4 s2": the DCGAN discriminator's strided convolutions. XLA = nn.Conv's strided
  convolution; "im2col" = pad, space-to-depth, the 2x2 windows stacked, one product.
- "3x3 s1" and "1x1": the resnet family's and FastGAN's stride-1 convolutions (widths 16 at 32
  px, the recipe search's). XLA = lax.conv_general_dilated; "taps" = sum over the k x k taps;
  "im2col" = the taps stacked, one product (for 1x1 both are the plain product).
The grouped 3x3 of R3GAN is benchmarks/grouped_conv.py's. Gradients by autodiff of each form;
"rel err" is the largest difference to XLA's output over XLA's largest value. Median of --reps
jitted calls.
"""
from __future__ import annotations


import _common

FORMS = {
    "up 4x4 s2": ((4, 256, 128), (8, 128, 64), (16, 64, 3)),
    "down 4x4 s2": ((32, 3, 64), (16, 64, 128), (8, 128, 256)),
    "3x3 s1": ((32, 16, 16), (16, 32, 32), (8, 64, 64), (32, 16, 3)),
    "1x1": ((32, 16, 16), (16, 32, 64), (8, 64, 128)),
}


def implementations(form: str):
    """{name: f(x_BHWC, kernel) -> y} for a form, XLA's first."""
    import jax.numpy as jnp
    from jax import lax
    from jaxgan.models import cpu_conv
    dn = ("NHWC", "HWIO", "NHWC")

    def shifted(x, k):  # the k x k shifted views of x padded by k // 2: [(i, j, (B, H, W, C))]
        n, h, w, _ = x.shape
        xp = jnp.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
        return {(i, j): xp[:, i:i + h, j:j + w] for i in range(k) for j in range(k)}

    def product(x_BHWC, kernel_IO):
        return lax.dot_general(x_BHWC, kernel_IO, (((3,), (0,)), ((), ())))

    if form == "up 4x4 s2":
        def up(x, kernel, stacked):
            views, phases = shifted(x, 3), []
            for ay in range(2):
                for ax in range(2):  # phase (ay, ax): kernel[ay + 2i, ax + 2j] at (ay + i, ax + j)
                    taps = [(views[ay + i, ax + j], kernel[ay + 2 * i, ax + 2 * j])
                            for i in range(2) for j in range(2)]
                    if stacked:
                        phases.append(product(jnp.concatenate([v for v, _ in taps], -1),
                                              jnp.concatenate([w for _, w in taps], 0)))
                    else:
                        phases.append(sum(product(v, w) for v, w in taps))
            return cpu_conv._depth_to_space(jnp.concatenate(phases, -1))
        return {"XLA": cpu_conv.upconv2x, "taps": lambda x, k: up(x, k, False),
                "im2col": lambda x, k: up(x, k, True)}
    if form == "down 4x4 s2":
        def down_im2col(x, kernel):
            s = cpu_conv._space_to_depth(jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))))
            h, w = s.shape[1] - 1, s.shape[2] - 1
            windows = [s[:, i:i + h, j:j + w] for i in range(2) for j in range(2)]
            return product(jnp.concatenate(windows, -1),
                           cpu_conv._s2d_kernel(kernel).reshape(-1, kernel.shape[-1]))
        return {"XLA": cpu_conv._strided_conv, "im2col": down_im2col}

    def xla(x, kernel):
        return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=dn)

    def taps(x, kernel):
        views = shifted(x, kernel.shape[0])
        return sum(product(v, kernel[i, j]) for (i, j), v in views.items())

    def im2col(x, kernel):
        views = shifted(x, kernel.shape[0])
        return product(jnp.concatenate(list(views.values()), -1),
                       kernel.reshape(-1, kernel.shape[-1]))
    return {"XLA": xla, "taps": taps, "im2col": im2col}


def main(argv=None):
    args = _common.timing_arguments(__doc__, argv)
    import jax
    import jax.numpy as jnp

    _common.print_machine()
    print(f"batch {args.batch}; median of {args.reps} jitted calls\n")
    print(f"{'form':12s} {'H x W x Cin -> Cout':>20s} {'impl':>7s} {'forward':>10s} "
          f"{'input grad':>11s} {'kernel grad':>12s} {'rel err':>8s}")
    for form, shapes in FORMS.items():
        size_k = {"up 4x4 s2": 4, "down 4x4 s2": 4, "3x3 s1": 3, "1x1": 1}[form]
        for size, cin, cout in shapes:
            keys = jax.random.split(jax.random.key(0), 2)
            x = jax.random.normal(keys[0], (args.batch, size, size, cin))
            kernel = jax.random.normal(keys[1], (size_k, size_k, cin, cout)) * 0.05
            reference = None
            for name, conv in implementations(form).items():
                y = jax.jit(conv)(x, kernel)
                reference = y if reference is None else reference
                dy = jnp.ones_like(y) * 0.01
                error = float(jnp.max(jnp.abs(y - reference)) / jnp.max(jnp.abs(reference)))
                forward = jax.jit(conv)
                grads = [jax.jit(lambda x, k, dy, conv=conv, i=i: jax.vjp(conv, x, k)[1](dy)[i])
                         for i in (0, 1)]
                times = [_common.time_calls(lambda: _common.block(forward(x, kernel)), args.reps)]
                times += [_common.time_calls(lambda g=g: _common.block(g(x, kernel, dy)),
                                             args.reps) for g in grads]
                print(f"{form:12s} {f'{size}x{size}x{cin} -> {cout}':>20s} {name:>7s} "
                      + " ".join(f"{_common.fmt_time(t):>{w}s}"
                                 for t, w in zip(times, (10, 11, 12)))
                      + f" {error:8.1e}", flush=True)


if __name__ == "__main__":
    main()
