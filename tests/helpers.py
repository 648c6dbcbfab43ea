"""Helpers more than one test module uses (test modules never import each other)."""
import dataclasses
import importlib.util
import json
import os
import shutil

import jax
import numpy as np
import optax
from conftest import ROOT, tiny_config

from jax.sharding import NamedSharding, PartitionSpec as P

import jaxgan
from jaxgan import config as config_lib
from jaxgan.mesh import make_mesh
from jaxgan.models import build_models
from jaxgan.training import checkpoint
from jaxgan.training.state import GAN, compile_to_run_once
from jaxgan.training.step import make_train_step, needs_generator_batch


def run_unoptimised(function, *args):
    """`function(*args)` as one program built as create_state builds its own (for tests that run
    a model once or twice: faster than op by op, and than an optimised build)."""
    return compile_to_run_once(function, *args)(*args)


def count(tree):
    """How many numbers a tree of arrays (or of shapes) holds."""
    return sum(x.size for x in jax.tree.leaves(tree))


def abstract_variables(config, shape, num_classes):
    """(G's, D's) variables as shapes only (jax.eval_shape): official parameter counts without
    building full-size weights."""
    generator, discriminator = build_models(config.model, shape, num_classes)
    z = jax.numpy.zeros((2, config.model.latent_dim))
    labels = jax.numpy.zeros((2,), jax.numpy.int32)
    return (jax.eval_shape(lambda: generator.init(jax.random.key(0), z, labels)),
            jax.eval_shape(lambda: discriminator.init(jax.random.key(0),
                                                      jax.numpy.zeros((2, *shape)), labels)))


def restore_state(workdir, step):
    """The training state saved at `step` in `workdir`, on the host."""
    manager = checkpoint.make_manager(workdir, read_only=True)
    try:
        config, facts = checkpoint.restore_meta(manager, step)
        target = GAN.build(config, facts["image_shape"], facts["num_classes"]).abstract_state()
        return jax.device_get(checkpoint.restore_item(manager, step, "state", target, make_mesh()))
    finally:
        manager.close()


def saved_state(workdir, step):
    """The leaves of the state saved at `step`, as numpy arrays (for exact comparisons)."""
    return [np.asarray(x) for x in jax.tree.leaves(restore_state(workdir, step))]


def assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def resume_from_copy(workdir, copy, step):
    """`copy`: `workdir` as it was after `step` (its later checkpoints removed), to resume.

    One run and a copy instead of two runs to `step` and on: in-process runs trace every program
    again, and the straight run writes the checkpoint at `step` anyway.
    """
    shutil.copytree(workdir, copy)
    for name in os.listdir(copy / "checkpoints"):
        if int(name) > step:
            shutil.rmtree(copy / "checkpoints" / name)
    assert os.listdir(copy / "checkpoints") and max(map(int, os.listdir(copy / "checkpoints"))) == step


def assert_trains_resumes_exactly_and_samples(config, tmp_path, labels=1, resume_at=2):
    """The contract every family keeps: `config` trained straight to its last step equals it
    trained to `resume_at`, stopped and resumed (every state leaf bit-identical), and both
    workdirs sample the same pixels. Returns (the last metrics line, the sampled images)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    jaxgan.train_and_evaluate(config, straight)
    last = json.loads((straight / "metrics.jsonl").read_text().splitlines()[-1])
    resume_from_copy(straight, resumed, resume_at)
    jaxgan.train_and_evaluate(config, resumed)
    assert_identical(saved_state(straight, last["step"]), saved_state(resumed, last["step"]))
    images = jaxgan.load_sampler(straight).generate(range(3), labels=labels)
    assert images.dtype == np.uint8 and images.shape[0] == 3
    np.testing.assert_array_equal(images, jaxgan.load_sampler(resumed).generate(range(3),
                                                                                 labels=labels))
    return last, images


def write_checkpoint(workdir, class_names, resolution=16):
    """A workdir with one checkpoint of an untrained tiny model with these class names."""
    config = tiny_config(**{"data.resolution": resolution})
    shape = (resolution, resolution, 1)
    state = GAN.build(config, shape, len(class_names)).create_state(jax.random.key(0))
    manager = checkpoint.make_manager(workdir)
    facts = {"class_names": list(class_names), "image_shape": list(shape),
             "num_classes": len(class_names), "num_examples": 100}
    checkpoint.save(manager, state, config, facts)
    checkpoint.wait(manager)
    manager.close()
    return workdir


def load_sample_py():
    spec = importlib.util.spec_from_file_location("sample_flags", ROOT / "sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SAMPLE = load_sample_py()


def sample(capsys, *args):
    """sample.py's main in this process: (exit status, stdout, stderr)."""
    try:
        status = SAMPLE.main([str(a) for a in args])
    except SystemExit as exit:  # argparse's usage errors
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


