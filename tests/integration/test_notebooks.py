"""The notebooks run top to bottom in a real kernel attached to the test session's Ray."""

import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import rayka
from rayka.actors import _ray

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_session)
    monkeypatch.setenv("RAYKA_DATA_DIR", str(tmp_path / "data"))
    name = f"nb-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAYKA_CLUSTER", name)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    coordinator = _ray.get_actor(_ray.coordinator_name(name), "rayka")
    assert coordinator is not None, "the notebook should have used the test session's Ray"
    # Tear the notebook's rayka cluster down whole: coordinator and partition actors.
    rayka.connect(cluster_name=name).shutdown(delete_data=True)
