"""The grading suite's own tests for exercise 00_concepts, through nbgrader's Python API.

One autograde run (two parallel graders, each in a temporary nbgrader course)
grades a whole "class": the instructor's answers, the untouched release, every
mutant in tests/mutants/00_concepts/, tampered and cheating notebooks and an
infinite loop. Scores are read from nbgrader's gradebook.

The run uses IgnorePattern disabled (so a clean solution must not rely on the
stderr safety net) and a 40 s cell limit (the infinite loop costs one limit).
"""
from __future__ import annotations

import csv
import html
import re
import shutil
from pathlib import Path

import pytest

import grading_utils as gu
from xfer_helpers import grading

pytestmark = pytest.mark.slow

ASSIGNMENT = "00_concepts"
CELL_TIMEOUT = 40
OVERRIDES = {"IgnorePattern": {"enabled": False}}
# Dropout left on: the two mutants whose scores could change if grading were not seeded.
DETERMINISM_STUDENTS = ("mutant-evaluate_train_mode_left_on", "mutant-evaluate_keras_training_true")

CHEATER_PREAMBLE = '''\
# "Make the tests pass" without solving the tasks: disable every checker.
import math
import numpy.testing
import torch.testing


def expect_equal(*args, **kwargs):
    pass


def expect_close(*args, **kwargs):
    pass


def expect_true(*args, **kwargs):
    pass


np.testing.assert_allclose = lambda *args, **kwargs: None
np.testing.assert_array_equal = lambda *args, **kwargs: None
np.allclose = lambda *args, **kwargs: True
torch.testing.assert_close = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
math.isclose = lambda *args, **kwargs: True
abs = lambda value: 0
all = lambda values: True
any = lambda values: False

'''


def _students() -> dict:
    """name -> notebook for the whole 'class'."""
    solution = gu.read(gu.solution_path(ASSIGNMENT))
    perfect = gu.filled_release(ASSIGNMENT)
    mutants = gu.load_mutants(ASSIGNMENT)
    students = {"instructor": perfect, "release": gu.read(gu.release_path(ASSIGNMENT))}
    for mutant in mutants:
        students[f"mutant-{mutant['name']}"] = gu.mutate(perfect, mutant)

    # Untouched release, but a test cell edited, one deleted, one turned into a plain
    # cell (nbgrader metadata removed) and points inflated.
    tampered = gu.read(gu.release_path(ASSIGNMENT))
    gu.cell(tampered, "strategy_tests").source = "# I trust my code\npass"
    tampered.cells.remove(gu.cell(tampered, "metrics_tests"))
    gu.cell(tampered, "head_tests").source = "pass"
    del gu.cell(tampered, "head_tests").metadata["nbgrader"]
    gu.cell(tampered, "freeze_torch_tests").metadata.nbgrader.points = 20
    students["tamper-release"] = tampered

    # Correct answers, but locked cells edited and test cells edited or deleted.
    tampered = gu.filled_release(ASSIGNMENT)
    gu.cell(tampered, "setup").source = 'raise RuntimeError("who needs a setup cell")'
    gu.cell(tampered, "models").source = "def make_torch_classifier(n_classes):\n    return None"
    gu.cell(tampered, "evaluate_tests").source = "pass  # tests removed"
    tampered.cells.remove(gu.cell(tampered, "copy_tests"))
    students["tamper-solution"] = tampered

    # Wrong answers (the first mutant of every task) plus every checker disabled.
    cheater = perfect
    for target in gu.graded_ids(solution):
        cheater = gu.mutate(cheater, next(m for m in mutants if m["target"] == target))
    gu.cell(cheater, "strategy_answer").source = \
        CHEATER_PREAMBLE + gu.cell(cheater, "strategy_answer").source
    students["cheater"] = cheater

    # A correct notebook except for an endless loop in Task 1.
    students["infinite-loop"] = gu.mutate(perfect, {"cell": "strategy_answer", "replace": [{
        "old": '"""Pick "scratch", "feature_extraction" or "fine_tuning" from the table above."""',
        "new": '"""Pick a strategy."""\nwhile True:  # waits for a condition that never comes\n'
               '    pass'}]})
    return students


