"""The grading suite's own tests, for every exercise, through nbgrader's Python API.

For each exercise in solutions/ that has tests/mutants/<exercise>/mutants.yaml, one
autograde run (two parallel graders, each in a temporary nbgrader course) grades a
whole "class": the instructor's answers, the untouched release, every mutant
(mutants.yaml) and every wrong answer written blind (blind1.yaml, blind2.yaml, ...), packed
several to a notebook where they cannot affect the same test cells, the correct
alternatives (alternatives.yaml), tampered and cheating notebooks. For 00_concepts the class also has an infinite
loop, and a subset is graded twice more to check that scores are reproducible (these
cost a cell time-limit and two extra runs, so they are not repeated per exercise).
Scores are read from nbgrader's gradebook.

XFER_SCORES_DUMP=<folder> writes every student's status and per-cell scores there (one JSON per
exercise), to show that a change leaves the grades of the same submissions as they were.

The runs use IgnorePattern disabled (so a clean solution must not rely on the
stderr safety net) and a 40 s cell limit (the infinite loop costs one limit).
"""
from __future__ import annotations

import csv
import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

import grading_utils as gu
from xfer_helpers import grading

pytestmark = pytest.mark.slow

EXERCISES = sorted(p.parent.name for p in (gu.REPO / "solutions").glob("*/*.ipynb")
                   if (gu.MUTANTS_DIR / p.parent.name / "mutants.yaml").exists())
CELL_TIMEOUT = 40
OVERRIDES = {"IgnorePattern": {"enabled": False}}
# The exercise whose class also gets the infinite loop and the determinism re-runs.
TIMING_EXERCISE = "00_concepts"
# Dropout left on: the two mutants whose scores could change if grading were not seeded.
DETERMINISM_STUDENTS = ("mutant-evaluate_train_mode_left_on", "mutant-evaluate_keras_training_true")
# A hidden test's assertion message the cheater must see in its feedback (whitespace removed),
# one per exercise in tests/mutants/<exercise>/cheater_sees.txt.
CHEATER_SEES = {name: (gu.MUTANTS_DIR / name / "cheater_sees.txt").read_text().strip()
                for name in EXERCISES if (gu.MUTANTS_DIR / name / "cheater_sees.txt").exists()}



class Cells:
    """The grade_ids the tampering students use, picked from the exercise itself."""

    def __init__(self, solution):
        self.graded = gu.graded_ids(solution)
        self.answers = gu.answer_ids(solution)
        locked_code = [c.metadata.nbgrader.grade_id for c in solution.cells
                       if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("locked")
                       and not c.metadata.nbgrader.get("grade")]
        self.setup = locked_code[0]
        self.models = locked_code[1]            # a locked cell that defines what the tests use
        self.edited_test, self.deleted_test, self.stripped_test, self.inflated_test = \
            self.graded[0], self.graded[1], self.graded[-1], self.graded[2]
        self.emptied_under_solution, self.deleted_under_solution = self.graded[-1], self.graded[-2]


def _total(solution) -> float:
    return sum(gu.points(solution).values())


def _stated_total(solution) -> float:
    match = re.search(r"\*\*Total: (\d+) points\*\*", solution.cells[0].source)
    assert match, "the introduction should state '**Total: N points**'"
    return float(match.group(1))


def _packs(assignment: str) -> dict[str, tuple[str, list[dict]]]:
    """Packed notebooks of wrong answers: name -> (set, the mutants in it).

    Sets: "mutants" (mutants.yaml, edits of the instructor's answers), "blind1", "blind2", ...
    (written blind; each replaces one answer cell of alternatives.yaml's answers_a).
    Mutants that cannot affect the same test cells share a notebook (grading_utils.pack).
    """
    solution = gu.read(gu.solution_path(assignment))
    perfect = gu.filled_release(assignment)
    out = {}
    sets = {"mutants": (perfect, gu.load_mutants(assignment))}
    base_answers = gu.alternatives(assignment).get("answers_a")
    if base_answers:
        blind_base = gu.with_answers(gu.read(gu.release_path(assignment)), base_answers)
        for name in gu.BLIND_SETS:
            sets[name] = (blind_base, gu.load_set(assignment, name))
    for set_name, (base, mutants) in sets.items():
        mutated = [_apply(base, m) for m in mutants]
        dependencies = gu.mutant_dependencies(base, mutated)
        for k, group in enumerate(gu.pack(mutants, dependencies)):
            for mutant in group:
                mutant["tests"] = sorted(dependencies[mutant["cell"]]) if set_name != "mutants" \
                    else [mutant["target"]]
            out[f"pack-{set_name}-{k}"] = (set_name, group)
    assert all(gu.graded_ids(solution)), solution
    return out


