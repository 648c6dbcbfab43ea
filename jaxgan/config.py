"""Every config key: its default, what it means and which values it allows.

KEYS holds the keys every run has; each model family's own `model.*` keys are declared with the
family (jaxgan.families) and merged here (`all_keys`, `check_family_keys`).

`default_config()` is the digits recipe (what `python train.py` trains) and the base of every file
in configs/. `resolve(config)` completes a config (one from an older jaxgan, or written by hand)
with the defaults, refuses unknown keys and validates every key: a bad value raises `UserError`
with one line naming the key, the value and what is allowed. Nothing here imports JAX, so
train.py validates before JAX starts and before anything is written.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from jaxgan.errors import UserError
from jaxgan.families import DEFAULT, FAMILIES, family_keys, owners
from jaxgan.keys import (MAX_WIDTH, Key, boolean, choice, integer, is_int, is_number, number,
                         power_of_two, text)
from jaxgan.metric_names import ALL_METRICS, EXTRACTORS


# The adversarial losses jaxgan.training.losses implements (named here, where the schema lives).
LOSSES = ("non_saturating", "hinge", "rpgan")


def _source_ok(source: str) -> bool:
    return source == "digits" or (source.startswith(("folder:", "tfds:"))
                                  and len(source.split(":", 1)[1]) > 0)


AUGMENTATIONS = ("color", "translation", "cutout")
# StyleGAN2-ADA's whole pipeline (jaxgan.training.augment_pipe), on its own in a policy: "ada" with
# R3GAN's probabilities, "bgc" with StyleGAN2-ADA's default's.
AUGMENT_PIPES = ("ada", "bgc")


def _augment_policy_ok(policy: str) -> bool:
    if policy in AUGMENT_PIPES:
        return True
    names = policy.split(",") if policy else []
    return all(name in AUGMENTATIONS for name in names) and len(set(names)) == len(names)



def _metric_list(text: str) -> bool:
    names = [n.strip() for n in text.split(",")]
    return all(n in ALL_METRICS for n in names)


# Default = the digits recipe. A key added here must say what is allowed (tests/test_config.py
# feeds every key's `bad` value through train.py and expects a one-line refusal).
KEYS: dict[str, Key] = {
    "seed": integer(0, "the one seed every random number comes from", 0, 2**31 - 1),

    "data.source": text("digits", "'digits' | 'folder:PATH' | 'tfds:NAME[/CONFIG]'",
                        "'digits', 'folder:PATH' or 'tfds:NAME'", _source_ok, "nonsense"),
    "data.resolution": Key(16, "image side in pixels (the model family says which it supports)",
                           "a power of two from 8 to 1024", power_of_two, 20),
    "data.channels": choice(1, "1 (grayscale) or 3 (RGB)", 1, 3, bad=2),
    "data.conditional": boolean(True, "use the class labels (False: an unconditional GAN)"),
    "data.random_flip": boolean(False, "mirror training images at random (not for digits/text)"),
    "data.device_cache_mb": number(512, "sets up to this size (uint8) are held on every device"),
    "data.host_cache_mb": number(4096, "up to this, in host memory; larger sets stay on disk"),
    "data.max_image_pixels": integer(2**26, "folder images with more pixels (as decoded) are "
                                     "skipped, with the reason", 1),
    "data.fit": choice("crop", "how a folder's non-square image becomes square: 'crop' (its "
                       "centre square) | 'pad' (the whole picture, centred on white: drawings)",
                       "crop", "pad"),
    "data.split": text("train", "the TFDS split", "a non-empty TFDS split name", bool, ""),
    "data.tfds_data_dir": text("", "TFDS's data directory ('' = $TFDS_DATA_DIR or "
                               "~/tensorflow_datasets)"),
    "data.tfds_reader": choice("auto", "'data_source' (array_record, no TensorFlow) | 'tf.data'",
                               "auto", "data_source", "tf.data"),
    "data.download": boolean(True, "with TensorFlow: download and prepare a missing TFDS set"),

    # The keys every family takes; each family's own follow model.d_norm (`all_keys`).
    "model.arch": Key(DEFAULT, "the model family (jaxgan.families.FAMILIES)",
                      "one of " + ", ".join(map(repr, FAMILIES)), lambda v: v in FAMILIES,
                      "nonsense"),
    "model.latent_dim": integer(64, "size of the noise vector z", 1, MAX_WIDTH),
    "model.g_width": integer(32, "generator channels at the last block (DCGAN's ngf)", 1,
                             MAX_WIDTH),
    "model.d_width": integer(32, "discriminator channels at the first block (DCGAN's ndf)",
                             1, MAX_WIDTH),
    "model.d_norm": choice("batch", "normalisation in D ('spectral': every D layer spectrally "
                           "normalised; the resnet family takes 'spectral' or 'none', r3gan 'none')",
                           "batch", "none", "spectral"),
    "model.dtype": choice("float32", "compute dtype ('bfloat16': mixed precision)",
                          "float32", "bfloat16", "float16"),

    "train.num_steps": integer(12_000, "training steps (one G update each)", 0),
    "train.batch_size": integer(64, "global batch, a multiple of the number of devices", 1),
    "train.loss": choice("non_saturating", "adversarial loss", *LOSSES),
    "train.n_critic": integer(1, "D updates per G update", 1),
    "train.g_lr": number(2e-4, "generator Adam learning rate", 0.0, low_open=True),
    "train.d_lr": number(2e-4, "discriminator Adam learning rate", 0.0, low_open=True),
    "train.lr_decay": number(0.0, "fraction of train.num_steps at the end over which both "
                             "learning rates fall linearly to zero (0: constant)", 0.0, 1.0),
    "train.b1": number(0.5, "Adam beta1", 0.0, 1.0, high_open=True),
    "train.b2": number(0.999, "Adam beta2", 0.0, 1.0, high_open=True),
    "train.ema_decay": number(0.999, "decay of the generator's EMA (what sampling uses)",
                              0.0, 1.0, high_open=True),
    "train.mode_seeking": number(0.1, "MSGAN regulariser weight: keeps classes from collapsing"),
    "train.augment": text("translation", "augmentation of what D sees (real and fake): "
                          "DiffAugment's, a comma list of " + ", ".join(AUGMENTATIONS) + ", e.g. "
                          "'color,translation,cutout' ('': none); or StyleGAN2-ADA's pipeline "
                          "alone: 'ada' (R3GAN's: geometry, colour at half probability, cutout) "
                          "or 'bgc' (StyleGAN2-ADA's default: geometry and colour)",
                          "'' or a comma list of distinct names from " + ", ".join(AUGMENTATIONS)
                          + ", or 'ada' or 'bgc' alone", _augment_policy_ok, "colour"),
    "train.augment_p": number(1.0, "probability that each augmentation is applied to an image "
                              "(the start value when adaptive)", 0.0, 1.0),
    "train.ada_target": number(0.0, "adaptive augmentation (ADA): steer augment_p so that this "
                               "fraction of real images gets a positive D logit (0: fixed p; "
                               "StyleGAN2-ADA uses 0.6)", 0.0, 1.0, high_open=True),
    "train.ada_kimg": number(100.0, "ADA speed: thousands of images for augment_p to move by 1",
                             0.0, low_open=True),
    "train.r1_gamma": number(0.0, "R1 penalty weight (gamma/2 * |grad_x D(real)|^2; 0: off)"),
    "train.r1_every": integer(16, "lazy R1: penalise every this many D updates (scaled up by "
                              "it, as StyleGAN2)", 1),
    "train.r2_gamma": number(0.0, "R2 penalty weight (gamma/2 * |grad_x D(fake)|^2, R3GAN; 0: "
                             "off; on r1_every's interval)"),
    "train.lecam": number(0.0, "LeCam regulariser weight (Tseng et al. 2021; 0: off)"),
    "train.class_loss": number(0.0, "weight of the class loss on D's projection head read as a "
                               "classifier (P2GAN, Han et al. 2021): D learns to classify the "
                               "real images, G to make images D classifies as their labels; "
                               "0: off, as it is for data without classes"),
    "train.schedule_kimg": number(0.0, "R3GAN's cosine schedules: over this many thousand images "
                                  "the learning rates, Adam beta2, r1/r2 gammas, EMA half-life "
                                  "and augment_p go from their start to their final_* values "
                                  "(0: constant)"),
    "train.final_lr_scale": number(1.0, "with schedule_kimg: the final learning rates, as a "
                                   "multiple of g_lr and d_lr"),
    "train.final_gamma_scale": number(1.0, "with schedule_kimg: the final r1_gamma and r2_gamma, "
                                      "as a multiple of theirs"),
    "train.final_b2": Key(-1.0, "with schedule_kimg: the final Adam beta2 (-1: train.b2 "
                          "throughout)", "-1 or a number >= 0 and < 1",
                          lambda v: is_number(v) and (v == -1 or 0 <= v < 1), 1.0),
    "train.final_augment_p": Key(-1.0, "with schedule_kimg: the final augment_p (-1: augment_p "
                                 "throughout)", "-1 or a number >= 0 and <= 1",
                                 lambda v: is_number(v) and (v == -1 or 0 <= v <= 1), 2.0),
    "train.ema_kimg": number(0.0, "half-life of G's EMA in thousands of images (R3GAN; with "
                             "schedule_kimg it grows from 0 to this); 0: train.ema_decay"),
    "train.steps_per_call": integer(1, "steps per dispatch: 1 on CPUs, 10-100 on GPUs/TPUs", 1),
    "train.log_every_steps": integer(100, "metrics line every this many steps", 1),
    "train.sample_every_steps": integer(500, "sample grid PNG every this many steps", 1),
    "train.tensorboard": boolean(True, "also write TensorBoard event files to <workdir>/tensorboard"),

    "checkpoint.every_steps": integer(1000, "checkpoint every this many steps", 1),
    "checkpoint.keep": integer(3, "how many recent checkpoints are kept", 1),
    "checkpoint.best_metric": text("", "also keep the checkpoint with the best value of this "
                                   "evaluation result (e.g. fid, fd_classifier, "
                                   "gan_test_accuracy); '' = none", "'' or a result name such as "
                                   "fid or fd_classifier", lambda v: v == "" or v.replace("_", "")
                                   .isalnum() and v.islower(), "FID!"),

    "eval.every_steps": integer(0, "evaluate every this many steps and at the end (0 = never)", 0),
    "eval.num_samples": integer(2000, "generated images per evaluation", 2),
    "eval.metrics": text("fid,gan_test", "comma-separated: " + ",".join(ALL_METRICS),
                         "a comma-separated list of " + ", ".join(ALL_METRICS), _metric_list,
                         "fid,bogus"),
    "eval.extractor": choice("auto", "feature space: 'inception' (pytorch-fid's; needs its "
                             "weights), 'classifier' (trained on the run's data), 'auto'",
                             *EXTRACTORS),
    "eval.inception_weights": text("", "path of pt_inception-2015-12-05-6726825d.pth ('' = "
                                   "$JAXGAN_CACHE, downloaded once)"),
}

# Keys a run may change on resume without changing what is trained: everything else that differs
# from the saved config is named when the saved state does not fit the new one.
RUN_ONLY_KEYS = ("train.num_steps", "train.steps_per_call", "train.log_every_steps",
                 "train.sample_every_steps", "train.tensorboard", "checkpoint.every_steps",
                 "checkpoint.keep",
                 "data.device_cache_mb", "data.host_cache_mb", "data.max_image_pixels",
                 "data.tfds_data_dir",
                 "data.tfds_reader", "data.download", "checkpoint.best_metric", "eval.every_steps",
                 "eval.num_samples", "eval.metrics", "eval.extractor", "eval.inception_weights")


def all_keys() -> dict[str, Key]:
    """KEYS with every registered family's own `model.*` keys (after model.d_norm: the order of
    the configs older versions wrote)."""
    keys = {}
    for dotted, key in KEYS.items():
        keys[dotted] = key
        if dotted == "model.d_norm":
            keys.update({f"model.{name}": k for name, k in family_keys().items()})
    return keys


def default_config() -> ml_collections.ConfigDict:
    """Every key at its default (the digits recipe), every family's keys included."""
    config = ml_collections.ConfigDict()
    for dotted, key in all_keys().items():
        *sections, name = dotted.split(".")
        node = config
        for section in sections:
            if section not in node:
                node[section] = ml_collections.ConfigDict()
            node = node[section]
        node[name] = key.default
    return config


