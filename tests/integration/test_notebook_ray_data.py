"""notebooks/ray_data.ipynb runs top to bottom on a fresh kernel attached to the test session's
Ray (as test_notebooks.py runs the notebooks), and what it prints matches what it produced:
1,000 orders of five users, amounts i % 100, taxed at 1.2."""

import uuid
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import rayka

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "ray_data.ipynb"


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                raise AssertionError(f"{o.ename}: {o.evalue}")
            if o.output_type == "stream":
                assert o.name == "stdout", o.text
                out.append(o.text)
            elif o.output_type == "execute_result":
                out.append(o.data.get("text/plain", ""))
    return "".join(out)


def test_the_ray_data_notebook_runs_and_its_numbers_match_what_it_produced(ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_session)
    monkeypatch.setenv("RAYKA_DATA_DIR", str(tmp_path / "data"))
    name = f"nb-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAYKA_CLUSTER", name)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        rayka.connect(cluster_name=name).shutdown(delete_data=True)
    text = _text(nb)
    amounts = [float(i % 100) for i in range(1000)]
    assert f"produced: 1000 amount total: {sum(amounts)}" in text
    assert "records read: 1000" in text and "written: 1000" in text
    assert "records back: 1000 distinct orders: 1000" in text
    assert f"taxed total: {round(sum(a * 1.2 for a in amounts), 6)}" in text
    for u in range(5):
        assert f"user-{u}      200" in text