@pytest.fixture(scope="module")
def solution():
    return gu.read(gu.solution_path(ASSIGNMENT))


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    for name, nb in _students().items():
        gu.write(nb, folder / f"{name}.ipynb")
    return folder


@pytest.fixture(scope="module")
def report(submissions, tmp_path_factory):
    result = grading.grade_submissions(ASSIGNMENT, submissions, tmp_path_factory.mktemp("out"),
                                       jobs=2, timeout=CELL_TIMEOUT, overrides=OVERRIDES,
                                       progress=False)
    print(f"\n{len(result.results)} submissions graded in {result.seconds:.0f} s: "
          f"{result.seconds_per_submission:.1f} s per submission with 2 parallel graders")
    return result


def scores(report, student: str) -> dict[str, float]:
    """Per-cell scores from nbgrader's gradebook (not from our CSV)."""
    result = report.by_student()[student]
    assert result.status == "graded", f"{student} was not graded: {result.message}"
    return gu.gradebook_scores(result.course_dir, ASSIGNMENT, student)


def test_instructor_solution_gets_full_marks(report, solution):
    assert scores(report, "instructor") == gu.points(solution)
    assert sum(gu.points(solution).values()) == 18


def test_solution_writes_nothing_to_stderr_and_raises_nothing(report):
    executed = gu.autograded(report.by_student()["instructor"].course_dir, ASSIGNMENT,
                             "instructor")
    setup_output = "".join(o.get("text", "") for o in gu.cell(executed, "setup").outputs)
    assert "Profile: grading" in setup_output, "nbgrader runs must use the fast profile"
    for c in executed.cells:
        for output in c.get("outputs", []):
            assert not (output.output_type == "stream" and output.name == "stderr"), \
                f"cell {c.get('id')} wrote to stderr: {output.text[:300]}"
            assert output.output_type != "error", f"cell {c.get('id')} raised {output.ename}"


def test_untouched_release_scores_zero_on_every_graded_cell(report, solution):
    assert scores(report, "release") == {name: 0.0 for name in gu.graded_ids(solution)}


@pytest.mark.parametrize("mutant", gu.load_mutants(ASSIGNMENT), ids=lambda m: m["name"])
def test_mutant_loses_points_on_its_target_cell(report, solution, mutant):
    got = scores(report, f"mutant-{mutant['name']}")
    full = gu.points(solution)
    assert got[mutant["target"]] < full[mutant["target"]], \
        f"mutant {mutant['name']} ({mutant['why']}) was not caught by {mutant['target']}"
    assert sum(got.values()) < sum(full.values())


def test_mutation_score(report, solution):
    mutants = gu.load_mutants(ASSIGNMENT)
    full = gu.points(solution)
    caught = [m["name"] for m in mutants
              if scores(report, f"mutant-{m['name']}")[m["target"]] < full[m["target"]]]
    print(f"\nmutation score: {len(caught)}/{len(mutants)} mutants caught")
    assert len(caught) == len(mutants)


def test_edited_locked_and_test_cells_are_restored(report, solution):
    # Correct answers with a broken setup cell, a sabotaged model builder, an emptied
    # test cell and a deleted test cell: the originals are put back, so full marks.
    assert scores(report, "tamper-solution") == gu.points(solution)
    executed = gu.autograded(report.by_student()["tamper-solution"].course_dir, ASSIGNMENT,
                             "tamper-solution")
    for grade_id in ("setup", "models", "evaluate_tests"):
        assert gu.cell(executed, grade_id).source == gu.cell(solution, grade_id).source
    # An empty answer whose test cell was replaced by `pass` still scores 0 there, and
    # inflated points are reset.
    got = scores(report, "tamper-release")
    assert got["strategy_tests"] == 0
    executed = gu.autograded(report.by_student()["tamper-release"].course_dir, ASSIGNMENT,
                             "tamper-release")
    assert gu.cell(executed, "strategy_tests").source == gu.cell(solution, "strategy_tests").source
    assert gu.cell(executed, "freeze_torch_tests").metadata.nbgrader.points == 2


