"""Is the PyTorch twin the same GAN as jaxgan? The same initial weights, batch and draws, a few
training steps on each side, every quantity compared within float32 rounding.

    python benchmarks/twin_check.py --config configs/digits.py --optimizer sgd     # --steps 3
    python benchmarks/twin_check.py --config configs/digits.py                     # Adam, step 1
    python benchmarks/twin_check.py --config configs/folder.py --config.data.resolution=32 \
        --config.data.source=digits --optimizer sgd
    python benchmarks/twin_check.py --config configs/art.py --config.model.g_width=8 \
        --config.model.d_width=8 --config.data.source=digits --config.data.channels=1

jaxgan's initial parameters (and spectral-norm vectors) are copied into the twin
(benchmarks/pytorch_twin.py), both run `--steps` steps on one fixed batch with jaxgan's own noise,
fake labels and DiffAugment numbers (drawn here exactly as jaxgan.training.step.make_train_step
draws them from each step's key), and every gradient either side's optimizer is given is
recorded (update by update). Two regimes (`--optimizer`):

- `sgd`: both sides train with plain SGD at the config's learning rates (no momentum), so each
  update is linear in its gradient and every quantity is well conditioned: the metrics, every
  gradient of G and D, every parameter, the BatchNorm running means and spectral norm's vectors
  are held to the float32 rounding bound below, at every step.
- `adam` (the config's own optimizer): Adam's first update is -lr g / (|g| + eps), which turns a
  gradient that is zero up to rounding (|g| around eps = 1e-8 or below) into a move of up to lr
  either way; G's loss, gradient and moments, and D's statistics after G's pass, are taken
  through D after that update, so they are not rounding-close (benchmarks/README.md measures
  it). Held to the bound: what precedes D's first update (D's first gradient, with n_critic = 1
  D's metrics, G's BatchNorm means and spectral vectors); held to Adam's rule: both sides'
  parameters and moments, each computed (float64, here) from that side's own gradients with the
  config's lr, betas and eps. Judged on step 1 (later steps start from states Adam has moved
  apart; they are printed).

Exit status 1 when a check fails. tests/test_pytorch_twin.py runs both regimes on tiny models.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, NamedTuple

import numpy as np

import _common

# --- TOLERANCES: float32 rounding, derived (tests/helpers.py's rounding_bound, the same
# argument for 1 against N devices). Both sides compute the same mathematics in float32 with
# different summation orders (XLA against ATen/oneDNN). A sum of n terms in any order is within
# gamma_n * sum|t| ~ n u sum|t| of the exact one (u = 2^-24; Higham, "Accuracy and Stability of
# Numerical Algorithms", 2nd ed., eq. 3.5 and 4.4), so two orders are within 2 n u sum|t|; the
# elementwise functions (tanh, exp, log1p, rsqrt: a few ulp in either library) add O(u) per
# layer, far under n u. Relative errors add along the chain of reductions: `depth` layers (the
# kernels of G and D) per pass, n_max the longest reduction (a fan-in, a fan-out, or the
# positions of a feature map in the batch), and per step n_critic + 1 updates of forward +
# backward passes (an update's error also reaches the next update through the parameters, at
# most its own size for a stable step, lr ||Hessian|| < 1):
#     relative error of a gradient, a BatchNorm mean, a loss <= 2 u (2 (n_critic + 1)) depth n_max
# where the summed terms are not much larger than their sum; where they are (a gradient zero up
# to rounding: a bias feeding a BatchNorm), each leaf is also allowed that bound times its share
# of its network's gradient norm. Step s starts from states up to s - 1 steps' errors apart, so
# it is allowed s times the bound. Each side's parameters (and Adam's moments) are held to its
# optimizer's rule for its own gradients, computed here in float64, the gradients being compared
# across the sides: plain SGD, p - lr g per update, rounds lr to float32 and the product (2 u of
# lr g) and the difference (u of the result); Adam's update (bias corrections, sqrt, eps,
# division, lr: 12 roundings at most) is within 12 u of itself plus what its moments carry, its
# moments within 6 u of the terms they sum per update (and float32's smallest subnormal where
# g^2 underflows), and optax forms the bias corrections 1 - b^t in float32: (t + 2) u b^t off,
# relative to 1 - b^t (1.8e-4 for b = 0.999 at t = 1), which torch forms in float64.
# Not in this derivation: a LeakyReLU, ReLU or hinge whose input lies within rounding of its
# kink takes a different slope on the two sides, which changes the gradients below it by that
# one position's term of their sums (benchmarks/README.md measures how often it shows).
# A modelling error (a missing term, a wrong scale, sign, layer, learning rate or beta) is off
# by far more: e.g. mode seeking's term changes G's loss by O(1); tests/test_pytorch_twin.py
# shows the check failing it and a wrong beta2.
UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2  # 2^-24
ADAM_ROUNDINGS = 12
MOMENT_ROUNDINGS = 6
SMALLEST_SUBNORMAL = float(np.finfo(np.float32).smallest_subnormal)
# the float64 references' own roundings (a few per update, 2^-53 each), where float32's bound
# is reached exactly (p - lr g rounded to the nearest float32 is up to u |p| off)
REFERENCE_ROUNDINGS = 64 * float(np.finfo(np.float64).eps)
REGIMES = ("sgd", "adam")


def rounding_bound(g_params, d_params, image_shape, batch_size: int, n_critic: int) -> float:
    """The relative error bound above for one step of these networks."""
    import jax
    kernels = [x.shape for net in (g_params, d_params) for x in jax.tree.leaves(net)
               if x.ndim >= 2]
    n_max = max([batch_size * image_shape[0] * image_shape[1]]
                + [int(np.prod(s[:-1])) for s in kernels]
                + [int(np.prod(s[:-2])) * s[-1] for s in kernels])
    passes = 2 * (n_critic + 1)
    return 2 * UNIT_ROUNDOFF * passes * len(kernels) * n_max


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


# ----------------------------------------------------------------------- recording gradients

class GradientRecord(NamedTuple):
    """What recording_gradients keeps: how many updates so far, and the gradient of each of the
    step's updates (every leaf (updates_per_step, ...))."""
    count: Any
    grads: Any


