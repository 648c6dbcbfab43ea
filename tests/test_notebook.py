"""notebooks/jaxgan_colab.ipynb runs top to bottom (on CPU, with a small step count) as committed."""
import json
import os
import re

import pytest
from conftest import ROOT

NOTEBOOK = ROOT / "notebooks" / "jaxgan_colab.ipynb"
# A tiny run: what CI can afford; the notebook's own values train the real digits model.
CI_PARAMETERS = {
    "INSTALL_DRY_RUN": True, "NUM_STEPS": 4, "USE_DRIVE": False, "SHOW_TENSORBOARD": False,
    "OVERRIDES": {"model.g_width": 8, "model.d_width": 8, "model.latent_dim": 16,
                  "train.sample_every_steps": 2, "train.log_every_steps": 2,
                  "checkpoint.every_steps": 2},
}


def test_committed_notebook_has_no_outputs_and_no_machine_paths():
    notebook = json.loads(NOTEBOOK.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)
    text = NOTEBOOK.read_text()
    assert not re.search(r"/(work|home|root|tmp|Users)/", text), "a machine path"
    assert [c for c in code if "parameters" in c["metadata"].get("tags", [])], "no parameters cell"


def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # papermill's way: a cell after the one tagged "parameters" overrides its values.
    index = next(i for i, cell in enumerate(notebook.cells)
                 if "parameters" in cell.metadata.get("tags", []))
    workdir = tmp_path / "runs" / "digits"
    values = {**CI_PARAMETERS, "JAXGAN_SOURCE": str(ROOT), "WORKDIR": str(workdir)}
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        "\n".join(f"{name} = {value!r}" for name, value in values.items())))
    # The kernel imports this checkout's jaxgan (and fakes conftest's 2 CPU devices: the
    # notebook must not care how many there are).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # Any cell error raises CellExecutionError, naming the cell.
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert "pip would install: jaxgan (jax, jaxlib, libtpu kept)" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    gifs = [o for o in outputs if "image/gif" in o.get("data", {})]
    assert len(images) >= 2 and gifs  # the training grid, the class grid; the interpolation
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    assert sorted(os.listdir(workdir / "samples")) == ["step_0000002.png", "step_0000004.png"]
    assert (workdir / "metrics.jsonl").exists() and os.listdir(workdir / "tensorboard")
    assert (workdir / "interpolation.gif").stat().st_size > 0
