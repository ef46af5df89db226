"""The course's nbgrader settings and the scratch courses every job works in.

Shared by the release, the linter, the collector and the grader: constants, the
nbgrader configuration (``nbgrader_config.py``), the exercises in ``solutions/``
and small readers of nbgrader cell metadata.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = "nbgrader_config.py"

# Functions the exercise notebooks define in their locked setup cell for visible tests.
ASSERT_HELPERS = ("expect_equal", "expect_close", "expect_true")
MIN_GRADED_CELLS = 5
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# LMS archives: files named "<student>_<anything>" (Canvas style); --name-regexp changes it.
DEFAULT_NAME_REGEXP = r".*/(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@-]*)_(?P<file_id>[^/]+)$"
ARCHIVE_SUFFIXES = (".zip", ".gz")


def load_config(course_root: str | Path = REPO_ROOT, root: str | Path | None = None,
                overrides: dict | None = None):
    """The course's nbgrader settings (``nbgrader_config.py``), optionally for another root.

    ``overrides`` is a nested dict such as ``{"Execute": {"timeout": 30}}``.

    Example:
        >>> load_config().CourseDirectory.source_directory
        'solutions'
    """
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    course_root = Path(course_root)
    if not (course_root / CONFIG_FILE).is_file():
        raise ValueError(f"No {CONFIG_FILE} in {course_root}: pass the course's root folder")
    config = PyFileConfigLoader(CONFIG_FILE, path=str(course_root)).load_config()
    if root is not None:
        config.CourseDirectory.root = str(Path(root).resolve())
    if overrides:
        config.merge(Config(overrides))
    return config


def _folder_name(config, step: str) -> str:
    """nbgrader's folder name for a step ("source", "release"), as nbgrader_config.py sets it."""
    value = config.CourseDirectory.get(f"{step}_directory", step)
    return value if isinstance(value, str) else step


def list_exercises(course_root: str | Path = REPO_ROOT) -> list[str]:
    """Names of the exercises in ``solutions/`` (folders not starting with ``.`` or ``_``).

    Example:
        >>> "00_concepts" in list_exercises()
        True
    """
    source = Path(course_root) / _folder_name(load_config(course_root), "source")
    if not source.is_dir():
        return []
    return sorted(p.name for p in source.iterdir() if p.is_dir() and p.name[0] not in "._")


def _exercise_dir(assignment: str, course_root: Path, directory: str = "source") -> Path:
    folder = course_root / _folder_name(load_config(course_root), directory) / assignment
    if directory == "source" and not folder.is_dir():
        raise KeyError(f"Unknown exercise {assignment!r}; exercises in {folder.parent}: "
                       f"{', '.join(list_exercises(course_root)) or '(none)'}")
    return folder


@contextlib.contextmanager
def _nbgrader_environment():
    """nbgrader starts `alembic` from PATH: put this Python's bin/ folder first meanwhile."""
    bin_dir = str(Path(sys.executable).parent)
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = bin_dir + os.pathsep + old_path
    try:
        yield
    finally:
        os.environ["PATH"] = old_path


def _api(config):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
    api.log_level = "ERROR"
    return api


def _check(result: dict, what: str) -> None:
    """NbGraderAPI returns {"success": ...} instead of raising: turn a failure into an error."""
    if not result.get("success"):
        details = (result.get("log", "") + "\n" + result.get("error", "")).strip()
        raise RuntimeError(f"nbgrader could not {what}:\n{details}")


def _start_course(assignment: str, work_dir: Path, course_root: Path, overrides: dict | None):
    """A scratch nbgrader course in work_dir with solutions/<assignment> copied and released."""
    config = load_config(course_root, root=work_dir, overrides=overrides)
    source = _exercise_dir(assignment, course_root)
    target = work_dir / _folder_name(config, "source") / assignment
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints",
                                                                   "__pycache__"))
    api = _api(config)
    with _nbgrader_environment():
        _check(api.generate_assignment(assignment, force=True, create=True),
               f"generate the student version of {assignment}")
    return config, api


def _solution_notebook(assignment: str, course_root: Path) -> Path:
    notebooks = sorted(_exercise_dir(assignment, course_root).glob("*.ipynb"))
    if len(notebooks) != 1:
        raise ValueError(f"xfer grade handles exercises with exactly one notebook; "
                         f"{assignment} has {len(notebooks)}")
    return notebooks[0]


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source
