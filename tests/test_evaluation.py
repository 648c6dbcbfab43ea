"""Evaluation: metrics against known answers and hand formulas, the torch-free weight reader,
the classifier scores, and `python -m jaxgan.evaluate` on a tiny run (no Inception forward here:
see test_evaluation_parity.py)."""
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from scipy import linalg

from jaxgan.errors import UserError
from jaxgan.evaluation import classifier, inception, metrics, weights

DATA = os.path.join(os.path.dirname(__file__), "data")


# ---------------------------------------------------------------------------------------------
# FID

def pytorch_fid_formula(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance, restated (it raises on a large imaginary part)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def test_fid_of_identical_sets_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 8))
    value, notes = metrics.fid_from_features(features, features)
    assert abs(value) < 1e-8 and notes == {}


def test_fid_of_gaussians_has_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    exact = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    value, _ = metrics.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2))
    assert value == pytest.approx(exact, rel=1e-10)
    # from samples, the estimate approaches it
    fake = rng.normal(mu1, np.sqrt(var1), size=(20000, 6))
    real = rng.normal(mu2, np.sqrt(var2), size=(20000, 6))
    assert metrics.fid_from_features(fake, real)[0] == pytest.approx(exact, rel=0.05)


def test_fid_equals_pytorch_fids_formula_on_correlated_features():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12)) + 0.3
    (mu1, s1), (mu2, s2) = metrics.statistics(a), metrics.statistics(b)
    assert metrics.frechet_distance(mu1, s1, mu2, s2)[0] == pytest.approx(
        pytorch_fid_formula(mu1, s1, mu2, s2), rel=1e-12)


def test_fid_reports_an_imaginary_square_root():
    value, notes = metrics.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))
    assert notes["sqrtm_max_imaginary"] == pytest.approx(1.0)
    assert np.isfinite(value)


# ---------------------------------------------------------------------------------------------
# KID, IS

def kid_by_hand(f1, f2, subsets, size, seed=2020):
    """torch-fidelity's kid_features_to_metric with numpy float64 kernels."""
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), size, replace=False)].astype(np.float64)
        y = f2[rng.choice(len(f2), size, replace=False)].astype(np.float64)
        d = x.shape[1]
        k = lambda a, b: (a @ b.T / d + 1) ** 3
        kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
        m = size
        mmds.append((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.sum() / m ** 2)
    return np.mean(mmds), np.std(mmds)


def test_kid_matches_the_hand_formula_and_vanishes_for_one_distribution():
    rng = np.random.default_rng(3)
    fake = rng.normal(0.2, 1, size=(120, 16)).astype(np.float32)
    real = rng.normal(0.0, 1, size=(150, 16)).astype(np.float32)
    result = metrics.kid(fake, real, subsets=5, subset_size=50)
    mean, std = kid_by_hand(fake, real, 5, 50)
    assert result["mean"] == pytest.approx(mean, rel=1e-4)
    assert result["std"] == pytest.approx(std, rel=1e-3)
    same = metrics.kid(real[:75], real[75:], subsets=20, subset_size=50)
    assert abs(same["mean"]) < 3 * same["std"] + 1e-6 < result["mean"]
    assert metrics.kid(fake, real, subsets=2, subset_size=1000)["subset_size"] == 120


def test_inception_score_known_answers():
    # every image predicted the same class distribution: IS = 1
    assert metrics.inception_score(np.tile([[1.0, 2.0, 3.0]], (100, 1)))["mean"] == pytest.approx(1.0)
    # confident, all K classes equally often: IS close to K
    logits = 50.0 * np.eye(10)[np.arange(1000) % 10]
    assert metrics.inception_score(logits)["mean"] == pytest.approx(10.0, rel=0.05)


def test_inception_score_matches_the_hand_formula():
    logits = np.random.default_rng(4).normal(size=(200, 7)) * 3
    shuffled = logits[np.random.RandomState(2020).permutation(200)]
    p = np.exp(shuffled) / np.exp(shuffled).sum(1, keepdims=True)
    scores = [np.exp(np.mean(np.sum(part * (np.log(part) - np.log(part.mean(0))), 1)))
              for part in np.split(p, 10)]
    result = metrics.inception_score(logits)
    assert result["mean"] == pytest.approx(np.mean(scores), rel=1e-10)
    assert result["std"] == pytest.approx(np.std(scores), rel=1e-8)


# ---------------------------------------------------------------------------------------------
# Precision / recall, density / coverage, memorisation

def prdc_by_hand(real, fake, k):
    """The `prdc` package's compute_prdc, restated with scipy's distances."""
    from scipy.spatial.distance import cdist
    rr, ff, rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    r_radii = np.sort(rr, axis=1)[:, k]
    f_radii = np.sort(ff, axis=1)[:, k]
    return {"precision": (rf < r_radii[:, None]).any(axis=0).mean(),
            "recall": (rf < f_radii[None, :]).any(axis=1).mean(),
            "density": (rf < r_radii[:, None]).sum(axis=0).mean() / k,
            "coverage": (rf.min(axis=1) < r_radii).mean()}


def test_precision_recall_density_coverage_match_the_prdc_formulas():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(1100, 5)).astype(np.float32)  # more than one chunk of queries
    fake = rng.normal(0.5, 1.2, size=(300, 5)).astype(np.float32)
    pr, dc = metrics.precision_recall(fake, real, 3), metrics.density_coverage(fake, real, 5)
    want3, want5 = prdc_by_hand(real, fake, 3), prdc_by_hand(real, fake, 5)
    for key in ("precision", "recall"):
        assert pr[key] == pytest.approx(want3[key], abs=1e-6)
    for key in ("density", "coverage"):
        assert dc[key] == pytest.approx(want5[key], abs=1e-6)


