"""Seconds per submission when autograding a class: one grader vs sharded parallel graders.

A class of ``n_submissions`` notebooks of exercise 00_concepts (half with the
instructor's answers, half untouched stubs, which still run every cell) is laid
out the way ``nbgrader collect`` leaves it: ``<student>/00_concepts/00_concepts.ipynb``
plus ``timestamp.txt``. It is graded with ``grading.grade_submissions`` (``xfer
grade``, feedback HTML included) once per value of ``jobs``: ``jobs=1`` is one
nbgrader process grading everyone in turn, as ``nbgrader autograde`` does;
``jobs=2`` shards the students over two processes, each with its own scratch
course and gradebook, and merges one grades.csv.

Rows: wall-clock seconds per submission for each ``jobs`` (target <= 10 s), and
the speed-up of the largest ``jobs`` over ``jobs=1``. Most of the time is fixed
cost per notebook (kernel start, the setup cell importing PyTorch and TensorFlow),
so the speed-up is bounded by the number of free cores. Quote numbers from a quiet
machine, with the load average the rows record.

Run alone: ``python benchmarks/bench_grading.py`` prints the rows.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ASSIGNMENT = "00_concepts"
TARGET_SECONDS = 10.0  # issue 16: a lab grades hundreds; serial, feedback included


def _class_folder(folder: Path, n_submissions: int) -> Path:
    """Write ``n_submissions`` student folders in nbgrader's collected layout; return ``folder``."""
    import nbformat

    from xfer_helpers import grading

    solution_path = grading._solution_notebook(ASSIGNMENT, grading.REPO_ROOT)
    release_path = grading.REPO_ROOT / "exercises" / ASSIGNMENT / solution_path.name
    solution = nbformat.read(str(solution_path), as_version=4)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in solution.cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for k in range(n_submissions):
        nb = nbformat.read(str(release_path), as_version=4)
        if k % 2 == 0:  # a correct notebook: the instructor's answers without the markers
            for c in nb.cells:
                grade_id = c.metadata.get("nbgrader", {}).get("grade_id")
                if grade_id in answers:
                    c.source = "\n".join(
                        line for line in answers[grade_id].split("\n")
                        if grading.BEGIN_SOLUTION not in line and grading.END_SOLUTION not in line)
        target = folder / f"student-{k:02d}" / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(nb, str(target / solution_path.name))
        (target / "timestamp.txt").write_text("2026-01-15 09:00:00.000000 UTC")
    return folder


def run(n_submissions: int = 8, jobs: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Grade the same class once per ``jobs`` value; return rows {"name", "value", "unit", ...}.

    Example:
        >>> rows = run(n_submissions=4, jobs=(1, 2))          # doctest: +SKIP
        >>> rows[-1]["name"]                                   # doctest: +SKIP
        'grading_speedup_jobs2'
    """
    if n_submissions < 1:
        raise ValueError(f"n_submissions must be at least 1, got {n_submissions}")
    if not jobs or min(jobs) < 1:
        raise ValueError(f"jobs must be a list of numbers >= 1, got {jobs!r}")
    from xfer_helpers import grading

    rows, per_submission = [], {}
    with tempfile.TemporaryDirectory(prefix="xfer-bench-grading-") as tmp:
        submissions = _class_folder(Path(tmp) / "submitted", n_submissions)
        for n_jobs in jobs:
            out = Path(tmp) / f"out-{n_jobs}"
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            started = time.perf_counter()
            report = grading.grade_submissions(ASSIGNMENT, submissions, out, jobs=n_jobs,
                                               progress=False)
            seconds = time.perf_counter() - started
            graded = sum(r.status == "graded" for r in report.results)
            if graded != n_submissions:
                problems = [f"{r.student_id}: {r.status} {r.message}" for r in report.results
                            if r.status != "graded"]
                raise RuntimeError(f"jobs={n_jobs}: only {graded}/{n_submissions} graded: "
                                   f"{problems}")
            per_submission[n_jobs] = seconds / n_submissions
            rows.append({"name": f"grading_jobs{n_jobs}_s_per_submission",
                         "value": per_submission[n_jobs], "unit": "s",
                         "target": f"<= {TARGET_SECONDS:g}",
                         "ok": per_submission[n_jobs] <= TARGET_SECONDS,
                         "submissions": n_submissions, "jobs": n_jobs, "total_s": seconds,
                         "assignment": ASSIGNMENT, "feedback": True,
                         "cpu_count": os.cpu_count(), "load_average_1min_before": load})
            shutil.rmtree(out, ignore_errors=True)
    if 1 in per_submission and len(per_submission) > 1:
        most = max(per_submission)
        rows.append({"name": f"grading_speedup_jobs{most}", "unit": "x",
                     "value": per_submission[1] / per_submission[most],
                     "note": f"seconds per submission with jobs=1 / with jobs={most}",
                     "cpu_count": os.cpu_count()})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
