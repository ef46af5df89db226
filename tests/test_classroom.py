"""A whole class through nbgrader's exchange, as an instructor and 20 students would run it.

Everything happens in a temporary folder: an nbgrader course (our nbgrader_config.py,
solutions/00_concepts) and an exchange directory (``Exchange.root``). The instructor
releases the exercise; 20 students (each with their own home folder, exchange cache and
``CourseDirectory.student_id``) fetch it, fill it in and submit; one more student is on
the roster but never submits. The instructor collects, autogrades with nbgrader's own
``autograde`` (serial, in the course's one gradebook: timestamps, the due date and the
late penalty live there), generates and releases feedback, and exports grades.csv with
``nbgrader export``.

The class: correct answers, wrong answers (mutants), partly answered, untouched stubs,
broken JSON, an endless loop, a kernel crash, tampered test and locked cells, a
"cheater" who disables the checkers, three hostile notebooks (a test-rewriting hook,
reading the solutions from disk, overwriting the classmates' notebooks: nbgrader's
autograde runs them sealed off through nbgrader_config.py), a resubmission and a late
submission (graded with
the "zero" late policy so that lateness shows in the export). Each student's expected
per-cell score is stated up front from what they submitted.

A last check grades part of the collected ``submitted/`` folder again with
``xfer grade`` (``grading.grade_submissions``, two parallel graders) and expects the
same scores: the fast sharded grader and nbgrader's autograde agree.
"""
from __future__ import annotations

import copy
import csv
import datetime
import shutil
import time
from pathlib import Path

import pytest

import attacks
import grading_utils as gu
from xfer_helpers import grading

pytestmark = [pytest.mark.slow,
              # nbgrader's own ORM notes while it autogrades; nothing to act on
              pytest.mark.filterwarnings("ignore:Object of type <Submitted")]

ASSIGNMENT = "00_concepts"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "xfer101"
CELL_TIMEOUT = 40  # the setup cell (PyTorch + TensorFlow imports) needs ~10-25 s on a busy CPU
NO_SHOW = "nadia-no-show"
LATE = "lena-late"
RESUBMIT = "ravi-resubmits"
# Autograde fails for these (nbgrader's export then shows them as 0, like an empty notebook).
NOT_GRADED = {"ivan-invalid-json": "does not appear to be JSON", "kim-kernel-crash": "kernel died"}
# Students graded again with `xfer grade` on the collected folder.
CROSS_CHECK = ("alice-correct", "mia-metrics-swapped", "ivan-invalid-json")



# --------------------------------------------------------------------------- the class

def _with_answers(answer_ids: list[str]):
    """The release with the instructor's answers typed into these answer cells only."""
    nb, solution = gu.read(gu.release_path(ASSIGNMENT)), gu.read(gu.solution_path(ASSIGNMENT))
    for grade_id in answer_ids:
        gu.cell(nb, grade_id).source = gu.instructor_answer(gu.cell(solution, grade_id).source)
    return nb


