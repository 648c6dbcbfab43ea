"""Training: the state, the pure step (shard_map over "data"), the data pipeline's three tiers,
checkpoints, writers and the loop (`jaxgan.training.loop.train_and_evaluate`). Nothing outside
this package imports the loop."""