def test_deleted_test_cell_is_re_added_and_graded(report, solution):
    executed = gu.autograded(report.by_student()["tamper-release"].course_dir, ASSIGNMENT,
                             "tamper-release")
    for grade_id in ("metrics_tests", "head_tests"):  # deleted / metadata stripped
        re_added = gu.cell(executed, grade_id)
        assert "was missing from the submission" in re_added.source
        assert gu.cell(solution, grade_id).source in re_added.source
        assert any(o.output_type == "error" for o in re_added.outputs), \
            f"the re-added {grade_id} was not run"
        assert scores(report, "tamper-release")[grade_id] == 0
    # Deleting a test cell under a correct answer does not cost the student anything.
    assert scores(report, "tamper-solution")["copy_tests"] == gu.points(solution)["copy_tests"]


def test_disabling_the_checkers_earns_nothing_on_hidden_tests(report, solution):
    got = scores(report, "cheater")
    assert got == {name: 0.0 for name in gu.graded_ids(solution)}
    executed = gu.autograded(report.by_student()["cheater"].course_dir, ASSIGNMENT, "cheater")
    for grade_id in gu.graded_ids(solution):
        test_cell = gu.cell(executed, grade_id)
        line = gu.error_line(test_cell)
        # the visible tests were fooled; the hidden tests caught the wrong answer
        assert line in gu.hidden_lines(test_cell.source), \
            f"{grade_id}: failed at line {line}, outside the hidden tests"
    review = report.by_student()["cheater"].review
    assert "redefines expect_equal (defined in a locked cell)" in review
    assert "replaces np.testing.assert_allclose" in review
    assert "shadows the built-in abs" in review
    assert report.by_student()["instructor"].review == []


def test_infinite_loop_hits_the_time_limit_and_other_cells_are_graded(report, solution):
    result = report.by_student()["infinite-loop"]
    assert result.timed_out == ["strategy_tests"]
    assert f"{CELL_TIMEOUT} s" in result.message
    expected = dict(gu.points(solution), strategy_tests=0.0)
    assert scores(report, "infinite-loop") == expected


def test_feedback_shows_messages_but_no_hidden_tests(report):
    hidden = gu.hidden_test_lines(ASSIGNMENT)
    assert len(hidden) > 20
    for student in ("instructor", "cheater", "tamper-release", "mutant-copy_kernel_axes_swapped"):
        feedback = report.by_student()[student].feedback
        assert feedback, f"no feedback for {student}"
        text = gu.html_text(Path(feedback))
        assert "BEGINHIDDENTESTS" not in text
        leaked = [line for line in hidden if re.sub(r"\s+", "", html.escape(line,
                  quote=False)) in text or re.sub(r"\s+", "", line) in text]
        assert not leaked, f"hidden tests leaked into {student}'s feedback: {leaked[:3]}"
    # The cheater sees why a hidden test failed (its assertion message), not its code.
    text = gu.html_text(Path(report.by_student()["cheater"].feedback))
    assert "1,000labelledexamplesisnolonger'fewerthan1,000'" in text.replace("&#x27;", "'")


def test_grades_csv_agrees_with_the_gradebook(report, solution):
    with open(report.grades_csv, newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(report.by_student())
    for student in ("instructor", "release", "cheater", "infinite-loop"):
        got = scores(report, student)
        assert float(rows[student]["score"]) == sum(got.values())
        assert float(rows[student]["max_score"]) == 18
        for grade_id, value in got.items():
            assert float(rows[student][grade_id]) == value


def test_grading_three_times_gives_identical_scores(report, submissions, tmp_path):
    subset = tmp_path / "subset"
    subset.mkdir()
    for student in DETERMINISM_STUDENTS:
        shutil.copy(submissions / f"{student}.ipynb", subset)
    runs = [{s: scores(report, s) for s in DETERMINISM_STUDENTS}]
    for run in range(2):
        again = grading.grade_submissions(ASSIGNMENT, subset, tmp_path / f"run{run}", jobs=2,
                                          timeout=CELL_TIMEOUT, overrides=OVERRIDES,
                                          feedback=False, progress=False)
        runs.append({s: scores(again, s) for s in DETERMINISM_STUDENTS})
    assert runs[0] == runs[1] == runs[2]
    for student in DETERMINISM_STUDENTS:
        assert 0 < sum(runs[0][student].values()) < 18
