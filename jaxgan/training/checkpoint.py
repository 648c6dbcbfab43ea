"""Orbax checkpoints under `<workdir>/checkpoints/<step>/`.

Each checkpoint holds four items:
  state      the whole GANState (what training resumes from)
  generator  the EMA generator's variables (what sampling restores, without the rest)
  config     the run's config as JSON
  data       the data facts (class names, image shape, number of classes), the checkpoint
             format version, the jaxgan version that wrote it and the digests of the two
             array items
so a workdir alone is enough to rebuild the generator and sample from it.

The digests (sha256 over every array's path, dtype, shape and bytes) are taken from the arrays
when the save is issued and written in the same Orbax commit as the arrays, so no finalised
checkpoint ever lacks them; a restore recomputes them over what it read. Orbax checks none of
this itself: a flipped bit in an array file restores as a wrong value. Hashing the arrays rather
than the files costs one pass over data the host copies anyway (sha256 runs at about 1 GB/s a
core with SHA-NI, and the leaves are hashed on several cores), needs no second read of the files
after Orbax finalises, and does not depend on Orbax's file layout. A mismatch, or a non-finite
value in a restored state (training never saves one), is damage like a missing file.

The best checkpoint by an evaluation metric (`best_step`, from `<workdir>/eval/step_N.json`) is
chosen here too: the manager keeps it (`best_metric`) and sampling loads it (step="best").
"""
from __future__ import annotations

import concurrent.futures
import errno
import functools
import glob
import hashlib
import json
import logging
import os
import re
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxgan import __version__, config as config_lib
from jaxgan.errors import UserError
from jaxgan.metric_names import lower_is_better
from jaxgan.models import variables

ITEMS = ("state", "generator", "config", "data")
# The layout of the items above. Raise it when a change makes older jaxgan versions misread a
# checkpoint; checkpoints without it were written by jaxgan 0.1.0, in format 1.
FORMAT_VERSION = 1


def checkpoint_dir(workdir) -> str:
    return os.path.join(os.path.abspath(os.fspath(workdir)), "checkpoints")


def _drop_closed_event_loop_callbacks(unraisable, previous=sys.unraisablehook) -> None:
    # After an asynchronous save fails (a full disk), Orbax closes its thread's event loop while
    # TensorStore still completes the other writes; each completion's call_soon_threadsafe then
    # raises "Event loop is closed" where nothing can catch it, and Python prints one traceback
    # per file under jaxgan's one-line error. The failure itself reaches the loop through
    # wait_until_finished(); only this echo is dropped, every other unraisable error is kept.
    error = unraisable.exc_value
    if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
        previous(unraisable)


# Below this many bytes per device, an array replicated over several devices is saved whole from
# one of them, not split into one slice per device ("replica-parallel", Orbax's default outside
# GPUs): each slice is an eager op, compiled once per shape and dispatched at every save. For a
# tiny resnet on 8 CPU devices that was ~3,700 slices, 7 s per save; the files are the same.
MIN_BYTES_PER_DEVICE_SLICE = 4 << 20


def _prepare_orbax_for_saving() -> None:
    """Once per process: the unraisable-error filter above and the array handler below."""
    if not getattr(sys.unraisablehook, "drops_closed_event_loops", False):
        hook = functools.partial(_drop_closed_event_loop_callbacks, previous=sys.unraisablehook)
        hook.drops_closed_event_loops = True
        sys.unraisablehook = hook
    handler = ocp.type_handlers.get_type_handler(jax.Array)
    if type(handler) is ocp.type_handlers.ArrayHandler and \
            getattr(handler, "_min_slice_bytes_for_replica_parallel", 0) is None:
        absl_logger = logging.getLogger("absl")  # (its "overriding jax.Array" warning)
        level = absl_logger.level
        absl_logger.setLevel(logging.ERROR)
        try:
            ocp.type_handlers.register_type_handler(jax.Array, ocp.type_handlers.ArrayHandler(
                min_slice_bytes_for_replica_parallel=MIN_BYTES_PER_DEVICE_SLICE), override=True)
        finally:
            absl_logger.setLevel(level)


def make_manager(workdir, keep: int = 3, read_only: bool = False,
                 best_metric: str = "") -> ocp.CheckpointManager:
    """Keeps the newest `keep` checkpoints and, with `best_metric`, also the one whose saved
    evaluation result is best, in the direction its metric's row in the metrics' table gives."""
    if not read_only:
        _prepare_orbax_for_saving()
    if read_only:  # (the values Orbax would otherwise warn that it substitutes)
        options = ocp.CheckpointManagerOptions(read_only=True, create=False,
                                               save_interval_steps=0, max_to_keep=None)
    elif best_metric:
        policies = ocp.checkpoint_managers
        options = ocp.CheckpointManagerOptions(create=True, cleanup_tmp_directories=True,
                                               preservation_policy=(
            policies.AnyPreservationPolicy([
                policies.LatestN(keep),
                policies.BestN(get_metric_fn=lambda metrics: metrics[best_metric],
                               reverse=lower_is_better(best_metric), n=1,
                               keep_checkpoints_without_metrics=False)])))
    else:
        # cleanup_tmp_directories: a save abandoned by a second Ctrl-C or a crash leaves an
        # unfinished temporary folder; the next run removes it (it never counts as a step).
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               cleanup_tmp_directories=True)
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=ITEMS)


