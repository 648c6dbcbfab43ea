"""Is the PyTorch twin the same GAN as jaxgan? The same initial weights, batch and draws, a few
training steps on each side, and the largest differences.

    python benchmarks/twin_check.py --config configs/digits.py
    python benchmarks/twin_check.py --config configs/dcgan64.py --steps 1
    python benchmarks/twin_check.py --config.train.augment=translation --config.train.n_critic=2
    python benchmarks/twin_check.py --config configs/art.py --config.model.g_width=8 \
        --config.model.d_width=8 --config.data.source=digits --config.data.channels=1

jaxgan's initial parameters (and spectral-norm vectors) are copied into the twin
(benchmarks/pytorch_twin.py), both run `--steps` steps on one fixed batch with jaxgan's own noise,
fake labels and DiffAugment numbers (drawn here exactly as jaxgan.training.step.make_train_step
draws them from each step's key), and after every step this compares: the metrics, every
parameter of G and D, Adam's first and second moments (optax's mu / nu: the gradients, scaled)
and the buffers: BatchNorm running means and spectral norm's power-iteration vectors.
Exit status 1 when a difference exceeds the tolerances of `TOLERANCES` (justified there).
tests/test_pytorch_twin.py runs the same check on tiny models.
"""
from __future__ import annotations

import argparse

import _common

# Float32 on both sides with different summation orders (XLA vs ATen/oneDNN): rounding
# differences of ~1e-7 relative per operation. Measured over 3 steps of the tiny digits model
# (2-core AMD EPYC, jax 0.10.2, torch 2.13.0): metrics 8e-7, Adam moments 1.7e-6 relative,
# parameters 6e-8, running means 3e-9. The tolerances leave 10-60x room for other shapes,
# machines and library versions and stay far below what a modelling error gives:
# - metrics (losses, mean logits, O(1)): absolute 1e-5; a missing term (mode seeking, a shift)
#   changes them by >= 1e-3;
# - Adam moments relative to the largest |value| of their tensor: 1e-4 (mu is (1 - b1) x the
#   gradient: a gradient wrong in one layer, sign, scale or term is off by O(1)); not for a
#   tensor whose largest |mu| is under PARAM_MASK x its network's largest: there the gradient is
#   zero up to float noise (the resnet G's conv biases, cancelled by the BatchNorm after them:
#   ~1e-9 against ~1e-3, so any relative comparison of the noise fails);
# - parameters, absolute: lr x 1e-2, where the gradient is clear of float noise (|mu| >=
#   PARAM_MASK x its tensor's largest |mu| and >= 1e-6). Adam's first steps move each weight by
#   lr x g / (|g| + eps), about lr x sign(g): any sign error moves a weight by ~2 lr, but so does
#   float noise on a gradient that is ~0 (at the full digits widths a few Dense_0 entries are),
#   and the moment check already covers those entries' gradients;
# - buffers: BatchNorm running means and spectral norm's unit vectors u, absolute 1e-6.
# Beyond the first step or two of a full-size model the two runs drift apart (those noisy
# near-zero gradients change some weights by ~lr, and the GAN amplifies it: measured at the
# digits default widths, moments 3e-3 relative after step 2): the CLI judges step 1, the test
# (tiny widths) every step of two.
TOLERANCES = {"metrics": 1e-5, "moments_rel": 1e-4, "params_lr": 1e-2, "buffers": 1e-6}
PARAM_MASK = 1e-3


