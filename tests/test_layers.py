"""UpConv2x must equal nn.ConvTranspose(k=4, s=2, "SAME") exactly: outputs, gradients, params.

Inputs come from numpy and each test runs ONE jitted program: on CPU, compiling many small eager
ops is what makes such tests slow.
"""
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgan.models.layers import FUSED_MAX_FEATURES, UpConv2x, upconv2x

TOL = dict(rtol=1e-5, atol=1e-5)
IMPLS = ("phases", "fused")  # "auto" only picks one of these (test_auto_dispatch)
DN = ("NHWC", "HWIO", "NHWC")


def reference(features, use_bias, **kw):
    return nn.ConvTranspose(features, kernel_size=(4, 4), strides=(2, 2), padding="SAME",
                            use_bias=use_bias, **kw)


def lax_reference(x, kernel):
    return lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=DN)


def _normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _fwd_and_grads(module, params, x, cot):
    """Output and the gradients of <module(x), cot> w.r.t. params and x."""
    def loss(p, x):
        return jnp.sum(module.apply({"params": p}, x) * cot)

    return module.apply({"params": params}, x), jax.grad(loss, argnums=(0, 1))(params, x)


def _assert_trees_close(a, b, **tol):
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), **tol)


# (batch, H, W, Cin, Cout, use_bias): Cin and Cout each take all of {1, 3, 8, 16}, H and W all
# of {1, 2, 4, 7, 8} (square and not), batch 1 and 3, bias on and off.
CASES = [
    (1, 1, 2, 1, 3, False),
    (3, 4, 7, 3, 16, True),
    (1, 8, 8, 16, 1, True),
    (3, 7, 1, 8, 8, False),
    (3, 2, 4, 16, 3, True),
    (1, 8, 7, 1, 16, False),
]


@pytest.mark.parametrize("batch,h,w,cin,cout,use_bias", CASES)
def test_matches_conv_transpose(batch, h, w, cin, cout, use_bias):
    rng = np.random.default_rng([batch, h, w, cin, cout])
    x = _normal(rng, (batch, h, w, cin))
    cot = _normal(rng, (batch, 2 * h, 2 * w, cout))
    params = {"kernel": _normal(rng, (4, 4, cin, cout))}
    if use_bias:  # non-zero, so that the bias gradient and broadcasting are really checked
        params["bias"] = _normal(rng, (cout,))
    modules = {"ref": reference(cout, use_bias)}
    modules.update({impl: UpConv2x(cout, use_bias=use_bias, impl=impl) for impl in IMPLS})

    results = jax.jit(lambda p, x, c: {k: _fwd_and_grads(m, p, x, c) for k, m in modules.items()}
                      )(params, x, cot)
    y_ref, (gp_ref, gx_ref) = results.pop("ref")
    assert y_ref.shape == (batch, 2 * h, 2 * w, cout)
    for impl, (y, (gp, gx)) in results.items():
        assert y.shape == y_ref.shape and y.dtype == jnp.float32, impl
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL, err_msg=impl)
        np.testing.assert_allclose(np.asarray(gx), np.asarray(gx_ref), **TOL, err_msg=impl)
        _assert_trees_close(gp, gp_ref, **TOL)