def recording_gradients(tx, updates_per_step: int):
    """`tx` with the gradient of each update of a step kept in its state (first in the chain)."""
    import jax
    import jax.numpy as jnp
    import optax

    def init(params):
        return GradientRecord(jnp.zeros([], jnp.int32), jax.tree.map(
            lambda p: jnp.zeros((updates_per_step, *p.shape), p.dtype), params))

    def update(grads, state, params=None):
        index = state.count % updates_per_step
        stacked = jax.tree.map(lambda s, g: s.at[index].set(g), state.grads, grads)
        return grads, GradientRecord(state.count + 1, stacked)
    return optax.chain(optax.GradientTransformation(init, update), tx)


def with_optimizers(gan, config, optimizer: str):
    """`gan` training with `optimizer` ("sgd": plain SGD at the config's learning rates; "adam":
    its own), each gradient recorded."""
    import dataclasses
    import optax
    if optimizer == "sgd":
        g_tx, d_tx = optax.sgd(config.train.g_lr), optax.sgd(config.train.d_lr)
    else:
        g_tx, d_tx = gan.g_tx, gan.d_tx
    return dataclasses.replace(gan, g_tx=recording_gradients(g_tx, 1),
                               d_tx=recording_gradients(d_tx, config.train.n_critic))


def _adam_state(opt_state):
    """optax.adam's ScaleByAdamState inside recording_gradients' chain (None under SGD)."""
    import jax
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: hasattr(x, "mu")):
        if hasattr(leaf, "mu"):
            return leaf
    return None


class TwinRecorder:
    """The twin with the regime's optimizers and the gradient of each of their updates, as
    {(net, flax path): array} in flax's layout, one dict per update."""

    def __init__(self, twin, config, optimizer: str):
        import torch
        import pytorch_twin as pt
        if optimizer == "sgd":  # no momentum: p - lr g, as optax.sgd
            twin.opt_g = torch.optim.SGD(twin.G.parameters(), lr=config.train.g_lr)
            twin.opt_d = torch.optim.SGD(twin.D.parameters(), lr=config.train.d_lr)
        self.table = pt.param_table(twin)[0]
        self.grads = {"g": [], "d": []}
        for net, opt in (("g", twin.opt_g), ("d", twin.opt_d)):
            opt.register_step_pre_hook(lambda opt, args, kwargs, net=net: self._record(net))

    def _record(self, net):
        import pytorch_twin as pt
        # copies: .grad is accumulated in place later (D's, by the G step's backward)
        self.grads[net].append({
            key: (pt._to_flax(kind, tensor.grad).copy() if tensor.grad is not None
                  else np.zeros(pt._to_flax(kind, tensor).shape, np.float32))
            for key, (tensor, kind) in self.table.items() if key[0] == net})

    def take(self):
        grads, self.grads = self.grads, {"g": [], "d": []}
        return grads


