"""No left or right is built into the networks or the step: one training step on mirrored images
from mirrored weights gives the mirrored weights (the resnet's coloured border frames seen on
the drawn folder, issue 30, are learned, not put there by padding, resampling or the CPU
convolution rewrites: every one of those is in this step).

Mirroring an image (reversing its columns) and every convolution kernel's columns commutes with
zero-padded convolutions of symmetric padding, with UpConv2x / DownConv2x (k 4, s 2, pad 1),
nearest-neighbour upsampling and 2x2 average pooling, and leaves per-channel quantities
(BatchNorm, spectral norm's per-output vectors, projections) alone; the Dense layer that G
reshapes to 4x4xC needs its outputs' columns reversed too. Plain SGD keeps the update linear in
the gradient, so the two runs differ by float rounding only (tests/helpers.rounding_bound)."""
import jax
import numpy as np
import pytest
from conftest import tiny_config
from helpers import rounding_bound, run_step

SHAPE = (16, 16, 3)
NUM_CLASSES = 3
# family -> (config overrides, the name of G's Dense layer whose output is reshaped to 4x4xC)
FAMILIES = {
    "dcgan": ({"model.arch": "dcgan"}, "Dense_0"),
    "resnet": ({"model.arch": "resnet", "model.d_norm": "spectral", "train.loss": "hinge"},
               "linear"),
}


def mirrored(tree, dense_name=None):
    """Every 4-D kernel's columns reversed; the 4x4 map of `dense_name`'s outputs too (G's)."""
    def leaf(path, x):
        names = [getattr(p, "key", None) for p in path]
        x = np.asarray(x)
        if names[-1] == "kernel" and x.ndim == 4:
            return x[:, ::-1]
        if dense_name in names and names[-1] in ("kernel", "bias"):
            shape = x.shape
            return x.reshape(*shape[:-1], 4, 4, -1)[..., :, ::-1, :].reshape(shape)
        return x
    return jax.tree_util.tree_map_with_path(leaf, tree)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_mirrored_step_is_the_step_mirrored(family):
    overrides, dense_name = FAMILIES[family]
    config = tiny_config(**{
        "data.resolution": SHAPE[0], "data.channels": SHAPE[2], "train.batch_size": 4,
        "train.augment": "", "train.mode_seeking": 0.0, "train.r1_gamma": 0.0, **overrides})
    mirrors = {"g_params": lambda tree: mirrored(tree, dense_name), "d_params": mirrored,
               "ema_params": lambda tree: mirrored(tree, dense_name)}

    def mirror_start(state, batch):
        state = state.replace(**{field: mirror(getattr(state, field))
                                 for field, mirror in mirrors.items()})
        return state, dict(batch, image=np.ascontiguousarray(batch["image"][:, :, ::-1]))

    # Both runs: the same fresh state and batch (run_step's, from seed 0), plain SGD.
    one_device = jax.devices()[:1]
    plain = run_step(config, one_device, SHAPE, NUM_CLASSES)
    flipped = run_step(config, one_device, SHAPE, NUM_CLASSES, prepare=mirror_start)
    fresh, plain_metrics, flipped_metrics = plain.before, plain.metrics, flipped.metrics
    plain, flipped = plain.after, flipped.after
    bound = rounding_bound(fresh, SHAPE, 4, penalty=False)
    for name in plain_metrics:
        a, b = float(plain_metrics[name]), float(flipped_metrics[name])
        assert abs(a - b) <= bound * max(abs(a), abs(b), 1.0), (name, a, b)
    for field in ("g_params", "d_params", "ema_params", "g_stats", "d_stats"):
        # The step's change of each leaf (the update, lr x gradient, or the statistics' move)
        # mirrored back equals the plain step's change, up to the rounding bound of its size.
        moved_plain = jax.tree.map(np.subtract, getattr(plain, field), getattr(fresh, field))
        mirror = mirrors.get(field, lambda tree: tree)  # statistics are per channel
        moved_flipped = jax.tree.map(np.subtract, getattr(flipped, field),
                                     mirror(getattr(fresh, field)))
        moved_flipped = mirror(moved_flipped)  # mirroring is its own inverse
        # A change that cancels (a bias right before a BatchNorm has a gradient that is rounding
        # only) is held to its share of the whole network's: the floor tests/helpers uses.
        leaves = jax.tree.leaves(moved_plain)
        network = np.sqrt(sum(np.sum(np.square(x, dtype=np.float64)) for x in leaves))
        total = sum(x.size for x in leaves)
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(moved_plain)[0],
                                jax.tree.leaves(moved_flipped)):
            gap = np.linalg.norm(np.asarray(a, np.float64) - b)
            size = max(np.linalg.norm(a), np.linalg.norm(b))
            floor = bound * network * np.sqrt(a.size / total)
            assert gap <= bound * size + floor, (
                f"{family} {field}{jax.tree_util.keystr(path)}: mirrored step differs by "
                f"{gap:.3g}, allowed {bound:.3g} x {size:.3g} + {floor:.3g}")


def test_mirroring_does_not_commute_with_one_sided_padding():
    """What the test above would catch: the same convolution padded on one side only (as
    'SAME' pads an even kernel, or an off-by-one in a rewrite would) is not mirror-symmetric,
    while symmetric padding is, to float rounding (a sum of n = 18 products: 2nu x sum |t|)."""
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 2)).astype(np.float32)
    kernel = np.random.default_rng(1).normal(size=(3, 3, 2, 2)).astype(np.float32)
    conv = lambda x, k, pad: np.asarray(jax.lax.conv_general_dilated(
        x, k, (1, 1), pad, dimension_numbers=("NHWC", "HWIO", "NHWC")))
    u = np.finfo(np.float32).eps / 2
    for pad, symmetric in ((((1, 1), (1, 1)), True), (((1, 1), (0, 2)), False)):
        mirrored_conv = conv(x[:, :, ::-1], kernel[:, ::-1], pad)[:, :, ::-1]
        allowed = 2 * 18 * u * conv(np.abs(x), np.abs(kernel), pad)
        assert np.all(np.abs(mirrored_conv - conv(x, kernel, pad)) <= allowed) == symmetric
