"""Metric and extractor names (no JAX: config validation and the command line's --help stay
instant). Below config.py, which validates `eval.metrics` and `eval.extractor` against them."""

ALL_METRICS = ("fid", "kid", "is", "pr", "intra_fid", "gan_test", "gan_train", "memorisation",
               "c2st")
CONDITIONAL_METRICS = ("intra_fid", "gan_test", "gan_train")
EXTRACTORS = ("auto", "inception", "classifier")
MAX_REAL = 50_000            # real images used by default: the whole set, up to this many