# -------------------------------------------------------------------------------- comparison

class Check(NamedTuple):
    """One comparison: the worst gap over what it is allowed (<= 1 passes) and where."""
    name: str
    ratio: float
    where: str


class Side(NamedTuple):
    """One side's state around a step, flat {(net, flax path): array}."""
    params_before: dict
    params: dict
    grads: list          # per update of D (n_critic) then G's: [{key: array}], keys of one net
    moments_before: dict  # {key: (mu, nu, count)} (Adam; empty under SGD)
    moments: dict
    buffers_before: dict  # BatchNorm means and spectral vectors
    buffers: dict
    metrics: dict
    lecam: tuple          # LeCam's averages (real, fake), or ()


def compare(config, image_shape, num_classes: int, steps: int = 1, optimizer: str = "sgd",
            verbose: bool = False):
    """Run `steps` steps on both sides in the regime `optimizer` ("sgd" or "adam"); returns one
    report per step: {"checks": [Check], "judged": bool, "notes": [str]}."""
    import jax
    import torch
    from jaxgan import mesh as mesh_lib
    from jaxgan.training.state import compile_to_run_once
    from jaxgan.training.step import make_train_step

    import pytorch_twin as pt

    if optimizer not in REGIMES:
        raise ValueError(f"optimizer must be one of {REGIMES}, got {optimizer!r}")
    gan, mesh, state = _common.build_gan(config, image_shape, num_classes)
    gan = with_optimizers(gan, config, optimizer)
    state = jax.device_put(state.replace(g_opt_state=jax.jit(gan.g_tx.init)(state.g_params),
                                         d_opt_state=jax.jit(gan.d_tx.init)(state.d_params)),
                           mesh_lib.replicated(mesh))
    twin = pt.TwinGAN(config, image_shape, num_classes)
    pt.load_jaxgan_params(twin, jax.device_get(state.g_params), jax.device_get(state.d_params),
                          jax.device_get(state.d_stats), jax.device_get(state.g_stats))
    recorder = TwinRecorder(twin, config, optimizer)
    batch_np = _common.synthetic_batch(config, image_shape, num_classes)
    batch = jax.device_put(batch_np, mesh_lib.split(mesh))
    # Built as tests/helpers.py builds its steps (without LLVM's optimisations: the same
    # mathematics, compiled in a fraction of the time; a check runs it a few times only).
    base_key = jax.random.key(config.seed)
    train_step = compile_to_run_once(make_train_step(gan, config.train, mesh), state, batch,
                                     base_key)
    real = torch.from_numpy(batch_np["image"]).permute(0, 3, 1, 2).contiguous()
    real_y = torch.from_numpy(batch_np["label"]).long()
    to_torch = lambda a: torch.from_numpy(np.array(a))
    bound = rounding_bound(jax.device_get(state.g_params), jax.device_get(state.d_params),
                           image_shape, config.train.batch_size, config.train.n_critic)
    if verbose:
        print(f"bound         {bound:.3g} relative per step (float32 rounding; see TOLERANCES)")
    reports = []
    for i in range(steps):
        key = jax.random.fold_in(base_key, i)
        z, y, numbers = step_draws(key, config, config.train.batch_size, num_classes,
                                   image_shape[0])
        noise = None
        if twin.arch == "fastgan":
            noise = {i: to_torch(v) for i, v in fastgan_noise(z, twin.G.noise_shapes()).items()}
        before_ours, before_theirs = jax.device_get(state), _twin_snapshot(twin)
        state, metrics = train_step(state, batch, key)
        theirs_metrics = twin.step(real, real_y, to_torch(z), to_torch(y).long(),
                                   {name: to_torch(v).long() if name == "quadrant" else to_torch(v)
                                    for name, v in numbers.items()}, noise)
        ours = _jaxgan_side(before_ours, jax.device_get(state), jax.device_get(metrics))
        theirs = _twin_side(twin, before_theirs, recorder.take(), theirs_metrics)
        report = _judge(ours, theirs, config, optimizer, (i + 1) * bound, first_step=i == 0)
        reports.append(report)
        if verbose:
            _print_step(i + 1, ours, theirs, report)
    return reports