def step_draws(key, config, batch_size: int, num_classes: int, resolution: int):
    """(z (K, B, Z), fake labels (K, B), DiffAugment numbers {name: (K, 3, B, ...)}) exactly as
    make_train_step draws them from the step key (pairs share a label under mode seeking)."""
    import jax
    import jax.numpy as jnp
    from jaxgan.training import augment

    k = config.train.n_critic
    z_key, y_key, augment_key = jax.random.split(key, 3)
    z = jax.random.normal(z_key, (k, batch_size, config.model.latent_dim), jnp.float32)
    y = jax.random.randint(y_key, (k, batch_size), 0, max(num_classes, 1))
    if config.train.mode_seeking:
        y = jnp.repeat(y[:, ::2], 2, axis=1)
    numbers = augment.draw(augment_key, augment.parse_policy(config.train.augment),
                           (k, 3, batch_size), resolution)
    if config.model.arch == "fastgan":  # which quadrant of each real image D reconstructs
        numbers["quadrant"] = jax.random.randint(jax.random.fold_in(augment_key, 4),
                                                 (k, 3, batch_size), 0, 4)
    return z, y, numbers


def fastgan_noise(z_KBZ, shapes: dict) -> dict:
    """The fastgan G's noise maps {fold_in index: (K, B, 1, H, W)} for latents z (K, B, Z), as
    jaxgan.models.fastgan.NoiseInjection draws them (from keys made of z's bits); `shapes`:
    {index: (H, W)}, the twin's G.noise_shapes()."""
    import jax
    import numpy as np
    from jaxgan.models.fastgan import noise_keys

    out = {}
    for index, (h, w) in shapes.items():
        draw = lambda key: jax.random.normal(jax.random.fold_in(key, index), (h, w, 1))
        maps = [jax.vmap(draw)(noise_keys(z_BZ)) for z_BZ in z_KBZ]
        out[index] = np.stack([np.asarray(m) for m in maps]).transpose(0, 1, 4, 2, 3)
    return out


def compare(config, image_shape, num_classes: int, steps: int = 2, verbose: bool = False):
    """Run `steps` steps on both sides; returns a list (one per step) of the largest
    differences {"metrics", "moments_rel", "params", "buffers"} and their worst keys."""
    import jax
    import numpy as np
    import torch
    from jaxgan import mesh as mesh_lib
    from jaxgan.training.step import make_train_step

    import pytorch_twin as pt

    gan, mesh, state = _common.build_gan(config, image_shape, num_classes)
    twin = pt.TwinGAN(config, image_shape, num_classes)
    pt.load_jaxgan_params(twin, jax.device_get(state.g_params), jax.device_get(state.d_params),
                          jax.device_get(state.d_stats), jax.device_get(state.g_stats))
    batch_np = _common.synthetic_batch(config, image_shape, num_classes)
    batch = jax.device_put(batch_np, mesh_lib.split(mesh))
    train_step = jax.jit(make_train_step(gan, config.train, mesh), donate_argnums=0)
    real = torch.from_numpy(batch_np["image"]).permute(0, 3, 1, 2).contiguous()
    real_y = torch.from_numpy(batch_np["label"]).long()
    base_key = jax.random.key(config.seed)
    to_torch = lambda a: torch.from_numpy(np.array(a))
    reports = []
    for i in range(steps):
        key = jax.random.fold_in(base_key, i)
        z, y, numbers = step_draws(key, config, config.train.batch_size, num_classes,
                                   image_shape[0])
        noise = None
        if twin.arch == "fastgan":
            noise = {i: to_torch(v) for i, v in fastgan_noise(z, twin.G.noise_shapes()).items()}
        state, metrics = train_step(state, batch, key)
        theirs = twin.step(real, real_y, to_torch(z), to_torch(y).long(),
                           {name: to_torch(v).long() if name == "quadrant" else to_torch(v)
                            for name, v in numbers.items()}, noise)
        ours = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "finite"}
        report = _differences(jax.device_get(state), ours,
                              {k: float(v) for k, v in theirs.items()}, twin)
        reports.append(report)
        if verbose:
            print(f"step {i + 1}: " + ", ".join(f"{k} jax {ours[k]:.6f} torch {float(theirs[k]):.6f}"
                                                for k in ours))
            print("        largest differences: " + ", ".join(
                f"{name} {value:.2e} ({report['where'][name]})"
                for name, value in report.items() if name != "where"))
    return reports


def _adam_moments(opt_state):
    """optax.adam's (mu, nu) trees from its state (ScaleByAdamState, EmptyState)."""
    adam = next(s for s in opt_state if hasattr(s, "mu"))
    return adam.mu, adam.nu