def test_param_tree_and_init_match():
    """Same names, shapes, dtypes and (same key, same initialisers) the same values, with the
    default initialisers (lecun_normal / zeros) and with custom ones and bf16 param_dtype."""
    x = jnp.ones((2, 4, 4, 3))
    custom = dict(kernel_init=nn.initializers.normal(0.02), bias_init=nn.initializers.ones,
                  param_dtype=jnp.bfloat16)
    configs = {"no bias": (False, {}), "bias": (True, {}), "custom": (True, custom)}

    @jax.jit
    def init_all(key):  # one compiled program: eager initialisers compile slowly
        return {name: (reference(8, use_bias, **kw).init(key, x)["params"],
                       UpConv2x(8, use_bias=use_bias, **kw).init(key, x)["params"])
                for name, (use_bias, kw) in configs.items()}

    for name, (p_ref, p) in init_all(jax.random.key(7)).items():
        use_bias, kw = configs[name]
        expected = {"kernel": (4, 4, 3, 8)} | ({"bias": (8,)} if use_bias else {})
        assert jax.tree_util.tree_map(jnp.shape, dict(p)) == expected, name
        dtype = kw.get("param_dtype", jnp.float32)
        assert all(v.dtype == dtype for v in jax.tree_util.tree_leaves(p)), name
        _assert_trees_close(dict(p), dict(p_ref), rtol=0, atol=0)
        assert float(jnp.std(p["kernel"].astype(jnp.float32))) > 0.01, name  # really random
        if use_bias:
            assert float(jnp.abs(p["bias"]).max()) == (1.0 if kw else 0.0), name


def _conv_transpose_numpy(x, kernel):
    """Direct definition, per axis: out[2i + 2 - t] += x[i] @ w[t] for o in [0, 2H).

    (The full (2H + 2)-long scatter with the spatially flipped kernel, cropped by 1 on each side;
    the kernel is used unflipped as a correlation because transpose_kernel=False.)
    """
    n, h, w, _ = x.shape
    full = np.zeros((n, 2 * h + 2, 2 * w + 2, kernel.shape[-1]))
    for i, j, ty, tx in itertools.product(range(h), range(w), range(4), range(4)):
        full[:, 2 * i + 3 - ty, 2 * j + 3 - tx] += x[:, i, j] @ kernel[ty, tx]
    return full[:, 1:-1, 1:-1]


def test_single_tap_mapping():
    """One input pixel, 16 output channels each holding one kernel tap: every tap must land
    exactly at y[2i + 2 - ty, 2j + 2 - tx]. Fails for any off-by-one or flipped kernel."""
    h, w, (i, j) = 4, 5, (1, 2)
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, i, j, 0] = 1.0
    kernel = np.zeros((4, 4, 1, 16), np.float32)
    expected = np.zeros((1, 2 * h, 2 * w, 16), np.float32)
    for ty, tx in itertools.product(range(4), range(4)):
        kernel[ty, tx, 0, 4 * ty + tx] = 1.0
        expected[0, 2 * i + 2 - ty, 2 * j + 2 - tx, 4 * ty + tx] = 1.0
    ys = jax.jit(lambda x, k: {impl: upconv2x(x, k, impl=impl) for impl in IMPLS}
                 | {"lax": lax_reference(x, k)})(x, kernel)
    for name, y in ys.items():
        np.testing.assert_array_equal(np.asarray(y), expected, err_msg=name)


def test_matches_numpy_definition():
    rng = np.random.default_rng(0)
    x, kernel = _normal(rng, (2, 3, 5, 3)), _normal(rng, (4, 4, 3, 2))
    expected = _conv_transpose_numpy(x, kernel)
    ys = jax.jit(lambda x, k: {impl: upconv2x(x, k, impl=impl) for impl in IMPLS}
                 | {"lax": lax_reference(x, k)})(x, kernel)  # "lax" guards the test itself
    for name, y in ys.items():
        np.testing.assert_allclose(np.asarray(y), expected, **TOL, err_msg=name)


