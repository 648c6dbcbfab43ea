"""Shared by the gallery tests: one tiny trained run per session, and servers on 127.0.0.1."""
import contextlib
import shutil
import threading

from conftest import tiny_config

import jaxgan

_RUN = {}


def trained_run(tmp_path_factory):
    """(workdir, sampler) of a 2-step tiny digits run, trained once per test session (the same
    config as test_sampling's, so the compilation cache is shared)."""
    if not _RUN:
        workdir = tmp_path_factory.mktemp("gallery-run")
        jaxgan.train_and_evaluate(tiny_config(**{"train.num_steps": 2}), workdir)
        _RUN.update(workdir=workdir, sampler=jaxgan.load_sampler(workdir))
    return _RUN["workdir"], _RUN["sampler"]


def copy_run(tmp_path_factory, name):
    """A fresh workdir with the run's checkpoints and no judgements yet."""
    workdir, _ = trained_run(tmp_path_factory)
    copy = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(workdir, copy)
    return copy


@contextlib.contextmanager
def serving(gallery):
    """The gallery served on a free port of 127.0.0.1; yields its base URL."""
    from jaxgan.gallery import server as server_lib
    server = server_lib.make_server(gallery, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