def _twin_snapshot(twin):
    import pytorch_twin as pt
    moments = {}
    if isinstance(twin.opt_d, __import__("torch").optim.Adam):
        for key, (tensor, kind) in pt.param_table(twin)[0].items():
            s = (twin.opt_g if key[0] == "g" else twin.opt_d).state.get(tensor)
            moments[key] = ((pt._to_flax(kind, s["exp_avg"]).copy(),
                             pt._to_flax(kind, s["exp_avg_sq"]).copy(), int(s["step"]))
                            if s else None)
    # copies: _to_flax's arrays share memory with the tensors, which the step changes in place
    params = {key: value.copy() for key, value in pt.twin_params(twin).items()}
    return params, moments, pt.twin_buffers(twin)


def _twin_side(twin, before, grads, metrics) -> Side:
    params_before, moments_before, buffers_before = before
    params, moments, buffers = _twin_snapshot(twin)
    lecam = (float(twin.lecam_real), float(twin.lecam_fake)) if twin.lecam else ()
    return Side(params_before, params, grads["d"] + grads["g"], moments_before, moments,
                buffers_before, buffers, {k: float(v) for k, v in metrics.items()}, lecam)


def _jaxgan_side(before, after, metrics) -> Side:
    import pytorch_twin as pt

    def flat_nets(g_tree, d_tree):
        out = {("g", p): np.asarray(v) for p, v in pt.flat(g_tree).items()}
        out.update({("d", p): np.asarray(v) for p, v in pt.flat(d_tree).items()})
        return out

    def moments(state):
        g_adam, d_adam = _adam_state(state.g_opt_state), _adam_state(state.d_opt_state)
        if g_adam is None:
            return {}
        mu, nu = flat_nets(g_adam.mu, d_adam.mu), flat_nets(g_adam.nu, d_adam.nu)
        count = {"g": int(g_adam.count), "d": int(d_adam.count)}
        return {key: (mu[key], nu[key], count[key[0]]) if count[key[0]] else None for key in mu}

    def buffers(state):  # BatchNorm means and spectral-norm vectors, as pt.twin_buffers names them
        stats = flat_nets(state.g_stats, state.d_stats)
        return {key: v for key, v in stats.items() if key[1][-1] == "mean" or
                key[1][-1].endswith("/u")}

    recorded = flat_nets(after.g_opt_state[0].grads, after.d_opt_state[0].grads)
    n_critic = next(v for k, v in recorded.items() if k[0] == "d").shape[0]
    grads = [{k: v[u] for k, v in recorded.items() if k[0] == "d"} for u in range(n_critic)]
    grads.append({k: v[0] for k, v in recorded.items() if k[0] == "g"})
    aux = getattr(after, "aux", None) or {}
    lecam = (float(aux["lecam_real"]), float(aux["lecam_fake"])) if "lecam_real" in aux else ()
    return Side(flat_nets(before.g_params, before.d_params),
                flat_nets(after.g_params, after.d_params), grads, moments(before),
                moments(after), buffers(before), buffers(after),
                {k: float(v) for k, v in metrics.items() if k != "finite"}, lecam)


def _norm(x) -> float:
    return float(np.linalg.norm(np.ravel(np.asarray(x, np.float64))))


def _where(key) -> str:
    return f"{key[0].upper()} {'/'.join(key[1])}"


def _worst(name, items) -> Check:
    """items: (gap, allowed, where) triples; the worst gap / allowed."""
    worst = Check(name, 0.0, "")
    for gap, allowed, where in items:
        ratio = 0.0 if gap == 0 else (gap / allowed if allowed > 0 else math.inf)
        if ratio > worst.ratio:
            worst = Check(name, float(ratio), where)
    return worst


