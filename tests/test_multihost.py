"""Multi-host for real: 2 processes x 2 CPU devices through train.py, against 1 process x 4.

Each process is started as a user would start it on every host of a pod (the same command, its own
--process_id), talking to a coordinator on 127.0.0.1 and exchanging gradients over gloo, JAX's
CPU collectives. The tests check what a multi-host user relies on: the same numbers as one host,
checkpoints that move between the two layouts, one writer, and a clean stop on SIGTERM.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, override_flags
from test_checkpoint import saved_state

pytestmark = pytest.mark.slow

DEVICES = 4  # in all, either layout
RUN = {"train.num_steps": 2, "train.log_every_steps": 1, "train.sample_every_steps": 2,
       "checkpoint.every_steps": 2}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_process_left_behind():
    yield
    for process in STARTED:
        if process.poll() is None:
            process.kill()
            process.communicate()
    STARTED.clear()


STARTED = []


def start(workdir, num_processes, **overrides):
    """train.py in `num_processes` processes, DEVICES // num_processes CPU devices each."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_CPU_COLLECTIVES_IMPLEMENTATION": "gloo",
           # (conftest's 8 devices are for the test process itself)
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES // num_processes}",
           # every small program cached: the processes all compile the same ones
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    command = [sys.executable, str(ROOT / "train.py"), f"--workdir={workdir}",
               *override_flags(**{**RUN, **overrides})]
    if num_processes > 1:
        command += [f"--coordinator_address=127.0.0.1:{free_port()}",
                    f"--num_processes={num_processes}"]
    processes = [subprocess.Popen(command + ([f"--process_id={i}"] if num_processes > 1 else []),
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for i in range(num_processes)]
    STARTED.extend(processes)
    return processes


def finish(processes, timeout=600):
    """(stdout, stderr) of each process; all must exit 0."""
    outputs = [p.communicate(timeout=timeout) for p in processes]
    for p, (_, err) in zip(processes, outputs):
        assert p.returncode == 0, err[-3000:]
    return outputs


def assert_close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


def logged_steps(workdir):
    return [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]


def event_files(workdir):
    return sorted(os.listdir(workdir / "tensorboard"))


def test_two_hosts_train_as_one_and_checkpoints_move_between_layouts(tmp_path):
    one, two = tmp_path / "one_host", tmp_path / "two_hosts"
    # Steps 1-2 on device-resident data: 1 process x 4 devices and 2 processes x 2, side by side.
    finish(start(one, 1) + start(two, 2))
    assert_close(saved_state(one, 2), saved_state(two, 2))
    assert logged_steps(two) == [1, 2] and os.listdir(two / "samples") == ["step_0000002.png"]
    assert len(event_files(two)) == 1  # process 0's alone

    # Steps 3-4 resumed in the other layout, on host-streamed data (each host reads its rows).
    streamed = {"train.num_steps": 4, "data.device_cache_mb": 0}
    finish(start(one, 2, **streamed) + start(two, 1, **streamed))
    assert_close(saved_state(one, 4), saved_state(two, 4))
    for workdir in (one, two):
        assert logged_steps(workdir) == [1, 2, 3, 4]
        assert len(event_files(workdir)) == 2  # one per run


def test_sigterm_to_one_host_stops_both_at_the_same_step(tmp_path):
    processes = start(tmp_path, 2, **{"train.num_steps": 100000, "checkpoint.every_steps": 100000,
                                      "train.sample_every_steps": 100000})
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 600
    while not (metrics.exists() and metrics.stat().st_size) and time.time() < deadline:
        assert all(p.poll() is None for p in processes), processes[0].communicate()[1][-3000:]
        time.sleep(0.2)  # until training is under way
    processes[1].send_signal(signal.SIGTERM)  # a preemption notice to one host only
    outputs = finish(processes, timeout=300)
    stopped = [int(out.split("saved a checkpoint at step ")[1].split()[0])
               for out, _ in outputs if "saved a checkpoint at step " in out]
    assert len(stopped) >= 1 and len(set(stopped)) == 1, [out for out, _ in outputs]
    assert os.listdir(tmp_path / "checkpoints") == [str(stopped[0])]
    assert logged_steps(tmp_path)[-1] <= stopped[0]
