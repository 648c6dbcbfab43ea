"""Where a run's numbers and pictures go: one writer object behind the training loop.

`Writers` fans every record out to its writers (metrics.jsonl, and TensorBoard event files under
`<workdir>/tensorboard/`) and writes nothing on processes other than the first, so a multi-host run
keeps one copy.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading

import numpy as np

from jaxgan.config import flatten
from jaxgan.images import save_png


class JsonlWriter:
    """metrics.jsonl: one JSON object per logged step (step, losses, images/s, wall time)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")

    def scalars(self, step: int, values: dict) -> None:
        """Appends one whole line, or nothing: a failed write (a full disk) is cut back off, so
        the file never ends in half a line."""
        line = memoryview((json.dumps({"step": step, **values}) + "\n").encode())
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            try:
                while line:
                    line = line[os.write(fd, line):]
            except OSError:
                os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    def image(self, step: int, path: str, image_HWC, text: dict) -> None:
        pass  # the grid PNG itself is written by Writers.image

    def close(self) -> None:
        pass


def _quiet_tensorboard_thread_errors() -> None:
    """tensorboardX writes events from its own thread, where a full disk would print a thread
    traceback; the loop's own next write fails on the same disk and reports it as one line (what,
    why, the intact checkpoints), so such errors in that thread are logged, not printed."""
    previous = threading.excepthook
    if getattr(previous, "jaxgan_tensorboard", False):
        return

    def hook(args):
        if issubclass(args.exc_type, OSError) and \
                type(args.thread).__module__.startswith("tensorboardX"):
            logging.info("TensorBoard event writer: %s", args.exc_value)
        else:
            previous(args)
    hook.jaxgan_tensorboard = True
    threading.excepthook = hook


def _summary_writer_class():
    """tensorboardX's SummaryWriter, imported without importing torch.

    tensorboardX imports torch whenever it is installed, only to accept torch tensors (jaxgan
    passes numpy): 2.4 s more at every start on a CPU with torch installed. An entry of None in
    sys.modules makes that `import torch` fail as if it were absent (tensorboardX catches the
    ImportError); a torch already imported by the user is left alone.
    """
    block = "torch" not in sys.modules
    if block:
        sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    finally:
        if block and sys.modules.get("torch", False) is None:
            del sys.modules["torch"]


class TensorBoardWriter:
    """TensorBoard event files in `<workdir>/tensorboard/`: every scalar, the sample grids as
    images, and the run's config as text (at the step the run started or resumed from).

    Written with tensorboardX rather than the `tensorboard` package: tensorboard's own summary
    ops need TensorFlow for images and text (which jaxgan must not import, and which breaks libtpu
    when installed on a TPU VM), while tensorboardX writes the same event protocol with only
    numpy and protobuf. Imported here, lazily: `import jaxgan` stays light.

    Resume: a run that crashed after its last checkpoint had already logged steps it will train
    again. The writer opens with `purge_step=start_step + 1`, a marker TensorBoard honours by
    discarding every earlier-written event after `start_step`, so the curves show each step once,
    as trained by the run that the checkpoints continue.
    """

    def __init__(self, workdir: str, start_step: int = 0, config=None):
        SummaryWriter = _summary_writer_class()
        _quiet_tensorboard_thread_errors()
        self.path = os.path.join(workdir, "tensorboard")
        self._writer = SummaryWriter(self.path, purge_step=start_step + 1 if start_step else None,
                                     flush_secs=30)
        if config is not None:
            self._writer.add_text("config", config_markdown(config), start_step)

    def scalars(self, step: int, values: dict) -> None:
        for name, value in values.items():
            if name != "time":  # every event carries its wall time already
                self._writer.add_scalar(name, value, step)

    def image(self, step: int, path: str, image_HWC, text: dict) -> None:
        image_HWC = np.asarray(image_HWC)
        if image_HWC.ndim == 2:
            image_HWC = image_HWC[:, :, None]
        self._writer.add_image("samples", image_HWC, step, dataformats="HWC")
        self._writer.flush()  # grids are rare: show each at once

    def close(self) -> None:
        self._writer.close()


def config_markdown(config) -> str:
    """The config as a two-column Markdown table (TensorBoard's text tab renders Markdown)."""
    rows = [f"| {key} | `{value!r}` |" for key, value in sorted(flatten(config).items())]
    return "\n".join(["| key | value |", "| --- | --- |", *rows])


class Writers:
    """The loop's one writer: scalars to every writer, sample grids as PNG files + to writers.

    On processes other than the first it holds no writer and writes nothing (no file is opened).
    """

    def __init__(self, workdir: str, is_main: bool, writers=None):
        self.is_main = is_main
        self.samples_dir = os.path.join(workdir, "samples")
        if not is_main:
            writers = []
        self.writers = list(writers) if writers is not None else [JsonlWriter(workdir)]
        self.last_grid = None

    @classmethod
    def for_run(cls, workdir: str, is_main: bool, config, start_step: int) -> "Writers":
        """metrics.jsonl, plus TensorBoard when `train.tensorboard` is on."""
        if not is_main:
            return cls(workdir, is_main)
        writers = [JsonlWriter(workdir)]
        if config.train.tensorboard:
            writers.append(TensorBoardWriter(workdir, start_step, config))
        return cls(workdir, is_main, writers)

    def scalars(self, step: int, values: dict) -> None:
        if self.is_main:
            for writer in self.writers:
                writer.scalars(step, values)

    def grid(self, step: int, image_HWC, text: dict) -> None:
        if self.is_main:
            self.last_grid = os.path.join(self.samples_dir, f"step_{step:07d}.png")
            save_png(self.last_grid, image_HWC, text)
            for writer in self.writers:
                writer.image(step, self.last_grid, image_HWC, text)

    def describe(self) -> str:
        return "; ".join(getattr(w, "path", type(w).__name__) for w in self.writers)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
