"""`xfer grade`: a class with bad input and a crashing notebook is still graded; LMS zips.
`xfer lint` and `xfer release`: their exit codes and messages.

xfer_helpers.grading.register() adds the `grade`, `release` and `lint` subcommands to the
`xfer` parser; these tests build that parser themselves.
"""
from __future__ import annotations

import argparse
import csv
import os
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import grading_utils as gu
from xfer_helpers import grading

ASSIGNMENT = "00_concepts"


def run_xfer(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="xfer")
    grading.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def other_exercise_notebook() -> nbformat.NotebookNode:
    test_cell = new_code_cell("assert True, 'ok'")
    test_cell.metadata["nbgrader"] = {"grade": True, "grade_id": "cnn_freeze_tests", "locked": True,
                                      "points": 2, "schema_version": 3, "solution": False,
                                      "task": False}
    return new_notebook(cells=[test_cell])


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    alice = gu.filled_release(ASSIGNMENT)
    gu.cell(alice, "strategy_answer").source += "\nimport torch\nprint('torch threads:', torch.get_num_threads())"
    gu.write(alice, folder / "alice.ipynb")
    (folder / "bob.txt").write_text("my answers are in my head\n")
    (folder / "carol.ipynb").write_text('{"cells": [ {"cell_type": "code", oops')
    (folder / "dave").mkdir()
    (folder / "dave" / "notes.txt").write_text("forgot the notebook\n")
    gu.write(other_exercise_notebook(), folder / "erin.ipynb")
    crash = gu.filled_release(ASSIGNMENT)
    gu.cell(crash, "strategy_answer").source = "import os\nos._exit(1)  # the kernel dies here"
    gu.write(crash, folder / "frank.ipynb")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    out = tmp_path_factory.mktemp("grades")
    code = run_xfer(["grade", ASSIGNMENT, str(folder), "--out", str(out), "--jobs", "2"])
    with open(out / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    return code, rows, out


@pytest.mark.slow
def test_good_submission_is_graded_despite_the_rest_of_the_class(graded_class):
    code, rows, out = graded_class
    assert code == 1  # someone could not be graded
    assert set(rows) == {"alice", "bob", "carol", "dave", "erin", "frank"}
    assert rows["alice"]["status"] == "graded"
    assert float(rows["alice"]["score"]) == float(rows["alice"]["max_score"]) == 18
    assert sorted(p.name for p in (out / "feedback").iterdir()) == ["alice.html"]
    scores = gu.gradebook_scores(out / "nbgrader" / "course-0", ASSIGNMENT, "alice")
    assert sum(scores.values()) == 18


@pytest.mark.slow
def test_parallel_graders_share_the_cores(graded_class):
    """Two graders at once: each kernel gets half the cores, not all of them."""
    _, _, out = graded_class
    graded = nbformat.read(out / "nbgrader" / "course-0" / "autograded" / "alice" / ASSIGNMENT
                           / f"{ASSIGNMENT}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    expected = os.environ.get("XFER_THREADS") or grading.threads_per_job(2)
    assert f"torch threads: {expected}\n" in printed


@pytest.mark.slow
@pytest.mark.parametrize("student, words", [
    ("bob", "bob.txt is not a Jupyter notebook"),
    ("carol", "carol.ipynb is not valid JSON (line 1"),
    ("dave", "no notebook submitted (received: notes.txt)"),
    ("erin", "is not the 00_concepts exercise: its nbgrader cells (cnn_freeze_tests"),
])
def test_bad_input_gets_a_clear_message_and_no_score(graded_class, student, words):
    _, rows, _ = graded_class
    assert rows[student]["status"] == "rejected"
    assert words in rows[student]["message"]
    assert rows[student]["score"] == "" and rows[student]["max_score"] == ""


@pytest.mark.slow
def test_kernel_death_is_a_failed_job_not_a_zero(graded_class):
    _, rows, _ = graded_class
    assert rows["frank"]["status"] == "failed"
    assert "kernel died" in rows["frank"]["message"]
    assert rows["frank"]["score"] == "" and rows["frank"]["strategy_tests"] == ""


@pytest.mark.slow
def test_lms_zip_is_collected_with_zip_collect(tmp_path):
    archive = tmp_path / "lms_download.zip"
    release = gu.release_path(ASSIGNMENT).read_bytes()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("alice_00_concepts.ipynb", release)
        zf.writestr("carol_00_concepts (1).ipynb", release)
        zf.writestr("bob_report.pdf", b"%PDF-1.4")
        zf.writestr("README.txt", "downloaded from the LMS")
        zf.writestr("__MACOSX/._alice_00_concepts.ipynb", b"\x00")
    entries = {e.student_id: e for e in
               grading.collect_submissions(archive, ASSIGNMENT, tmp_path / "work")}
    assert set(entries) == {"alice", "carol", "bob", "README"}
    for student in ("alice", "carol"):
        assert entries[student].path.read_bytes() == release and not entries[student].problem
    assert "no notebook submitted (received: bob_report.pdf)" in entries["bob"].problem
    assert "cannot tell whose file it is" in entries["README"].problem


def test_notebook_problems_are_explained(tmp_path):
    expected = {"strategy_tests", "strategy_answer"}
    good = gu.write(gu.filled_release(ASSIGNMENT), tmp_path / "good.ipynb")
    assert grading._notebook_problem(good, ASSIGNMENT, expected) == ""
    empty = gu.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "fresh.ipynb")
    assert "no nbgrader metadata" in grading._notebook_problem(empty, ASSIGNMENT, expected)
    (tmp_path / "list.ipynb").write_text("[1, 2]")
    assert "JSON but not a notebook" in grading._notebook_problem(tmp_path / "list.ipynb",
                                                                  ASSIGNMENT, expected)
    (tmp_path / "binary.ipynb").write_bytes(b"\xff\xfe\x00")
    assert "not a text file" in grading._notebook_problem(tmp_path / "binary.ipynb",
                                                          ASSIGNMENT, expected)


def test_names_the_locked_cells_import_from_the_package_are_protected():
    from xfer_helpers.grading.review import _protected_names

    names = _protected_names(gu.solution_path(ASSIGNMENT))
    assert {"expect_equal", "expect_close", "expect_true", "make_keras_classifier"} <= names
    assert "np" not in names  # rebinding an ordinary import is not flagged


def test_review_flags_point_at_tampering_code():
    protected = {"expect_equal", "make_torch_backbone"}
    assert grading.review_flags("def f(x):\n    return x + 1", protected) == []
    flags = grading.review_flags(
        "import numpy.testing as npt\nnpt.assert_allclose = lambda *a, **k: None\n"
        "expect_equal = print\ndef make_torch_backbone():\n    pass\nlen = lambda x: 3\n"
        "get_ipython().input_transformers_cleanup.append(lambda lines: [])", protected)
    assert flags == sorted([
        "replaces npt.assert_allclose", "redefines expect_equal (defined in a locked cell)",
        "redefines make_torch_backbone (defined in a locked cell)", "shadows the built-in len",
        "uses get_ipython", "uses get_ipython().input_transformers_cleanup"])


def test_grade_rejects_impossible_arguments(tmp_path):
    with pytest.raises(ValueError, match="jobs must be at least 1"):
        grading.grade_submissions(ASSIGNMENT, tmp_path, tmp_path / "out", jobs=0)
    with pytest.raises(KeyError, match="Unknown exercise '99_nothing'"):
        grading.grade_submissions("99_nothing", tmp_path, tmp_path / "out")
    assert run_xfer(["grade", "99_nothing", str(tmp_path), "--out", str(tmp_path / "o")]) == 2


def test_review_flags_catch_tampering_but_not_ordinary_pytorch():
    from xfer_helpers import grading
    assert grading.review_flags("for m in model.modules():\n    m.eval()\n") == []
    assert grading.review_flags("import sys\nsys.modules['numpy'] = None\n") == ["uses sys.modules"]
    assert any("get_ipython" in f for f in grading.review_flags("get_ipython().input_transformers_post = []"))


def test_xfer_lint_passes_the_solutions_and_fails_a_broken_notebook(tmp_path, capsys):
    assert run_xfer(["lint", str(gu.solution_path(ASSIGNMENT))]) == 0
    assert capsys.readouterr().out.strip().endswith(": ok")
    broken = gu.read(gu.solution_path(ASSIGNMENT))
    gu.cell(broken, "strategy_tests").metadata.nbgrader.locked = False
    gu.write(broken, tmp_path / "broken.ipynb")
    assert run_xfer(["lint", str(tmp_path / "broken.ipynb")]) == 1
    assert "test cells must be locked" in capsys.readouterr().out


def test_xfer_release_of_an_unknown_exercise_names_the_real_ones(capsys):
    assert run_xfer(["release", "99_nothing"]) == 2
    err = capsys.readouterr().err
    assert "Unknown exercise '99_nothing'" in err and "00_concepts" in err, err
