"""Parity with the reference implementations, where they are installed (`pip install -e
".[parity]"`; skipped otherwise): pytorch-fid's Inception (random weights, saved by torch.save in
both formats and read by jaxgan's torch-free loader) and torch-fidelity's KID and IS.

A 299-px Inception forward costs ~6 GFLOP per image: these tests use eight images in all.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _import_torchvision():
    """torchvision, even where its C++ ops do not load next to a CPU-only torch (the registry's
    torchvision 0.28 with torch 2.13+cpu): pytorch-fid's Inception needs none of those ops, but
    torchvision's import registers fake kernels for nms/qnms, which then must exist as schemas."""
    try:
        import torchvision
        return torchvision
    except RuntimeError as error:
        if "torchvision::nms" not in str(error):
            raise
    import sys
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    library = torch.library.Library("torchvision", "DEF")  # noqa: F841 (kept alive below)
    for op in ("nms", "qnms"):
        library.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _import_torchvision.library = library
    import torchvision
    return torchvision


torchvision = _import_torchvision()
pytorch_fid_inception = pytest.importorskip("pytorch_fid.inception")

from jaxgan.evaluation import features, metrics, weights  # noqa: E402


def random_fid_state_dict(seed=0):
    """The FID Inception's state dict (torchvision Inception3, 1008 classes, no aux head; the FID
    blocks have the same parameters) with He-scaled random weights and perturbed BatchNorm."""
    torch.manual_seed(seed)
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None,
                                          init_weights=False)
    state = {}
    for name, t in net.state_dict().items():
        if name.endswith("conv.weight"):
            t = torch.randn_like(t) * (2.0 / t[0].numel()) ** 0.5
        elif name.endswith(("bn.weight", "running_var")):
            t = torch.rand_like(t) * 0.4 + 0.8
        elif name.endswith(("bn.bias", "running_mean")):
            t = torch.randn_like(t) * 0.1
        elif name == "fc.weight":
            t = torch.randn_like(t) * 0.02
        elif name == "fc.bias":
            t = torch.randn_like(t) * 0.1
        state[name] = t
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    state = random_fid_state_dict()
    original = pytorch_fid_inception.load_state_dict_from_url
    pytorch_fid_inception.load_state_dict_from_url = lambda *a, **k: state  # no download
    try:
        full = pytorch_fid_inception.fid_inception_v3().eval()
        pool_net = pytorch_fid_inception.InceptionV3([3]).eval()
    finally:
        pytorch_fid_inception.load_state_dict_from_url = original
    folder = tmp_path_factory.mktemp("weights")
    torch.save(state, folder / "zip.pth")
    torch.save(state, folder / "legacy.pth", _use_new_zipfile_serialization=False)
    return {"state": state, "full": full, "pool_net": pool_net, "folder": folder}


@pytest.mark.parametrize("name", ["zip.pth", "legacy.pth"])
def test_loader_reads_torch_save_output_exactly(reference, name):
    loaded = weights.read_torch_state_dict(reference["folder"] / name)
    assert set(loaded) == set(reference["state"])
    for key, value in reference["state"].items():
        np.testing.assert_array_equal(loaded[key], value.numpy())


def test_features_and_logits_match_pytorch_fid(reference):
    variables = weights.torch_to_flax(weights.read_torch_state_dict(reference["folder"] / "legacy.pth"))
    weights.check_variables(variables, "legacy.pth")
    extractor = features.InceptionExtractor(variables, weights.sha256_of(
        reference["folder"] / "legacy.pth"), per_device_batch=1)
    rng = np.random.default_rng(0)
    cases = [(size, channels) for size in (16, 32, 64, 299) for channels in (1, 3)]
    for size, channels in cases:
        images = rng.integers(0, 256, (1, size, size, channels), dtype=np.uint8)
        ours = extractor(images)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        if channels == 1:
            x = x.repeat(1, 3, 1, 1)  # as PIL's convert("RGB") in pytorch-fid's loader
        with torch.no_grad():
            pool = reference["pool_net"](x)[0][:, :, 0, 0]
            logits = reference["full"].fc(pool)  # torchvision: avgpool -> dropout (eval) -> fc
            unbiased = pool @ reference["full"].fc.weight.T  # torch-fidelity's logits_unbiased
        for got, want in ((ours["features"], pool), (ours["logits_biased"], logits),
                          (ours["logits"], unbiased)):
            want = want.numpy()
            assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want)), (size, channels)


def test_frechet_distance_equals_pytorch_fids():
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32))
    b = rng.normal(size=(400, 32)) @ rng.normal(size=(32, 32)) + 0.1
    (mu1, s1), (mu2, s2) = metrics.statistics(a), metrics.statistics(b)
    assert metrics.frechet_distance(mu1, s1, mu2, s2)[0] == pytest.approx(
        calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-6)


def test_kid_and_is_equal_torch_fidelitys():
    pytest.importorskip("torch_fidelity")
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric
    rng = np.random.default_rng(2)
    fake = rng.gamma(2.0, 0.2, size=(300, 64)).astype(np.float32)
    real = rng.gamma(2.2, 0.2, size=(320, 64)).astype(np.float32)
    theirs = kid_features_to_metric(torch.from_numpy(fake), torch.from_numpy(real),
                                    kid_subsets=10, kid_subset_size=200, verbose=False,
                                    kid_kernel="poly", kid_kernel_poly_degree=3,
                                    kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                    rng_seed=2020)
    ours = metrics.kid(fake, real, subsets=10, subset_size=200)
    assert ours["mean"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-3)
    logits = rng.normal(size=(500, 1008)).astype(np.float32) * 4
    theirs = isc_features_to_metric(torch.from_numpy(logits))
    ours = metrics.inception_score(logits)
    assert ours["mean"] == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert ours["std"] == pytest.approx(theirs["inception_score_std"], rel=1e-6)
