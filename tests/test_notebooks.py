"""The notebooks run top to bottom, headless (nbclient), and are stored without outputs."""

import json
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="the notebook tests need the [test] extra (nbclient)")
import nbformat  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


def outputs(nb) -> str:
    return "".join(o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("name", ["quickstart.ipynb", "sweep_report.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.outputs and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert 'REPO_URL = "' in nb.cells[1].source and "except ImportError" in nb.cells[1].source


def test_quickstart_runs(tmp_path):
    """From an empty directory: configs/experiments/... resolves to the installed configs."""
    nb = execute("quickstart.ipynb", tmp_path)
    text = outputs(nb)
    assert "test accuracy of your model: 0.9" in text
    assert "within-class lines" in text and "between-class lines" in text
    assert (tmp_path / "runs" / "quickstart_e1" / "report" / "noise_fitting_vs_frequency.png").exists()
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_sweep_report_runs_on_a_finished_sweep(tmp_path, monkeypatch, finished_sweep_root):
    monkeypatch.setenv("SPECTRAL_JAX_SWEEP_ROOT", str(finished_sweep_root))
    nb = execute("sweep_report.ipynb", tmp_path)
    text = outputs(nb)
    assert "2 of 2 runs done" in text
    assert "min noise fitting: train" in text and "hf_power within" in text
    assert not (tmp_path / "runs").exists()  # it read the given sweep, made none
