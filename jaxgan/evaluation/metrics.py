"""GAN metrics on feature vectors: FID, KID, IS, precision/recall, density/coverage, memorisation,
C2ST.

Each follows the implementation users compare against:
- FID: pytorch-fid's `calculate_frechet_distance` (scipy's sqrtm, its eps retry), float64 statistics
  as `np.mean` / `np.cov`; an imaginary part beyond its tolerance is reported, not dropped.
- KID: torch-fidelity's `kid_features_to_metric` (100 subsets of 1000, cubic polynomial kernel with
  gamma 1/d and coef 1, unbiased MMD^2; subsets drawn by `np.random.RandomState(2020)`).
- IS: torch-fidelity's `isc_features_to_metric` (10 splits after a RandomState(2020) shuffle).
- Precision / recall: Kynkaanniemi et al. 2019 (k=3); density / coverage: Naeem et al. 2020 (k=5),
  as the `prdc` package computes them (strict `<` against k-NN radii).
The pairwise-distance work runs jitted over fixed-size chunks (one compilation per feature set).
"""
from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

FID_MIN_SAMPLES = 2048
KID_SUBSETS, KID_SUBSET_SIZE, KID_DEGREE, KID_COEF0 = 100, 1000, 3, 1.0
IS_SPLITS = 10
REFERENCE_RNG_SEED = 2020  # torch-fidelity's default rng_seed
CHUNK = 1024               # rows per jitted distance block


# --------------------------------------------------------------------------------------------
# FID

def statistics(features_ND) -> tuple[np.ndarray, np.ndarray]:
    """(mu (D,), sigma (D, D)) in float64, as pytorch-fid's calculate_activation_statistics."""
    features = np.asarray(features_ND)
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> tuple[float, dict]:
    """(d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), notes) exactly as pytorch-fid.

    notes: {"sqrtm_eps_retry": True} when the product was singular and eps was added to the
    diagonals (pytorch-fid prints this), {"sqrtm_max_imaginary": m} when sqrtm's result had an
    imaginary diagonal part beyond 1e-3 (where pytorch-fid raises): the value is then computed
    from the real part and the caller must report it.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimensions: {mu1.shape} vs {mu2.shape}")
    notes = {}
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        notes["sqrtm_eps_retry"] = eps
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            notes["sqrtm_max_imaginary"] = float(np.max(np.abs(covmean.imag)))
        covmean = covmean.real
    value = diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(value), notes


def _sqrtm(matrix):
    # pytorch-fid calls scipy.linalg.sqrtm(..., disp=False); newer scipy deprecates `disp`, and
    # without it sqrtm returns the same matrix (it only stops printing its error estimate).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return linalg.sqrtm(matrix)


def fid_from_features(fake_ND, real_ND=None, real_stats=None) -> tuple[float, dict]:
    mu1, sigma1 = statistics(fake_ND)
    mu2, sigma2 = real_stats if real_stats is not None else statistics(real_ND)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


# --------------------------------------------------------------------------------------------
# KID

@jax.jit
def _polynomial_mmd2(x_MD, y_MD):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, as torch-fidelity's polynomial_mmd."""
    m, d = x_MD.shape
    kernel = lambda a, b: (jnp.matmul(a, b.T, precision="highest") / d + KID_COEF0) ** KID_DEGREE
    k_xx, k_yy, k_xy = kernel(x_MD, x_MD), kernel(y_MD, y_MD), kernel(x_MD, y_MD)
    off_diagonal = lambda k: jnp.sum(k) - jnp.sum(jnp.diagonal(k))
    return (off_diagonal(k_xx) + off_diagonal(k_yy)) / (m * (m - 1)) - 2 * jnp.sum(k_xy) / (m * m)