def _num_convs(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return sum(e.primitive.name == "conv_general_dilated" for e in jaxpr.eqns)


def test_auto_dispatch():
    x = jnp.ones((1, 2, 2, 3))
    for cout, n_convs in [(1, 1), (FUSED_MAX_FEATURES, 1), (FUSED_MAX_FEATURES + 1, 4)]:
        kernel = jnp.ones((4, 4, 3, cout))
        assert _num_convs(lambda x, k: upconv2x(x, k), x, kernel) == n_convs
        assert _num_convs(lambda x, k: upconv2x(x, k, impl="fused"), x, kernel) == 1
        assert _num_convs(lambda x, k: upconv2x(x, k, impl="phases"), x, kernel) == 4


@pytest.mark.parametrize("cout", [3, 16])
def test_bfloat16_compute(cout):
    rng = np.random.default_rng(cout)
    x = _normal(rng, (3, 4, 8, 8))
    params = {"kernel": 0.1 * _normal(rng, (4, 4, 8, cout)), "bias": _normal(rng, (cout,))}
    modules = {"ref": reference(cout, True, dtype=jnp.bfloat16)}
    modules.update({impl: UpConv2x(cout, use_bias=True, dtype=jnp.bfloat16, impl=impl)
                    for impl in ("auto",) + IMPLS})

    def run(params, x):
        out = {}
        for name, m in modules.items():
            loss = lambda p: jnp.sum(m.apply({"params": p}, x).astype(jnp.float32))  # noqa: E731
            out[name] = (m.apply({"params": params}, x), jax.grad(loss)(params))
        return out

    results = jax.jit(run)(params, x)
    y_ref, g_ref = results.pop("ref")
    assert y_ref.dtype == jnp.bfloat16
    for name, (y, grads) in results.items():
        assert y.shape == (3, 8, 16, cout) and y.dtype == jnp.bfloat16, name
        assert bool(jnp.all(jnp.isfinite(y))), name
        np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32),
                                   rtol=5e-2, atol=5e-2, err_msg=name)
        # Gradients reach the float32 params in float32.
        for g, gr in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(g_ref)):
            assert g.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(g))), name
            np.testing.assert_allclose(np.asarray(g), np.asarray(gr), rtol=5e-2, atol=2e-1)


def test_batch_dims_like_conv_transpose():
    """Unbatched and multi-batch-dim inputs are handled as nn.ConvTranspose handles them."""
    rng = np.random.default_rng(1)
    params = {"kernel": _normal(rng, (4, 4, 2, 5))}
    for shape in [(4, 3, 2), (2, 3, 4, 3, 2)]:
        x = _normal(rng, shape)
        y_ref, y = jax.jit(lambda p, x: (reference(5, False).apply({"params": p}, x),
                                         UpConv2x(5).apply({"params": p}, x)))(params, x)
        assert y.shape == y_ref.shape == shape[:-3] + (2 * shape[-3], 2 * shape[-2], 5)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)


def test_forward_mode_and_second_order():
    """Plain autodiff (no custom VJP): jvp and grad-of-grad work and match."""
    rng = np.random.default_rng(2)
    x, kernel = _normal(rng, (1, 3, 3, 2)), _normal(rng, (4, 4, 2, 3))

    def derivatives(f):
        jvp = jax.jvp(lambda x: f(x, kernel), (x,), (jnp.ones_like(x),))[1]
        grad_of_grad = jax.grad(lambda k: jnp.sum(jax.grad(
            lambda x: jnp.sum(jnp.tanh(f(x, k))))(x) ** 2))(kernel)
        return jvp, grad_of_grad

    got, want = jax.jit(lambda: (derivatives(upconv2x), derivatives(lax_reference)))()
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


def test_rejects_bad_inputs():
    with pytest.raises(ValueError):
        upconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 2)))
    with pytest.raises(ValueError):
        upconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 2, 2)))
    with pytest.raises(ValueError):
        upconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 3, 2)), impl="nope")


# ---------------------------------------------------------------------------------------------
# DownConv2x must equal nn.Conv(k=4, s=2, padding=1) exactly: outputs, gradients, params.
# ---------------------------------------------------------------------------------------------
from jaxgan.models.layers import DownConv2x, downconv2x  # noqa: E402

DOWN_IMPLS = ("fused", "phases", "s2d", "auto")