def flatten(config, prefix: str = "") -> dict[str, Any]:
    """{'train.batch_size': 64, ...} for a (nested) ConfigDict or dict."""
    flat = {}
    for name, value in config.items():
        if isinstance(value, (dict, ml_collections.ConfigDict)):
            flat.update(flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def validate(config) -> None:
    """Raise UserError naming the first key whose value is not allowed (or that is unknown)."""
    keys = all_keys()
    for dotted, value in flatten(config).items():
        key = keys.get(dotted)
        if key is None:
            raise UserError(f"unknown config key {dotted!r}")
        if isinstance(key.default, float) and is_int(value):
            value = float(value)
        if not key.ok(value):
            raise UserError(f"config key {dotted}={value!r} is not allowed: it must be {key.allowed}")


def resolve(config) -> ml_collections.ConfigDict:
    """The defaults overlaid with `config`'s values, validated; a new, locked ConfigDict."""
    resolved = default_config()
    validate(config)
    for dotted, value in flatten(config).items():
        *sections, name = dotted.split(".")
        node = resolved
        for section in sections:
            node = node[section]
        node[name] = float(value) if isinstance(node[name], float) else value
    check_family_keys(resolved.model)
    _check_schedules(resolved.train)
    if resolved.checkpoint.best_metric and not resolved.eval.every_steps:
        raise UserError(f"checkpoint.best_metric={resolved.checkpoint.best_metric!r} needs "
                        "evaluations: set eval.every_steps > 0")
    resolved.lock()
    return resolved


def check_family_keys(model_config) -> None:
    """Refuse a family's own key (jaxgan.families) set for a family that does not take it: the
    config holds every family's keys, and one the chosen family does not take stays at its
    default."""
    arch = model_config.get("arch", DEFAULT)
    own = FAMILIES[arch].keys
    for name, key in family_keys().items():
        if name not in own and name in model_config and model_config[name] != key.default:
            takers = owners(name)
            whose = (f"the {takers[0]} family's" if len(takers) == 1 else
                     f"the {' and '.join(takers)} families'")
            raise UserError(f"model.{name}: the {arch} family has no such option (it is {whose}: "
                            f"model.arch={' or '.join(map(repr, takers))})")


def _check_schedules(train) -> None:
    finals = {"final_lr_scale": 1.0, "final_gamma_scale": 1.0, "final_b2": -1.0,
              "final_augment_p": -1.0}
    for name, inert in finals.items():
        if train[name] != inert and not train.schedule_kimg:
            raise UserError(f"train.{name}={train[name]!r} is where a schedule ends: set "
                            "train.schedule_kimg > 0 too")
    if train.schedule_kimg and train.lr_decay and train.final_lr_scale != 1.0:
        raise UserError("train.lr_decay and train.final_lr_scale both schedule the learning "
                        "rates: set one")
    if train.final_augment_p != -1.0 and train.ada_target:
        raise UserError("train.final_augment_p schedules augment_p and train.ada_target adapts "
                        "it: set one")


def check_for_devices(config, num_devices: int) -> None:
    """The checks that need the device count (still before anything is written)."""
    batch = config.train.batch_size
    if batch % num_devices:
        raise UserError(f"train.batch_size={batch} must be a positive multiple of the number of "
                        f"devices ({num_devices}); try {max(1, round(batch / num_devices)) * num_devices}")
    if config.train.ada_target and not config.train.augment:
        raise UserError("train.ada_target adapts the augmentation probability: set train.augment "
                        "too (e.g. 'color,translation,cutout')")
    if config.train.mode_seeking and (batch // num_devices) % 2:
        raise UserError(f"train.mode_seeking pairs images: train.batch_size={batch} must give an "
                        f"even batch per device ({num_devices} devices)")


def changed_keys(saved, config) -> list[str]:
    """'key: saved -> new' for every key (run-only keys aside) whose value differs."""
    old, new = flatten(resolve(saved)), flatten(config)
    return [f"{k}: {old[k]!r} -> {new[k]!r}" for k in all_keys()
            if k not in RUN_ONLY_KEYS and old.get(k) != new.get(k)]


def check_memory(config, num_devices: int, device_bytes: int, host_bytes: int) -> None:
    """Refuse values that cannot fit this machine whatever the model (still before anything is
    written): lower bounds of what they need against a device's memory (`device_bytes`) and the
    host's (`host_bytes`). The model's own size is checked once it is built (`state_fits`)."""
    side, channels = config.data.resolution, config.data.channels
    batch = config.train.batch_size
    per_device = batch // num_devices
    # A batch of real and one of generated images on each device, float32: every family holds
    # both (and much more: activations, gradients).
    need = 2 * per_device * side * side * channels * 4
    if need > device_bytes:
        largest = max(1, device_bytes // (2 * side * side * channels * 4)) * num_devices
        raise UserError(f"train.batch_size={batch} cannot fit: {per_device:,} images per device "
                        f"of {side}x{side}x{channels} need at least {gib(need)} (real and "
                        f"generated, float32) and a device has {gib(device_bytes)}; lower it "
                        f"(below {largest:,} at the very most)")
    if config.eval.every_steps:
        need = config.eval.num_samples * side * side * channels  # the generated images, uint8
        if need > host_bytes:
            raise UserError(f"eval.num_samples={config.eval.num_samples} cannot fit: its images "
                            f"of {side}x{side}x{channels} need at least {gib(need)} and this "
                            f"machine has {gib(host_bytes)}; lower it")


def state_fits(config, state_bytes: int, g_bytes: int, d_bytes: int, device_bytes: int) -> None:
    """Refuse a model whose training state (parameters, optimiser moments, EMA) alone exceeds a
    device's memory, naming the wider network's key."""
    if state_bytes > device_bytes:
        key = "model.g_width" if g_bytes >= d_bytes else "model.d_width"
        raise UserError(f"{key}={config[key.split('.')[0]][key.split('.')[1]]} cannot fit: the "
                        f"training state (parameters, Adam moments, EMA) is {gib(state_bytes)} "
                        f"and a device has {gib(device_bytes)}; lower model.g_width / "
                        "model.d_width")


def memory_hint(config, num_devices: int, evaluation: bool = False) -> str:
    """The keys most likely to blame for running out of memory in training (or evaluation)."""
    if evaluation:
        return f"eval.num_samples={config.eval.num_samples}"
    batch = config.train.batch_size
    return (f"train.batch_size={batch} ({batch // num_devices:,} images per device), then "
            f"model.g_width={config.model.g_width} / model.d_width={config.model.d_width} and "
            f"data.resolution={config.data.resolution}")


def gib(nbytes: int) -> str:
    """Bytes as GiB (MiB below one GiB)."""
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"