def test_prdc_of_identical_and_disjoint_sets():
    real = np.random.default_rng(6).normal(size=(200, 4)).astype(np.float32)
    pr = metrics.precision_recall(real + 1e-4, real)
    assert pr["precision"] == pr["recall"] == 1.0
    assert metrics.density_coverage(real + 1e-4, real)["coverage"] == 1.0
    far = metrics.precision_recall(real + 100.0, real)
    assert far["precision"] == far["recall"] == 0.0


def test_memorisation_flags_copies_and_not_new_points():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(300, 6)).astype(np.float32)
    copies = metrics.memorisation(real[:50] + 1e-5, real)
    assert copies["fraction"] == 1.0
    np.testing.assert_array_equal(copies["index"], np.arange(50))
    new = metrics.memorisation(rng.normal(size=(100, 6)).astype(np.float32) + 5.0, real)
    assert new["fraction"] == 0.0


def test_c2st_known_answers():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(1000, 32))
    same = metrics.c2st(rng.normal(size=(800, 32)), real)
    assert 0.45 < same["accuracy"] < 0.55  # one distribution: chance
    assert same["protocol"]["samples_per_side"] == 800 and same["protocol"]["folds"] == 2
    assert metrics.c2st(rng.uniform(0, 3, size=(800, 32)), real)["accuracy"] > 0.99  # noise
    # A collapsed generator (every sample near the mean, as a blurry class average is): same
    # mean, a fifth of the spread; told apart by the spread alone.
    assert metrics.c2st(0.2 * rng.normal(size=(800, 32)), real)["accuracy"] > 0.95
    assert metrics.c2st(real[:500] + 0.05, real, seed=1) == metrics.c2st(real[:500] + 0.05, real,
                                                                         seed=1)
    with pytest.raises(ValueError, match="c2st needs at least 4 images on each side, got 3"):
        metrics.c2st(real[:3], real)


# ---------------------------------------------------------------------------------------------
# Inception input transform (the network itself: test_evaluation_parity.py)

