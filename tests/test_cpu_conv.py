"""UpConv2x must equal nn.ConvTranspose(k=4, s=2, "SAME") and DownConv2x nn.Conv(k=4, s=2,
padding 1) exactly: outputs, gradients, parameters. Each test runs for both layers (`LAYERS`).
conv_same (the resnet family's convolutions) must equal lax.conv_general_dilated and its gradients.

Inputs come from numpy and each test runs ONE jitted program: on CPU, compiling many small eager
ops is what makes such tests slow.
"""
import dataclasses
import itertools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxgan.models import cpu_conv
from jaxgan.models.cpu_conv import (FUSED_MAX_FEATURES, MATMUL_MIN_FEATURES, DownConv2x,
                                    UpConv2x, conv_same, downconv2x, upconv2x)

TOL = dict(rtol=1e-5, atol=1e-5)
DN = ("NHWC", "HWIO", "NHWC")


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


def _strided_conv_numpy(x, kernel):
    """y[o] = sum_t xpad[2o + t] @ w[t] per axis, xpad = x padded by 1."""
    n, h, w, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(np.float64)
    want = np.zeros((n, h // 2, w // 2, kernel.shape[-1]))
    for i, j, ty, tx in itertools.product(range(h // 2), range(w // 2), range(4), range(4)):
        want[:, i, j] += xp[:, 2 * i + ty, 2 * j + tx] @ kernel[ty, tx]
    return want


@dataclasses.dataclass(frozen=True)
class Layer:
    module: type                  # UpConv2x | DownConv2x
    op: Callable                  # upconv2x | downconv2x
    reference: Callable           # (features, use_bias, **kw) -> the flax module it must equal
    lax_op: Callable              # (x, kernel) -> the lax operator it must equal
    numpy_op: Callable            # (x, kernel) -> the definition, written out in numpy
    impls: tuple                  # the implementations every test compares
    jvp_impls: tuple              # those with plain autodiff (forward mode works)
    out_hw: Callable              # (h, w) -> output (h, w)
    # (batch, H, W, Cin, Cout, use_bias): Cin and Cout each take all of {1, 3, 8, 16}, H and W
    # several sizes (square and not), batch 1 and 3, bias on and off.
    cases: tuple
    numpy_shape: tuple            # input shape of the numpy-definition test
    bad_inputs: tuple             # ((x shape, kernel shape, impl), error text) -> ValueError


UP = Layer(
    UpConv2x, upconv2x,
    lambda f, use_bias, **kw: nn.ConvTranspose(f, kernel_size=(4, 4), strides=(2, 2),
                                               padding="SAME", use_bias=use_bias, **kw),
    lambda x, k: lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=DN),
    _conv_transpose_numpy,
    impls=("phases", "fused"),  # "auto" only picks one of these (test_up_auto_dispatch)
    jvp_impls=("phases", "fused"),
    out_hw=lambda h, w: (2 * h, 2 * w),
    cases=((1, 1, 2, 1, 3, False), (3, 4, 7, 3, 16, True), (1, 8, 8, 16, 1, True),
           (3, 7, 1, 8, 8, False), (3, 2, 4, 16, 3, True), (1, 8, 7, 1, 16, False)),
    numpy_shape=(2, 3, 5, 3),
    bad_inputs=((((1, 4, 4, 3), (3, 3, 3, 2), "auto"), r"expects a \(4, 4, Cin, Cout\) kernel"),
                (((1, 4, 4, 3), (4, 4, 2, 2), "auto"), "kernel in-features 2 != input features 3"),
                (((4, 4, 3), (4, 4, 3, 2), "auto"), "expects NHWC input"),
                (((1, 4, 4, 3), (4, 4, 3, 2), "nope"), "unknown impl 'nope'")),
)

DOWN = Layer(
    DownConv2x, downconv2x,
    lambda f, use_bias, **kw: nn.Conv(f, kernel_size=(4, 4), strides=(2, 2),
                                      padding=((1, 1), (1, 1)), use_bias=use_bias, **kw),
    lambda x, k: lax.conv_general_dilated(x, k, (2, 2), ((1, 1), (1, 1)), dimension_numbers=DN),
    _strided_conv_numpy,
    impls=("fused", "phases", "s2d", "auto"),
    jvp_impls=("s2d",),  # "fused" / "phases" are custom VJPs: reverse mode only
    out_hw=lambda h, w: (h // 2, w // 2),
    cases=((1, 2, 2, 1, 3, False), (3, 4, 8, 3, 16, True), (1, 16, 16, 16, 1, True),
           (3, 8, 2, 8, 8, False), (3, 16, 4, 16, 3, True), (1, 8, 16, 1, 16, False)),
    numpy_shape=(2, 6, 4, 3),
    bad_inputs=((((1, 5, 4, 3), (4, 4, 3, 2), "auto"), r"needs even H and W, got \(5, 4\)"),
                (((1, 4, 4, 3), (3, 3, 3, 2), "auto"), r"expects a \(4, 4, Cin, Cout\) kernel"),
                (((1, 4, 4, 3), (4, 4, 2, 2), "auto"), "kernel in-features 2 != input features 3"),
                (((1, 4, 4, 3), (4, 4, 3, 2), "nope"), "unknown impl 'nope'")),
)
LAYERS = {"up": UP, "down": DOWN}
by_layer = pytest.mark.parametrize("layer", LAYERS.values(), ids=LAYERS.keys())


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


@pytest.mark.parametrize("layer, case", [(layer, case) for layer in LAYERS.values()
                                         for case in layer.cases],
                         ids=[f"{name}-{'-'.join(map(str, case))}"
                              for name, layer in LAYERS.items() for case in layer.cases])
def test_matches_flax_layer_outputs_and_gradients(layer, case):
    batch, h, w, cin, cout, use_bias = case
    rng = np.random.default_rng([batch, h, w, cin, cout])
    x = _normal(rng, (batch, h, w, cin))
    out_shape = (batch, *layer.out_hw(h, w), cout)
    cot = _normal(rng, out_shape)
    params = {"kernel": _normal(rng, (4, 4, cin, cout))}
    if use_bias:  # non-zero, so that the bias gradient and broadcasting are really checked
        params["bias"] = _normal(rng, (cout,))
    modules = {"ref": layer.reference(cout, use_bias)}
    modules.update({impl: layer.module(cout, use_bias=use_bias, impl=impl)
                    for impl in layer.impls})

    results = jax.jit(lambda p, x, c: {k: _fwd_and_grads(m, p, x, c) for k, m in modules.items()}
                      )(params, x, cot)
    y_ref, (gp_ref, gx_ref) = results.pop("ref")
    assert y_ref.shape == out_shape
    for impl, (y, (gp, gx)) in results.items():
        assert y.shape == y_ref.shape and y.dtype == jnp.float32, impl
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL, err_msg=impl)
        assert gx.shape == x.shape and gx.dtype == jnp.float32, impl
        np.testing.assert_allclose(np.asarray(gx), np.asarray(gx_ref), **TOL, err_msg=impl)
        _assert_trees_close(gp, gp_ref, **TOL)


@by_layer
def test_param_tree_and_init_match(layer):
    """Same names, shapes, dtypes and (same key, same initialisers) the same values, with the
    default initialisers (lecun_normal / zeros) and with custom ones and bf16 param_dtype."""
    x = jnp.ones((2, 4, 4, 3))
    custom = dict(kernel_init=nn.initializers.normal(0.02), bias_init=nn.initializers.ones,
                  param_dtype=jnp.bfloat16)
    configs = {"no bias": (False, {}), "bias": (True, {}), "custom": (True, custom)}

    @jax.jit
    def init_all(key):  # one compiled program: eager initialisers compile slowly
        return {name: (layer.reference(8, use_bias, **kw).init(key, x)["params"],
                       layer.module(8, use_bias=use_bias, **kw).init(key, x)["params"])
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


@by_layer
def test_matches_numpy_definition(layer):
    rng = np.random.default_rng(0)
    x, kernel = _normal(rng, layer.numpy_shape), _normal(rng, (4, 4, 3, 2))
    expected = layer.numpy_op(x, kernel)
    ys = jax.jit(lambda x, k: {impl: layer.op(x, k, impl=impl) for impl in layer.impls}
                 | {"lax": layer.lax_op(x, k)})(x, kernel)  # "lax" guards the test itself
    for name, y in ys.items():
        np.testing.assert_allclose(np.asarray(y), expected, **TOL, err_msg=name)


@pytest.mark.parametrize("layer, cout", [(layer, cout) for layer in LAYERS.values()
                                         for cout in (3, 16)],
                         ids=[f"{name}-{cout}" for name in LAYERS for cout in (3, 16)])
def test_bfloat16_compute(layer, cout):
    rng = np.random.default_rng(cout)
    x = _normal(rng, (3, 4, 8, 8))
    params = {"kernel": 0.1 * _normal(rng, (4, 4, 8, cout)), "bias": _normal(rng, (cout,))}
    modules = {"ref": layer.reference(cout, True, dtype=jnp.bfloat16)}
    modules.update({impl: layer.module(cout, use_bias=True, dtype=jnp.bfloat16, impl=impl)
                    for impl in ("auto",) + layer.impls})

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
        assert y.shape == (3, *layer.out_hw(4, 8), cout) and y.dtype == jnp.bfloat16, name
        np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(y_ref, np.float32),
                                   rtol=5e-2, atol=5e-2, err_msg=name)
        # Gradients reach the float32 params and input in float32.
        for g, gr in zip(jax.tree_util.tree_leaves((gp, gx)), jax.tree_util.tree_leaves(g_ref)):
            assert g.dtype == gr.dtype == jnp.float32, name
            np.testing.assert_allclose(np.asarray(g), np.asarray(gr), rtol=5e-2, atol=2e-1)


@by_layer
def test_batch_dims_like_the_flax_layer(layer):
    """Unbatched and multi-batch-dim inputs are handled as the flax layer handles them."""
    rng = np.random.default_rng(1)
    params = {"kernel": _normal(rng, (4, 4, 2, 5))}
    for shape in [(4, 6, 2), (2, 3, 4, 6, 2)]:
        x = _normal(rng, shape)
        y_ref, y = jax.jit(lambda p, x: (layer.reference(5, False).apply({"params": p}, x),
                                         layer.module(5).apply({"params": p}, x)))(params, x)
        assert y.shape == y_ref.shape == shape[:-3] + (*layer.out_hw(*shape[-3:-1]), 5)
        np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), **TOL)


@by_layer
def test_forward_mode_and_second_order(layer):
    """grad-of-grad works for every implementation (custom VJPs included), jvp for those with
    plain autodiff; both match the lax operator's."""
    rng = np.random.default_rng(2)
    x, kernel = _normal(rng, (1, 4, 6, 2)), _normal(rng, (4, 4, 2, 3))

    def grad_of_grad(f):
        return jax.grad(lambda k: jnp.sum(jax.grad(
            lambda x: jnp.sum(jnp.tanh(f(x, k))))(x) ** 2))(kernel)

    def jvp(f):
        return jax.jvp(lambda x: f(x, kernel), (x,), (jnp.ones_like(x),))[1]

    impls = {impl: (lambda x, k, i=impl: layer.op(x, k, impl=i)) for impl in layer.impls}
    got, want = jax.jit(lambda: (
        [grad_of_grad(f) for f in impls.values()] + [jvp(impls[i]) for i in layer.jvp_impls],
        [grad_of_grad(layer.lax_op)] * len(impls) + [jvp(layer.lax_op)] * len(layer.jvp_impls)))()
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layer, shapes, message",
                         [(layer, shapes, message) for layer in LAYERS.values()
                          for shapes, message in layer.bad_inputs],
                         ids=[f"{name}-{i}" for name, layer in LAYERS.items()
                              for i in range(len(layer.bad_inputs))])
