"""`jaxgan.art.sampling`, kept for code that imports it from here: sampling itself is a core
module, jaxgan.sampler (the evaluation scores a Sampler, so it lives below the evaluation); the
apps in art/ and gallery/ import it from there."""
from jaxgan.sampler import (PER_DEVICE_BATCH, TRUNCATION_BOUND, Sampler, check_seeds,  # noqa: F401
                            load_sampler, noise_from_key, seed_noise, slerp)