def down_reference(features, use_bias, **kw):
    return nn.Conv(features, kernel_size=(4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                   use_bias=use_bias, **kw)


# (batch, H, W, Cin, Cout, use_bias): Cin and Cout each take all of {1, 3, 8, 16}, H and W all
# of {2, 4, 8, 16} (square and not), batch 1 and 3, bias on and off.
DOWN_CASES = [
    (1, 2, 2, 1, 3, False),
    (3, 4, 8, 3, 16, True),
    (1, 16, 16, 16, 1, True),
    (3, 8, 2, 8, 8, False),
    (3, 16, 4, 16, 3, True),
    (1, 8, 16, 1, 16, False),
]


@pytest.mark.parametrize("batch,h,w,cin,cout,use_bias", DOWN_CASES)
def test_down_matches_conv(batch, h, w, cin, cout, use_bias):
    rng = np.random.default_rng([batch, h, w, cin, cout, 2])
    x = _normal(rng, (batch, h, w, cin))
    cot = _normal(rng, (batch, h // 2, w // 2, cout))
    params = {"kernel": _normal(rng, (4, 4, cin, cout))}
    if use_bias:
        params["bias"] = _normal(rng, (cout,))
    modules = {"ref": down_reference(cout, use_bias)}
    modules.update({impl: DownConv2x(cout, use_bias=use_bias, impl=impl) for impl in DOWN_IMPLS})

    results = jax.jit(lambda p, x, c: {k: _fwd_and_grads(m, p, x, c) for k, m in modules.items()}
                      )(params, x, cot)
    y_ref, (gp_ref, gx_ref) = results.pop("ref")
    assert y_ref.shape == (batch, h // 2, w // 2, cout)
    for impl, (y, (gp, gx)) in results.items():
        assert y.shape == y_ref.shape and y.dtype == jnp.float32, impl
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL, err_msg=impl)
        assert gx.shape == x.shape and gx.dtype == jnp.float32, impl
        np.testing.assert_allclose(np.asarray(gx), np.asarray(gx_ref), **TOL, err_msg=impl)
        _assert_trees_close(gp, gp_ref, **TOL)


def test_down_param_tree_and_init_match():
    x = jnp.ones((2, 4, 4, 3))
    custom = dict(kernel_init=nn.initializers.normal(0.02), bias_init=nn.initializers.ones,
                  param_dtype=jnp.bfloat16)
    configs = {"no bias": (False, {}), "bias": (True, {}), "custom": (True, custom)}

    @jax.jit
    def init_all(key):
        return {name: (down_reference(8, use_bias, **kw).init(key, x)["params"],
                       DownConv2x(8, use_bias=use_bias, **kw).init(key, x)["params"])
                for name, (use_bias, kw) in configs.items()}

    for name, (p_ref, p) in init_all(jax.random.key(7)).items():
        use_bias, kw = configs[name]
        expected = {"kernel": (4, 4, 3, 8)} | ({"bias": (8,)} if use_bias else {})
        assert jax.tree_util.tree_map(jnp.shape, dict(p)) == expected, name
        dtype = kw.get("param_dtype", jnp.float32)
        assert all(v.dtype == dtype for v in jax.tree_util.tree_leaves(p)), name
        _assert_trees_close(dict(p), dict(p_ref), rtol=0, atol=0)
        assert float(jnp.std(p["kernel"].astype(jnp.float32))) > 0.01, name
        if use_bias:
            assert float(jnp.abs(p["bias"]).max()) == (1.0 if kw else 0.0), name


def test_down_matches_numpy_definition():
    """y[o] = sum_t xpad[2o + t] @ w[t] per axis, written out with numpy."""
    rng = np.random.default_rng(5)
    x, kernel = _normal(rng, (2, 6, 4, 3)), _normal(rng, (4, 4, 3, 2))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64)
    want = np.zeros((2, 3, 2, 2))
    for i, j, ty, tx in itertools.product(range(3), range(2), range(4), range(4)):
        want[:, i, j] += xp[:, 2 * i + ty, 2 * j + tx] @ kernel[ty, tx]
    got = jax.jit(lambda x, k: [downconv2x(x, k, impl=i) for i in DOWN_IMPLS])(x, kernel)
    for impl, y in zip(DOWN_IMPLS, got):
        np.testing.assert_allclose(np.asarray(y), want, **TOL, err_msg=impl)


@pytest.mark.parametrize("cout", [3, 16])
def test_down_bfloat16_compute(cout):
    rng = np.random.default_rng(cout + 100)
    x = _normal(rng, (3, 8, 16, 8))
    params = {"kernel": 0.1 * _normal(rng, (4, 4, 8, cout)), "bias": _normal(rng, (cout,))}
    modules = {"ref": down_reference(cout, True, dtype=jnp.bfloat16)}
    modules.update({impl: DownConv2x(cout, use_bias=True, dtype=jnp.bfloat16, impl=impl)
                    for impl in DOWN_IMPLS})

    def run(params, x):
        out = {}
        for name, m in modules.items():
            def loss(p, x, m=m):
                return jnp.sum(m.apply({"params": p}, x).astype(jnp.float32))
            out[name] = (m.apply({"params": params}, x), jax.grad(loss, argnums=(0, 1))(params, x))
        return out

    results = jax.jit(run)(params, x)
    y_ref, g_ref = results.pop("ref")
    assert y_ref.dtype == jnp.bfloat16
    for name, (y, (gp, gx)) in results.items():
        assert y.shape == (3, 4, 8, cout) and y.dtype == jnp.bfloat16, name
        assert bool(jnp.all(jnp.isfinite(y))), name
        np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32),
                                   rtol=5e-2, atol=5e-2, err_msg=name)
        assert gx.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(gx))), name
        for g, gr in zip(jax.tree_util.tree_leaves((gp, gx)), jax.tree_util.tree_leaves(g_ref)):
            assert g.dtype == gr.dtype and bool(jnp.all(jnp.isfinite(g))), name
            np.testing.assert_allclose(np.asarray(g), np.asarray(gr), rtol=5e-2, atol=2e-1)


