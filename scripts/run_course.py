"""Execute every lecture notebook headless and render it to HTML in build/ (`make course`).

A notebook that fails is named with its failing cell; the others still run,
and the exit status is 1 if any failed.

    python scripts/run_course.py                  # all of course/*.ipynb
    python scripts/run_course.py course/00_concepts.ipynb
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import psutil

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"


class PeakMemory:
    """Peak resident memory (bytes) of this process's children, i.e. the notebook's kernel, sampled 4x/s."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.wait(0.25):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_notebook(path: Path, timeout: int = 1800) -> dict:
    """Execute one notebook in its folder; write build/<name>.ipynb and .html; return a summary row."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.time()
    row = {"notebook": path.name, "ok": True, "failed_cell": None, "error": None}
    try:
        with PeakMemory() as memory:
            client.execute()
    except CellExecutionError as exc:
        index = next((i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"
                      and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        row.update(ok=False, failed_cell=index, error=str(exc).strip().splitlines()[-1][:300])
    row["seconds"] = round(time.time() - start, 1)
    row["peak_memory_gb"] = round(memory.peak / 1e9, 2)
    BUILD.mkdir(exist_ok=True)
    nbformat.write(nb, BUILD / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (BUILD / path.with_suffix(".html").name).write_text(html)
    return row


def main(argv: list[str]) -> int:
    os.environ.setdefault("XFER_PROFILE", "lite")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = [Path(p) for p in argv] or sorted((ROOT / "course").glob("*.ipynb"))
    if not paths:
        print("No lecture notebooks found in course/.")
        return 1
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        rows.append(run_notebook(path.resolve()))
        r = rows[-1]
        print(f"  {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s"
              + ("" if r["ok"] else f" at code cell {r['failed_cell']}: {r['error']}"), flush=True)
    (BUILD / "course_run.json").write_text(json.dumps(rows, indent=1))
    print(f"\n{'notebook':<32} {'result':<8} {'seconds':>8} {'peak GB':>8}")
    for r in rows:
        print(f"{r['notebook']:<32} {'ok' if r['ok'] else 'FAILED':<8} {r['seconds']:>8} {r['peak_memory_gb']:>8}")
    print(f"\nHTML pages are in {BUILD}/ (open them in a browser).")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
