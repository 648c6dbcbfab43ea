"""Issue 13, faults: full disks, restore errors that are not damage, two runs on one workdir,
SIGHUP and a second Ctrl-C. Through train.py / sample.py where a user meets them."""
import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, override_flags, tiny_config
from helpers import write_checkpoint

import jaxgan
from jaxgan.training import checkpoint
from jaxgan.training.lock import WorkdirLock
from jaxgan.loop import StopSignals


def train_py(workdir, *flags, shell_prefix="", **overrides):
    command = " ".join([shell_prefix, f"exec '{sys.executable}' train.py", f"'--workdir={workdir}'",
                        *(f"'{f}'" for f in (*override_flags(**overrides), *flags))])
    return ["bash", "-c", command]


def run(command, timeout=300):
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


# ----------------------------------------------------------------------------- 11. full disk


def test_a_full_disk_at_the_grid_is_one_line_naming_the_intact_checkpoints(tmp_path):
    # ulimit -f 8: any file past 8 KiB fails with EFBIG, as on a full disk. The grid of step 2
    # (~10 KB, written before that step's checkpoint) is the first file that large.
    result = run(train_py(tmp_path / "run", shell_prefix="ulimit -f 8;", **{
        "train.sample_every_steps": 2, "checkpoint.every_steps": 2}))
    assert result.returncode == 1, result.stderr[-3000:]
    assert error_lines(result.stderr) == [
        f"error: could not write the sample grid of step 2 to {tmp_path}/run/samples: File too "
        "large. Intact checkpoints: none."], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path / "run" / "samples") == []  # no half-written PNG either


def test_an_unwritable_workdir_is_refused_before_the_data_is_loaded(tmp_path):
    # The data source does not exist: the workdir check must come first.
    result = run(train_py(tmp_path / "run", "--config.data.source=folder:/no/such/folder",
                          shell_prefix="ulimit -f 0;"))
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"error: workdir {tmp_path}/run is not writable: "
                                          "File too large"], result.stderr[-3000:]


def can_mount_tmpfs(path):
    path.mkdir()
    # 1.5 MB: the checkpoints of a tiny run are ~0.5 MB each; the third does not fit.
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_really_full_disk_lists_checkpoints_that_restore(tmp_path):
    disk = tmp_path / "disk"
    if not can_mount_tmpfs(disk):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        result = run(train_py(disk / "run", **{"train.num_steps": 40, "checkpoint.every_steps": 2,
                                                "train.sample_every_steps": 4}))
        assert result.returncode == 1, result.stderr[-3000:]
        [line] = error_lines(result.stderr)
        assert "No space left on device. Intact checkpoints: " in line, line
        assert "Traceback" not in result.stderr and "Intact checkpoints: none" not in line, line
        listed = line.split("Intact checkpoints: ")[1].split(";")[0].rstrip(".")
        for step in [int(s) for s in listed.split(", ")]:  # each one listed restores
            assert jaxgan.load_sampler(disk / "run", step=step).step == step
    finally:
        subprocess.run(["umount", str(disk)])


def test_sample_py_write_and_read_failures_are_one_line(tmp_path, capsys):
    from helpers import sample
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    status, _, err = sample(capsys, "--workdir", workdir, "--outdir", not_a_folder / "out")
    assert status == 1 and err.startswith("error: cannot write ") and len(err.splitlines()) == 1, err
    # A damaged checkpoint: the generator's files are gone.
    generator = workdir / "checkpoints" / "0" / "generator"
    for name in os.listdir(generator):
        if name.endswith(".ocdbt") or name == "d":
            path = generator / name
            os.rename(path, tmp_path / f"moved-{name}")
    status, _, err = sample(capsys, "--workdir", workdir, "--seeds", "1")
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"error: checkpoint of step 0 in {workdir}/checkpoints is damaged: "), err


def test_sample_py_with_an_unwritable_workdir_is_one_line(tmp_path):
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    command = f"ulimit -f 0; exec '{sys.executable}' sample.py --workdir '{workdir}' --seeds 1"
    result = run(["bash", "-c", command])
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"error: cannot write {workdir}/samples/sample-step0.png: "
                                          "File too large"], result.stderr


# ----------------------------------------------------------------------------- 12. not damage


