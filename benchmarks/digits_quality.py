"""How good is the default digits run? Class accuracy and diversity of generated digits.

  python train.py                                   # the default run -> runs/digits
  python benchmarks/digits_quality.py --workdir runs/digits

A digit classifier (scikit-learn SVC) is trained on half of the real digits, preprocessed exactly
as jaxgan trains on them (16x16, bicubic), and must score >= 98% on the other half. It then
judges N generated images per class: the share recognised as the class they were asked for.
Diversity, per class: the mean pairwise distance between generated images divided by the same
for real images of that class (a collapsed class gives ~0), and the share of generated images
that have a near-twin among the other generated images of their class (distance below 5% of the
real mean pairwise distance).

Then the evaluator's own figures, as training reports them (`jaxgan.evaluation`, the run's own
digit classifier, cached in <workdir>/eval/): GAN-test accuracy and fd_classifier of 2,000
generated digits against all 1,797 real ones, and what "close to the real digits" means in that
space: the distance between two random halves of the real digits (mean over --splits splits).
Two ratios: the evaluator's fd_classifier over the halves' distance (the README's target: <= 2),
and, at equal sample sizes (a Frechet distance estimated from fewer samples is biased upward),
the distance of as many generated digits as a half holds to one half, over the halves' distance.

Prints the figures and exits 1 if accuracy < 95% or any class has a diversity ratio < 0.5;
with --target, also if GAN-test < 99%, the fd ratio > 2 or any class's GAN-test < 95%.
"""
import argparse
import sys

import jax
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from jaxgan import load_sampler
from jaxgan.data import load_digits
from jaxgan.evaluation import classifier as classifier_lib
from jaxgan.evaluation import evaluator as evaluator_lib
from jaxgan.evaluation import metrics as metrics_lib


def mean_pairwise_distance(x):
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return d[np.triu_indices(len(x), 1)].mean(), d


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/digits")
    parser.add_argument("--per_class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=5, help="random halves of the real digits")
    parser.add_argument("--target", action="store_true",
                        help="also fail below the default's target (GAN-test 99%%, fd ratio 2)")
    args = parser.parse_args()

    sampler = load_sampler(args.workdir)
    resolution, _, channels = sampler.image_shape
    real = load_digits(resolution, channels)
    features = lambda images: images[..., 0].reshape(len(images), -1).astype(np.float64) / 255.0
    x_train, x_test, y_train, y_test = train_test_split(
        features(real.images), real.labels, test_size=0.5, stratify=real.labels, random_state=0)
    classifier = SVC(gamma="scale", C=10).fit(x_train, y_train)
    real_accuracy = classifier.score(x_test, y_test)

    labels = np.repeat(np.arange(sampler.num_classes), args.per_class)
    generated = features(np.asarray(sampler(jax.random.key(args.seed), labels=labels)))
    predicted = classifier.predict(generated)
    accuracy = float((predicted == labels).mean())

    print(f"workdir {args.workdir}: checkpoint step {sampler.step}")
    print(f"classifier accuracy on held-out real digits: {real_accuracy:.4f}")
    print(f"generated digits recognised as the requested class: {accuracy:.4f} "
          f"({args.per_class} per class)")
    print("class  accuracy  diversity(gen/real)  near-twins")
    worst_ratio = np.inf
    all_real = features(real.images)
    for c in range(sampler.num_classes):
        gen_c = generated[labels == c]
        real_mean, _ = mean_pairwise_distance(all_real[real.labels == c])
        gen_mean, gen_d = mean_pairwise_distance(gen_c)
        np.fill_diagonal(gen_d, np.inf)
        twins = float((gen_d.min(1) < 0.05 * real_mean).mean())
        ratio = gen_mean / real_mean
        worst_ratio = min(worst_ratio, ratio)
        print(f"{sampler.class_names[c]:>5}  {float((predicted[labels == c] == c).mean()):8.3f}"
              f"  {ratio:19.3f}  {twins:10.3f}")
    ok = real_accuracy >= 0.98 and accuracy >= 0.95 and worst_ratio >= 0.5
    figures = evaluator_figures(sampler, args.workdir, args.splits)
    print(f"evaluator (own-data classifier, {figures['num_fake']} generated vs "
          f"{figures['num_real']} real): GAN-test {figures['gan_test']:.4f} (worst class "
          f"{figures['worst_class_gan_test']:.3f}), fd_classifier {figures['fd']:.3f}")
    print(f"real half vs real half ({figures['half']} images each, {args.splits} splits): "
          f"{figures['fd_real_halves']:.3f} (+- {figures['fd_real_halves_std']:.3f})")
    print(f"ratio fd_classifier / real halves: {figures['ratio']:.2f}")
    print(f"same sizes: {figures['half']} generated vs a real half {figures['fd_fake_half']:.3f}, "
          f"ratio {figures['ratio_same_size']:.2f}")
    if args.target:
        ok = ok and figures["gan_test"] >= 0.99 and figures["ratio"] <= 2.0 \
            and figures["worst_class_gan_test"] >= 0.95
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def evaluator_figures(sampler, workdir: str, splits: int, num_fake: int = 2000) -> dict:
    """GAN-test and Frechet distances in the evaluator's classifier space (see the docstring)."""
    real, real_key = evaluator_lib.load_real(sampler.config.data)
    extractor, _ = classifier_lib.real_classifier(
        real.images, real.labels, len(real.class_names), 0, f"{workdir}/eval", real_key)
    fake = evaluator_lib.generate(sampler, num_fake)
    fake_out, real_f = extractor(fake.images), extractor(real.images)["features"]
    fake_f, predicted = fake_out["features"], np.argmax(fake_out["logits"], axis=1)
    fd = lambda a, b: metrics_lib.fid_from_features(a, b)[0]
    per_class = [float((predicted[fake.labels == c] == c).mean()) for c in range(len(real.class_names))]
    rng = np.random.default_rng(0)
    half = len(real_f) // 2
    halves, fake_half = [], []
    for _ in range(splits):
        order = rng.permutation(len(real_f))
        a, b = real_f[order[:half]], real_f[order[half:2 * half]]
        halves.append(fd(a, b))
        fake_half.append(fd(fake_f[rng.permutation(len(fake_f))[:half]], a))
    result = {"num_fake": len(fake_f), "num_real": len(real_f), "half": half,
              "gan_test": float((predicted == fake.labels).mean()),
              "worst_class_gan_test": min(per_class), "fd": fd(fake_f, real_f),
              "fd_real_halves": float(np.mean(halves)), "fd_real_halves_std": float(np.std(halves)),
              "fd_fake_half": float(np.mean(fake_half))}
    result["ratio"] = result["fd"] / result["fd_real_halves"]
    result["ratio_same_size"] = result["fd_fake_half"] / result["fd_real_halves"]
    return result


if __name__ == "__main__":
    sys.exit(main())