# --- One training step on 1 and on N devices: the same mathematics, to float32 rounding. ---
#
# The step draws every random number for the global batch, so 1 and N devices compute the same
# function; what differs is the order of the reductions (a gradient summed over 16 images at once
# against 8 partial sums of 2 and a pmean; BatchNorm's moments likewise; XLA also picks other
# blockings for other batch sizes). Rounding bounds for that, from float32's unit roundoff
# u = 2^-24 (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., eq. 3.5 and
# 4.4): a sum of n terms in any order is within gamma_n * sum|t| ~ n*u*sum|t| of the exact one,
# so two orders are within 2*n*u*sum|t|. A step chains such reductions, and relative errors add
# along the chain: through G's and D's forward passes (each layer sums its fan-in), the backward
# passes (each input gradient sums a fan-out, each kernel gradient and BatchNorm moment sums the
# batch's positions), twice more through D for a gradient penalty's double backward. With
# `depth` such layers per pass and n_max the longest reduction,
#     relative error of a gradient, a BatchNorm moment, a loss <= 2 * u * passes * depth * n_max,
# where the summed terms are not much larger than their sum. Where they are (a bias feeding a
# BatchNorm, whose gradient is zero up to rounding: the terms' size, not the sum's, sets the
# error), each leaf is also allowed that bound times its share of the whole network's gradient
# norm (the terms' size is the size of the gradients flowing through that network).
# A wrong reduction is off by far more: a gradient or a BatchNorm moment over one device's 2
# images instead of 16 is a different number altogether (test_families shows the check fails).
UNIT_ROUNDOFF = float(np.finfo(np.float32).eps) / 2  # 2^-24


def rounding_bound(state, image_shape, batch_size: int, penalty: bool) -> float:
    """The relative error bound above for one step of this state's networks."""
    kernels = [x.shape for net in (state.g_params, state.d_params) for x in jax.tree.leaves(net)
               if x.ndim >= 2]
    # the longest sum: a kernel's fan-in or fan-out, or the positions of one feature map in the
    # whole batch (kernel gradients and BatchNorm; no map is larger than the image)
    n_max = max([batch_size * image_shape[0] * image_shape[1]]
                + [int(np.prod(s[:-1])) for s in kernels] + [int(np.prod(s[:-2])) * s[-1]
                                                             for s in kernels])
    passes = 4 if penalty else 2  # forward + backward; R1/R2's double backward through D twice
    return 2 * UNIT_ROUNDOFF * passes * len(kernels) * n_max


def recording_gradients(tx):
    """`tx` with the sum of the gradients it was given kept in its state (first in the chain):
    with several D updates in a step, what plain SGD moved the parameters by, over lr. (By hand:
    optax's trace passes on the running sum, not the gradient, so it would change the step.)"""
    def update(grads, total, params=None):
        return grads, jax.tree.map(lambda t, g: t + g, total, grads)
    record = optax.GradientTransformation(lambda params: jax.tree.map(jax.numpy.zeros_like, params),
                                          update)
    return optax.chain(record, tx)


@dataclasses.dataclass
class StepRun:
    before: object   # the state before the step (host arrays)
    after: object    # the state after it
    metrics: dict
    gan: object


def run_step(config, devices, image_shape, num_classes, *, start_step=0, optimizer="sgd",
             change_gan=None, seed=0, prepare=None) -> StepRun:
    """One training step of `config` on `devices` from a fresh state at `start_step`, on a fixed
    batch, with each network's gradient recorded in its optimizer state. optimizer="sgd" trains
    both networks with plain SGD at the config's learning rates (well conditioned everywhere),
    "config" with the config's own Adam. `change_gan(gan) -> gan` alters what is built (the
    negative tests' deliberately wrong steps); `prepare(state, batch) -> (state, batch)` alters
    the starting point (host arrays; test_mirror's mirrored weights and images)."""
    config = config_lib.resolve(config)
    gan = GAN.build(config, image_shape, num_classes)
    if optimizer == "sgd":
        g_tx, d_tx = optax.sgd(config.train.g_lr), optax.sgd(config.train.d_lr)
    else:
        g_tx, d_tx = gan.g_tx, gan.d_tx
    gan = dataclasses.replace(gan, g_tx=recording_gradients(g_tx), d_tx=recording_gradients(d_tx))
    if change_gan is not None:
        gan = change_gan(gan)
    fresh = gan.create_state(jax.random.key(seed)).replace(
        step=jax.numpy.asarray(start_step, jax.numpy.int32))
    rng = np.random.default_rng(seed)
    batch_np = {}
    for prefix in ("", "g_") if needs_generator_batch(config.train) else ("",):
        batch_np[f"{prefix}image"] = rng.uniform(-1, 1, (config.train.batch_size, *image_shape)
                                                 ).astype(np.float32)
        batch_np[f"{prefix}label"] = rng.integers(0, max(num_classes, 1), config.train.batch_size
                                                  ).astype(np.int32)
    if prepare is not None:
        fresh, batch_np = prepare(jax.device_get(fresh), batch_np)
    mesh = make_mesh(devices)
    state = jax.device_put(fresh, NamedSharding(mesh, P()))
    batch = jax.device_put(batch_np, NamedSharding(mesh, P("data")))
    step, key = make_train_step(gan, config.train, mesh), jax.random.key(seed + 1)
    if os.environ.get("JAXGAN_TEST_OPTIMISED_STEPS"):  # as users run it, for a slower check
        new_state, metrics = jax.jit(step)(state, batch, key)
    else:  # the same mathematics, compiled in a fraction of the time
        new_state, metrics = compile_to_run_once(step, state, batch, key)(state, batch, key)
    return StepRun(jax.device_get(fresh), jax.device_get(new_state), jax.device_get(metrics), gan)


