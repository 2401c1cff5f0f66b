"""Execute every notebook in notebooks/ top to bottom, in its short-run mode.

Each notebook reads `BRAINMASS_NOTEBOOK_SHORT=1` (shorter simulations,
smaller grids) and checks its own outcome in assertion cells, so a notebook
that runs but shows a wrong result fails here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_are_found():
    names = {p.stem for p in NOTEBOOKS}
    assert {
        "analyze_results",
        "parameter_sweeps",
        "custom_objective",
        "fitting_with_gradients",
        "gradient_free_fitting",
        "per_region_fitting",
        "eeg_fitting",
        "data_driven_workflow",
        "bayesian_inference",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINMASS_NOTEBOOK_SHORT", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # committed notebooks carry no outputs
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: clear the outputs before committing"
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    assert os.environ["BRAINMASS_NOTEBOOK_SHORT"] == "1"