def generator_variables(state) -> dict:
    """The EMA generator's variables: what sampling uses."""
    return variables(state.ema_params, state.ema_stats)


def save(manager: ocp.CheckpointManager, state, config, data_facts: dict,
         metrics: dict | None = None) -> None:
    """Asynchronous, atomic save (Orbax writes to a temporary directory and renames it);
    `metrics`: the evaluation result of this step, for keeping the best checkpoint."""
    step = int(jax.device_get(state.step))
    digests = {"state": tree_digest(state), "generator": tree_digest(generator_variables(state))}
    try:
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            generator=ocp.args.StandardSave(generator_variables(state)),
            config=ocp.args.JsonSave(json.loads(config.to_json_best_effort())),
            data=ocp.args.JsonSave({**data_facts, "format": FORMAT_VERSION,
                                    "jaxgan_version": __version__, DIGESTS: digests})),
            metrics=metrics, force=True)
    except Exception as error:  # disk full, permissions, a failed earlier async save
        raise _save_error(manager, error) from None


# The data item's key holding {item name: tree_digest} (absent in checkpoints written before it).
DIGESTS = "digests"
# How `tree_digest` is computed, its first word: a digest of another scheme (a later jaxgan's) is
# not compared, since a difference would not mean damage.
DIGEST_SCHEME = "sha256-leaves"


def tree_digest(tree) -> str:
    """sha256 over each leaf's path, dtype, shape and sha256 of its bytes, in the tree's order.
    `tree`'s leaves are host (numpy) arrays or device arrays (copied to the host a leaf at a
    time)."""
    return _summarise(tree, check_finite=False)[0]


def _summarise(tree, check_finite: bool):
    """(tree_digest, the path of the first leaf holding NaN or infinity, or None). The leaves are
    hashed in threads (hashlib and numpy release the GIL on large buffers): one pass at the
    memory's speed over several cores, not sha256's ~1 GB/s on one."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    paths, leaves = [path for path, _ in flat], [leaf for _, leaf in flat]
    summary = functools.partial(_leaf_summary, check_finite=check_finite)
    if sum(getattr(leaf, "nbytes", 0) for leaf in leaves) < _THREADED_DIGEST_BYTES:
        summaries = list(map(summary, leaves))
    else:
        with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            summaries = list(pool.map(summary, leaves))
    digest, non_finite = hashlib.sha256(), None
    for path, (header, leaf_digest, finite) in zip(paths, summaries):
        digest.update(f"{jax.tree_util.keystr(path)}|{header}|".encode() + leaf_digest)
        if not finite and non_finite is None:
            non_finite = jax.tree_util.keystr(path)
    return f"{DIGEST_SCHEME}:{digest.hexdigest()}", non_finite


# Below this many bytes of arrays a thread pool costs more than it saves (the digits default's
# 3 MB state, both items at save on a busy 2-core machine: 16.8 ms with a pool, 11.9 ms without).
_THREADED_DIGEST_BYTES = 16 << 20


def _leaf_summary(leaf, check_finite: bool):
    array = np.ascontiguousarray(np.asarray(leaf))
    leaf_digest = hashlib.sha256(array.reshape(-1).view(np.uint8)).digest()
    finite = (not check_finite or not jnp.issubdtype(array.dtype, jnp.inexact)
              or bool(np.isfinite(array).all()))
    return f"{array.dtype.name}|{array.shape}", leaf_digest, finite


class DamagedArrays(Exception):
    """A restored item whose arrays differ from what was saved, or hold NaN or infinity."""


def check_restored(manager, step: int, name: str, tree, facts: dict) -> None:
    """Check `tree` (item `name` of checkpoint `step`, just restored) against the digest saved
    with it, and for non-finite values; raises DamagedArrays."""
    expected = facts.get(DIGESTS, {}).get(name)
    if expected is None or not str(expected).startswith(f"{DIGEST_SCHEME}:"):
        logging.warning("checkpoint %s (step %d) carries no digest %s(written by jaxgan %s): its "
                        "%s arrays are checked for NaN and infinity only",
                        _step_path(manager, step), step, "" if expected is None else
                        "this jaxgan can check ", facts.get("jaxgan_version", "0.1.0"), name)
        expected = None
    digest, non_finite = _summarise(tree, check_finite=True)
    if expected is not None and digest != expected:
        raise DamagedArrays(f"its {name} arrays differ from the digest written when it was saved")
    if non_finite is not None:
        raise DamagedArrays(f"its {name} holds NaN or infinity at {non_finite} (training never "
                            "saves such a state)")


def wait(manager: ocp.CheckpointManager) -> None:
    """Block until the asynchronous saves are on disk."""
    try:
        manager.wait_until_finished()
    except Exception as error:
        raise _save_error(manager, error) from None


def _save_error(manager, error) -> UserError:
    return write_error(manager, f"a checkpoint to {manager.directory}", error)


def write_error(manager, what: str, error: BaseException) -> UserError:
    """The one message for any write that failed during training (disk full, file too large,
    read-only, permissions): what, why, and the checkpoints that are intact to resume from."""
    try:
        manager.reload()  # what is on disk now, not what this manager remembers
        kept = sorted(manager.all_steps())
    except Exception:  # noqa: BLE001 - the listing itself failed: say so, claim nothing
        kept = None
    listed = ("unknown (the checkpoint folder cannot be read)" if kept is None else
              ", ".join(map(str, kept)) or "none")
    resume = f"; rerun the same command to resume from step {kept[-1]}" if kept else ""
    return UserError(f"could not write {what}: {error_reason(error)}. Intact checkpoints: "
                     f"{listed}{resume}.")


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")


def error_reason(error: BaseException) -> str:
    """A short reason: the OS's words for an OSError, also inside TensorStore's messages."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, DamagedArrays):
        return str(error)
    text = " ".join(str(error).split())
    code = _OS_ERROR_CODE.search(text)
    if code:
        return os.strerror(int(code.group(1)))
    return f"{type(error).__name__}: {text[:200]}"