def test_bilinear_matrix_is_pytorchs_align_corners_false_without_antialias():
    np.testing.assert_allclose(inception.bilinear_matrix(2, 4),
                               [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    np.testing.assert_allclose(inception.bilinear_matrix(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(inception.bilinear_matrix(32).sum(axis=1), 1.0, rtol=1e-6)


def test_preprocess_repeats_grey_and_scales_to_minus_one_one():
    grey = np.array([0, 255], np.uint8).reshape(1, 1, 2, 1).repeat(299, axis=1).repeat(150, axis=2)[:, :, :299]
    x = np.asarray(inception.preprocess(grey))
    assert x.shape == (1, 299, 299, 3) and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(x[..., 0], x[..., 2])


# ---------------------------------------------------------------------------------------------
# Weights: torch's two formats, read without torch; malicious pickles refused

EXPECTED = {"weight": np.arange(24, dtype=np.float32).reshape(4, 6) / 7}
EXPECTED.update(transposed=EXPECTED["weight"].T, offset=EXPECTED["weight"][1:3, 2:5],
                half=np.array([1.5, -2.25], np.float16), count=np.array(7, np.int64),
                flags=np.array([True, False]))


@pytest.mark.parametrize("name", ["torch_state_zip.pth", "torch_state_legacy.pth"])
def test_reads_both_torch_formats_without_torch(name):
    state = weights.read_torch_state_dict(os.path.join(DATA, name))
    assert list(state) == list(EXPECTED)
    for key, want in EXPECTED.items():
        assert state[key].dtype == want.dtype
        np.testing.assert_array_equal(state[key], want)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_a_pickle_naming_os_system_is_refused_and_never_run(tmp_path, layout):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": _Evil(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if layout == "legacy":
        head = b"".join(pickle.dumps(x, protocol=2) for x in
                        (weights.LEGACY_MAGIC_NUMBER, 1001, {"little_endian": True}))
        path.write_bytes(head + payload)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("evil/data.pkl", payload)
    with pytest.raises(weights.UnsafePickleError, match=r"refusing to read .*(posix|os)\.system"):
        weights.read_torch_state_dict(path)
    assert not marker.exists()


def test_not_a_weights_file_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(UserError, match="cannot read"):
        weights.read_torch_state_dict(path)


def test_without_weights_or_network_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path))
    with pytest.raises(UserError) as error:
        weights.load_inception_variables(allow_download=False)
    assert str(tmp_path / weights.FID_WEIGHTS_NAME) in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=weights.FID_WEIGHTS_NAME):  # a download that fails
        weights.load_inception_variables(url=(tmp_path / "nowhere.pth").as_uri())
    assert os.listdir(tmp_path) == []  # nothing half-written


def test_download_keeps_only_a_file_with_the_right_hash(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(b"weights" * 1000)
    digest = weights.sha256_of(source)
    weights.download(source.as_uri(), tmp_path / "cache" / "w.pth", digest[:8])
    assert (tmp_path / "cache" / "w.pth").read_bytes() == source.read_bytes()
    with pytest.raises(UserError, match="not the expected file"):
        weights.download(source.as_uri(), tmp_path / "cache" / "x.pth", "00000000")
    assert sorted(os.listdir(tmp_path / "cache")) == ["w.pth"]


def test_converted_weights_round_trip_through_npz(tmp_path):
    variables = {"params": {"a": {"kernel": np.ones((2, 3), np.float32)}},
                 "batch_stats": {"a": {"mean": np.zeros(3, np.float32)}}}
    weights.save_npz(variables, tmp_path / "w.npz", "ab" * 32)
    loaded, sha = weights.load_npz(tmp_path / "w.npz")
    assert sha == "ab" * 32
    np.testing.assert_array_equal(loaded["params"]["a"]["kernel"], variables["params"]["a"]["kernel"])


# ---------------------------------------------------------------------------------------------
# Classifier scores and the whole evaluation on a tiny run

@pytest.fixture(scope="module")
def digits():
    from jaxgan.data import load_digits
    return load_digits(16, 1)


@pytest.fixture(scope="module")
def real_classifier(digits, tmp_path_factory):
    return classifier.real_classifier(digits.images, digits.labels, 10, 0,
                                      str(tmp_path_factory.mktemp("classifier")), {"source": "digits-test"})


def test_held_out_split_is_disjoint_stratified_and_seeded(digits):
    train, held = classifier.held_out_split(digits.labels, 0)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(digits.labels)
    for c in range(10):
        share = np.mean(digits.labels[held] == c) / np.mean(digits.labels == c)
        assert 0.8 < share < 1.2
    np.testing.assert_array_equal(held, classifier.held_out_split(digits.labels, 0)[1])


def test_gan_test_separates_right_and_swapped_classes(digits, real_classifier):
    extractor, info = real_classifier
    assert info["held_out_accuracy"] > 0.9
    _, held = classifier.held_out_split(digits.labels, 0)
    images, labels = digits.images[held], digits.labels[held]
    assert extractor.accuracy(images, labels) > 0.9             # a perfect "generator"
    assert extractor.accuracy(images, (labels + 1) % 10) < 0.1  # one that swaps the classes


def test_classifier_is_cached_and_named_apart_from_fid(digits, real_classifier, tmp_path_factory):
    extractor, _ = real_classifier
    cache = os.path.dirname(next(iter(
        p for p in tmp_path_factory.getbasetemp().rglob("classifier-*.msgpack"))))
    again, _ = classifier.real_classifier(digits.images, digits.labels, 10, 0, cache, {"source": "digits-test"})
    assert again.id == extractor.id
    from jaxgan.evaluation.evaluator import metric_name
    assert metric_name("fid", "classifier") == "fd_classifier"
    assert metric_name("fid", "inception") == "fid"


def test_evaluate_images_with_the_classifier(digits, real_classifier, tmp_path, monkeypatch):
    """Generated = held-out real digits: good scores; copies of training digits: memorised."""
    from jaxgan.evaluation import evaluator
    monkeypatch.setenv("JAXGAN_CACHE", str(tmp_path))
    monkeypatch.setattr(classifier, "real_classifier", lambda *a, **k: real_classifier)
    monkeypatch.setattr(classifier, "TRAIN_STEPS", 200)
    _, held = classifier.held_out_split(digits.labels, 0)
    real = evaluator.ImageSet(digits.images, digits.labels, digits.class_names, "digits")
    fake = evaluator.ImageSet(digits.images[held], digits.labels[held], digits.class_names, "held")
    result = evaluator.evaluate_images(fake, real, "fid,kid,is,pr,intra_fid,gan_test,memorisation,c2st",
                                       "classifier", out_dir=str(tmp_path), tag="t")
    values = result["metrics"]
    assert "fid" not in values and values["fd_classifier"] < 20
    assert values["gan_test_accuracy"] > 0.9
    assert values["precision_classifier"] > 0.8 and values["recall_classifier"] > 0.5
    assert set(result["per_class"]["intra_fd_classifier"]) == set(digits.class_names)
    assert values["memorisation_classifier"] == 1.0  # the "generated" digits are training images
    assert 0.4 < values["c2st_classifier_accuracy"] < 0.6  # real digits vs real digits: chance
    assert result["protocol"]["c2st"]["samples_per_side"] == len(held)
    assert os.path.isfile(result["files"]["memorisation_pairs"])
    protocol = result["protocol"]
    assert protocol["extractor"] == "classifier" and protocol["num_fake"] == len(held)
    assert protocol["num_real"] == len(digits.images)


def test_best_step_reads_the_evaluation_results(tmp_path):
    from jaxgan.training import checkpoint
    for step, fid, acc in ((100, 30.0, 0.5), (200, 12.0, 0.7), (300, 15.0, 0.9), (400, 5.0, 0.1)):
        path = tmp_path / "eval" / f"step_{step}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"metrics": {"fd_classifier": fid, "gan_test_accuracy": acc}}))
    kept = [200, 300, 500]  # 400 (the best fd) was deleted by the retention policy
    assert checkpoint.best_step(tmp_path, kept) == 200
    assert checkpoint.best_step(tmp_path, kept, "gan_test_accuracy") == 300
    with pytest.raises(UserError, match="no evaluated checkpoint"):
        checkpoint.best_step(tmp_path, [500])


# ---------------------------------------------------------------------------------------------
# The metrics' table: a metric is a row (metric_names.METRICS) and its function (COMPUTE)

def test_every_metric_has_one_function_and_the_help_lists_them():
    import importlib
    from jaxgan.evaluation import metric_table
    evaluate_cli = importlib.import_module("jaxgan.evaluate")  # (jaxgan.evaluate: a function)
    from jaxgan.metric_names import METRICS
    assert list(metric_table.COMPUTE) == list(METRICS)
    for name, metric in METRICS.items():
        direction = "lower" if metric.lower_is_better else "higher"
        assert f"  {name:<13} {direction} is better" in evaluate_cli.__doc__


def test_direction_of_every_reported_value_is_the_old_rules():
    """The best-checkpoint policy read the direction from a regex before the table: every value
    the evaluator reports, in both feature spaces, keeps its direction."""
    import re
    from jaxgan.metric_names import lower_is_better, metric_name
    old = re.compile(r"^(fid|fd_|kid|kd_|intra_fid|intra_fd|memorisation|c2st)")
    for space in ("inception", "classifier"):
        n = lambda base: metric_name(base, space)
        reported = [n("fid"), n("fid") + "_sqrtm_imaginary", n("kid") + "_mean",
                    n("kid") + "_std", n("is") + "_mean", n("is") + "_std", n("precision"),
                    n("recall"), n("density"), n("coverage"), n("intra_fid") + "_mean",
                    "gan_test_accuracy", "gan_train_accuracy", "real_held_out_accuracy",
                    n("memorisation"), n("c2st") + "_accuracy"]
        for value in reported:
            assert lower_is_better(value) == bool(old.match(value)), value
    assert lower_is_better("fd_classifier") and not lower_is_better("gan_test_accuracy")
    assert not lower_is_better("no_such_value")  # unknown: higher, as before


def _mean_distance(run):
    """The toy metric: the distance between the feature means of the two sets."""
    distance = np.linalg.norm(run.fake_f.mean(0) - run.real_f.mean(0))
    run.report.values[run.name("toy")] = float(distance)


@pytest.mark.parametrize("lower_is_better", [True, False])
def test_a_toy_metric_is_one_row_computed_printed_and_picks_the_best(
        digits, real_classifier, tmp_path, monkeypatch, lower_is_better):
    from jaxgan import metric_names
    from jaxgan.evaluation import evaluator, metric_table
    from jaxgan.training import checkpoint
    monkeypatch.setitem(metric_names.METRICS, "toy", metric_names.Metric(
        needs_labels=False, needs_real=True, lower_is_better=lower_is_better, values=("toy",)))
    monkeypatch.setitem(metric_table.COMPUTE, "toy", _mean_distance)
    monkeypatch.setattr(classifier, "real_classifier", lambda *a, **k: real_classifier)
    _, held = classifier.held_out_split(digits.labels, 0)
    real = evaluator.ImageSet(digits.images, digits.labels, digits.class_names, "digits")
    fake = evaluator.ImageSet(digits.images[held], digits.labels[held], digits.class_names, "held")

    result = evaluator.evaluate_images(fake, real, "toy", "classifier")
    extractor = real_classifier[0]
    expected = np.linalg.norm(extractor(fake.images, False)["features"].mean(0)
                              - extractor(real.images, False)["features"].mean(0))
    assert list(result["metrics"]) == ["toy_classifier"]
    np.testing.assert_allclose(result["metrics"]["toy_classifier"], expected, rtol=1e-6)
    assert f"toy_classifier  {result['metrics']['toy_classifier']:.6g}" in \
        evaluator.format_table(result)
    notes = []  # its needs are read from the row: reference statistics alone skip it
    assert evaluator._wanted(("toy", "fid"), fake, None, notes) == ["fid"]
    assert notes == ["toy skipped: needs the real images, not only reference statistics"]

    for step, value in ((100, 3.0), (200, 1.0), (300, 2.0)):
        path = tmp_path / "eval" / f"step_{step}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"metrics": {"toy_classifier": value}}))
    assert checkpoint.best_step(tmp_path, [100, 200, 300], "toy_classifier") == \
        (200 if lower_is_better else 100)


def test_features_do_not_depend_on_device_count_or_padding(digits, real_classifier):
    import jax
    extractor, _ = real_classifier
    one = classifier.ClassifierExtractor(extractor.params, 10, extractor.spec, devices=jax.devices()[:1])
    images = digits.images[:37]  # not a multiple of either batch: the last batch is padded
    everywhere, single = extractor(images), one(images)
    assert everywhere["features"].shape == (37, classifier.FEATURE_DIM)
    np.testing.assert_allclose(everywhere["features"], single["features"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(everywhere["features"][:5], extractor(images[:5])["features"],
                               rtol=1e-5, atol=1e-5)
