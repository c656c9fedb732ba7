"""Every notebook runs top to bottom, headless, on the shapes data with a small config."""

import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# In dependency order: train_shapes writes the checkpoint the others load.
NOTEBOOKS = ["samples/shapes/train_shapes.ipynb", "samples/shapes/inspect_data.ipynb",
             "samples/shapes/inspect_model.ipynb", "samples/demo.ipynb"]


@pytest.mark.slow
def test_notebooks_execute(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MRCNN_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MRCNN_LOGS", str(tmp_path / "logs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    for path in NOTEBOOKS:
        nb = nbformat.read(os.path.join(ROOT, path), as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), \
            f"{path} is stored with outputs"
        client = nbclient.NotebookClient(
            nb, timeout=900, kernel_name="python3",
            resources={"metadata": {"path": os.path.dirname(os.path.join(ROOT, path))}})
        client.execute()  # raises CellExecutionError naming the failing cell
    assert any(f.endswith(".h5") for _, _, files in os.walk(tmp_path / "logs") for f in files)
