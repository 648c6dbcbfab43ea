"""UpConv2x must equal nn.ConvTranspose(k=4, s=2, "SAME") exactly: outputs, gradients, params."""
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgan.layers import UpConv2x, upconv2x

TOL = dict(rtol=1e-5, atol=1e-5)
IMPLS = ("auto", "phases", "fused")


def reference(features, use_bias, **kw):
    return nn.ConvTranspose(features, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                            use_bias=use_bias, **kw)


def _random(key, shape):
    return jax.random.normal(key, shape, jnp.float32)


def _fwd_and_grads(module, params, x, cot):
    """Output and the gradients of <module(x), cot> w.r.t. x and params."""
    def loss(p, x):
        return jnp.sum(module.apply({"params": p}, x) * cot)

    y = module.apply({"params": params}, x)
    g_params, g_x = jax.grad(loss, argnums=(0, 1))(params, x)
    return y, g_x, g_params


def _assert_trees_close(a, b, **tol):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **tol)


# (batch, H, W, Cin, Cout, use_bias): covers Cin/Cout in {1, 3, 8, 16}, H, W in {1, 2, 4, 7, 8}
# (square and not), batch 1 and 3, bias on and off; Cout <= 8 and > 8 exercise both "auto" paths.
CASES = [
    (1, 1, 1, 1, 1, False),
    (3, 1, 1, 3, 16, True),
    (1, 2, 2, 8, 3, True),
    (3, 2, 7, 16, 1, False),
    (1, 4, 4, 3, 8, False),
    (3, 4, 8, 1, 16, True),
    (1, 7, 7, 16, 8, True),
    (3, 7, 2, 8, 8, False),
    (1, 8, 8, 16, 16, False),
    (3, 8, 1, 3, 3, True),
    (1, 8, 4, 1, 3, False),
    (3, 7, 8, 16, 16, True),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("batch,h,w,cin,cout,use_bias", CASES)
def test_matches_conv_transpose(batch, h, w, cin, cout, use_bias, impl):
    k_init, k_x, k_cot, k_b = jax.random.split(jax.random.key(batch * 1000 + h * 100 + w), 4)
    x = _random(k_x, (batch, h, w, cin))
    ref = reference(cout, use_bias)
    ours = UpConv2x(cout, use_bias=use_bias, impl=impl)

    ref_params = ref.init(k_init, x)["params"]
    our_params = ours.init(k_init, x)["params"]
    # Identical trees, shapes, dtypes and (same key, same initialisers) values.
    expected_shapes = {"kernel": (4, 4, cin, cout)} | ({"bias": (cout,)} if use_bias else {})
    assert jax.tree_util.tree_map(jnp.shape, dict(our_params)) == expected_shapes
    _assert_trees_close(dict(our_params), dict(ref_params), rtol=0, atol=0)

    params = dict(ref_params)
    if use_bias:  # non-zero bias so that its gradient and broadcasting are really checked
        params["bias"] = _random(k_b, (cout,))
    cot = _random(k_cot, (batch, 2 * h, 2 * w, cout))

    y_ref, gx_ref, gp_ref = _fwd_and_grads(ref, params, x, cot)
    y, gx, gp = _fwd_and_grads(ours, params, x, cot)
    assert y.shape == (batch, 2 * h, 2 * w, cout) == y_ref.shape
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)
    np.testing.assert_allclose(np.asarray(gx), np.asarray(gx_ref), **TOL)
    _assert_trees_close(dict(gp), dict(gp_ref), **TOL)


def _conv_transpose_numpy(x, kernel):
    """Direct definition: out[2i + 2 - t] += x[i] @ w[t] per axis (the kernel is not flipped
    into a scatter because transpose_kernel=False), i.e. the full (2H + 2)-long scatter with the
    flipped kernel, cropped by 1 on each side."""
    n, h, w, _ = x.shape
    full = np.zeros((n, 2 * h + 2, 2 * w + 2, kernel.shape[-1]))
    for i, j, ty, tx in itertools.product(range(h), range(w), range(4), range(4)):
        full[:, 2 * i + 3 - ty, 2 * j + 3 - tx] += x[:, i, j] @ kernel[ty, tx]
    return full[:, 1:-1, 1:-1]