def _differences(state, ours: dict, theirs: dict, twin) -> dict:
    import numpy as np
    import pytorch_twin as pt

    worst = {"metrics": (0.0, ""), "moments_rel": (0.0, ""), "params": (0.0, ""),
             "buffers": (0.0, "")}

    def note(name, value, where):
        if value > worst[name][0]:
            worst[name] = (float(value), where)

    for k in ours:
        note("metrics", abs(ours[k] - theirs[k]), k)
    params = {("g", p): v for p, v in pt.flat(state.g_params).items()}
    params.update({("d", p): v for p, v in pt.flat(state.d_params).items()})
    moments = {}
    for net, opt_state in (("g", state.g_opt_state), ("d", state.d_opt_state)):
        mu, nu = _adam_moments(opt_state)
        flat_nu = pt.flat(nu)
        moments.update({(net, p): (m, flat_nu[p]) for p, m in pt.flat(mu).items()})
    theirs_params, theirs_moments = pt.twin_params(twin), pt.twin_adam_moments(twin)
    net_max = {net: max(np.abs(np.asarray(m[0])).max() for k, m in moments.items() if k[0] == net)
               for net in ("g", "d")}
    for key, value in params.items():
        where = f"{key[0].upper()} {'/'.join(key[1])}"
        mu = np.abs(np.asarray(moments[key][0]))
        clear = mu >= max(PARAM_MASK * mu.max(), 1e-6)  # gradient above float noise
        if clear.any():
            note("params", np.abs(np.asarray(value) - theirs_params[key])[clear].max(), where)
        if mu.max() < PARAM_MASK * net_max[key[0]]:
            continue  # a gradient that is float noise (a bias a BatchNorm right after cancels)
        for ours_m, theirs_m, label in zip(moments[key], theirs_moments[key], ("mu", "nu")):
            scale = max(np.abs(np.asarray(ours_m)).max(), 1e-30)
            note("moments_rel", np.abs(np.asarray(ours_m) - theirs_m).max() / scale,
                 f"{where} {label}")
    stats = {("g", p): v for p, v in pt.flat(state.g_stats).items()}
    stats.update({("d", p): v for p, v in pt.flat(state.d_stats).items()})
    for key, value in pt.twin_buffers(twin).items():
        note("buffers", np.abs(np.asarray(stats[key]) - value).max(),
             f"{key[0].upper()} {'/'.join(key[1])}")
    report = {name: value for name, (value, _) in worst.items()}
    report["where"] = {name: where for name, (_, where) in worst.items()}
    return report


def within_tolerance(report: dict, lr: float) -> bool:
    return (report["metrics"] <= TOLERANCES["metrics"]
            and report["moments_rel"] <= TOLERANCES["moments_rel"]
            and report["params"] <= TOLERANCES["params_lr"] * lr
            and report["buffers"] <= TOLERANCES["buffers"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--num_classes", "--num-classes", type=int, default=10,
                        help="classes of a conditional config (the digits have 10)")
    args, config, overrides = _common.parse_with_config(parser, argv)
    image_shape = _common.image_shape_of(config)
    num_classes = args.num_classes if config.data.conditional else 0
    print(f"config        {args.config} {' '.join(overrides)}")
    _common.print_machine()
    import pytorch_twin as pt
    bad = pt.unsupported(config)
    if bad:
        raise SystemExit(f"error: the PyTorch twin does not model {', '.join(bad)}")
    reports = compare(config, image_shape, num_classes, args.steps, verbose=True)
    lr = min(config.train.g_lr, config.train.d_lr)
    ok = within_tolerance(reports[0], lr)
    print(f"tolerances    metrics {TOLERANCES['metrics']:g}, Adam moments "
          f"{TOLERANCES['moments_rel']:g} relative, parameters {TOLERANCES['params_lr']:g} x lr, "
          f"buffers {TOLERANCES['buffers']:g}, after step 1: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