def _class_list() -> dict[str, tuple[object, dict[str, float] | None]]:
    """student -> (what they submit: a notebook or raw text, expected per-cell scores or None).

    None means the notebook cannot be graded automatically (someone must look at it).
    """
    solution = gu.read(gu.solution_path(ASSIGNMENT))
    full = gu.points(solution)
    zero = {name: 0.0 for name in full}
    perfect = gu.filled_release(ASSIGNMENT)
    stub = gu.read(gu.release_path(ASSIGNMENT))
    mutants = {m["name"]: m for m in gu.load_mutants(ASSIGNMENT)}

    def without(*cells):
        return {**full, **{c: 0.0 for c in cells}}

    def mutant(name):
        return gu.mutate(perfect, mutants[name]), without(mutants[name]["target"])

    students: dict[str, tuple[object, dict[str, float] | None]] = {}
    for name in ("alice", "bao", "carmen", "dmitri", "eun-ji"):
        students[f"{name}-correct"] = (perfect, dict(full))
    students["mia-metrics-swapped"] = mutant("metrics_precision_recall_swapped")
    students["sven-strategy-off-by-one"] = mutant("strategy_threshold_inclusive")
    students["mo-micro-average"] = mutant("metrics_micro_instead_of_macro")
    # Partly answered: the other answer cells still raise NotImplementedError.
    answers = gu.answer_ids(solution)
    tests = gu.graded_ids(solution)
    students["pat-partial-1-3"] = (_with_answers(answers[:3]), without(*tests[3:]))
    students["quinn-partial-4-7"] = (_with_answers(answers[3:]), without(*tests[:3]))
    students["sam-stub"] = (stub, dict(zero))
    students["tara-stub"] = (stub, dict(zero))
    students["ivan-invalid-json"] = ('{"cells": [{"cell_type": "code", "source": "x = 1"', None)
    looping = gu.mutate(perfect, {"cell": "strategy_answer", "replace": [{
        "old": '"""Pick "scratch", "feature_extraction" or "fine_tuning" from the table above."""',
        "new": '"""Pick a strategy."""\nwhile True:  # waits for a condition that never comes\n'
               '    pass'}]})
    students["leo-endless-loop"] = (looping, without("strategy_tests"))
    crash = copy.deepcopy(perfect)
    gu.cell(crash, "strategy_answer").source = "import os\nos._exit(1)  # the kernel dies here"
    students["kim-kernel-crash"] = (crash, None)
    # Correct answers; setup and model cells sabotaged, one test cell emptied, one deleted:
    # nbgrader restores locked cells and re-adds missing test cells, so full marks.
    tampered = copy.deepcopy(perfect)
    gu.cell(tampered, "setup").source = 'raise RuntimeError("who needs a setup cell")'
    gu.cell(tampered, "models").source = "pass  # the models, rewritten to help my answers"
    gu.cell(tampered, tests[-1]).source = "pass  # tests removed"
    tampered.cells.remove(gu.cell(tampered, tests[-2]))
    students["tom-tampers-correct"] = (tampered, dict(full))
    # No answers; test cells replaced by `pass` and points inflated: still 0 of 18.
    tampered = copy.deepcopy(stub)
    for grade_id in tests:
        gu.cell(tampered, grade_id).source = "pass  # I trust my code"
    gu.cell(tampered, tests[0]).metadata.nbgrader.points = 100
    students["tina-tampers-stub"] = (tampered, dict(zero))
    # Wrong answers everywhere (the first mutant of each task) with the checkers disabled.
    cheater = perfect
    for target in tests:
        cheater = gu.mutate(cheater, next(m for m in mutants.values() if m["target"] == target))
    gu.cell(cheater, answers[0]).source = gu.CHEATER_PREAMBLE + gu.cell(cheater, answers[0]).source
    students["chet-cheats"] = (cheater, dict(zero))
    # Hostile blank notebooks (tests/attacks.py): nbgrader's own autograde runs them sealed
    # off too, so they earn nothing and the classmates graded after them keep their scores.
    for name, attack in (("hal-hooks-the-tests", attacks.TRANSFORMER),
                         ("rita-reads-solutions", attacks.READ_SOLUTIONS),
                         ("olga-overwrites-others", attacks.OVERWRITE_OTHERS)):
        hostile = copy.deepcopy(stub)
        gu.cell(hostile, answers[0]).source = attack + "\n" + gu.cell(hostile, answers[0]).source
        students[name] = (hostile, dict(zero))
    students[RESUBMIT] = (perfect, dict(full))  # first submits the stub, then this
    students[LATE] = (perfect, dict(full))      # submitted after the due date
    return students


# --------------------------------------------------------------------------- nbgrader

