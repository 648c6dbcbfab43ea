"""Where a training step's time goes: its parts and every layer of G and D, jaxgan vs the PyTorch twin.

    python benchmarks/layer_profile.py --config configs/dcgan64.py
    python benchmarks/layer_profile.py --config configs/digits.py --reps 10 --no-torch

Parts (jitted, median of --reps): G forward and forward+backward, D forward+backward on the real
and on the fake batch (weight gradients), D's input gradient (what the G step needs), the two
Adam updates + EMA; and the bare step itself (for the "% step" columns).

Layers: the modules the model really uses, found by running the config's generator and
discriminator (jaxgan.models.build_models) once under `flax.linen.intercept_methods` and
recording every direct submodule call (its name in the parameter tree, the module itself and its
input shapes): Dense, UpConv2x, ConditionalBatchNorm, DownConv2x, BatchNorm, the head Conv and the
label embeddings, each timed forward+backward (weight and input gradients) with the model's
initial weights. Activations are not modules and are not listed. The PyTorch column times the
twin's layer of the same name (benchmarks/pytorch_twin.py) at the same shapes, NCHW.
"""
from __future__ import annotations

import argparse
import os

import _common
from _common import block, time_calls

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from jaxgan.models import build_models, variables as model_variables  # noqa: E402

PARTS = ["G forward (train-mode BN)", "G forward+backward", "D fwd+bwd real (weights)",
         "D fwd+bwd fake (weights)", "D fwd+bwd fake (input grad, G step)"]
SUMMED = PARTS[1:] + ["Adam G + Adam D + EMA"]


def layer_calls(model, model_variables_, *args, **kwargs):
    """[(name, module, args as ShapeDtypeStructs / Python values)] for every direct submodule
    call of `model.apply(model_variables_, *args, **kwargs)`, in call order."""
    calls = []

    def record(next_fun, call_args, call_kwargs, context):
        module = context.module
        if context.method_name == "__call__" and len(module.scope.path) == 1:
            shapes = tuple(jax.ShapeDtypeStruct(a.shape, a.dtype) if hasattr(a, "shape") else a
                           for a in call_args)
            calls.append((module.scope.path[0], module.clone(parent=None), shapes))
        return next_fun(*call_args, **call_kwargs)

    def run(v, *a):
        with nn.intercept_methods(record):
            return model.apply(v, *a, **kwargs, mutable=["batch_stats"])
    jax.eval_shape(run, model_variables_, *args)
    return calls


def profile_layers(calls, params, stats, reps, key):
    """{name: seconds} fwd+bwd of each recorded layer with the model's weights, random inputs."""
    results = {}
    for name, module, shapes in calls:
        key, x_key, cot_key = jax.random.split(key, 3)
        inputs = [jax.random.normal(x_key, s.shape, s.dtype) if _is_float(s) else
                  jnp.zeros(s.shape, s.dtype) if hasattr(s, "shape") else s for s in shapes]
        float_at = [i for i, s in enumerate(shapes) if _is_float(s)]
        layer_vars = {"params": params[name]}
        if name in stats:
            layer_vars["batch_stats"] = stats[name]

        def apply(p, floats, module=module, layer_vars=layer_vars, inputs=inputs,
                  float_at=float_at):
            args = list(inputs)
            for i, x in zip(float_at, floats):
                args[i] = x
            out, _ = module.apply({**layer_vars, "params": p}, *args, mutable=["batch_stats"])
            return out.astype(jnp.float32)
        floats = [inputs[i] for i in float_at]
        out_shape = jax.eval_shape(apply, layer_vars["params"], floats)
        cot = jax.random.normal(cot_key, out_shape.shape)
        fn = jax.jit(jax.grad(lambda p, f, apply=apply, cot=cot: jnp.vdot(apply(p, f), cot),
                              argnums=(0, 1)))
        results[name] = time_calls(lambda fn=fn, p=layer_vars["params"], f=floats:
                                   block(fn(p, f)), reps)
    return results


def _is_float(s) -> bool:
    return hasattr(s, "dtype") and jnp.issubdtype(s.dtype, jnp.floating)


