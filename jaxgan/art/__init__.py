"""For people: sampling from a workdir (`load_sampler`), image export with provenance, GIFs,
novelty against the training set, the invisible watermark and `python sample.py`'s logic."""