def _instructor(course: Path, exchange: Path):
    overrides = {
        "CourseDirectory": {"course_id": COURSE_ID},
        "Exchange": {"root": str(exchange)},
        "ExchangeCollect": {"check_owner": False},  # every "student" is this Unix user here
        "Execute": {"timeout": CELL_TIMEOUT},
        "LateSubmissionPlugin": {"penalty_method": "zero"},
    }
    config, api = grading._start_course(ASSIGNMENT, course, gu.REPO, overrides)
    return config, api


def _student_api(student: str, homes: Path, exchange: Path):
    """An nbgrader API as this student sees it: own home, own cache, own student id."""
    from traitlets.config import Config
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    home = homes / student
    home.mkdir(parents=True, exist_ok=True)
    config = Config({"CourseDirectory": {"course_id": COURSE_ID, "student_id": student,
                                         "assignment_id": ASSIGNMENT, "root": str(home)},
                     "Exchange": {"root": str(exchange), "cache": str(home / ".nbgrader_cache"),
                                  "assignment_dir": str(home)}})
    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    api.log_level = "ERROR"
    return api, home / ASSIGNMENT / NOTEBOOK


def _exchange_step(api, step: str) -> dict:
    from nbgrader.utils import capture_log

    app = getattr(api.exchange, step)(coursedir=api.coursedir,
                                      authenticator=api.authenticator, parent=api)
    return capture_log(app)


def _fetch_and_submit(student: str, submission, homes: Path, exchange: Path) -> None:
    """Fetch the exercise (first time only), save `submission` over it and submit."""
    api, notebook = _student_api(student, homes, exchange)
    if not notebook.exists():
        grading._check(_exchange_step(api, "FetchAssignment"), f"fetch the exercise for {student}")
        assert notebook.is_file(), f"{student} did not receive {NOTEBOOK}"
    if isinstance(submission, str):
        notebook.write_text(submission, encoding="utf-8")
    else:
        gu.write(submission, notebook)
    grading._check(_exchange_step(api, "Submit"), f"submit for {student}")


def _set_due_date(api, duedate: datetime.datetime) -> None:
    from nbgrader.api import Gradebook

    with Gradebook(api.coursedir.db_url, COURSE_ID) as gradebook:
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate=duedate)


