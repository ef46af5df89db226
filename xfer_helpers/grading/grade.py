"""Grading a class: every submission autograded by nbgrader, sealed off, in parallel shards.

:func:`grade_submissions` (``xfer grade``) takes a folder with one notebook per
student, or an LMS zip collected with nbgrader's zip_collect, and writes
``grades.csv`` and one feedback HTML per student, hidden tests removed. Scores come
from nbgrader's gradebook; a kernel that dies is a failed job (no score), never a 0.
Grading happens in scratch nbgrader courses built from ``solutions/`` and
``nbgrader_config.py``, so it needs no gradebook of its own.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import env
from .collect import _graded_cells, _notebook_problem, collect_submissions
from .config import (DEFAULT_NAME_REGEXP, REPO_ROOT, _nbgrader, _nbgrader_environment, _source,
                     _solution_notebook, _start_course)
from .feedback import _feedback_html
from .review import _protected_names, review_flags
from ..sealed import HEAD_START

@dataclass
class StudentResult:
    """The outcome for one student.

    ``status`` is "graded", "failed" (the grading job broke, e.g. the kernel died:
    no score is given, someone must look) or "rejected" (the input was not a
    notebook of this exercise).
    """

    student_id: str
    status: str
    message: str = ""
    score: float | None = None
    max_score: float | None = None
    cell_scores: dict[str, float] = field(default_factory=dict)
    timed_out: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    seconds: float = 0.0
    feedback: str | None = None
    course_dir: str | None = None
    head_start: bool = False   # ran in a kernel started while the previous notebook ran


@dataclass
class GradingReport:
    """Everything :func:`grade_submissions` produced."""

    assignment: str
    results: list[StudentResult]
    grades_csv: Path
    feedback_dir: Path
    seconds: float
    max_score: float = 0.0
    graded_cells: list[str] = field(default_factory=list)

    def by_student(self) -> dict[str, StudentResult]:
        """Results keyed by student id."""
        return {r.student_id: r for r in self.results}

    @property
    def seconds_per_submission(self) -> float:
        """Wall-clock seconds per submission that went through nbgrader."""
        n = sum(r.status != "rejected" for r in self.results)
        return self.seconds / n if n else 0.0



def _explain_failure(result: dict) -> str:
    text = result.get("log", "") + "\n" + result.get("error", "")
    if "DeadKernelError" in text or "Kernel died" in text:
        return ("the Python kernel died while running the notebook (a crash, os._exit, or "
                "running out of memory). NOT graded: look at this notebook by hand")
    if "UnresponsiveKernelError" in text or "became unresponsive" in text:
        return ("the kernel stopped responding and could not be interrupted (an infinite loop "
                "eating memory?). NOT graded: look at this notebook by hand")
    if "Timeout waiting for IOPub output" in text:
        return ("the kernel stopped sending its output in time (code that slows every line, "
                "such as a trace function?). NOT graded: look at this notebook by hand")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "nbgrader could not grade it: " + (lines[-1] if lines else "no details")


def _timed_out_cells(autograded: Path) -> list[str]:
    nb = json.loads(autograded.read_text(encoding="utf-8"))
    return [_nbgrader(c).get("grade_id") or c.get("id", "?") for c in nb["cells"]
            if any(o.get("ename") == "CellTimeoutError" for o in c.get("outputs", []))]


def _autograde_one(api, config, assignment: str, student: str, solution: Path) -> StudentResult:
    """Autograde one placed submission; scores come from nbgrader's gradebook."""
    from nbgrader.api import Gradebook

    coursedir = api.coursedir
    result = StudentResult(student, "graded", course_dir=coursedir.root)
    with _nbgrader_environment(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="nbgrader")  # SQLAlchemy notes from its ORM
        outcome = api.autograde(assignment, student, force=True, create=True)
    if not outcome.get("success"):
        result.status, result.message = "failed", _explain_failure(outcome)
        return result
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        submitted = gradebook.find_submission_notebook(solution.stem, assignment, student)
        grades = {g.name: (g.auto_score, g.max_score) for g in submitted.grades}
    missing = sorted(name for name, (score, _) in grades.items() if score is None)
    if missing:
        result.status = "failed"
        result.message = f"no automatic score for {', '.join(missing)}: look by hand"
        return result
    result.cell_scores = {name: float(score) for name, (score, _) in grades.items()}
    result.score = sum(result.cell_scores.values())
    result.max_score = float(sum(max_score for _, max_score in grades.values()))
    executed = Path(coursedir.format_path(coursedir.autograded_directory, student, assignment))
    result.timed_out = _timed_out_cells(executed / solution.name)
    if result.timed_out:
        limit = config.Execute.get("timeout", 30)
        result.message = f"time limit ({limit} s per cell) hit in: {', '.join(result.timed_out)}"
    return result


def _grade_shard(assignment: str, shard_dir: str, students: list[tuple[str, str]],
                 course_root: str, overrides: dict | None, feedback: bool,
                 progress: bool) -> list[StudentResult]:
    """Autograde some students in one scratch course folder (one process)."""
    config, api = _start_course(assignment, Path(shard_dir), Path(course_root), overrides)
    solution = _solution_notebook(assignment, Path(course_root))
    protected = _protected_names(solution)
    coursedir = api.coursedir
    for student, path in students:
        target = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / solution.name)
    results = []
    try:
        for k, (student, path) in enumerate(_progress(students, progress, f"grading {assignment}")):
            started = time.perf_counter()
            HEAD_START.upcoming, HEAD_START.handed_over = len(students) - k - 1, False
            result = _autograde_one(api, config, assignment, student, solution)
            result.head_start = HEAD_START.handed_over
            results.append(_finish(api, assignment, student, path, solution, protected, feedback,
                                   result, started))
    finally:  # a kernel started ahead for nobody
        HEAD_START.upcoming = 0
        HEAD_START.discard()
    return results


