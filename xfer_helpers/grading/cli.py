"""The command line: ``xfer grade``, ``xfer release`` and ``xfer lint``.

The same subcommands run as ``python -m xfer_helpers.grading {grade,release,lint}``
(``make release`` and ``make grade`` use that form).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import DEFAULT_NAME_REGEXP, REPO_ROOT, _folder_name, load_config
from .grade import grade_submissions
from .lint import lint_notebook
from .release import release

def grade_command(args: argparse.Namespace) -> int:
    """``xfer grade``: grade, print one line per student; exit 1 if anyone was not graded."""
    try:
        report = grade_submissions(args.assignment, args.submissions, args.out,
                                   course_root=args.course_root, jobs=args.jobs,
                                   timeout=args.timeout, feedback=not args.no_feedback,
                                   name_regexp=args.name_regexp)
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for r in report.results:
        score = f"{r.score:g}/{r.max_score:g}" if r.status == "graded" else "-"
        note = "; ".join(x for x in [r.message, "review: " + ", ".join(r.review)
                                     if r.review else ""] if x)
        print(f"{r.student_id:<24} {r.status:<9} {score:>8}  {note}")
    n_through = sum(r.status != "rejected" for r in report.results)
    print(f"\n{len(report.results)} submissions: "
          f"{sum(r.status == 'graded' for r in report.results)} graded, "
          f"{sum(r.status == 'failed' for r in report.results)} failed, "
          f"{sum(r.status == 'rejected' for r in report.results)} rejected; "
          f"{report.seconds:.0f} s ({report.seconds_per_submission:.1f} s per graded "
          f"submission over {n_through})")
    print(f"grades:   {report.grades_csv}\nfeedback: {report.feedback_dir}/")
    return 0 if all(r.status == "graded" for r in report.results) else 1


def register(subparsers) -> None:
    """Add the ``grade``, ``release`` and ``lint`` subcommands to the ``xfer`` command's subparsers.

    Example:
        >>> parser = argparse.ArgumentParser(prog="xfer")
        >>> register(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["grade", "00_concepts", "submissions/"]).jobs
        1
    """
    p = subparsers.add_parser(
        "grade", help="autograde a folder (or LMS zip) of submissions: grades.csv + feedback HTML",
        description="Autograde one exercise for a whole class with nbgrader. SUBMISSIONS is a "
                    "folder with one <student>.ipynb (or <student>/ folder) per student, or an "
                    "LMS archive whose files are named <student>_<anything>.")
    p.add_argument("assignment", help="exercise name, e.g. 00_concepts (a folder of solutions/)")
    p.add_argument("submissions", type=Path, help="folder of submissions, or a .zip from an LMS")
    p.add_argument("-o", "--out", type=Path, default=Path("grades"),
                   help="output folder for grades.csv and feedback/ (default: grades)")
    p.add_argument("-j", "--jobs", type=int, default=1,
                   help="grade this many submissions in parallel (default 1; one per free core)")
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds per cell (default: Execute.timeout in nbgrader_config.py)")
    p.add_argument("--name-regexp", default=DEFAULT_NAME_REGEXP,
                   help="regexp for file names in LMS archives, with (?P<student_id>...) and "
                        "(?P<file_id>...) groups, matched against the full path")
    p.add_argument("--no-feedback", action="store_true", help="skip the feedback HTML")
    p.add_argument("--course-root", type=Path, default=REPO_ROOT,
                   help="folder with nbgrader_config.py and solutions/ (default: this course)")
    p.set_defaults(func=grade_command)
    p = subparsers.add_parser("release", help="regenerate exercises/ from solutions/ with nbgrader",
                              description="Regenerate exercises/<name>/ from solutions/<name>/ "
                                          "(never edit exercises/ by hand).")
    p.add_argument("assignments", nargs="*", help="exercise names (default: all)")
    p.set_defaults(func=release_command)
    p = subparsers.add_parser("lint", help="check instructor notebooks against the course rules",
                              description="Check notebooks in solutions/ against the course "
                                          "rules (xfer_helpers.grading.lint); exit 1 on a "
                                          "problem.")
    p.add_argument("notebooks", nargs="*", type=Path, help="default: solutions/*/*.ipynb")
    p.set_defaults(func=lint_command)


def release_command(args: argparse.Namespace) -> int:
    """``xfer release``: regenerate exercises/ from solutions/ (all exercises, or those named)."""
    try:
        folders = release(args.assignments or None)
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"released {folder.relative_to(REPO_ROOT)}")
    return 0


def lint_command(args: argparse.Namespace) -> int:
    """``xfer lint``: check instructor notebooks against the course rules; exit 1 on a problem."""
    notebooks = args.notebooks or sorted(
        (REPO_ROOT / _folder_name(load_config(), "source")).glob("*/*.ipynb"))
    failed = 0
    for notebook in notebooks:
        problems = lint_notebook(notebook)
        failed += bool(problems)
        print(f"{notebook}: {'ok' if not problems else ''}")
        for problem in problems:
            print(f"  - {problem}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m xfer_helpers.grading {grade,release,lint}`` (``make release`` uses this)."""
    parser = argparse.ArgumentParser(prog="python -m xfer_helpers.grading")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)
