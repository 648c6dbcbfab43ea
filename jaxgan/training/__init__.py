"""Training: the state, the pure step (shard_map over "data"), the data pipeline's three tiers,
checkpoints and writers: what one step and one saved state are. The loop that drives them is
`jaxgan/loop.py`, above the evaluation it runs."""
