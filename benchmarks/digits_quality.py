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

Prints the figures and exits 1 if accuracy < 95% or any class has a diversity ratio < 0.5.
"""
import argparse
import sys

import jax
import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from jaxgan import load_sampler
from jaxgan.data import load_digits


def mean_pairwise_distance(x):
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return d[np.triu_indices(len(x), 1)].mean(), d


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/digits")
    parser.add_argument("--per_class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
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
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