@pytest.mark.parametrize("impl", IMPLS)
def test_single_tap_mapping(impl):
    """One non-zero input pixel and one non-zero tap land exactly where the mapping says.

    Fails for any off-by-one / flipped kernel: each of the 16 taps is checked separately.
    """
    h = w = 4
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, 1, 2, 0] = 1.0
    for ty, tx in itertools.product(range(4), range(4)):
        k = np.zeros((4, 4, 1, 1), np.float32)
        k[ty, tx] = 1.0
        y = np.asarray(upconv2x(jnp.asarray(x), jnp.asarray(k), impl=impl))[0, :, :, 0]
        expected = np.zeros((2 * h, 2 * w), np.float32)
        expected[2 * 1 + 2 - ty, 2 * 2 + 2 - tx] = 1.0  # y[2i + 2 - t] gets x[i] * w[t]
        np.testing.assert_array_equal(y, expected, err_msg=f"tap {(ty, tx)}")


@pytest.mark.parametrize("impl", IMPLS)
def test_matches_numpy_definition(impl):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 3)).astype(np.float32)
    k = rng.standard_normal((4, 4, 3, 2)).astype(np.float32)
    expected = _conv_transpose_numpy(x, k)
    y = upconv2x(jnp.asarray(x), jnp.asarray(k), impl=impl)
    np.testing.assert_allclose(np.asarray(y), expected, **TOL)
    # ... and lax.conv_transpose agrees with the same definition (guards the test itself).
    y_lax = lax.conv_transpose(jnp.asarray(x), jnp.asarray(k), (2, 2), "SAME",
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(np.asarray(y_lax), expected, **TOL)


def test_custom_initialisers_and_param_dtype():
    x = jnp.ones((2, 4, 4, 3))
    init = nn.initializers.normal(0.02)
    ref = reference(8, True, kernel_init=init, bias_init=nn.initializers.ones,
                    param_dtype=jnp.bfloat16)
    ours = UpConv2x(8, use_bias=True, kernel_init=init, bias_init=nn.initializers.ones,
                    param_dtype=jnp.bfloat16)
    key = jax.random.key(7)
    p_ref, p_ours = ref.init(key, x)["params"], ours.init(key, x)["params"]
    assert p_ours["kernel"].dtype == jnp.bfloat16 and p_ours["bias"].dtype == jnp.bfloat16
    _assert_trees_close(dict(p_ours), dict(p_ref), rtol=0, atol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cout", [3, 16])
def test_bfloat16_compute(impl, cout):
    k_init, k_x = jax.random.split(jax.random.key(3))
    x = _random(k_x, (3, 4, 8, 8))
    ours = UpConv2x(cout, use_bias=True, dtype=jnp.bfloat16, impl=impl)
    params = ours.init(k_init, x)["params"]
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
    y = ours.apply({"params": params}, x)
    assert y.shape == (3, 8, 16, cout) and y.dtype == jnp.bfloat16
    assert bool(jnp.all(jnp.isfinite(y)))
    y_ref = reference(cout, True, dtype=jnp.bfloat16).apply({"params": params}, x)
    assert y_ref.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32),
                               rtol=5e-2, atol=5e-2)
    # Gradients flow back to the float32 params in float32.
    grads = jax.grad(lambda p: jnp.sum(ours.apply({"params": p}, x).astype(jnp.float32)))(params)
    assert all(g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g)))
               for g in jax.tree_util.tree_leaves(grads))


def test_batch_dims_like_conv_transpose():
    """Unbatched and multi-batch-dim inputs are handled as nn.ConvTranspose handles them."""
    key = jax.random.key(0)
    for shape in [(4, 3, 2), (2, 3, 4, 3, 2)]:
        x = _random(key, shape)
        ref = reference(5, False)
        params = ref.init(key, x)["params"]
        y_ref = ref.apply({"params": params}, x)
        y = UpConv2x(5).apply({"params": params}, x)
        assert y.shape == y_ref.shape == shape[:-3] + (2 * shape[-3], 2 * shape[-2], 5)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)


def test_jit_and_forward_mode():
    """Plain autodiff (no custom VJP): jit, jvp and second-order grads work."""
    k1, k2 = jax.random.split(jax.random.key(1))
    x = _random(k1, (1, 3, 3, 2))
    kernel = _random(k2, (4, 4, 2, 3))
    ref = lambda x: lax.conv_transpose(x, kernel, (2, 2), "SAME",  # noqa: E731
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    ours = jax.jit(lambda x: upconv2x(x, kernel))
    t = jnp.ones_like(x)
    np.testing.assert_allclose(np.asarray(jax.jvp(ours, (x,), (t,))[1]),
                               np.asarray(jax.jvp(ref, (x,), (t,))[1]), **TOL)
    hess = lambda f: jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(f(x) ** 3))(x)))(x)  # noqa: E731
    np.testing.assert_allclose(np.asarray(hess(ours)), np.asarray(hess(ref)), rtol=1e-4, atol=1e-4)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError):
        upconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 2)))
    with pytest.raises(ValueError):
        upconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 3, 2)), impl="nope")