def _scales_noise(key) -> bool:
    """A weight that scales zero-mean noise (fastgan's NoiseInjection, one number per layer): its
    gradient sums noise x upstream gradient over every position of the batch, terms that cancel
    far below their own size, which the check cannot see; it is allowed the bound times its
    network's whole gradient norm, not its share of it (an estimate of those terms' size, not a
    derivation: the twin and jaxgan on 8 devices differ there by 1.8x the shared allowance)."""
    return key[1][-1] == "weight" and any(part.startswith("noise") for part in key[1])


def _tree_check(name, ours: dict, theirs: dict, bound: float, floor_of=None) -> Check:
    """Each leaf within `bound` of its size in norm, plus the bound times the leaf's share of
    its network's norm (`floor_of`, default `ours`): sums that cancel (see TOLERANCES)."""
    floor_of = ours if floor_of is None else floor_of
    totals, counts = {}, {}
    for key, value in floor_of.items():
        totals[key[0]] = totals.get(key[0], 0.0) + _norm(value) ** 2
        counts[key[0]] = counts.get(key[0], 0) + np.size(value)
    items = []
    for key, a in ours.items():
        b = theirs[key]
        share = 1.0 if _scales_noise(key) else math.sqrt(np.size(a) / counts[key[0]])
        floor = bound * math.sqrt(totals[key[0]]) * share
        items.append((_norm(np.asarray(a, np.float64) - b), bound * max(_norm(a), _norm(b))
                      + floor, _where(key)))
    return _worst(name, items)


def _elementwise(name, key, gap, allowed) -> tuple:
    """(gap, allowed, where) of the element of `key` worst in gap / allowed."""
    gap, allowed = np.asarray(gap, np.float64).ravel(), np.asarray(allowed, np.float64).ravel()
    excess = np.where(allowed > 0, gap / np.where(allowed > 0, allowed, 1.0),
                      np.where(gap > 0, np.inf, 0.0))
    i = int(np.argmax(excess)) if excess.size else 0
    return (float(gap[i]), float(allowed[i]), f"{_where(key)} [{i}]") if excess.size else \
        (0.0, 1.0, _where(key))


def _sgd_rule(side: Side, label: str, lrs: dict) -> Check:
    """Both networks' parameters after the step: p - lr g per update of this side's own
    gradients (the gradients themselves are compared across the sides)."""
    items = []
    for key, p in side.params.items():
        lr = lrs[key[0]]
        expected = np.asarray(side.params_before[key], np.float64)
        allowed = np.zeros_like(expected)
        for grads in side.grads:
            if key in grads:
                step = lr * np.asarray(grads[key], np.float64)
                expected = expected - step
                allowed = allowed + UNIT_ROUNDOFF * (2 * np.abs(step) + np.abs(expected))
        allowed = allowed + REFERENCE_ROUNDINGS * np.abs(expected)
        items.append(_elementwise("parameters", key, np.abs(p - expected), allowed))
    return _worst(f"{label} parameters (SGD of its own gradients)", items)


def adam_reference(p0, moments0, grads, lr, b1, b2, eps):
    """Adam (optax.adam, torch.optim.Adam) from p0 and the moments before (mu, nu, count; None:
    fresh) through the gradients `grads`, in float64: (p, mu, nu) and each one's rounding
    allowance for a float32 implementation (see TOLERANCES)."""
    p = np.asarray(p0, np.float64)
    if moments0 is None:
        m, v, count = np.zeros_like(p), np.zeros_like(p), 0
    else:
        m, v, count = (np.asarray(moments0[0], np.float64), np.asarray(moments0[1], np.float64),
                       moments0[2])
    m_terms, err_m, err_v, err_p = np.abs(m), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    u = UNIT_ROUNDOFF
    for t, g in enumerate(grads, count + 1):
        g = np.asarray(g, np.float64)
        m, m_terms = b1 * m + (1 - b1) * g, b1 * m_terms + (1 - b1) * np.abs(g)
        v = b2 * v + (1 - b2) * g * g
        err_m = b1 * err_m + MOMENT_ROUNDINGS * u * m_terms           # m may cancel: its terms
        err_v = b2 * err_v + MOMENT_ROUNDINGS * u * v + SMALLEST_SUBNORMAL  # g^2 may underflow
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        denom = np.sqrt(v / c2) + eps
        update = lr * (m / c1) / denom
        err_denom = np.sqrt((v + err_v) / c2) - np.sqrt(v / c2)
        # optax forms 1 - b^t in float32: b rounded (u) and raised to t (t u more) is off by
        # (t + 2) u b^t, relative to 1 - b^t (1 - 0.999: 1.8e-4; half of it through the sqrt)
        err_c1, err_c2 = ((t + 2) * u * b ** t / (1 - b ** t) for b in (b1, b2))
        err_update = (lr * err_m / c1 / denom + np.abs(update) * err_denom / denom
                      + (ADAM_ROUNDINGS * u + err_c1 + err_c2 / 2) * np.abs(update))
        p = p - update
        err_p = err_p + err_update + u * np.abs(p)
    err_p = err_p + REFERENCE_ROUNDINGS * np.abs(p)
    return (p, m, v), (err_p, err_m, err_v)


