"""For people (apps on top of the core): image export with provenance, GIFs, novelty against the
training set, the invisible watermark and `python sample.py`'s logic. Sampling itself
(`load_sampler`) is the core's jaxgan.sampler."""
