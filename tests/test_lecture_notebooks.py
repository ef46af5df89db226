"""Run every lecture notebook in course/ top to bottom (lite profile) and check the claims it makes.

`make test-fast` runs each notebook in the grading profile instead (the smallest sizes, about a
minute per chapter), which must not fail either: the same cells on smaller data, a quick check
while editing a chapter. `make test` leaves it out (marker ``smoke``): it would run the same
lecture work a second time.

Each notebook saves its key numbers with ``xfer_helpers.results.save_results``.
The kernel runs in ``course/`` (as in JupyterLab) with ``XFER_RESULTS_DIR``
pointing to a temporary folder, so the file read here is the one this run wrote.
Every notebook must run without an error and write the basic keys; notebooks
with a ``tests/claims/claims_<notebook>.py`` (``KEYS`` and ``check(result)``) must also support
their claims with their numbers.
A new ``course/*.ipynb`` is picked up automatically.
"""
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import course_site  # noqa: E402  (the headline numbers `make course` shows)

NOTEBOOKS = sorted((ROOT / "course").glob("*.ipynb"))
BASIC_KEYS = {"chapter", "profile", "device", "hardware", "seconds"}
CELL_TIMEOUT_S = 1200   # a shared 2-core CPU can be several times slower than a quiet one


def load_claims(stem: str) -> dict:
    """KEYS and check(result) from tests/claims/claims_<stem>.py, if the chapter has one."""
    path = ROOT / "tests" / "claims" / f"claims_{stem}.py"
    if not path.exists():
        return {}
    spec = importlib.util.spec_from_file_location(f"claims_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"keys": set(module.KEYS), "check": module.check}


def run_notebook(notebook: Path, profile: str, results_dir: Path, monkeypatch) -> dict:
    """Execute the notebook in ``profile``; fail on any error; return the results it saved."""
    monkeypatch.setenv("XFER_PROFILE", profile)
    monkeypatch.setenv("XFER_PROGRESS", "0")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("XFER_RESULTS_DIR", str(results_dir))
    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{notebook.name} ({profile}): a cell failed:\n{str(error)[-3000:]}")
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, f"{notebook.name}: error outputs {[e['ename'] for e in errors]}"
    path = results_dir / f"{notebook.stem}.json"
    assert path.exists(), f"{notebook.name} did not save its results with xfer_helpers.results.save_results"
    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_lecture_notebook_runs_and_supports_its_claims(notebook, tmp_path, monkeypatch):
    result = run_notebook(notebook, "lite", tmp_path, monkeypatch)
    expected = load_claims(notebook.stem)
    missing = (BASIC_KEYS | expected.get("keys", set())) - set(result)
    assert not missing, f"{notebook.stem}.json lacks {sorted(missing)}"
    assert result["chapter"] == notebook.stem and result["profile"] == "lite"
    assert result["seconds"] > 0
    if "check" in expected:
        expected["check"](result)
    # The course site (`make course`) can read this chapter's headline numbers.
    headlines = course_site.key_results(notebook.stem, result)
    assert headlines and all(what and value and anchor for what, value, anchor in headlines), headlines


@pytest.mark.smoke
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_lecture_notebook_runs_in_the_grading_profile(notebook, tmp_path, monkeypatch):
    """The smallest sizes (a one-minute smoke run per chapter) must run too; their numbers mean nothing."""
    result = run_notebook(notebook, "grading", tmp_path, monkeypatch)
    assert result["chapter"] == notebook.stem and result["profile"] == "grading"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_lecture_notebook_has_checked_claims(notebook):
    claims = load_claims(notebook.stem)
    assert claims, f"add tests/claims/claims_{notebook.stem}.py with KEYS and check(result)"
    assert claims["keys"], "KEYS lists the numbers the notebook must save"
    assert notebook.stem in course_site.KEY_RESULTS, \
        f"add {notebook.stem} to KEY_RESULTS in scripts/course_site.py (its headline numbers and anchors)"