def _apply(nb, mutant):
    """A mutant of mutants.yaml (replacements) or of a blind set (a whole answer cell)."""
    if "source" in mutant:
        return gu.with_answers(nb, {mutant["cell"]: mutant["source"]})
    return gu.mutate(nb, mutant)


def _packed_notebook(assignment: str, set_name: str, group: list[dict]):
    if set_name == "mutants":
        nb = gu.filled_release(assignment)
    else:
        nb = gu.with_answers(gu.read(gu.release_path(assignment)),
                             gu.alternatives(assignment)["answers_a"])
    for mutant in group:
        nb = _apply(nb, mutant)
    return nb


def _students(assignment: str) -> dict:
    """name -> notebook for the whole 'class'."""
    solution = gu.read(gu.solution_path(assignment))
    ids = Cells(solution)
    perfect = gu.filled_release(assignment)
    mutants = gu.load_mutants(assignment)
    students = {"instructor": perfect, "release": gu.read(gu.release_path(assignment))}
    for name, (set_name, group) in _packs(assignment).items():
        students[name] = _packed_notebook(assignment, set_name, group)
    for key, answers in gu.alternatives(assignment).items():
        students[f"alt-{key}"] = gu.with_answers(gu.read(gu.release_path(assignment)), answers)
    if assignment == TIMING_EXERCISE:  # graded solo, and three times (determinism)
        for student in DETERMINISM_STUDENTS:
            mutant = next(m for m in mutants if f"mutant-{m['name']}" == student)
            students[student] = gu.mutate(perfect, mutant)

    # Untouched release, but a test cell edited, one deleted, one turned into a plain
    # cell (nbgrader metadata removed) and points inflated.
    tampered = gu.read(gu.release_path(assignment))
    gu.cell(tampered, ids.edited_test).source = "# I trust my code\npass"
    tampered.cells.remove(gu.cell(tampered, ids.deleted_test))
    gu.cell(tampered, ids.stripped_test).source = "pass"
    del gu.cell(tampered, ids.stripped_test).metadata["nbgrader"]
    gu.cell(tampered, ids.inflated_test).metadata.nbgrader.points = 20
    students["tamper-release"] = tampered

    # Correct answers, but locked cells edited and test cells edited or deleted.
    tampered = gu.filled_release(assignment)
    gu.cell(tampered, ids.setup).source = 'raise RuntimeError("who needs a setup cell")'
    gu.cell(tampered, ids.models).source = "# the models, rewritten to help my answers\npass"
    gu.cell(tampered, ids.emptied_under_solution).source = "pass  # tests removed"
    tampered.cells.remove(gu.cell(tampered, ids.deleted_under_solution))
    students["tamper-solution"] = tampered

    # Wrong answers (the first mutant of every task) plus every checker disabled.
    cheater = perfect
    for target in ids.graded:
        cheater = gu.mutate(cheater, next(m for m in mutants if m["target"] == target))
    gu.cell(cheater, ids.answers[0]).source = \
        gu.CHEATER_PREAMBLE + gu.cell(cheater, ids.answers[0]).source
    students["cheater"] = cheater

    if assignment == TIMING_EXERCISE:  # a correct notebook except for an endless loop in Task 1
        students["infinite-loop"] = gu.mutate(perfect, {"cell": "strategy_answer", "replace": [{
            "old": '"""Pick "scratch", "feature_extraction" or "fine_tuning" from the table '
                   'above."""',
            "new": '"""Pick a strategy."""\nwhile True:  # waits for a condition that never comes\n'
                   '    pass'}]})
    return students