def test_down_batch_dims_like_conv():
    rng = np.random.default_rng(3)
    params = {"kernel": _normal(rng, (4, 4, 2, 5))}
    for shape in [(4, 6, 2), (2, 3, 4, 6, 2)]:
        x = _normal(rng, shape)
        y_ref, y = jax.jit(lambda p, x: (down_reference(5, False).apply({"params": p}, x),
                                         DownConv2x(5).apply({"params": p}, x)))(params, x)
        assert y.shape == y_ref.shape == shape[:-3] + (shape[-3] // 2, shape[-2] // 2, 5)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)


def test_down_second_order():
    """grad-of-grad through the custom VJP (and jvp through plain-autodiff "s2d") match."""
    rng = np.random.default_rng(4)
    x, kernel = _normal(rng, (1, 4, 6, 2)), _normal(rng, (4, 4, 2, 3))

    def ref(x, k):
        return lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN)

    def grad_of_grad(f):
        return jax.grad(lambda k: jnp.sum(jax.grad(
            lambda x: jnp.sum(jnp.tanh(f(x, k))))(x) ** 2))(kernel)

    def jvp(f):
        return jax.jvp(lambda x: f(x, kernel), (x,), (jnp.ones_like(x),))[1]

    impls = [lambda x, k, i=i: downconv2x(x, k, impl=i) for i in ("fused", "phases", "s2d")]
    got, want = jax.jit(lambda: ([grad_of_grad(f) for f in impls] + [jvp(impls[2])],
                                 [grad_of_grad(ref)] * 3 + [jvp(ref)]))()
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


def test_down_rejects_bad_inputs():
    with pytest.raises(ValueError):  # odd H
        downconv2x(jnp.ones((1, 5, 4, 3)), jnp.ones((4, 4, 3, 2)))
    with pytest.raises(ValueError):
        downconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 3, 2)))
    with pytest.raises(ValueError):
        downconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 2, 2)))
    with pytest.raises(ValueError):
        downconv2x(jnp.ones((1, 4, 4, 3)), jnp.ones((4, 4, 3, 2)), impl="nope")
