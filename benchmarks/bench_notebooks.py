"""Lecture notebooks: first-cell latency (measured here) and wall time / peak memory (from `make course`).

- ``first_cell``: for each ``course/*.ipynb``, a fresh kernel runs the cells up
  to and including the setup cell (the one calling ``setup_notebook``); the
  time counts from asking for the kernel to the end of that cell (target
  <= 15 s). The next code cell (the notebook's imports: PyTorch, TensorFlow,
  ...) is timed too, as ``ready``: what a learner waits before the first idea.
- ``course``: each notebook's wall time and peak resident memory from
  ``build/course_run.json``, which ``make course`` writes on the same machine
  (targets: <= 5 min and <= 4 GB per notebook, <= 25 min for the whole
  course). Running every notebook again here would double ``make bench``'s
  time, so this part reads that file and says how old it is; without it, the
  rows are left out and a message says to run ``make course`` first.

Run alone: ``python benchmarks/bench_notebooks.py``.
"""
from __future__ import annotations

import datetime
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_CELL_TARGET_S = 15
NOTEBOOK_TARGET_S, NOTEBOOK_TARGET_GB, COURSE_TARGET_S = 300, 4.0, 25 * 60


def first_cell_seconds(path: Path) -> tuple[float, float]:
    """(seconds to the end of the setup cell, seconds to the end of the next code cell) in a new kernel."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    setup = next((i for i in code if "setup_notebook(" in nb.cells[i].source), None)
    if setup is None:
        raise ValueError(f"{path.name} has no setup cell calling xh.setup_notebook(...)")
    after = next((i for i in code if i > setup), setup)
    marks = {}
    nb.cells = nb.cells[:after + 1]
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.on_cell_executed = lambda cell_index, **_: marks.__setitem__(cell_index, time.perf_counter())
    start = time.perf_counter()
    client.execute()
    return marks[setup] - start, marks[after] - start


def run() -> list[dict]:
    """Rows {"name", "value", "unit", "target", "ok", "notebook"} for every lecture notebook."""
    os.environ.setdefault("XFER_PROGRESS", "0")
    rows = []
    for path in sorted((ROOT / "course").glob("*.ipynb")):
        setup_s, ready_s = first_cell_seconds(path)
        rows.append({"name": f"first_cell_{path.stem}", "value": setup_s, "unit": "s", "notebook": path.stem,
                     "target": f"<= {FIRST_CELL_TARGET_S}", "ok": setup_s <= FIRST_CELL_TARGET_S})
        rows.append({"name": f"ready_{path.stem}", "value": ready_s, "unit": "s", "notebook": path.stem})

    course_file = ROOT / "build" / "course_run.json"
    if not course_file.exists():
        print(f"No {course_file.relative_to(ROOT)}: run `make course` first to include each notebook's "
              "wall time and peak memory in the report.")
        return rows
    made = datetime.datetime.fromtimestamp(course_file.stat().st_mtime).astimezone().isoformat(timespec="seconds")
    course = json.loads(course_file.read_text())
    for r in course:
        stem = Path(r["notebook"]).stem
        common = {"notebook": stem, "source": f"make course, {made}", "completed": r["ok"]}
        rows.append({"name": f"wall_{stem}", "value": r["seconds"], "unit": "s", "target": f"<= {NOTEBOOK_TARGET_S}",
                     "ok": r["ok"] and r["seconds"] <= NOTEBOOK_TARGET_S, **common})
        rows.append({"name": f"peak_memory_{stem}", "value": r["peak_memory_gb"], "unit": "GB",
                     "target": f"<= {NOTEBOOK_TARGET_GB}", "ok": r["peak_memory_gb"] <= NOTEBOOK_TARGET_GB, **common})
    total = sum(r["seconds"] for r in course)
    rows.append({"name": "wall_whole_course", "value": total, "unit": "s", "target": f"<= {COURSE_TARGET_S}",
                 "ok": all(r["ok"] for r in course) and total <= COURSE_TARGET_S,
                 "source": f"make course, {made}", "notebooks": len(course)})
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