def _adam_rule(side: Side, label: str, config) -> list:
    """Both networks' parameters and moments after the step: Adam of this side's own gradients
    (the config's lr, betas, eps = 1e-8, optax's and torch's default)."""
    train = config.train
    items = {"parameters": [], "mu": [], "nu": []}
    for key, p in side.params.items():
        grads = [g[key] for g in side.grads if key in g]
        lr = train.g_lr if key[0] == "g" else train.d_lr
        ref, err = adam_reference(side.params_before[key], side.moments_before.get(key), grads,
                                  lr, train.b1, train.b2, 1e-8)
        mu, nu, _ = side.moments[key]
        for name, value, r, e in zip(("parameters", "mu", "nu"), (p, mu, nu), ref, err):
            items[name].append(_elementwise(name, key, np.abs(np.asarray(value, np.float64) - r),
                                            e))
    return [_worst(f"{label} {name} (Adam of its own gradients)", found)
            for name, found in items.items()]


def _judge(ours: Side, theirs: Side, config, optimizer: str, bound: float,
           first_step: bool) -> dict:
    n_critic = config.train.n_critic
    sgd = optimizer == "sgd"
    checks, notes = [], []
    # What the step computes before D's first optimizer update is held to the bound in both
    # regimes; with SGD everything after it too.
    before_d_update = sgd or (first_step and n_critic == 1)
    if sgd or first_step:
        metrics = [(abs(ours.metrics[k] - theirs.metrics[k]),
                    bound * max(abs(ours.metrics[k]), abs(theirs.metrics[k]), 1.0), f"{k}")
                   for k in ours.metrics if k in theirs.metrics
                   and (sgd or (before_d_update and k != "g_loss"))]
        if set(ours.metrics) != set(theirs.metrics):
            metrics.append((1.0, 0.0, f"names {sorted(ours.metrics)} vs {sorted(theirs.metrics)}"))
        if ours.lecam and (sgd or before_d_update):
            metrics += [(abs(a - b), bound * max(abs(a), abs(b), 1.0), f"LeCam average {n}")
                        for a, b, n in zip(ours.lecam, theirs.lecam, ("real", "fake"))]
        if metrics:
            checks.append(_worst("metrics", metrics))
        updates = range(len(ours.grads)) if sgd else [0]  # D's first update (and G's: sgd)
        for u in updates:
            net = "G" if u == n_critic else f"D (update {u + 1})"
            checks.append(_tree_check(f"gradient {net}", ours.grads[u], theirs.grads[u], bound))
        nets = ("g", "d") if sgd else ("g",)  # G's statistics precede D's update
        means = lambda s: {k: v.astype(np.float64) - s.buffers_before[k] for k, v in
                           s.buffers.items() if k[0] in nets and k[1][-1] == "mean"}
        vectors = lambda s: {k: v for k, v in s.buffers.items()
                             if k[0] in nets and k[1][-1].endswith("/u")}
        if means(ours):
            checks.append(_tree_check("BatchNorm means (their change)", means(ours),
                                      means(theirs), bound))
        if vectors(ours):
            checks.append(_tree_check("spectral norm vectors u", vectors(ours), vectors(theirs),
                                      bound))
    if sgd:
        lrs = {"g": config.train.g_lr, "d": config.train.d_lr}
        checks += [_sgd_rule(ours, "jaxgan", lrs), _sgd_rule(theirs, "twin", lrs)]
    else:
        checks += _adam_rule(ours, "jaxgan", config) + _adam_rule(theirs, "twin", config)
        if first_step and n_critic == 1:
            notes += _adam_notes(ours, theirs, config)
    return {"checks": checks, "judged": sgd or first_step, "notes": notes}


