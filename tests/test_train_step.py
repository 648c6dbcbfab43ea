import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgan import data as data_lib
from jaxgan.config import check_for_devices
from jaxgan.errors import UserError
from jaxgan.images import to_unit_range
from jaxgan.mesh import make_mesh
from jaxgan.training.pipeline import draw_batch, to_device
from jaxgan.training.state import GAN, compile_to_run_once
from jaxgan.training.step import make_train_step

SHAPE, CLASSES = (16, 16, 1), 10


def setup(config, devices, fresh_state=None, optimised=False):
    """(state, batch, compiled step); compiled as users get it with `optimised`, else faster."""
    mesh = make_mesh(devices)
    replicated = NamedSharding(mesh, P())
    gan = GAN.build(config, SHAPE, CLASSES)
    if fresh_state is None:
        fresh_state = gan.create_state(jax.random.key(0))
    state = jax.device_put(fresh_state, replicated)
    dataset = data_lib.load_digits(16, 1)
    batch = {"image": to_unit_range(jnp.asarray(dataset.images[:16])),
             "label": jnp.asarray(dataset.labels[:16])}
    batch = jax.device_put(batch, NamedSharding(mesh, P("data")))
    step = make_train_step(gan, config.train, mesh)
    if optimised:
        return state, batch, jax.jit(step)
    return state, batch, compile_to_run_once(step, state, batch, jax.random.key(0))


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]


def test_step_changes_params_and_is_deterministic(config):
    state, batch, step = setup(config, jax.devices()[:1])
    new_a, metrics = step(state, batch, jax.random.key(1))
    new_b, _ = step(state, batch, jax.random.key(1))
    new_c, _ = step(state, batch, jax.random.key(2))
    assert int(new_a.step) == 1
    for name in ("g_params", "d_params", "ema_params", "g_stats", "d_stats"):
        before, after = leaves(getattr(state, name)), leaves(getattr(new_a, name))
        assert any(not np.array_equal(b, a) for b, a in zip(before, after)), name
    for a, b in zip(leaves(new_a), leaves(new_b)):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(leaves(new_a.g_params),
                                                         leaves(new_c.g_params)))
    # (d_class, g_class: the digits default's class loss)
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_class", "g_class", "finite"}
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["finite"]) == 1.0


def test_draw_batch_is_sharded_scaled_and_seeded(config):
    mesh = make_mesh()
    dataset = data_lib.load_digits(16, 1)
    data = to_device(dataset, mesh)
    draw = jax.jit(lambda d, k: draw_batch(d, k, 16, mesh))
    a, b = draw(data, jax.random.key(0)), draw(data, jax.random.key(0))
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["image"].shape == (16, 16, 16, 1) and a["image"].dtype == jnp.float32
    assert a["image"].sharding.spec == P("data")
    # Each drawn image is a real digit with its own label.
    images = np.asarray(a["image"])
    real = to_unit_range(dataset.images)
    for image, label in zip(images, np.asarray(a["label"])):
        match = np.flatnonzero(np.all(np.isclose(real, image, atol=1e-6), axis=(1, 2, 3)))
        assert match.size and dataset.labels[match[0]] == label


def test_batch_not_divisible_by_devices_is_refused(config):
    config.train.batch_size = 12
    with pytest.raises(UserError, match=r"train.batch_size=12 must be a positive multiple of the "
                                         r"number of devices \(8\); try 16"):
        check_for_devices(config, 8)


def test_mixed_precision_step_keeps_float32_params(config):
    config.model.dtype = "bfloat16"
    state, batch, step = setup(config, jax.devices())
    new_state, metrics = step(state, batch, jax.random.key(1))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["finite"]) == 1.0
    for tree in (new_state.g_params, new_state.d_params, new_state.ema_params,
                 new_state.g_opt_state, new_state.d_opt_state):
        assert {x.dtype for x in jax.tree.leaves(tree) if x.dtype != jnp.int32} == {np.dtype("float32")}
    from jaxgan.models import build_models
    generator, _ = build_models(config.model, SHAPE, CLASSES)
    images = generator.apply({"params": new_state.g_params, "batch_stats": new_state.g_stats},
                             jnp.ones((2, config.model.latent_dim)), jnp.array([1, 2]))
    assert images.shape == (2, *SHAPE) and images.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(images)))


def test_lr_decay_scales_both_learning_rates_linearly_to_zero(config):
    """train.lr_decay=0.5 of 4 steps: steps 0-2 at the full rates, step 3 at half of them, which
    is exactly a step with both rates halved (Adam's update is linear in its rate)."""
    from jaxgan.training.step import StepOptions
    config.train.num_steps, config.train.lr_decay = 4, 0.5
    assert [float(StepOptions.from_config(config.train).lr_scale(s)) for s in range(4)] == \
        [1.0, 1.0, 1.0, 0.5]
    config.train.lr_decay = 0.0
    assert StepOptions.from_config(config.train).lr_scale(3) == 1.0
    gan = GAN.build(config, SHAPE, CLASSES)
    fresh = gan.create_state(jax.random.key(0))
    state_at_3 = fresh.replace(step=jnp.asarray(3, fresh.step.dtype))
    results = {}
    for name, decay, lr in (("decayed", 0.5, 2e-4), ("halved", 0.0, 1e-4), ("constant", 0.0, 2e-4)):
        config.train.lr_decay, config.train.g_lr, config.train.d_lr = decay, lr, lr
        state, batch, step = setup(config, jax.devices()[:1], fresh_state=state_at_3)
        results[name] = step(state, batch, jax.random.key(1))[0]
    for a, b in zip(leaves(results["decayed"]), leaves(results["halved"])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert any(not np.allclose(a, b) for a, b in zip(leaves(results["decayed"].g_params),
                                                      leaves(results["constant"].g_params)))
