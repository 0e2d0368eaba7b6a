"""The notebooks run top to bottom in a real kernel attached to the test session's Ray, and
their outputs have the shape of the ones stored with them (numbers and paths may differ) and
say what _notebook_checks.py asks of each (the numbers match what the notebook produced).

To refresh the stored outputs after changing a notebook: ``python tests/integration/test_notebooks.py``.
"""

import os
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import rayka
from rayka.actors import _ray

from _notebook_checks import CHECKS

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def shape(nb) -> list:
    """Per cell: its type and, for code, each output's type (with a stream's name and the mime
    types of rich outputs): what must stay the same when the notebook runs again."""
    out = []
    for cell in nb.cells:
        outputs = []
        for o in cell.get("outputs", []):
            kind = o.output_type
            if kind == "stream":
                kind += ":" + o.name
            elif kind in ("display_data", "execute_result"):
                kind += ":" + ",".join(sorted(o.get("data", {})))
            outputs.append(kind)
        out.append((cell.cell_type, cell.source.splitlines()[0] if cell.source else "", outputs))
    return out


def warnings_in(nb) -> list[str]:
    """Text of every error, stderr stream or warning shown in the outputs."""
    found = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            text = o.get("text", "") if o.output_type == "stream" else str(o.get("data", {}).get("text/plain", ""))
            if o.output_type == "error" or getattr(o, "name", "") == "stderr" or "Warning" in text or "WARNING" in text:
                found.append(o.get("text") or o.get("evalue") or text)
    return found


def execute(nb, workdir: Path):
    NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom_with_the_stored_outputs_shape(path, ray_session, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_session)
    monkeypatch.setenv("RAYKA_DATA_DIR", str(tmp_path / "data"))
    name = f"nb-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("RAYKA_CLUSTER", name)
    stored = nbformat.read(path, as_version=4)
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code), f"{path.name} is stored without its outputs"
    assert not warnings_in(stored), f"{path.name} is stored with warnings in its outputs"
    ran = execute(nbformat.read(path, as_version=4), tmp_path)
    assert not warnings_in(ran)
    assert shape(ran) == shape(stored)
    check = CHECKS.get(path.name)
    if check is not None:
        check(ran)
    coordinator = _ray.get_actor(_ray.coordinator_name(name), "rayka")
    assert coordinator is not None, "the notebook should have used the test session's Ray"
    # Tear the notebook's rayka cluster down whole: coordinator and partition actors.
    rayka.connect(cluster_name=name).shutdown(delete_data=True)


def _refresh() -> None:
    """Execute every notebook the way the test does and store it with its outputs."""
    import tempfile

    import ray

    from rayka.testing import start_local_ray

    start_local_ray(num_cpus=2)
    try:
        for path in NOTEBOOKS:
            with tempfile.TemporaryDirectory(prefix="rayka-nb-") as tmp:
                name = f"nb-{uuid.uuid4().hex[:8]}"
                os.environ.update(RAY_ADDRESS=ray.get_runtime_context().gcs_address, RAYKA_CLUSTER=name,
                                  RAYKA_DATA_DIR=str(Path(tmp) / "data"))
                nb = execute(nbformat.read(path, as_version=4), Path(tmp))
                rayka.connect(cluster_name=name).shutdown(delete_data=True)
            problems = warnings_in(nb)
            if problems:
                raise SystemExit(f"{path.name}: not stored, its outputs show warnings: {problems}")
            nbformat.write(nb, path)
            print(f"stored {path.name} with its outputs")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    _refresh()