def profile_jax(config, image_shape, num_classes, state, reps):
    """({part or layer name: seconds}, {layer name: description}) for jaxgan."""
    generator, discriminator = build_models(config.model, image_shape, num_classes)  # no mesh axis
    batch = config.train.batch_size
    keys = jax.random.split(jax.random.key(7), 6)
    z = jax.random.normal(keys[0], (batch, config.model.latent_dim))
    y = jax.random.randint(keys[1], (batch,), 0, max(num_classes, 1))
    real = jax.random.uniform(keys[2], (batch, *image_shape), minval=-1, maxval=1)
    cot = jax.random.normal(keys[3], (batch, *image_shape))
    gp, gs, dp, ds = jax.device_get((state.g_params, state.g_stats, state.d_params,
                                     state.d_stats))

    def g_apply(p):
        return generator.apply(model_variables(p, gs), z, y, train=True,
                               mutable=["batch_stats"])[0]

    def d_apply(p, x):
        return discriminator.apply(model_variables(p, ds), x, y, train=True,
                                   mutable=["batch_stats"])[0][0]  # the logits

    def softplus_mean(logits):
        return jnp.mean(jax.nn.softplus(-logits))

    fake = jax.jit(g_apply)(gp)
    from jaxgan.training.state import make_optimizers
    g_tx, d_tx = make_optimizers(config.train)
    g_opt, d_opt = g_tx.init(gp), d_tx.init(dp)
    g_grads, d_grads = jax.tree.map(jnp.ones_like, gp), jax.tree.map(jnp.ones_like, dp)

    def optimise(gp, dp, g_opt, d_opt, ema):
        gu, g_opt = g_tx.update(g_grads, g_opt, gp)
        du, d_opt = d_tx.update(d_grads, d_opt, dp)
        gp, dp = optax.apply_updates(gp, gu), optax.apply_updates(dp, du)
        return gp, dp, g_opt, d_opt, optax.incremental_update(gp, ema, 0.001)

    parts = {
        PARTS[0]: (jax.jit(g_apply), (gp,)),
        PARTS[1]: (jax.jit(jax.grad(lambda p: jnp.vdot(g_apply(p), cot))), (gp,)),
        PARTS[2]: (jax.jit(jax.grad(lambda p: softplus_mean(d_apply(p, real)))), (dp,)),
        PARTS[3]: (jax.jit(jax.grad(lambda p: softplus_mean(-d_apply(p, fake)))), (dp,)),
        PARTS[4]: (jax.jit(jax.grad(lambda x: softplus_mean(d_apply(dp, x)))), (fake,)),
        "Adam G + Adam D + EMA": (jax.jit(optimise), (gp, dp, g_opt, d_opt, gp)),
    }
    results = {name: time_calls(lambda fn=fn, args=args: block(fn(*args)), reps)
               for name, (fn, args) in parts.items()}

    g_calls = layer_calls(generator, model_variables(gp, gs), z, y, train=True)
    d_calls = layer_calls(discriminator, model_variables(dp, ds), real, y, train=True)
    descriptions = {}
    for prefix, calls, params, stats in (("G", g_calls, gp, gs), ("D", d_calls, dp, ds)):
        timed = profile_layers(calls, params, stats, reps, keys[4])
        for name, module, shapes in calls:
            label = f"{prefix} {name}"
            results[label] = timed[name]
            descriptions[label] = (prefix, name, module, shapes)
    return results, descriptions


def profile_torch(twin, config, image_shape, num_classes, descriptions, reps):
    import torch
    import torch.nn.functional as F

    batch = config.train.batch_size
    resolution, _, channels = image_shape
    torch.manual_seed(7)
    z = torch.randn(batch, config.model.latent_dim)
    y = torch.randint(0, max(num_classes, 1), (batch,)) if num_classes else None
    real = torch.rand(batch, channels, resolution, resolution) * 2 - 1
    cot = torch.randn(batch, channels, resolution, resolution)
    G, D = twin.G, twin.D
    autocast = twin.autocast

    def timed(fn):
        return time_calls(fn, reps)

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
                loss = F.softplus(-D(x, y).float()).mean()
            loss.backward()
        return fn

    def d_input(freeze):
        def fn():
            D.zero_grad(set_to_none=True)
            x = fake.clone().requires_grad_(True)
            if freeze:
                D.requires_grad_(False)
            with autocast():
                loss = F.softplus(-D(x, y).float()).mean()
            loss.backward()
            D.requires_grad_(True)
        return fn

    def optimise():
        for p in list(G.parameters()) + list(D.parameters()):
            p.grad = torch.ones_like(p)
        twin.opt_g.step()
        twin.opt_d.step()
        with torch.no_grad():
            torch._foreach_lerp_(twin.ema, twin.g_tensors(), 0.001)

    saved = ({k: v.clone() for k, v in G.state_dict().items()},
             {k: v.clone() for k, v in D.state_dict().items()})
    results = {
        PARTS[0]: timed(g_fwd),
        PARTS[1]: timed(g_fwd_bwd),
        PARTS[2]: timed(d_weights(real)),
        PARTS[3]: timed(d_weights(fake)),
        PARTS[4]: timed(d_input(True)),
        "D fwd+bwd fake (input + weight grads, as the example)": timed(d_input(False)),
    }
    opt_states = [{k: {n: t.clone() if torch.is_tensor(t) else t for n, t in v.items()}
                   for k, v in opt.state.items()} for opt in (twin.opt_g, twin.opt_d)]
    results["Adam G + Adam D + EMA"] = timed(optimise)
    # The profile must not leave the twin changed.
    G.load_state_dict(saved[0])
    D.load_state_dict(saved[1])
    for opt, state in zip((twin.opt_g, twin.opt_d), opt_states):
        opt.state.clear()
        opt.state.update(state)

    for label, (prefix, name, _, shapes) in descriptions.items():
        layer = (G if prefix == "G" else D).layers[name]
        args = []
        for s in shapes:
            if not hasattr(s, "shape"):
                continue  # the `train` flag: the twin is in training mode
            if not jnp.issubdtype(s.dtype, jnp.floating):
                args.append(torch.zeros(s.shape, dtype=torch.long))
            elif len(s.shape) == 4:
                b, h, w, c = s.shape
                args.append(torch.randn(b, c, h, w, requires_grad=True))
            else:  # the Dense layer's (B, Z) input, to netG's 1x1 -> 4x4 ConvTranspose2d
                args.append(torch.randn(*s.shape, 1, 1, requires_grad=True))
        with torch.no_grad():
            out_cot = torch.randn_like(layer(*args).float())

        def fn(layer=layer, args=args, out_cot=out_cot):
            layer.zero_grad(set_to_none=True)
            with autocast():
                out = layer(*args)
            out.float().backward(out_cot)
        results[label] = timed(fn)
    G.load_state_dict(saved[0])  # BatchNorm running statistics
    D.load_state_dict(saved[1])
    return results


