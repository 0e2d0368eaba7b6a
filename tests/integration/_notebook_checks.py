"""What each notebook's outputs must say, beyond their shape (test_notebooks.py runs them):
the numbers they print match what they produced."""

from __future__ import annotations

import json


def output_text(nb) -> str:
    """Every stdout stream and plain-text result of ``nb``, in order; an error output fails."""
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
    return "\n".join(out)


def figures(nb) -> int:
    """How many PNG images the outputs hold."""
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def ray_data(nb) -> None:
    """1,000 orders of five users, amounts i % 100, taxed at 1.2: read, mapped, written, read back."""
    text = output_text(nb)
    amounts = [float(i % 100) for i in range(1000)]
    assert f"produced: 1000 amount total: {sum(amounts)}" in text
    assert "records read: 1000" in text and "written: 1000" in text
    assert "records back: 1000 distinct orders: 1000" in text
    assert f"taxed total: {round(sum(a * 1.2 for a in amounts), 6)}" in text
    for u in range(5):
        assert f"user-{u}      200" in text


def clickstream(nb) -> None:
    """20,000 simulated clicks over 30 minutes: every one consumed, windowed, exported once
    (a second export adds none), counted again by DuckDB; the group's lag ends at 0; two plots."""
    text = output_text(nb)
    line = next(s for s in text.splitlines() if s.startswith("SUMMARY "))
    summary = json.loads(line[len("SUMMARY "):])
    assert summary["produced"] == summary["consumed"] == summary["exported"] == 20_000
    assert summary["reexported"] == 0 and summary["final_lag"] == 0
    assert sum(summary["events_by_page"].values()) == 20_000
    assert set(summary["events_by_page"]) == {"/home", "/search", "/item", "/cart", "/checkout"}
    assert 30 <= summary["minutes"] <= 31 and summary["polls"] >= 10  # polls of at most 2,000
    assert figures(nb) == 1  # one figure of two plots: events per minute, lag per poll


CHECKS = {"ray_data.ipynb": ray_data, "clickstream_pipeline.ipynb": clickstream}