def _export(config, course: Path) -> dict[str, dict]:
    from nbgrader.apps.exportapp import ExportApp
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    target = course / "grades.csv"
    config = copy.deepcopy(config)
    config.CsvExportPlugin.to = str(target)
    config.ExportApp.log_level = "ERROR"
    app = ExportApp(config=config)
    app.coursedir = CourseDirectory(config=config)
    grading._check(capture_log(app), "export the grades")
    with target.open(newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


class Classroom:
    """What the class run left behind: folders, per-student outcomes, the export."""

    def __init__(self, tmp: Path):
        self.course, self.exchange, self.homes = tmp / "course", tmp / "exchange", tmp / "homes"
        self.exchange.mkdir(parents=True)
        self.students = _class_list()
        self.solution = gu.read(gu.solution_path(ASSIGNMENT))
        self.full = gu.points(self.solution)
        self.autograde: dict[str, dict] = {}
        self.seconds: dict[str, float] = {}

    def run(self) -> "Classroom":
        from nbgrader.api import Gradebook

        self.config, self.api = _instructor(self.course, self.exchange)
        api = self.api
        with Gradebook(api.coursedir.db_url, COURSE_ID) as gradebook:  # the roster
            for student in [*self.students, NO_SHOW]:
                first, _, last = student.partition("-")
                gradebook.update_or_create_student(student, first_name=first.title(),
                                                   last_name=last)
        with grading._nbgrader_environment():
            grading._check(api.release_assignment(ASSIGNMENT), "release the exercise")
        on_time = [s for s in self.students if s != LATE]
        for student in on_time:
            notebook, _ = self.students[student]
            if student == RESUBMIT:  # a first, empty attempt; the later one must count
                _fetch_and_submit(student, gu.read(gu.release_path(ASSIGNMENT)),
                                  self.homes, self.exchange)
                time.sleep(0.01)
            _fetch_and_submit(student, notebook, self.homes, self.exchange)
        self.duedate = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        _set_due_date(api, self.duedate)
        time.sleep(0.01)
        _fetch_and_submit(LATE, self.students[LATE][0], self.homes, self.exchange)

        with grading._nbgrader_environment():
            grading._check(api.collect(ASSIGNMENT), "collect the submissions")
        started = time.perf_counter()
        for student in sorted(self.students):
            begin = time.perf_counter()
            with grading._nbgrader_environment():
                self.autograde[student] = api.autograde(ASSIGNMENT, student, force=True,
                                                        create=True)
            self.seconds[student] = time.perf_counter() - begin
        self.autograde_seconds = time.perf_counter() - started
        with grading._nbgrader_environment():
            self.feedback = {s: api.generate_feedback(ASSIGNMENT, s) for s in self.graded()}
            self.released = api.release_feedback(ASSIGNMENT)
        self.export = _export(self.config, self.course)
        print(f"\nclassroom: {len(self.students)} submissions autograded by nbgrader (serial) in "
              f"{self.autograde_seconds:.0f} s, "
              f"{self.autograde_seconds / len(self.students):.1f} s per submission")
        return self

    def graded(self) -> list[str]:
        return sorted(s for s, (_, expected) in self.students.items() if expected is not None)

    def scores(self, student: str) -> dict[str, float]:
        """Per-cell scores from the course's gradebook."""
        return gu.gradebook_scores(self.course, ASSIGNMENT, student)

    def submitted(self, student: str) -> Path:
        return self.course / "submitted" / student / ASSIGNMENT


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    return Classroom(tmp_path_factory.mktemp("classroom")).run()


# --------------------------------------------------------------------------- tests

def test_the_class_has_every_kind_of_submission(classroom):
    assert len(classroom.students) >= 20
    kinds = ("correct", "metrics-swapped", "partial", "stub", "invalid-json", "endless-loop",
             "tampers", "cheats", "late", "resubmits")
    for kind in kinds:
        assert any(kind in s for s in classroom.students), kind


def test_every_submission_is_collected_and_nothing_else(classroom):
    inbound = list((classroom.exchange / COURSE_ID / "inbound").iterdir())
    assert len(inbound) == len(classroom.students) + 1, "every submission (two from the " \
        "resubmitting student) should stay in the exchange"
    collected = {p.name for p in (classroom.course / "submitted").iterdir()}
    assert collected == set(classroom.students)
    for student in classroom.students:
        folder = classroom.submitted(student)
        assert (folder / NOTEBOOK).is_file(), f"{student}'s notebook was not collected"
        assert (folder / "timestamp.txt").is_file()
    # The resubmission replaced the first attempt: the collected notebook has answers.
    collected = gu.read(classroom.submitted(RESUBMIT) / NOTEBOOK)
    assert "NotImplementedError" not in gu.cell(collected, "strategy_answer").source


def test_every_student_gets_the_score_their_submission_deserves(classroom):
    wrong = {}
    for student in classroom.graded():
        outcome = classroom.autograde[student]
        assert outcome["success"], f"{student}: {grading._explain_failure(outcome)}"
        got = classroom.scores(student)
        if got != classroom.students[student][1]:
            wrong[student] = {cell: (got.get(cell), want) for cell, want
                              in classroom.students[student][1].items() if got.get(cell) != want}
    assert not wrong, f"(got, expected) per cell: {wrong}"


def test_ungradable_submissions_are_reported_not_silently_zero(classroom):
    for student, reason in NOT_GRADED.items():
        outcome = classroom.autograde[student]
        assert not outcome["success"], f"{student} should not have been graded"
        said = grading._explain_failure(outcome) + outcome.get("log", "") + outcome.get("error", "")
        assert reason in said, f"{student}: expected {reason!r} in nbgrader's log"
        # Nothing is lost: the file is still there for a human to open.
        assert (classroom.submitted(student) / NOTEBOOK).is_file()


def test_endless_loop_costs_only_its_own_cell(classroom):
    executed = gu.autograded(classroom.course, ASSIGNMENT, "leo-endless-loop")
    timed_out = [c.metadata.nbgrader.grade_id for c in executed.cells
                 if any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]
    assert timed_out == ["strategy_tests"]


def test_export_has_the_whole_roster_with_late_penalty(classroom):
    rows = classroom.export
    assert set(rows) == set(classroom.students) | {NO_SHOW}
    total = sum(classroom.full.values())
    for student in classroom.graded():
        row = rows[student]
        assert float(row["max_score"]) == total
        assert float(row["raw_score"]) == sum(classroom.students[student][1].values()), student
        assert row["timestamp"], f"{student} has no submission time in the export"
        late = student == LATE
        assert (grading_time(row["timestamp"]) > classroom.duedate) == late, student
        penalty = float(row["late_submission_penalty"])
        assert penalty == (float(row["raw_score"]) if late else 0.0), student
        assert float(row["score"]) == (0.0 if late else float(row["raw_score"])), student
    assert float(rows[LATE]["raw_score"]) == total and float(rows[LATE]["score"]) == 0
    assert rows[NO_SHOW]["timestamp"] == "" and float(rows[NO_SHOW]["score"]) == 0


def grading_time(text: str) -> datetime.datetime:
    """A timestamp from nbgrader's export as a naive UTC datetime."""
    from nbgrader.utils import parse_utc

    return parse_utc(text).replace(tzinfo=None)


def test_feedback_reaches_students_without_hidden_tests(classroom):
    hidden = gu.hidden_test_lines(ASSIGNMENT)
    assert len(hidden) > 20
    assert classroom.released["success"], classroom.released
    for student in ("alice-correct", "chet-cheats", "tina-tampers-stub", "mia-metrics-swapped"):
        assert classroom.feedback[student]["success"], classroom.feedback[student]
        api, _ = _student_api(student, classroom.homes, classroom.exchange)
        grading._check(api.fetch_feedback(ASSIGNMENT, student), f"fetch feedback for {student}")
        pages = list((classroom.homes / student / ASSIGNMENT / "feedback").rglob("*.html"))
        assert len(pages) == 1, f"{student} should receive one feedback page, got {pages}"
        text = gu.html_text(pages[0])
        assert "BEGINHIDDENTESTS" not in text
        leaked = [line for line in hidden if "".join(line.split()) in text]
        assert not leaked, f"hidden tests leaked into {student}'s feedback: {leaked[:3]}"
    # Feedback goes to the right student: Mia's page shows her failed metrics test.
    mia = next((classroom.homes / "mia-metrics-swapped").rglob("*.html"))
    alice = next((classroom.homes / "alice-correct").rglob("*.html"))
    assert "AssertionError" in gu.html_text(mia) and "AssertionError" not in gu.html_text(alice)


def test_sharded_xfer_grade_on_the_collected_folder_agrees_with_nbgrader(classroom, tmp_path):
    subset = tmp_path / "submitted"
    for student in CROSS_CHECK:
        shutil.copytree(classroom.submitted(student), subset / student)
    report = grading.grade_submissions(ASSIGNMENT, subset, tmp_path / "out", jobs=2,
                                       timeout=CELL_TIMEOUT, feedback=False, progress=False)
    results = report.by_student()
    assert set(results) == set(CROSS_CHECK)
    for student in CROSS_CHECK:
        if student in NOT_GRADED:
            assert results[student].status == "rejected" and "JSON" in results[student].message
        else:
            assert results[student].status == "graded", results[student].message
            assert results[student].cell_scores == classroom.scores(student), student