class Graded:
    """One exercise's graded class: the report, the solution and the submissions folder."""

    def __init__(self, assignment, report, submissions):
        self.assignment, self.report, self.submissions = assignment, report, submissions
        self.solution = gu.read(gu.solution_path(assignment))
        self.ids = Cells(self.solution)
        self.full = gu.points(self.solution)

    def scores(self, student: str) -> dict[str, float]:
        """Per-cell scores from nbgrader's gradebook (not from our CSV)."""
        result = self.report.by_student()[student]
        assert result.status == "graded", f"{student} was not graded: {result.message}"
        return gu.gradebook_scores(result.course_dir, self.assignment, student)

    def executed(self, student: str):
        """The notebook nbgrader ran for this student."""
        return gu.autograded(self.report.by_student()[student].course_dir, self.assignment,
                             student)


_GRADED: dict[str, Graded] = {}  # one grading run per exercise, whatever the test order


@pytest.fixture(scope="module", params=EXERCISES)
def graded(request, tmp_path_factory):
    assignment = request.param
    if assignment not in _GRADED:
        folder = tmp_path_factory.mktemp(f"submissions-{assignment}")
        for name, nb in _students(assignment).items():
            gu.write(nb, folder / f"{name}.ipynb")
        report = grading.grade_submissions(assignment, folder, tmp_path_factory.mktemp("out"),
                                           jobs=2, timeout=CELL_TIMEOUT, overrides=OVERRIDES,
                                           progress=False)
        print(f"\n{assignment}: {len(report.results)} submissions graded in "
              f"{report.seconds:.0f} s: {report.seconds_per_submission:.1f} s per submission "
              f"with 2 parallel graders")
        dump = os.environ.get("XFER_SCORES_DUMP")
        if dump:  # every student's status and per-cell scores, to compare two versions of the course
            Path(dump).mkdir(parents=True, exist_ok=True)
            (Path(dump) / f"{assignment}.json").write_text(json.dumps(
                {r.student_id: [r.status, r.cell_scores] for r in report.results}, indent=1,
                sort_keys=True))
        _GRADED[assignment] = Graded(assignment, report, folder)
    return _GRADED[assignment]


def test_every_exercise_is_covered():
    assert EXERCISES == grading.list_exercises(), \
        "every exercise needs tests/mutants/<exercise>/mutants.yaml"
    assert {"00_concepts", "01_cnn_fine_tuning"} <= set(EXERCISES)
    assert set(CHEATER_SEES) == set(EXERCISES)


def test_instructor_solution_gets_full_marks(graded):
    assert graded.scores("instructor") == graded.full
    assert _total(graded.solution) == _stated_total(graded.solution)


def test_solution_writes_nothing_to_stderr_and_raises_nothing(graded):
    executed = graded.executed("instructor")
    setup_output = "".join(o.get("text", "") for o in gu.cell(executed, "setup").outputs)
    assert "Profile: grading" in setup_output, "nbgrader runs must use the fast profile"
    for c in executed.cells:
        for output in c.get("outputs", []):
            assert not (output.output_type == "stream" and output.name == "stderr"), \
                f"cell {c.get('id')} wrote to stderr: {output.text[:300]}"
            assert output.output_type != "error", f"cell {c.get('id')} raised {output.ename}"


def test_untouched_release_scores_zero_on_every_graded_cell(graded):
    assert graded.scores("release") == {name: 0.0 for name in graded.ids.graded}


_PACKS = {name: _packs(name) for name in EXERCISES}


def _mutant_cases(sets=("mutants",)):
    return [pytest.param(assignment, pack, mutant, id=f"{assignment}-{mutant['name']}")
            for assignment in EXERCISES for pack, (set_name, group) in _PACKS[assignment].items()
            if set_name in sets for mutant in group]