def describe(label, descriptions) -> str:
    prefix, name, module, shapes = descriptions[label]
    x = next((s for s in shapes if hasattr(s, "shape")
              and jnp.issubdtype(s.dtype, jnp.floating)), None)
    if x is None:
        return f"{label} ({type(module).__name__})"
    shape = "x".join(str(d) for d in x.shape[1:])
    return f"{label} {shape}"


def print_profile(jax_times, torch_times, step_jax, step_torch, descriptions):
    names = list(jax_times) + [n for n in (torch_times or {}) if n not in jax_times]
    shown = {n: describe(n, descriptions) if n in descriptions else n for n in names}
    width = max(len(s) for s in shown.values()) + 2
    header = f"  {'part':<{width}}{'jaxgan':>11}{'% step':>8}"
    if torch_times:
        header += f"{'PyTorch':>11}{'% step':>8}{'jax/torch':>11}"
    print(header)
    in_layers = False
    for name in names:
        if name in descriptions and not in_layers:
            in_layers = True
            print("  -- layers (the model's own modules; input shape HxWxC), fwd+bwd (weight and "
                  "input gradients) --")
        j, t = jax_times.get(name), (torch_times or {}).get(name)
        line = f"  {shown[name]:<{width}}"
        line += f"{j * 1e3:>9.2f}ms{100 * j / step_jax:>7.1f}%" if j is not None else " " * 19
        if torch_times:
            line += f"{t * 1e3:>9.2f}ms{100 * t / step_torch:>7.1f}%" if t is not None else " " * 19
            if j is not None and t is not None:
                line += f"{j / t:>10.2f}x"
        print(line)
    sums = []
    for label, times, step in (("jaxgan", jax_times, step_jax), ("PyTorch", torch_times,
                                                                   step_torch)):
        if times:
            sums.append(f"{label} {sum(times[p] for p in SUMMED) * 1e3:.1f} ms vs step "
                        f"{step * 1e3:.1f} ms")
    print("  sum of G fwd+bwd, D real, D fake, D input grad, Adam+EMA: " + "; ".join(sums))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
    parser.add_argument("--reps", type=int, default=5, help="timed runs per part (median)")
    parser.add_argument("--num_classes", "--num-classes", type=int, default=10)
    parser.add_argument("--no_torch", "--no-torch", action="store_true")
    args, config, overrides = _common.parse_with_config(parser, argv)
    image_shape = _common.image_shape_of(config)
    num_classes = args.num_classes if config.data.conditional else 0
    if config.model.arch != "dcgan":  # the per-layer tables walk the dcgan family's layers
        raise SystemExit(f"error: layer_profile.py profiles the dcgan family only, not "
                         f"model.arch={config.model.arch!r} (step_throughput.py times any step)")
    print(f"config        {args.config} {' '.join(overrides)}")
    _common.print_machine()

    bench = _common.JaxStep(config, image_shape, num_classes)
    step_jax = time_calls(bench.call, args.reps)
    twin = step_torch = None
    if not args.no_torch:
        import torch
        import pytorch_twin as pt
        torch.set_num_threads(os.cpu_count())
        twin = pt.TwinGAN(config, image_shape, num_classes, freeze_d_in_g_step=True)
        real = torch.from_numpy(bench.batch_np["image"]).permute(0, 3, 1, 2).contiguous()
        real_y = torch.from_numpy(bench.batch_np["label"]).long()
        step_torch = time_calls(lambda: twin.step(real, real_y), args.reps)
    print(f"\n== per-part profile (jitted parts, median of {args.reps}; batch "
          f"{config.train.batch_size}); step: jaxgan {step_jax * 1e3:.1f} ms"
          + (f", PyTorch twin (D frozen in the G step) {step_torch * 1e3:.1f} ms" if twin else "")
          + " ==")
    jax_times, descriptions = profile_jax(config, image_shape, num_classes, bench.state,
                                          args.reps)
    torch_times = profile_torch(twin, config, image_shape, num_classes, descriptions,
                                args.reps) if twin is not None else None
    print_profile(jax_times, torch_times, step_jax, step_torch, descriptions)
    print()
    _common.print_load("at end")


if __name__ == "__main__":
    main()