def is_damage(error: BaseException) -> bool:
    """Whether a restore failed because the checkpoint's files are missing, unreadable or
    inconsistent (then an older checkpoint is used), rather than because of this machine or this
    moment: out of memory, an I/O error, permissions, an interrupted read. Only damage moves a
    checkpoint aside; anything else stops the run and moves nothing."""
    if isinstance(error, (MemoryError, KeyboardInterrupt)):
        return False
    if isinstance(error, DamagedArrays):
        return True
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return True
    if isinstance(error, OSError):  # EIO, EACCES, ENOMEM, ...: the machine, not the files
        return False
    text = str(error)
    if any(word in text for word in _NOT_DAMAGE):
        return False
    code = _OS_ERROR_CODE.search(text)
    return code is None or int(code.group(1)) in (errno.ENOENT, errno.ENOTDIR)


# TensorStore / XLA status words of failures that are not the checkpoint's fault.
_NOT_DAMAGE = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "PERMISSION_DENIED",
               "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED")


def with_sharding(abstract_tree, sharding):
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                        abstract_tree)


class NewerFormat(UserError):
    """A checkpoint written by a newer jaxgan in a format this one does not know."""


def restore_meta(manager: ocp.CheckpointManager, step: int):
    """(config completed with today's defaults, data facts) saved at `step`.

    Raises NewerFormat for a checkpoint from a newer, unknown format (never "damaged")."""
    restored = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore(),
                                                             data=ocp.args.JsonRestore()))
    facts = dict(restored["data"])
    written = facts.get("format", 1)  # absent: jaxgan 0.1.0, format 1
    if written > FORMAT_VERSION:
        raise NewerFormat(
            f"checkpoint {_step_path(manager, step)} was written by jaxgan "
            f"{facts.get('jaxgan_version', '?')} in checkpoint format {written}; this jaxgan "
            f"({__version__}) reads formats up to {FORMAT_VERSION}: upgrade jaxgan to use it")
    try:
        config = config_lib.resolve(ml_collections.ConfigDict(restored["config"]))
    except UserError as error:
        raise UserError(f"checkpoint {_step_path(manager, step)} holds a config this jaxgan "
                        f"cannot use: {error}") from None
    return config, facts


def restore_item(manager: ocp.CheckpointManager, step: int, name: str, abstract_tree, mesh=None):
    """Restore one pytree item, replicated over `mesh` (or on the first local device)."""
    sharding = (NamedSharding(mesh, P()) if mesh is not None
                else jax.sharding.SingleDeviceSharding(jax.local_devices()[0]))
    target = with_sharding(abstract_tree, sharding)
    restored = manager.restore(step, args=ocp.args.Composite(
        **{name: ocp.args.StandardRestore(target)}))
    return restored[name]