def _lost(graded, student: str, tests: list[str]) -> float:
    got = graded.scores(student)
    return sum(graded.full[t] - got[t] for t in tests)


@pytest.mark.parametrize("graded, pack, mutant", _mutant_cases(), indirect=["graded"])
def test_mutant_loses_points_on_its_target_cell(graded, pack, mutant):
    assert _lost(graded, pack, [mutant["target"]]) > 0, \
        f"mutant {mutant['name']} ({mutant['why']}) was not caught by {mutant['target']}"


@pytest.mark.parametrize("graded, pack, mutant", _mutant_cases(gu.BLIND_SETS),
                         indirect=["graded"])
def test_blind_wrong_answer_loses_points(graded, pack, mutant):
    # Written blind (from the released notebook and the lecture only): it must lose points on
    # a test cell that depends on the answer cell it changes.
    assert _lost(graded, pack, mutant["tests"]) > 0, \
        f"wrong answer {mutant['name']} ({mutant['why']}) got full marks on {mutant['tests']}"


def test_correct_alternatives_get_full_marks(graded):
    alternatives = gu.alternatives(graded.assignment)
    for key in alternatives:
        assert graded.scores(f"alt-{key}") == graded.full, f"correct answers {key} lost points"


def test_mutation_score(graded):
    for set_name in ("mutants", *gu.BLIND_SETS):
        cases = [(pack, m) for pack, (s, group) in _PACKS[graded.assignment].items()
                 if s == set_name for m in group]
        if not cases:
            continue
        caught = [m["name"] for pack, m in cases
                  if _lost(graded, pack, m.get("tests") or [m["target"]]) > 0]
        print(f"\n{graded.assignment}: {set_name}: {len(caught)}/{len(cases)} wrong answers caught")
        assert len(caught) == len(cases)


def test_edited_locked_and_test_cells_are_restored(graded):
    # Correct answers with a broken setup cell, a sabotaged model cell, an emptied
    # test cell and a deleted test cell: the originals are put back, so full marks.
    ids = graded.ids
    assert graded.scores("tamper-solution") == graded.full
    executed = graded.executed("tamper-solution")
    for grade_id in (ids.setup, ids.models, ids.emptied_under_solution):
        assert gu.cell(executed, grade_id).source == gu.cell(graded.solution, grade_id).source
    # An empty answer whose test cell was replaced by `pass` still scores 0 there, and
    # inflated points are reset.
    assert graded.scores("tamper-release")[ids.edited_test] == 0
    executed = graded.executed("tamper-release")
    assert gu.cell(executed, ids.edited_test).source == \
        gu.cell(graded.solution, ids.edited_test).source
    assert gu.cell(executed, ids.inflated_test).metadata.nbgrader.points == \
        graded.full[ids.inflated_test]


def test_deleted_test_cell_is_re_added_and_graded(graded):
    ids = graded.ids
    executed = graded.executed("tamper-release")
    for grade_id in (ids.deleted_test, ids.stripped_test):  # deleted / metadata stripped
        re_added = gu.cell(executed, grade_id)
        assert "was missing from the submission" in re_added.source
        assert gu.cell(graded.solution, grade_id).source in re_added.source
        assert any(o.output_type == "error" for o in re_added.outputs), \
            f"the re-added {grade_id} was not run"
        assert graded.scores("tamper-release")[grade_id] == 0
    # Deleting a test cell under a correct answer does not cost the student anything.
    assert graded.scores("tamper-solution")[ids.deleted_under_solution] == \
        graded.full[ids.deleted_under_solution]


def test_disabling_the_checkers_earns_nothing_on_hidden_tests(graded):
    # Wrong answers, every checker in the kernel disabled and the probes' reports forged:
    # the grader's own checks still fail every cell.
    assert graded.scores("cheater") == {name: 0.0 for name in graded.ids.graded}
    executed = graded.executed("cheater")
    for grade_id in graded.ids.graded:
        errors = [o for o in gu.cell(executed, grade_id).outputs if o.output_type == "error"]
        assert errors, f"{grade_id}: no error output, yet the cell scored 0"
    review = graded.report.by_student()["cheater"].review
    assert "redefines expect_equal (defined in a locked cell)" in review
    assert "replaces np.testing.assert_allclose" in review
    assert "shadows the built-in abs" in review
    assert graded.report.by_student()["instructor"].review == []