def _adam_notes(ours: Side, theirs: Side, config) -> list:
    """What Adam's first D update does to gradients that agree to rounding (not judged)."""
    lr, moved, flips, total, worst = config.train.d_lr, 0, 0, 0, (0.0, "")
    for key, a in ours.params.items():
        if key[0] != "d" or ours.moments_before.get(key) is not None:
            continue
        ga, gb = ours.grads[0][key], theirs.grads[0][key]
        gap = np.abs(a.astype(np.float64) - theirs.params[key])
        apart = gap > 1e-2 * lr
        moved += int(apart.sum())
        flips += int((np.sign(ga) != np.sign(gb)).sum())
        total += a.size
        if apart.any():
            i = int(np.argmax(np.where(apart, gap, 0)))
            if gap.flat[i] > worst[0]:
                worst = (float(gap.flat[i]), f"{_where(key)}[{i}]: |g| {abs(ga.flat[i]):.2g} "
                         f"(jaxgan) {abs(gb.flat[i]):.2g} (twin), tensor's largest "
                         f"{np.abs(ga).max():.2g}")
    if not total:
        return []
    note = (f"D's first Adam update: {flips} of {total} elements with gradients of opposite "
            f"sign, {moved} moved more than lr/100 apart")
    if moved:
        note += f"; most {worst[0] / lr:.2f} lr at {worst[1]}"
    return [note]


def _print_step(step, ours: Side, theirs: Side, report) -> None:
    print(f"step {step}: " + ", ".join(f"{k} jax {ours.metrics[k]:.6f} torch "
                                        f"{theirs.metrics.get(k, float('nan')):.6f}"
                                        for k in ours.metrics))
    judged = "" if report["judged"] else " (not judged: Adam has moved the states apart)"
    for check in report["checks"]:
        verdict = "ok" if check.ratio <= 1 else "FAIL"
        print(f"  {check.name:58s} {check.ratio:9.3g} of allowed  {verdict:4s} {check.where}"
              f"{judged if 'own gradients' not in check.name else ''}")
    for note in report["notes"]:
        print(f"  note: {note}")


def within_tolerance(report: dict) -> bool:
    """Every check of a judged step within its allowance (an unjudged step: its Adam rules)."""
    return all(c.ratio <= 1 for c in report["checks"]
               if report["judged"] or "own gradients" in c.name)


def failed(report: dict) -> list:
    return [c for c in report["checks"] if c.ratio > 1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _common.config_arguments(parser)
    parser.add_argument("--optimizer", choices=REGIMES, default="adam",
                        help="sgd: plain SGD at the config's learning rates on both sides, "
                             "everything held to rounding; adam: the config's own")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps to run (default: 3 with sgd, 1 with adam)")
    parser.add_argument("--num_classes", "--num-classes", type=int, default=10,
                        help="classes of a conditional config (the digits have 10)")
    args, config, overrides = _common.parse_with_config(parser, argv)
    steps = args.steps or (3 if args.optimizer == "sgd" else 1)
    image_shape = _common.image_shape_of(config)
    num_classes = args.num_classes if config.data.conditional else 0
    print(f"config        {args.config} {' '.join(overrides)}")
    print(f"regime        {args.optimizer}, {steps} step(s)")
    _common.print_machine()
    import pytorch_twin as pt
    bad = pt.unsupported(config)
    if bad:
        raise SystemExit(f"error: the PyTorch twin does not model {', '.join(bad)}")
    reports = compare(config, image_shape, num_classes, steps, args.optimizer, verbose=True)
    ok = all(within_tolerance(r) for r in reports)
    print(f"result        {'PASS' if ok else 'FAIL'} ({args.optimizer}, {steps} step(s))")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