def restore_latest(manager, abstract_state_fn, mesh):
    """(state, saved config, data facts) of the newest readable checkpoint, or None if none.

    A damaged checkpoint (truncated or missing files, arrays that differ from their digest or hold
    NaN; both array items are checked, so that what training resumes from also samples) is moved
    aside to
    `<workdir>/damaged_checkpoints/<step>` with a warning naming its path and step (never deleted:
    moved, so that training can write that step again). `abstract_state_fn(saved_config, facts)`
    gives the restore target, or raises UserError when the checkpoint cannot be resumed.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    damaged = []
    for step in steps:
        try:
            saved_config, facts = restore_meta(manager, step)
            target = abstract_state_fn(saved_config, facts)
            state = restore_item(manager, step, "state", target, mesh)
            check_restored(manager, step, "state", state, facts)
            generator = restore_item(manager, step, "generator", generator_variables(target), mesh)
            check_restored(manager, step, "generator", generator, facts)
            del generator
            restored = state, saved_config, facts
        except UserError:
            raise
        except Exception as error:
            if not is_damage(error):  # out of memory, I/O error, ...: stop, move nothing
                raise UserError(f"could not read checkpoint {_step_path(manager, step)}: "
                                f"{error_reason(error)}. It does not look damaged, so nothing was "
                                "moved; fix the cause and rerun the same command.") from None
            if isinstance(error, DamagedArrays):
                logging.warning("checkpoint %s (step %d) is damaged: %s; trying an older one",
                                _step_path(manager, step), step, error)
            else:
                first_line = (str(error).strip().splitlines() or [""])[0][:200]
                logging.warning("checkpoint %s (step %d) is unreadable (%s: %s); trying an older "
                                "one", _step_path(manager, step), step, type(error).__name__,
                                first_line)
            damaged.append(step)
            continue
        _move_aside(manager, damaged)
        return restored
    if steps:
        raise UserError(f"no readable checkpoint in {manager.directory} (steps "
                        f"{', '.join(map(str, steps))} are all damaged); nothing was deleted. "
                        "Move the directory away to start afresh.")
    return None


def _step_path(manager, step: int) -> str:
    return os.path.join(os.fspath(manager.directory), str(step))


def _move_aside(manager, steps) -> None:
    if not steps:
        return
    aside = os.path.join(os.path.dirname(os.fspath(manager.directory)), "damaged_checkpoints")
    os.makedirs(aside, exist_ok=True)
    for step in steps:
        target = os.path.join(aside, str(step))
        while os.path.exists(target):
            target += "+"
        os.rename(_step_path(manager, step), target)
        logging.warning("moved the damaged checkpoint of step %d to %s", step, target)
    manager.reload()


def tree_differences(saved_tree, new_tree) -> list[str]:
    """Where two (abstract) pytrees differ in structure, shapes or dtypes: 'path: saved -> new'.

    This is what decides whether a checkpoint fits a config, whatever the model family."""
    def shapes(tree):
        return {jax.tree_util.keystr(path): (tuple(leaf.shape), str(leaf.dtype))
                for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
    saved, new = shapes(saved_tree), shapes(new_tree)
    return [f"{path}: {saved.get(path, 'absent')} -> {new.get(path, 'absent')}"
            for path in sorted(saved.keys() | new.keys()) if saved.get(path) != new.get(path)]


# The best checkpoint: by a value of an evaluation result, in its metric's direction (the
# metrics' table, jaxgan.metric_names.METRICS).
DEFAULT_METRICS = ("fid", "fd_classifier")


def evaluated_steps(workdir) -> dict[int, dict]:
    """{step: metrics} of every evaluation result in the workdir (`<workdir>/eval/step_N.json`)."""
    results = {}
    for path in glob.glob(os.path.join(os.fspath(workdir), "eval", "step_*.json")):
        match = re.search(r"step_(\d+)\.json$", path)
        try:
            with open(path) as f:
                results[int(match.group(1))] = json.load(f)["metrics"]
        except (OSError, ValueError, KeyError):
            continue  # a damaged result file names no best step
    return results


def best_step(workdir, available_steps, metric: str | None = None) -> int:
    """The step among `available_steps` (the checkpoints kept) with the best `metric` (default:
    fid, else fd_classifier) in its evaluation result."""
    results = {s: m for s, m in evaluated_steps(workdir).items() if s in set(available_steps)}
    if metric is None:
        metric = next((m for m in DEFAULT_METRICS if any(m in r for r in results.values())), None)
    scored = {s: r[metric] for s, r in results.items() if metric is not None and metric in r}
    if not scored:
        raise UserError(f"no evaluated checkpoint in {workdir} to pick the best from (kept steps: "
                        f"{', '.join(map(str, sorted(available_steps)))}); run "
                        f"python -m jaxgan.evaluate --workdir {workdir} --step N, or train with "
                        "eval.every_steps > 0")
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda s: (scored[s], -s) if pick is min else (scored[s], s))