def test_feedback_shows_messages_but_no_hidden_tests(graded):
    hidden = gu.hidden_test_lines(graded.assignment)
    assert len(hidden) > 20
    last_pack = [name for name in _PACKS[graded.assignment]][-1]
    for student in ("instructor", "cheater", "tamper-release", last_pack):
        feedback = graded.report.by_student()[student].feedback
        assert feedback, f"no feedback for {student}"
        text = gu.html_text(Path(feedback))
        assert "BEGINHIDDENTESTS" not in text
        leaked = [line for line in hidden if re.sub(r"\s+", "", html.escape(line,
                  quote=False)) in text or re.sub(r"\s+", "", line) in text]
        assert not leaked, f"hidden tests leaked into {student}'s feedback: {leaked[:3]}"
    # The cheater sees why a hidden test failed (its assertion message), not its code.
    text = gu.html_text(Path(graded.report.by_student()["cheater"].feedback))
    assert CHEATER_SEES[graded.assignment] in text.replace("&#x27;", "'")


def test_grades_csv_agrees_with_the_gradebook(graded):
    with open(graded.report.grades_csv, newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(graded.report.by_student())
    for student in ("instructor", "release", "cheater", "tamper-release"):
        got = graded.scores(student)
        assert float(rows[student]["score"]) == sum(got.values())
        assert float(rows[student]["max_score"]) == _total(graded.solution)
        for grade_id, value in got.items():
            assert float(rows[student][grade_id]) == value


def test_infinite_loop_hits_the_time_limit_and_other_cells_are_graded(graded):
    if graded.assignment != TIMING_EXERCISE:
        pytest.skip(f"the infinite loop is graded for {TIMING_EXERCISE} only")
    result = graded.report.by_student()["infinite-loop"]
    assert result.timed_out == ["strategy_tests"]
    assert f"{CELL_TIMEOUT} s" in result.message
    expected = dict(graded.full, strategy_tests=0.0)
    assert graded.scores("infinite-loop") == expected


def test_kernels_started_ahead_are_used(graded):
    """Each grader starts the next student's kernel while a notebook runs (sealed.HeadStart):
    every student but the first of each of the two graders runs in a kernel started ahead."""
    results = [r for r in graded.report.results if r.status != "rejected"]
    assert sum(r.head_start for r in results) == len(results) - 2, \
        [r.student_id for r in results if not r.head_start]


def test_grading_three_times_gives_identical_scores(graded, tmp_path):
    """Three gradings, the same scores: the class run (two graders, kernels started ahead),
    one grader with the second student's kernel started ahead, and one grader with every
    kernel started only when its notebook's turn comes (as plain nbgrader does)."""
    if graded.assignment != TIMING_EXERCISE:
        pytest.skip(f"the re-grading check runs for {TIMING_EXERCISE} only")
    subset = tmp_path / "subset"
    subset.mkdir()
    for student in DETERMINISM_STUDENTS:
        shutil.copy(graded.submissions / f"{student}.ipynb", subset)
    runs = [{s: graded.scores(s) for s in DETERMINISM_STUDENTS}]
    for run, head_start in enumerate((True, False)):
        again = grading.grade_submissions(
            TIMING_EXERCISE, subset, tmp_path / f"run{run}", jobs=1, timeout=CELL_TIMEOUT,
            overrides={**OVERRIDES, "SealedExecute": {"head_start": head_start}},
            feedback=False, progress=False)
        assert [r.head_start for r in again.results] == [False, head_start]
        runs.append({s: Graded(TIMING_EXERCISE, again, subset).scores(s)
                     for s in DETERMINISM_STUDENTS})
    assert runs[0] == runs[1] == runs[2]
    for student in DETERMINISM_STUDENTS:
        assert 0 < sum(runs[0][student].values()) < _total(graded.solution)