def test_rejects_bad_inputs(layer, shapes, message):
    x_shape, kernel_shape, impl = shapes
    with pytest.raises(ValueError, match=message):
        layer.op(jnp.ones(x_shape), jnp.ones(kernel_shape), impl=impl)


# --------------------------------------------------------------------------- UpConv2x only

def lax_conv_transpose(x, kernel):
    return UP.lax_op(x, kernel)


def test_up_single_tap_mapping():
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
    ys = jax.jit(lambda x, k: {impl: upconv2x(x, k, impl=impl) for impl in UP.impls}
                 | {"lax": lax_conv_transpose(x, k)})(x, kernel)
    for name, y in ys.items():
        np.testing.assert_array_equal(np.asarray(y), expected, err_msg=name)


def _num_convs(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return sum(e.primitive.name == "conv_general_dilated" for e in jaxpr.eqns)


def test_up_auto_dispatch():
    x = jnp.ones((1, 2, 2, 3))
    for cout, n_convs in [(1, 1), (FUSED_MAX_FEATURES, 1), (FUSED_MAX_FEATURES + 1, 4)]:
        kernel = jnp.ones((4, 4, 3, cout))
        assert _num_convs(lambda x, k: upconv2x(x, k), x, kernel) == n_convs
        assert _num_convs(lambda x, k: upconv2x(x, k, impl="fused"), x, kernel) == 1
        assert _num_convs(lambda x, k: upconv2x(x, k, impl="phases"), x, kernel) == 4


# conv_same: the resnet family's stride-1 "SAME" convolutions with the matmul kernel gradient.

def _conv_same_gradients(conv, x, kernel, dy):
    def loss(x, kernel):
        return jnp.sum(conv(x, kernel) * dy)
    return jax.jit(lambda x, k: (conv(x, k),) + jax.grad(loss, (0, 1))(x, k))(x, kernel)


@pytest.fixture
def products_for_any_size(monkeypatch):
    """The per-tap products for the small inputs below too (they start at MATMUL_MIN_INPUT)."""
    monkeypatch.setattr(cpu_conv, "MATMUL_MIN_INPUT", 0)


def _kernel_grad_products(x_shape, cout=8):
    """How many matrix products conv_same's kernel gradient takes for an input of x_shape."""
    x, kernel = jnp.ones(x_shape), jnp.ones((3, 3, x_shape[-1], cout))
    jaxpr = jax.make_jaxpr(jax.grad(lambda k: conv_same(
        x, k, (1, 1), "SAME", dimension_numbers=DN).sum()))(kernel).jaxpr
    return sum(e.primitive.name == "dot_general" for e in jaxpr.eqns)


def test_conv_same_uses_products_from_its_input_size_on():
    # Below MATMUL_MIN_INPUT values per image XLA's own kernel gradient was the faster.
    limit = cpu_conv.MATMUL_MIN_INPUT
    assert _kernel_grad_products((2, 32, 32, limit // 1024 - 1)) == 0
    assert _kernel_grad_products((2, 32, 32, limit // 1024)) == 9  # one per tap
    assert _kernel_grad_products((2, 32, 32, limit // 1024), cout=MATMUL_MIN_FEATURES - 1) == 0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_conv_same_equals_xla_convolution_and_its_gradients(k, products_for_any_size):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(3, 6, 5, 4)).astype(np.float32)
    kernel = rng.normal(size=(k, k, 4, 8)).astype(np.float32)
    dy = rng.normal(size=(3, 6, 5, 8)).astype(np.float32)
    ours = _conv_same_gradients(
        lambda x, w: conv_same(x, w, (1, 1), "SAME", dimension_numbers=DN), x, kernel, dy)
    xla = _conv_same_gradients(
        lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN),
        x, kernel, dy)
    # Forward and input gradient are XLA's own ops; the kernel gradient, summed in another order.
    np.testing.assert_array_equal(ours[0], xla[0])
    np.testing.assert_array_equal(ours[1], xla[1])
    np.testing.assert_allclose(ours[2], xla[2], **TOL)
    # And the kernel gradient by its definition: dK[i, j] = sum over pixels of xpad * dy.
    pad = k // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    expected = np.stack([np.einsum("bhwc,bhwd->cd", xp[:, i:i + 6, j:j + 5], dy)
                         for i in range(k) for j in range(k)]).reshape(kernel.shape)
    np.testing.assert_allclose(ours[2], expected, **TOL)


def test_conv_same_in_flax_conv_and_fallback_for_other_convolutions(products_for_any_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    assert conv_same(x, np.ones((3, 3, 3, 8), np.float32), (1, 1), "SAME", dimension_numbers=DN
                     ).shape == (2, 8, 8, 8)
    for kwargs in (dict(kernel_size=(3, 3), padding="SAME"),
                   dict(kernel_size=(3, 3), padding="SAME", strides=(2, 2)),  # falls back
                   dict(kernel_size=(4, 4), padding="SAME"),  # even kernel: falls back
                   dict(kernel_size=(3, 3), padding="VALID")):  # falls back
        ours, reference = (nn.Conv(8, **kwargs, conv_general_dilated=conv_same), nn.Conv(8, **kwargs))
        params = reference.init(jax.random.key(0), x)
        assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
            jnp.shape, params)
        grads = [jax.jit(jax.grad(lambda p, x: jnp.sum(jnp.tanh(m.apply(p, x))), (0, 1)))(params, x)
                 for m in (ours, reference)]
        for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
            np.testing.assert_allclose(a, b, **TOL)