@pytest.mark.parametrize("error, reason", [
    (MemoryError(), "MemoryError"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
    (ValueError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"), "RESOURCE_EXHAUSTED"),
])
def test_restore_errors_that_are_not_damage_stop_and_move_nothing(tmp_path, monkeypatch, error,
                                                                  reason):
    workdir = write_checkpoint(tmp_path / "run", ["a", "b"])
    manager = checkpoint.make_manager(workdir)

    def failing(*args, **kwargs):
        raise error
    monkeypatch.setattr(checkpoint, "restore_item", failing)
    with pytest.raises(jaxgan.UserError, match=f"could not read checkpoint .*/0: .*{reason}.*"
                                               "nothing was moved"):
        checkpoint.restore_latest(manager, lambda config, facts: None, mesh=None)
    manager.close()
    assert os.listdir(workdir / "checkpoints") == ["0"]
    assert not (workdir / "damaged_checkpoints").exists()


def test_damage_is_still_recognised():
    assert checkpoint.is_damage(FileNotFoundError(2, "No such file"))
    assert checkpoint.is_damage(ValueError("DATA_LOSS: Error reading manifest: corrupt"))
    assert checkpoint.is_damage(ValueError("NOT_FOUND: Error opening file [os_error_code=2]"))
    assert not checkpoint.is_damage(ValueError("Failed to read [os_error_code=5]"))  # EIO


# ----------------------------------------------------------------------------- 13, 14. runs


def wait_for(predicate, timeout=240):
    start = time.time()
    while not predicate():
        if time.time() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.2)


def start_training_until_stopped(workdir):
    """train.py with no end in sight, returned once it has logged (or exited)."""
    process = subprocess.Popen(train_py(workdir, **{
        "train.num_steps": 100000, "checkpoint.every_steps": 100000, "train.log_every_steps": 2}),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (workdir / "metrics.jsonl").exists() or process.poll() is not None)
    except BaseException:
        process.kill()
        raise
    return process


def test_second_run_on_a_workdir_is_refused_and_sighup_saves(tmp_path):
    workdir = tmp_path / "run"
    first = start_training_until_stopped(workdir)
    try:
        second = run(train_py(workdir, **{"train.num_steps": 2}))
        assert second.returncode == 1
        assert error_lines(second.stderr) == [
            f"error: workdir {workdir} is in use by another training run (pid {first.pid} on host "
            f"{os.uname().nodename}, started " + error_lines(second.stderr)[0].split("started ")[1]]
        assert "wait for it to finish or stop it" in second.stderr
        first.send_signal(signal.SIGHUP)  # the SSH session dropped
        out, err = first.communicate(timeout=120)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    assert "Received SIGHUP: saved a checkpoint at step " in out
    step = int(out.split("checkpoint at step ")[1].split()[0])
    assert jaxgan.load_sampler(workdir).step == step


def test_a_second_ctrl_c_while_stopping_exits_at_once(tmp_path):
    workdir = tmp_path / "run"
    run_ = start_training_until_stopped(workdir)
    try:
        run_.send_signal(signal.SIGINT)
        start = time.time()
        # Second ones every 20 ms until it exits: they land in the loop, during the save and after
        # the loop has returned, while the last save is awaited (once Python's bare handler).
        while run_.poll() is None and time.time() - start < 30:
            time.sleep(0.02)
            run_.send_signal(signal.SIGINT)
        out, err = run_.communicate(timeout=60)
    finally:
        run_.kill()
    assert time.time() - start < 30
    assert run_.returncode in (0, 130), err[-3000:]  # saved before the second came, or abandoned
    assert "Traceback" not in err
    if run_.returncode == 130:
        assert error_lines(err)[-1].startswith("error: stopped by a second SIGINT without waiting")


def wait_after_signalling(*signals_to_send):
    """checkpoint.wait that first sends this process the given signals, once per run."""
    wait, pending = checkpoint.wait, list(signals_to_send)

    def signalled_wait(manager):
        while pending:
            os.kill(os.getpid(), pending.pop(0))
            time.sleep(0.2)  # the handler runs between bytecodes
        wait(manager)
    return signalled_wait


def test_signals_while_the_last_save_is_awaited_are_a_first_then_a_second(tmp_path, monkeypatch):
    # The loop has returned and only the final wait for the asynchronous save is left: a first
    # signal there must not abandon it, a second must (with its name, not a bare KeyboardInterrupt).
    # (SIGINT's handler before: Python's, or SIG_IGN in a job started in the background)
    handler_before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(checkpoint, "wait", wait_after_signalling(signal.SIGTERM, signal.SIGINT))
    with pytest.raises(KeyboardInterrupt, match="^a second SIGINT$"):
        jaxgan.train_and_evaluate(tiny_config(), tmp_path / "run")
    monkeypatch.setattr(checkpoint, "wait", wait_after_signalling(signal.SIGTERM))
    state = jaxgan.train_and_evaluate(tiny_config(), tmp_path / "again")
    assert int(state.step) == 4
    assert sorted(os.listdir(tmp_path / "again" / "checkpoints")) == ["2", "4"]
    assert signal.getsignal(signal.SIGINT) is handler_before  # put back


def test_stop_signals_first_sets_a_flag_second_interrupts():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGHUP)
        assert signals.received == "SIGHUP" and signals.stop_requested(1)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs between bytecodes


def test_lock_refuses_a_holder_and_takes_a_stale_file(tmp_path):
    (tmp_path / ".lock").write_text("pid 999999 on host gone, started 2020-01-01\n")  # stale
    with WorkdirLock(str(tmp_path)):
        assert f"pid {os.getpid()} on host" in (tmp_path / ".lock").read_text()
        with pytest.raises(jaxgan.UserError, match=f"in use by another training run \\(pid "
                                                   f"{os.getpid()} on host"):
            WorkdirLock(str(tmp_path)).__enter__()
    with WorkdirLock(str(tmp_path)):  # released when the first run ends
        pass
