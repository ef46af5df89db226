"""How much chapter 01's lite results move from seed to seed, in each framework.

Runs the lecture's own code (course/01_cnn_fine_tuning.ipynb up to its run functions), then
fine-tuning and gradual unfreezing with other seeds in PyTorch and Keras, and prints each
accuracy and the PyTorch-vs-Keras gap. The lecture's parity bounds (TOLERANCE) come from it.
About 15 minutes on a 2-core CPU.

    .venv/bin/python scripts/seed_spread_01.py --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

LECTURE = Path(__file__).resolve().parents[1] / "course" / "01_cnn_fine_tuning.ipynb"
LAST_CELL = "def torch_run("      # the cell that defines the run functions
LOOP = """
import json
rows = []
for seed in {seeds}:
    for strategy in ("fine-tuning", "gradual unfreezing"):
        torch_run(strategy, seed=seed)
        keras_run(strategy, seed=seed)
        rows.append((seed, strategy, runs[-2]["accuracy"], runs[-1]["accuracy"]))
        print(json.dumps(rows[-1]), flush=True)
json.dump(rows, open({out!r}, "w"))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    nb = nbformat.read(LECTURE, as_version=4)
    end = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and LAST_CELL in c.source)
    out = Path(tempfile.mkdtemp()) / "rows.json"
    nb.cells = nb.cells[:end + 1] + [nbformat.v4.new_code_cell(LOOP.format(seeds=args.seeds, out=str(out)))]
    os.environ.setdefault("XFER_PROFILE", "lite")
    NotebookClient(nb, timeout=3600, kernel_name="python3",
                   resources={"metadata": {"path": str(LECTURE.parent)}}).execute()
    print(f"{'seed':>4}  {'strategy':<20} {'PyTorch':>8} {'Keras':>8} {'gap':>6}")
    for seed, strategy, torch_acc, keras_acc in json.loads(out.read_text()):
        print(f"{seed:>4}  {strategy:<20} {torch_acc:8.3f} {keras_acc:8.3f} {abs(torch_acc - keras_acc):6.3f}")


if __name__ == "__main__":
    main()
