"""Exercise pipeline on top of nbgrader 0.9.6: release, lint and grade exercise notebooks.

One module per job:

- :mod:`.config`: the course's nbgrader settings, the exercises, scratch courses;
- :mod:`.release`: ``exercises/`` generated from ``solutions/`` (``xfer release``,
  ``make release``) and :func:`release_differences` (a test keeps it empty);
- :mod:`.lint`: instructor notebooks against the course rules, one small function
  per rule (``xfer lint``);
- :mod:`.collect`: one notebook per student from a folder or an LMS archive;
- :mod:`.grade`: :func:`grade_submissions` autogrades a class (``xfer grade``) and
  writes ``grades.csv`` and one feedback HTML per student;
- :mod:`.review`: answer code a human should look at; :mod:`.feedback`: the
  feedback HTML without hidden tests; :mod:`.cli`: the subcommands.

The grader seals every notebook off: see :mod:`xfer_helpers.sealed` and
:mod:`xfer_helpers.sandbox`. nbgrader takes ~3 s to import, so it is imported inside
the functions that need it.

Example:
    >>> from xfer_helpers import grading
    >>> report = grading.grade_submissions("00_concepts", "submissions/", "grades/")  # doctest: +SKIP
    >>> report.grades_csv                                                            # doctest: +SKIP
    PosixPath('grades/grades.csv')
"""
from __future__ import annotations

from .cli import grade_command, lint_command, main, register, release_command
from .collect import (_graded_cells, _notebook_problem, _Submission, collect_submissions)
from .config import (ARCHIVE_SUFFIXES, ASSERT_HELPERS, BEGIN_HIDDEN, BEGIN_SOLUTION,
                     CONFIG_FILE, DEFAULT_NAME_REGEXP, END_HIDDEN, END_SOLUTION,
                     MIN_GRADED_CELLS, REPO_ROOT, _check, _nbgrader_environment,
                     _solution_notebook, _start_course, list_exercises, load_config)
from .grade import (GradingReport, StudentResult, _explain_failure, grade_submissions,
                    threads_per_job)
from .lint import CELL_RULES, NOTEBOOK_RULES, lint_notebook, split_hidden_tests
from .release import generate_release, normalized_notebook, release, release_differences
from .review import review_flags

__all__ = ["ARCHIVE_SUFFIXES", "ASSERT_HELPERS", "BEGIN_HIDDEN", "BEGIN_SOLUTION", "CELL_RULES",
           "CONFIG_FILE", "DEFAULT_NAME_REGEXP", "END_HIDDEN", "END_SOLUTION", "GradingReport",
           "HideHiddenTests", "MIN_GRADED_CELLS", "NOTEBOOK_RULES", "REPO_ROOT", "StudentResult",
           "collect_submissions", "generate_release", "grade_command", "grade_submissions",
           "lint_command", "lint_notebook", "list_exercises", "load_config", "main",
           "normalized_notebook", "register", "release", "release_command",
           "release_differences", "review_flags", "split_hidden_tests", "threads_per_job"]


def __getattr__(name):  # PEP 562: nbgrader's classes are built only when asked for
    if name == "HideHiddenTests":
        from . import feedback
        return feedback.HideHiddenTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
