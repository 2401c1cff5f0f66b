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
        "hierarchical_cohort",
        "amortized_cohort",
        "horn_training",
    } <= names


# Notebooks whose short runs are bound by compilation keep the tests' unoptimised XLA backend
# (tests/conftest.py); the others run long simulations, several times slower without LLVM's
# optimisations (parameter_sweeps: ~90 s -> ~570 s), and get the XLA flags from outside back.
COMPILE_BOUND = {
    "bayesian_inference",
    "custom_objective",
    "data_driven_workflow",
    "eeg_fitting",
    "hierarchical_cohort",
    "horn_training",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINMASS_NOTEBOOK_SHORT", "1")
    if path.stem not in COMPILE_BOUND:
        monkeypatch.setenv("XLA_FLAGS", os.environ.get("BRAINMASS_XLA_FLAGS_OUTSIDE", ""))
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