def kid(fake_ND, real_ND, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = REFERENCE_RNG_SEED) -> dict:
    """{"mean", "std", "subset_size", "subsets"}: torch-fidelity's KID. With fewer samples than
    `subset_size` the subsets shrink to the smaller set (recorded in the result)."""
    fake, real = np.asarray(fake_ND, np.float32), np.asarray(real_ND, np.float32)
    size = min(subset_size, len(fake), len(real))
    if size < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.RandomState(seed)
    fake_device, real_device = jnp.asarray(fake), jnp.asarray(real)
    mmds = []
    for _ in range(subsets):  # the same draws, in the same order, as torch-fidelity
        fake_index = rng.choice(len(fake), size, replace=False)
        real_index = rng.choice(len(real), size, replace=False)
        mmds.append(_polynomial_mmd2(fake_device[fake_index], real_device[real_index]))
    mmds = np.asarray(jax.device_get(mmds), np.float64)
    return {"mean": float(np.mean(mmds)), "std": float(np.std(mmds)), "subset_size": size,
            "subsets": subsets}


# --------------------------------------------------------------------------------------------
# IS

def inception_score(logits_NK, splits: int = IS_SPLITS, seed: int = REFERENCE_RNG_SEED) -> dict:
    """{"mean", "std"} of exp(E KL(p(y|x) || p(y))) over `splits` parts, as torch-fidelity."""
    logits = np.asarray(logits_NK, np.float64)
    n = logits.shape[0]
    if n < splits:
        raise ValueError(f"IS with {splits} splits needs at least {splits} samples, got {n}")
    logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = logits - _logsumexp(logits)
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        q = p[part].mean(axis=0, keepdims=True)
        kl = (p[part] * (log_p[part] - np.log(q))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return {"mean": float(np.mean(scores)), "std": float(np.std(scores))}


def _logsumexp(x):
    top = x.max(axis=1, keepdims=True)
    return top + np.log(np.exp(x - top).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------------------------
# Nearest neighbours, in fixed-size jitted chunks

def _distances(x_CD, y_ND):
    """Euclidean distances (C, N), as sklearn's: sqrt(max(|x|^2 + |y|^2 - 2 x.y, 0))."""
    squared = (jnp.sum(x_CD ** 2, axis=1)[:, None] + jnp.sum(y_ND ** 2, axis=1)[None, :]
               - 2 * jnp.matmul(x_CD, y_ND.T, precision="highest"))
    return jnp.sqrt(jnp.maximum(squared, 0.0))


@functools.partial(jax.jit, static_argnums=2)
def _kth_smallest(x_CD, y_ND, k: int):
    return -jax.lax.top_k(-_distances(x_CD, y_ND), k)[0][:, -1]


@jax.jit
def _within_radii(x_CD, y_ND, radii_N):
    """Per query row: how many points y_j have d(x, y_j) < radius_j."""
    return jnp.sum(_distances(x_CD, y_ND) < radii_N[None, :], axis=1)


@jax.jit
def _nearest(x_CD, y_ND):
    d = _distances(x_CD, y_ND)
    return jnp.min(d, axis=1), jnp.argmin(d, axis=1)


def _over_chunks(fn, queries, *args):
    """fn(chunk of queries padded to CHUNK rows, *args) for all rows, results concatenated."""
    queries = np.asarray(queries, np.float32)
    n = len(queries)
    padded = np.concatenate([queries, np.zeros((-n % CHUNK, queries.shape[1]), np.float32)])
    args = [jnp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    outs = [fn(jnp.asarray(padded[i:i + CHUNK]), *args) for i in range(0, len(padded), CHUNK)]
    if isinstance(outs[0], tuple):
        return tuple(np.concatenate([np.asarray(o[j]) for o in outs])[:n] for j in range(len(outs[0])))
    return np.concatenate([np.asarray(o) for o in outs])[:n]


def knn_radii(features_ND, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself excluded), (N,)."""
    features = np.asarray(features_ND, np.float32)
    if len(features) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} samples, got {len(features)}")
    return _over_chunks(lambda c, y: _kth_smallest(c, y, k + 1), features, features)


def nearest(queries_ND, points_MD) -> tuple[np.ndarray, np.ndarray]:
    """(distance (N,), index (N,)) of each query's nearest point."""
    return _over_chunks(_nearest, queries_ND, np.asarray(points_MD, np.float32))


def precision_recall(fake_ND, real_ND, k: int = 3) -> dict:
    """Kynkaanniemi et al. 2019: precision = share of fakes inside the real manifold (the union
    of balls reaching each real's k-th neighbour), recall = share of reals inside the fake one."""
    fake, real = np.asarray(fake_ND, np.float32), np.asarray(real_ND, np.float32)
    real_radii, fake_radii = knn_radii(real, k), knn_radii(fake, k)
    precision = _over_chunks(_within_radii, fake, real, real_radii) > 0
    recall = _over_chunks(_within_radii, real, fake, fake_radii) > 0
    return {"precision": float(precision.mean()), "recall": float(recall.mean()), "k": k}


def density_coverage(fake_ND, real_ND, k: int = 5) -> dict:
    """Naeem et al. 2020: density = mean number of real balls holding a fake, over k; coverage =
    share of reals whose ball holds at least one fake."""
    fake, real = np.asarray(fake_ND, np.float32), np.asarray(real_ND, np.float32)
    real_radii = knn_radii(real, k)
    counts = _over_chunks(_within_radii, fake, real, real_radii)
    nearest_fake, _ = nearest(real, fake)
    return {"density": float(counts.mean() / k), "coverage": float((nearest_fake < real_radii).mean()),
            "k": k}


def memorisation(fake_ND, real_ND) -> dict:
    """The share of fakes whose nearest real is closer than the median real-to-real nearest-
    neighbour distance; plus each fake's nearest real (index, distance) for showing the pairs.

    Read it against 0.5: new images drawn from the real distribution are as close to the real
    set as real images are to each other, so about half fall under the median; a generator that
    copies training images approaches 1."""
    fake, real = np.asarray(fake_ND, np.float32), np.asarray(real_ND, np.float32)
    threshold = float(np.median(knn_radii(real, 1)))
    distance, index = nearest(fake, real)
    return {"fraction": float((distance < threshold).mean()), "threshold": threshold,
            "distance": distance, "index": index}


# --------------------------------------------------------------------------------------------
# Classifier two-sample test

C2ST_FOLDS = 2
C2ST_MIN_SAMPLES = 2 * C2ST_FOLDS  # each fold's training half holds both kinds


def c2st(fake_ND, real_ND, seed: int = 0) -> dict:
    """Classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): the held-out accuracy of a
    classifier trained to tell real from generated features; 0.5 = indistinguishable, 1.0 =
    always told apart.

    Protocol: equal numbers of both (the larger set subsampled by `seed`); each feature and its
    square, standardised, into an L2-regularised logistic regression (scikit-learn's lbfgs, C=1);
    2-fold stratified cross-validation, each fold trained on one half and scored on the other,
    accuracies averaged. The squares let a linear classifier see each feature's spread as well as
    its mean, so a collapsed or blurry class average is told apart (a Frechet distance on weak
    features can reward it); moments beyond the second are not tested.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(seed)
    n = min(len(fake_ND), len(real_ND))
    if n < C2ST_MIN_SAMPLES:
        raise ValueError(f"c2st needs at least {C2ST_MIN_SAMPLES} images on each side, got {n}")
    fake = np.asarray(fake_ND, np.float64)[rng.permutation(len(fake_ND))[:n]]
    real = np.asarray(real_ND, np.float64)[rng.permutation(len(real_ND))[:n]]
    x, y = np.concatenate([real, fake]), np.repeat([0, 1], n)
    x = np.concatenate([x, x * x], axis=1)
    accuracies = []
    for train, test in StratifiedKFold(C2ST_FOLDS, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        with warnings.catch_warnings():  # (lbfgs short of convergence: the accuracy still holds)
            warnings.simplefilter("ignore")
            model.fit(x[train], y[train])
        accuracies.append(float(model.score(x[test], y[test])))
    return {"accuracy": float(np.mean(accuracies)),
            "protocol": {"features": "each feature and its square, standardised",
                         "classifier": "logistic regression (C=1, lbfgs)", "folds": C2ST_FOLDS,
                         "samples_per_side": n, "seed": seed}}