def _norm(x) -> float:
    return float(np.linalg.norm(np.ravel(np.asarray(x, np.float64))))


def _leaves(tree):
    return [(jax.tree_util.keystr(p), np.asarray(x))
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _gradient_trees(state):
    """(G's, D's) recorded gradients (recording_gradients: the chain's first state)."""
    return state.g_opt_state[0], state.d_opt_state[0]


def _close_in_norm(name, a, b, bound, floor=0.0):
    """||a - b|| within `bound` of their size (plus `floor`, an absolute allowance)."""
    gap, size = _norm(np.asarray(a, np.float64) - b), max(_norm(a), _norm(b))
    assert gap <= bound * size + floor, (
        f"{name}: 1 and N devices {gap:.3g} apart, allowed {bound:.3g} x {size:.3g}"
        + (f" + {floor:.3g}" if floor else ""))


def _check_tree(what, tree_a, tree_b, bound):
    """Every float leaf of two trees within `bound` of its size in norm, plus the bound times
    the leaf's share of the whole tree's norm (sums that cancel: see above); others equal."""
    pairs = [(name, a, b) for (name, a), (_, b) in zip(_leaves(tree_a), _leaves(tree_b))]
    floats = [a for _, a, _ in pairs if np.issubdtype(a.dtype, np.floating)]
    total = _norm(np.concatenate([a.ravel() for a in floats])) if floats else 0.0
    count = sum(a.size for a in floats)
    for name, a, b in pairs:
        if np.issubdtype(a.dtype, np.floating):
            _close_in_norm(f"{what}{name}", a, b, bound, bound * total * np.sqrt(a.size / count))
        else:
            np.testing.assert_array_equal(a, b, err_msg=f"{what}{name}")


def _adam_first_update_allowance(g_one, g_many, lr, eps):
    """Per element, how far Adam's first update (zero moments) may differ between the two runs.

    Bias-corrected, Adam's first update is -lr * g / (|g| + eps) for any beta1, beta2: a function
    of the gradient alone, with slope lr * eps / (|g| + eps)^2. Where both runs' gradients have
    one sign, the updates differ by at most that slope (at the smaller |g|) times the gradient's
    difference, plus a few roundings of the update (~8 operations: u each, relative to lr). Where
    the signs differ (a gradient zero up to rounding), Adam's division turns the rounding into a
    full step either way: up to 2 * lr apart. (beta1 = 0, the rpgan recipes', changes nothing
    here: it matters from the second update on.)"""
    smaller = np.minimum(np.abs(g_one), np.abs(g_many)).astype(np.float64)
    slope = lr * eps / (smaller + eps) ** 2
    same_sign = np.sign(g_one) == np.sign(g_many)
    return np.where(same_sign, slope * np.abs(g_one.astype(np.float64) - g_many)
                    + 8 * UNIT_ROUNDOFF * lr, 2 * lr * (1 + 8 * UNIT_ROUNDOFF))


def _check_params(one, many, bound, optimizer, config, fields=("g_params", "d_params")):
    """Each network's parameters after the step: moved by the same update, within rounding."""
    g_grads, d_grads = zip(_gradient_trees(one.after), _gradient_trees(many.after))
    grads = {"g_params": g_grads, "d_params": d_grads, "ema_params": g_grads}
    lrs = {"g_params": config.train.g_lr, "d_params": config.train.d_lr,
           "ema_params": config.train.g_lr}
    for field in fields:
        g_one, g_many = grads[field]
        before = _leaves(getattr(one.before, field))
        for (name, a), (_, b), (_, p), (_, ga), (_, gb) in zip(
                _leaves(getattr(one.after, field)), _leaves(getattr(many.after, field)), before,
                _leaves(g_one), _leaves(g_many)):
            # Each update rounds lr * g and then p - lr * g (u of each); K updates (n_critic for
            # D), two runs: bounded by 2 K u (|p| at its largest + lr |g|). The EMA mixes the
            # new parameters into the old ones: two products and a sum, three roundings more.
            updates = {"d_params": config.train.n_critic, "ema_params": 4}.get(field, 1)
            rounding = 2 * updates * UNIT_ROUNDOFF * (
                np.maximum(np.maximum(np.abs(a), np.abs(b)), np.abs(p))
                + lrs[field] * np.maximum(np.abs(ga), np.abs(gb)))
            if optimizer == "sgd":  # p - lr * g: the gradients' own difference, times lr
                allowed = lrs[field] * np.abs(ga.astype(np.float64) - gb) + rounding
            else:  # the schedules scale lr by at most 1
                allowed = _adam_first_update_allowance(ga, gb, lrs[field], 1e-8) + rounding
            gap = np.abs(a.astype(np.float64) - b)
            worst = np.argmax(gap - allowed)
            assert np.all(gap <= allowed), (
                f"{field}{name}: element {worst} moved {gap.flat[worst]:.3g} apart on 1 and N "
                f"devices, allowed {allowed.flat[worst]:.3g} (from {p.flat[worst]:.6g})")


def assert_steps_agree(one: StepRun, many: StepRun, config, *, optimizer="sgd", penalty=False):
    """One step on 1 device (`one`) and on N (`many`) computed the same mathematics: losses,
    both networks' gradients, BatchNorm's statistics and every other state leaf within the
    rounding bound, the parameters by the optimizer's rule. Raises AssertionError naming the
    first quantity that differs by more.

    With plain SGD everything is well conditioned. With Adam (optimizer="config"), D's update
    turns a rounding-sized gradient into a step of lr either way (see
    _adam_first_update_allowance), and G's loss is taken through that D: so G's loss, gradient
    and moments and D's statistics after G's pass are not rounding-close, and only what comes
    before D's update is held to the bound; both networks' parameters are held to Adam's rule
    for the gradients each run had."""
    image_shape, batch = one.gan.image_shape, config.train.batch_size
    bound = rounding_bound(one.before, image_shape, batch, penalty)
    well_conditioned = optimizer == "sgd"
    assert int(one.after.step) == int(many.after.step) == int(one.before.step) + 1
    assert set(one.metrics) == set(many.metrics)
    for name in sorted(one.metrics):
        if name == "g_loss" and not well_conditioned:
            continue
        # losses and mean logits: sums over the batch of O(1) terms (hence the 1 below)
        a, b = float(one.metrics[name]), float(many.metrics[name])
        assert abs(a - b) <= bound * max(abs(a), abs(b), 1.0), (
            f"metric {name}: {a!r} on 1 device, {b!r} on N")
    for net, g_one, g_many in zip("GD", _gradient_trees(one.after), _gradient_trees(many.after)):
        if net == "D" or well_conditioned:
            _check_tree(f"{net}'s gradient ", g_one, g_many, bound)
    _check_params(one, many, bound, optimizer, config)
    # BatchNorm's running statistics (and spectral norm's vectors, kept beside them): their
    # change in this step is (1 - momentum) times a batch moment minus the old value. (G's are
    # taken before D's update.)
    for field in ("g_stats", "d_stats") if well_conditioned else ("g_stats",):
        old = getattr(one.before, field)
        change = lambda run: jax.tree.map(lambda x, o: x.astype(np.float64) - o,
                                          getattr(run.after, field), old)
        _check_tree(f"{field} (its change) ", change(one), change(many), bound)
    # The optimizers' state (the recorded gradient again, Adam's moments: averages of g and of
    # g^2, hence twice the bound; integer counts exactly), LeCam's averages and ADA's p.
    for field in ("g_opt_state", "d_opt_state", "aux"):
        if hasattr(one.after, field) and (well_conditioned or field != "g_opt_state"):
            _check_tree(field, getattr(one.after, field), getattr(many.after, field), 2 * bound)
    # The EMA of G: (1 - decay) times the parameters' new values plus the same old ones, so
    # within what the parameters are allowed.
    _check_params(one, many, bound, optimizer, config, fields=("ema_params",))
    _check_tree("ema_stats", one.after.ema_stats, many.after.ema_stats, bound)