def _finish(api, assignment: str, student: str, path: str, solution: Path, protected: set,
            feedback: bool, result: StudentResult, started: float) -> StudentResult:
    """Review flags, feedback page and time of one graded student."""
    answers = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    result.review = sorted({flag for cell in answers if _nbgrader(cell).get("solution")
                            for flag in review_flags(_source(cell), protected)})
    if feedback and result.status == "graded":
        result.feedback = _feedback_html(api, assignment, student, solution)
        if result.feedback is None:
            result.message = "; ".join(filter(None, [result.message,
                                                     "feedback HTML could not be generated"]))
    result.seconds = time.perf_counter() - started
    return result


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """CPU threads for each of ``jobs`` parallel graders: the cores shared out, at least 1.

    Without this, every student's kernel would use all the cores, and ``jobs`` kernels
    at once would fight over them (PyTorch gets several times slower, not just shared).

    Example:
        >>> threads_per_job(2, cores=2), threads_per_job(4, cores=16), threads_per_job(8, cores=4)
        (1, 4, 1)
    """
    cores = cores or os.cpu_count() or 1
    return max(1, cores // jobs)


def _share_cores(jobs: int) -> None:
    """In a grading worker: its kernels use their share of the cores (unless XFER_THREADS is set)."""
    if not os.environ.get("XFER_THREADS"):
        threads = str(threads_per_job(jobs))
        for var in ("XFER_THREADS", *env.THREAD_VARIABLES):
            os.environ[var] = threads


def _progress(items, enabled: bool, description: str):
    if not env.progress_enabled(enabled):
        return items
    from tqdm.auto import tqdm
    return tqdm(items, desc=description, unit="student")


def grade_submissions(assignment: str, submissions: str | Path, output: str | Path, *,
                      course_root: str | Path = REPO_ROOT, jobs: int = 1,
                      timeout: int | None = None, feedback: bool = True,
                      name_regexp: str = DEFAULT_NAME_REGEXP, overrides: dict | None = None,
                      progress: bool = True) -> GradingReport:
    """Autograde a class: write ``grades.csv`` and ``feedback/<student>.html`` under ``output``.

    Bad input (not a notebook, broken JSON, a missing notebook, another exercise's
    notebook) rejects that student with a message; everyone else is still graded. A
    kernel death is a failed grading job (status "failed", no score), never a 0.
    ``jobs`` runs that many graders in parallel (each in its own scratch course), each
    kernel with its share of the cores (:func:`threads_per_job`; ``XFER_THREADS`` overrides).

    Example:
        >>> report = grade_submissions("00_concepts", "submissions/", "grades/")  # doctest: +SKIP
        >>> [(r.student_id, r.score) for r in report.results]                    # doctest: +SKIP
        [('alice', 18.0), ('bob', None)]
    """
    started = time.perf_counter()
    course_root, output = Path(course_root).resolve(), Path(output).resolve()
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if timeout is not None and timeout < 1:
        raise ValueError(f"timeout must be at least 1 second, got {timeout}")
    solution = _solution_notebook(assignment, course_root)
    graded_cells, expected_ids, points = _graded_cells(solution)
    overrides = json.loads(json.dumps(overrides or {}))
    if timeout is not None:
        overrides.setdefault("Execute", {})["timeout"] = timeout

    work = output / "nbgrader"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    entries = collect_submissions(submissions, assignment, work, course_root, name_regexp)
    results: list[StudentResult] = []
    gradable = []
    for entry in entries:
        problem = entry.problem or _notebook_problem(entry.path, assignment, expected_ids)
        if problem:
            results.append(StudentResult(entry.student_id, "rejected", message=problem))
        else:
            gradable.append((entry.student_id, str(entry.path)))

    shards = [gradable[k::jobs] for k in range(min(jobs, len(gradable)))]
    calls = [(assignment, str(work / f"course-{k}"), shard, str(course_root), overrides,
              feedback, progress and jobs == 1) for k, shard in enumerate(shards)]
    if len(calls) <= 1:
        for call in calls:
            results += _grade_shard(*call)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(calls), mp_context=context,
                                 initializer=_share_cores, initargs=(len(calls),)) as pool:
            futures = [pool.submit(_grade_shard, *call) for call in calls]
            for future in _progress(futures, progress, f"grading {assignment} ({jobs} jobs)"):
                results += future.result()

    feedback_dir = output / "feedback"
    if feedback_dir.exists():
        shutil.rmtree(feedback_dir)
    feedback_dir.mkdir(parents=True)
    for result in results:
        if result.feedback:
            target = feedback_dir / f"{result.student_id}.html"
            shutil.copyfile(result.feedback, target)
            result.feedback = str(target)
    results.sort(key=lambda r: r.student_id)
    grades_csv = output / "grades.csv"
    _write_csv(grades_csv, results, graded_cells)
    return GradingReport(assignment, results, grades_csv, feedback_dir,
                         time.perf_counter() - started, sum(points.values()), graded_cells)


def _write_csv(path: Path, results: list[StudentResult], graded_cells: list[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "status", "score", "max_score", *graded_cells,
                         "seconds", "message", "review"])
        for r in results:
            graded = r.status == "graded"
            writer.writerow([r.student_id, r.status,
                             f"{r.score:g}" if graded else "",
                             f"{r.max_score:g}" if graded else "",
                             *[f"{r.cell_scores[c]:g}" if graded and c in r.cell_scores else ""
                               for c in graded_cells],
                             f"{r.seconds:.1f}", r.message, "; ".join(r.review)])

