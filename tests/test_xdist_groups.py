"""`make test`'s two workers: a group of tests that shares a module-scoped fixture runs on one."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLE = '''
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="module", params=["a", "b", "c"])
def graded(request):
    out = Path(os.environ["BUILT"]) / f"{request.param}-{os.environ.get('PYTEST_XDIST_WORKER')}"
    out.write_text("built")
    return request.param


@pytest.mark.parametrize("k", range(8))
def test_uses_the_class(graded, k):
    pass


@pytest.mark.parametrize("graded, k", [("a", 1), ("b", 2), ("c", 3)], indirect=["graded"])
def test_picks_one_class(graded, k):
    pass


@pytest.mark.parametrize("k", range(12))
def test_free(k):
    with open(os.environ["ORDER"], "a") as order:
        order.write(f"free {k}\\n")


@pytest.mark.slow
def test_long_single():
    with open(os.environ["ORDER"], "a") as order:
        order.write("slow\\n")
'''


def test_a_graded_class_is_built_on_one_worker_only(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    built = tmp_path / "built"
    built.mkdir()
    tests_dir = Path(__file__).resolve().parent
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "xdist_groups",
         "-p", "no:cacheprovider", "-o", "addopts=", "test_sample.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "BUILT": str(built), "ORDER": str(tmp_path / "order.txt"),
             "PYTHONPATH": str(tests_dir)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "40 passed" in proc.stdout, proc.stdout[-2000:]
    made = sorted(p.name for p in built.iterdir())
    per_class = {c: [m for m in made if m.startswith(f"{c}-")] for c in "abc"}
    assert all(len(workers) == 1 for workers in per_class.values()), per_class
    assert {m.split("-")[1] for m in made} == {"gw0", "gw1"}, f"both workers should get work: {made}"
    # The slow single test, collected last, is handed out before the quick single tests.
    order = (tmp_path / "order.txt").read_text().splitlines()
    assert order.index("slow") < len(order) // 2, order
