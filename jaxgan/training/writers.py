"""Where a run's numbers and pictures go: one writer object behind the training loop.

`Writers` fans every record out to its writers (today metrics.jsonl; TensorBoard plugs in as one
more) and writes nothing on processes other than the first, so a multi-host run keeps one copy.
"""
from __future__ import annotations

import json
import os

from jaxgan.images import save_png


class JsonlWriter:
    """metrics.jsonl: one JSON object per logged step (step, losses, images/s, wall time)."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "metrics.jsonl")

    def scalars(self, step: int, values: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")

    def image(self, step: int, path: str, image_HWC, text: dict) -> None:
        pass  # the grid PNG itself is written by Writers.image

    def close(self) -> None:
        pass


class Writers:
    """The loop's one writer: scalars to every writer, sample grids as PNG files + to writers."""

    def __init__(self, workdir: str, is_main: bool, writers=None):
        self.is_main = is_main
        self.samples_dir = os.path.join(workdir, "samples")
        self.writers = list(writers) if writers is not None else [JsonlWriter(workdir)]
        self.last_grid = None

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
