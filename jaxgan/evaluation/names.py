"""Metric and extractor names (no JAX: the command line's --help stays instant)."""

ALL_METRICS = ("fid", "kid", "is", "pr", "intra_fid", "gan_test", "gan_train", "memorisation",
               "c2st")
CONDITIONAL_METRICS = ("intra_fid", "gan_test", "gan_train")
EXTRACTORS = ("auto", "inception", "classifier")
MAX_REAL = 50_000            # real images used by default: the whole set, up to this many
