"""Execute every lecture notebook headless, render it to HTML and build the course site in build/ (`make course`).

A notebook that fails is named with its failing cell; the others still run,
and the exit status is 1 if any failed. At the end, a summary table (chapter,
device, wall time, peak memory, key results next to their published anchors,
read from each notebook's ``build/results/<chapter>.json``) is printed and
``build/index.html`` links every executed chapter (see scripts/course_site.py).

    python scripts/run_course.py                  # all of course/*.ipynb
    python scripts/run_course.py course/00_concepts.ipynb
    python scripts/run_course.py --build /tmp/site course/00_concepts.ipynb

Run on the whole course, it first measures the machine's speed (xfer_helpers.speed, about
45 s) and says how many minutes the course should take; XFER_ESTIMATE=0 skips that.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from tqdm.auto import tqdm

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
sys.path.insert(0, str(Path(__file__).resolve().parent))
import course_site  # noqa: E402  (scripts/course_site.py, beside this file)


class LocalKernelManager(AsyncKernelManager):
    """A kernel that talks over Unix sockets in a private folder instead of TCP (on TCP,
    ipykernel prints a warning about unencrypted traffic for every notebook)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"
        self.ip = str(Path(tempfile.mkdtemp(prefix="xfer-kernel-")) / "kernel")

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(Path(self.ip).parent, ignore_errors=True)


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


def run_notebook(path: Path, build: Path = BUILD, timeout: int = 1800) -> dict:
    """Execute one notebook in its folder; write <build>/<name>.ipynb and .html; return a summary row."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            kernel_manager_class=LocalKernelManager,
                            resources={"metadata": {"path": str(path.parent)}})
    bar = tqdm(total=sum(c.cell_type == "code" for c in nb.cells), desc=path.stem, unit="cell",
               disable=os.environ.get("XFER_PROGRESS") == "0")
    client.on_cell_executed = lambda **_: bar.update(1)
    start = time.time()
    row = {"notebook": path.name, "ok": True, "failed_cell": None, "error": None}
    try:
        with PeakMemory() as memory, bar:
            client.execute()
    except Exception as exc:   # a failed cell, a timeout or a dead kernel: name it and go on
        index = next((i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code"
                      and any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        first_line = nb.cells[index].source.strip().splitlines()[0][:60] if index is not None else ""
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()   # drop the traceback's colour codes
        message = text.splitlines()[-1][:300] if text else type(exc).__name__
        row.update(ok=False, failed_cell=None if index is None else f"{index + 1} ({first_line})",
                   error=message if isinstance(exc, CellExecutionError) else f"{type(exc).__name__}: {message}")
    row["seconds"] = round(time.time() - start, 1)
    row["peak_memory_gb"] = round(memory.peak / 1e9, 2)
    build.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, build / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (build / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    return row


def estimate() -> None:
    """Measure this machine's speed (about 45 s) and say how long the course will take here."""
    print("How fast is this machine? (about 45 s; XFER_ESTIMATE=0 skips this)", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "xfer_helpers.speed"], check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:   # an estimate is a nicety, not a need
        print(f"(no estimate: {exc})", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run the lecture notebooks and build the course site.")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every course/*.ipynb")
    parser.add_argument("--build", type=Path, default=BUILD, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    build = args.build.resolve()
    os.environ.setdefault("XFER_PROFILE", "lite")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    os.environ["XFER_RESULTS_DIR"] = str(build / "results")   # where course_site reads them back
    paths = args.notebooks or sorted((ROOT / "course").glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        print(f"No such notebook: {', '.join(missing)}" if missing else "No lecture notebooks found in course/.")
        return 1
    if not args.notebooks and os.environ.get("XFER_ESTIMATE", "1") != "0":
        estimate()
    rows = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        rows.append(run_notebook(path.resolve(), build))
        r = rows[-1]
        print(f"  {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s, peak {r['peak_memory_gb']} GB"
              + ("" if r["ok"] else f", at cell {r['failed_cell']}: {r['error']}"), flush=True)
    (build / "course_run.json").write_text(json.dumps(rows, indent=1))
    rows = course_site.load_rows(build)
    print("\n" + course_site.summary_table(rows))
    index = course_site.write_site(rows, build)
    print(f"\nOpen {index} in a browser: one page per chapter with its plots and tables.")
    failed = [r["notebook"] for r in rows if not r["ok"]]
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}. Open {build}/<name>.html at the cell named "
              "above, or run `.venv/bin/xfer doctor` if it is an environment problem.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
