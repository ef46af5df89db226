"""Exercise pipeline on top of nbgrader 0.9.6: release, lint and grade exercise notebooks.

- :func:`release` regenerates ``exercises/`` from ``solutions/`` (``make release``).
- :func:`release_differences` says how the committed ``exercises/`` differ from a
  fresh generation (a test keeps it empty).
- :func:`lint_notebook` checks an instructor notebook against the course rules.
- :func:`grade_submissions` autogrades a class (``xfer grade``): a folder with one
  notebook per student, or an LMS zip collected with nbgrader's zip_collect. It
  writes ``grades.csv`` and one feedback HTML per student, hidden tests removed.

Grading happens in a scratch nbgrader course folder built from ``solutions/`` and
``nbgrader_config.py``, so it needs no gradebook of its own. nbgrader takes ~3 s to
import, so it is imported inside the functions that need it.

Example:
    >>> from xfer_helpers import grading
    >>> report = grading.grade_submissions("00_concepts", "submissions/", "grades/")  # doctest: +SKIP
    >>> report.grades_csv                                                            # doctest: +SKIP
    PosixPath('grades/grades.csv')
"""
from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import env

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FILE = "nbgrader_config.py"

# Functions the exercise notebooks define in their locked setup cell for visible tests.
ASSERT_HELPERS = ("expect_equal", "expect_close", "expect_true")
MIN_GRADED_CELLS = 5
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
# LMS archives: files named "<student>_<anything>" (Canvas style); --name-regexp changes it.
DEFAULT_NAME_REGEXP = r".*/(?P<student_id>[A-Za-z0-9][A-Za-z0-9.@-]*)_(?P<file_id>[^/]+)$"
ARCHIVE_SUFFIXES = (".zip", ".gz")


# --------------------------------------------------------------------------- config

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


# --------------------------------------------------------------------------- release

def generate_release(assignment: str, work_dir: str | Path,
                     course_root: str | Path = REPO_ROOT) -> Path:
    """Generate the student version of one exercise inside ``work_dir``; return its folder.

    Example:
        >>> folder = generate_release("00_concepts", tempfile.mkdtemp())  # doctest: +SKIP
    """
    work_dir, course_root = Path(work_dir), Path(course_root)
    config, _ = _start_course(assignment, work_dir, course_root, overrides=None)
    return work_dir / _folder_name(config, "release") / assignment


def release(assignments: list[str] | None = None,
            course_root: str | Path = REPO_ROOT) -> list[Path]:
    """Regenerate ``exercises/<name>/`` from ``solutions/<name>/`` (all exercises by default).

    Example:
        >>> release(["00_concepts"])  # doctest: +SKIP
        [PosixPath('.../exercises/00_concepts')]
    """
    course_root = Path(course_root)
    written = []
    for name in assignments or list_exercises(course_root):
        with tempfile.TemporaryDirectory(prefix="xfer-release-") as tmp:
            built = generate_release(name, tmp, course_root)
            target = _exercise_dir(name, course_root, "release")
            if target.exists():
                shutil.rmtree(target)
            # copy contents only: nbgrader marks its output read-only
            shutil.copytree(built, target, copy_function=shutil.copyfile)
        written.append(target)
    return written


def normalized_notebook(path: str | Path) -> dict:
    """A notebook as a dict without volatile fields (execution counts, kernel version info).

    Example:
        >>> normalized_notebook("exercises/00_concepts/00_concepts.ipynb")["nbformat"]  # doctest: +SKIP
        4
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    nb.get("metadata", {}).pop("language_info", None)
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if "execution_count" in cell:
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(cell["source"])
    return nb


def release_differences(assignment: str, course_root: str | Path = REPO_ROOT) -> list[str]:
    """How the committed ``exercises/<assignment>/`` differ from a fresh generation ([] if equal).

    Example:
        >>> release_differences("00_concepts")  # doctest: +SKIP
        []
    """
    course_root = Path(course_root)
    committed = _exercise_dir(assignment, course_root, "release")
    problems = []
    with tempfile.TemporaryDirectory(prefix="xfer-release-check-") as tmp:
        fresh = generate_release(assignment, tmp, course_root)
        fresh_files = {p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file()}
        committed_files = {p.relative_to(committed) for p in committed.rglob("*")
                           if p.is_file()} if committed.is_dir() else set()
        for missing in sorted(fresh_files - committed_files):
            problems.append(f"{missing}: missing from {committed} (run `make release`)")
        for extra in sorted(committed_files - fresh_files):
            problems.append(f"{extra}: in {committed} but not generated from solutions/")
        for name in sorted(fresh_files & committed_files):
            a, b = fresh / name, committed / name
            if name.suffix == ".ipynb":
                if normalized_notebook(a) != normalized_notebook(b):
                    problems.append(f"{name}: differs from a fresh generation (hand edit or "
                                    "stale release: run `make release`)")
            elif a.read_bytes() != b.read_bytes():
                problems.append(f"{name}: differs from solutions/ (run `make release`)")
    return problems


# --------------------------------------------------------------------------- lint

def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def split_hidden_tests(source: str) -> tuple[str, str]:
    """Split a test cell into (visible part, hidden part); the markers are dropped.

    Example:
        >>> split_hidden_tests("a = 1\\n### BEGIN HIDDEN TESTS\\nassert a\\n### END HIDDEN TESTS")
        ('a = 1', 'assert a')
    """
    visible, hidden, inside = [], [], False
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            inside = True
        elif END_HIDDEN in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return "\n".join(visible).strip("\n"), "\n".join(hidden).strip("\n")


def _ends_in_assertion(tree: ast.Module) -> bool:
    if not tree.body:
        return False
    last = tree.body[-1]
    if isinstance(last, ast.Assert):
        return True
    return (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name) and last.value.func.id in ASSERT_HELPERS)


def _hidden_block_problems(source: str) -> list[str]:
    """The rules of a hidden block: a probe that sets `got`, then checks (see xfer_helpers.sealed)."""
    from .sealed import CHECKS, split_test_cell

    _, probe, checks = split_test_cell(source)
    if not checks.strip():
        return [f"the hidden tests need a {CHECKS} part: the probe (run in the student's kernel) "
                "sets `got`, the checks (run by the grader) assert on it"]
    problems = []
    try:
        probe_tree, checks_tree = ast.parse(probe), ast.parse(checks)
    except SyntaxError as exc:
        return [f"the hidden tests do not parse: {exc}"]
    assigned = {t.id for node in ast.walk(probe_tree) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    if "got" not in assigned:
        problems.append("the probe must assign the dict `got` that the checks read")
    if any(isinstance(node, ast.Assert) for node in ast.walk(probe_tree)):
        problems.append("the probe asserts: its verdict would run in the student's kernel; "
                        f"move the assert below {CHECKS}")
    if not (checks_tree.body and isinstance(checks_tree.body[-1], ast.Assert)):
        problems.append("the checks must end in a plain assert statement")
    for node in ast.walk(checks_tree):
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        heavy = [m for m in modules if m.split(".")[0] in {"torch", "tensorflow", "keras"}]
        if heavy:
            problems.append(f"the checks import {heavy[0]}: they run in the grader, which stays "
                            "light (NumPy, math, scikit-learn); compute references in NumPy")
    return problems


def lint_notebook(path: str | Path) -> list[str]:
    """Check an instructor exercise notebook against the course rules; return the problems.

    Rules: nbformat 4.5 with cell ids, no outputs; nbgrader schema 3 and unique grade ids;
    a locked setup cell first that calls setup_notebook (TensorFlow only through
    env.import_tensorflow); at least 5 graded test cells, each locked, worth points > 0,
    with visible and hidden tests, every assert with a message, ending in an assertion;
    hidden tests as a probe that sets ``got`` and checks that assert on it (no framework
    imports in the checks: they run in the grader, see :mod:`xfer_helpers.sealed`);
    the introduction says "What you will learn" and states the total points.

    Example:
        >>> lint_notebook("solutions/00_concepts/00_concepts.ipynb")  # doctest: +SKIP
        []
    """
    import nbformat

    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{path.name} is not valid JSON: {exc}"]
    problems: list[str] = []
    if (raw.get("nbformat"), raw.get("nbformat_minor", 0) >= 5) != (4, True):
        problems.append(f"nbformat should be 4.5 or later 4.x, found "
                        f"{raw.get('nbformat')}.{raw.get('nbformat_minor')}")
    try:
        with warnings.catch_warnings():  # a missing cell id is reported below, in words
            warnings.simplefilter("ignore")
            nbformat.validate(nbformat.from_dict(raw))
    except nbformat.ValidationError as exc:
        problems.append(f"not a valid notebook: {exc.message}")
    cells = raw.get("cells", [])
    kernel = raw.get("metadata", {}).get("kernelspec", {}).get("name")
    if kernel != "python3":
        problems.append(f"kernelspec should be 'python3', found {kernel!r}")

    seen_ids: set[str] = set()
    total_points = 0.0
    n_graded = 0
    for index, cell in enumerate(cells):
        nbg, source = _nbgrader(cell), _source(cell)
        where = f"cell {index} ({nbg.get('grade_id') or cell.get('id', '?')})"
        if "id" not in cell:
            problems.append(f"{where}: no cell id (nbformat 4.5 cells need one)")
        if cell.get("outputs") or cell.get("execution_count"):
            problems.append(f"{where}: has outputs; commit notebooks without outputs")
        has_solution = BEGIN_SOLUTION in source or END_SOLUTION in source
        has_hidden = BEGIN_HIDDEN in source or END_HIDDEN in source
        if not nbg:
            if has_solution or has_hidden:
                problems.append(f"{where}: solution or hidden-test markers in a cell that is "
                                "not an nbgrader cell")
            continue
        if nbg.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version should be 3, "
                            f"found {nbg.get('schema_version')!r}")
        grade_id = nbg.get("grade_id")
        if not grade_id:
            problems.append(f"{where}: nbgrader cell without a grade_id")
        elif grade_id in seen_ids:
            problems.append(f"{where}: grade_id {grade_id!r} is used twice")
        seen_ids.add(grade_id)
        if nbg.get("solution"):
            if BEGIN_SOLUTION not in source or END_SOLUTION not in source:
                problems.append(f"{where}: answer cell without {BEGIN_SOLUTION} ... {END_SOLUTION}")
        elif has_solution:
            problems.append(f"{where}: solution markers outside an answer cell")
        if not nbg.get("grade"):
            if has_hidden:
                problems.append(f"{where}: hidden tests in a cell that is not graded")
            continue
        if nbg.get("solution") or cell.get("cell_type") != "code":
            problems.append(f"{where}: graded cells must be autograded code test cells")
            continue
        n_graded += 1
        points = nbg.get("points") or 0
        total_points += points
        if not points > 0:
            problems.append(f"{where}: a graded test cell must be worth points > 0, found {points!r}")
        if not nbg.get("locked"):
            problems.append(f"{where}: test cells must be locked")
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            problems.append(f"{where}: does not parse: {exc}")
            continue
        if not _ends_in_assertion(tree):
            problems.append(f"{where}: must end in an assert statement or a call to "
                            f"{'/'.join(ASSERT_HELPERS)} (a final expression becomes the score)")
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert) and node.msg is None:
                problems.append(f"{where}, line {node.lineno}: assert without a message "
                                "(say what was expected, in domain terms)")
        visible, hidden = split_hidden_tests(source)
        if not visible.strip() or not hidden.strip():
            problems.append(f"{where}: needs both visible tests and a {BEGIN_HIDDEN} block")
            continue
        problems += [f"{where}: {p}" for p in _hidden_block_problems(source)]

    if n_graded < MIN_GRADED_CELLS:
        problems.append(f"only {n_graded} graded test cells; an exercise needs at least "
                        f"{MIN_GRADED_CELLS}")
    intro = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    intro_text = _source(intro) if intro else ""
    if cells and cells[0] is not intro:
        problems.append("the notebook should open with its introduction (a markdown cell)")
    if "what you will learn" not in intro_text.lower():
        problems.append("the introduction should have a 'What you will learn' section")
    stated = re.search(r"\btotal\W{0,5}(\d+(?:\.\d+)?)\s*points?\b", intro_text, re.IGNORECASE)
    if not stated:
        problems.append(f"the introduction should state the total, e.g. 'Total: "
                        f"{total_points:g} points'")
    elif float(stated.group(1)) != total_points:
        problems.append(f"the introduction states {stated.group(1)} points but the graded "
                        f"cells add up to {total_points:g}")

    code_cells = [c for c in cells if c.get("cell_type") == "code"]
    first = code_cells[0] if code_cells else None
    if first is None or not _nbgrader(first).get("locked") or "setup_notebook(" not in _source(first):
        problems.append("the first code cell must be a locked setup cell that calls "
                        "xfer_helpers.setup_notebook(...)")
    for cell in code_cells:
        try:
            tree = ast.parse(_source(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "tensorflow" or m.startswith("tensorflow.") for m in modules):
                problems.append(f"cell {cell.get('id')}: imports tensorflow directly; use "
                                "tf = xfer_helpers.env.import_tensorflow() (it hides TF's stderr logs)")
    return problems


# --------------------------------------------------------------------------- feedback

def _build_hide_hidden_tests():
    from nbgrader.preprocessors import ClearHiddenTests

    class HideHiddenTests(ClearHiddenTests):
        """Feedback preprocessor: remove hidden tests and cut their cells' tracebacks.

        nbgrader's feedback shows the autograded notebook, whose test cells contain
        the hidden tests, and a failing hidden assert prints its own source line in
        the traceback. This keeps only "AssertionError: <message>" for those cells.
        """

        def preprocess_cell(self, cell, resources, cell_index):
            had_hidden = self.begin_test_delimeter in cell.source
            cell, resources = super().preprocess_cell(cell, resources, cell_index)
            if had_hidden:
                for output in cell.get("outputs", []):
                    if output.get("output_type") == "error":
                        output["traceback"] = [f"{output.get('ename')}: {output.get('evalue')}"]
            return cell, resources

    return HideHiddenTests


def __getattr__(name):  # PEP 562: build nbgrader-based classes only when asked for
    if name == "HideHiddenTests":
        cls = _build_hide_hidden_tests()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- grading

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


@dataclass
class _Submission:
    student_id: str
    path: Path | None = None
    problem: str = ""


def _safe_student_id(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.@-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def _solution_notebook(assignment: str, course_root: Path) -> Path:
    notebooks = sorted(_exercise_dir(assignment, course_root).glob("*.ipynb"))
    if len(notebooks) != 1:
        raise ValueError(f"xfer grade handles exercises with exactly one notebook; "
                         f"{assignment} has {len(notebooks)}")
    return notebooks[0]


def _graded_cells(notebook: Path) -> tuple[list[str], set[str], dict[str, float]]:
    """(graded cell ids in order, all nbgrader cell ids, points per graded cell)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    graded, every, points = [], set(), {}
    for cell in nb["cells"]:
        nbg = _nbgrader(cell)
        if nbg.get("grade_id"):
            every.add(nbg["grade_id"])
            if nbg.get("grade"):
                graded.append(nbg["grade_id"])
                points[nbg["grade_id"]] = float(nbg.get("points", 0))
    return graded, every, points


def _notebook_problem(path: Path, assignment: str, expected_ids: set[str]) -> str:
    """Why this file cannot be graded as a notebook of `assignment` ('' if it can)."""
    import nbformat

    if path.suffix.lower() != ".ipynb":
        return f"{path.name} is not a Jupyter notebook (.ipynb); nothing to grade"
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        return f"{path.name} is not a text file, so it cannot be a notebook"
    except json.JSONDecodeError as exc:
        return (f"{path.name} is not valid JSON (line {exc.lineno}, column {exc.colno}): the "
                "file is damaged or was not saved by Jupyter")
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return f"{path.name} is JSON but not a notebook (no list of cells)"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # nbformat raises several types for broken notebooks
        return f"{path.name} is not a readable notebook: {exc}"
    ids = {_nbgrader(c).get("grade_id") for c in nb.cells} - {None}
    if not ids & expected_ids:
        if ids:
            sample = ", ".join(sorted(ids)[:3])
            return (f"{path.name} is not the {assignment} exercise: its nbgrader cells ({sample}, "
                    "...) belong to another exercise")
        return (f"{path.name} has none of the cells of {assignment} (no nbgrader metadata): "
                "was it re-created instead of starting from the released notebook?")
    return ""


def _pick_notebook(student: str, files: list[Path], notebook_name: str) -> _Submission:
    notebooks = [f for f in files if f.suffix.lower() == ".ipynb"
                 and ".ipynb_checkpoints" not in f.parts]
    if not notebooks:
        names = ", ".join(sorted(f.name for f in files)[:5]) or "nothing"
        return _Submission(student, problem=f"no notebook submitted (received: {names})")
    if len(notebooks) > 1:
        preferred = [f for f in notebooks if f.name == notebook_name]
        if len(preferred) != 1:
            names = ", ".join(sorted(f.name for f in notebooks))
            return _Submission(student, problem=f"several notebooks ({names}) and none is "
                                                f"called {notebook_name}: which one to grade?")
        notebooks = preferred
    return _Submission(student, notebooks[0])


def _visible_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") or part == "__MACOSX"
                              for part in p.relative_to(folder).parts))


def _collect_archive(archive: Path, work_dir: Path, assignment: str, notebook_name: str,
                     course_root: Path, name_regexp: str) -> list[_Submission]:
    """Collect an LMS archive with nbgrader's zip_collect; one entry per student found."""
    from nbgrader.apps.zipcollectapp import ZipCollectApp
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    root = work_dir / f"zip_collect-{archive.stem}"
    config = load_config(course_root, root=root, overrides={
        "Application": {"log_level": "ERROR"},  # we report skipped files per student ourselves
        "ZipCollectApp": {"force": True},
        "ExtractorPlugin": {"force": True},
        "FileNameCollectorPlugin": {"named_regexp": name_regexp, "valid_ext": [".ipynb"]},
    })
    archive_dir = root / "downloaded" / assignment / "archive"
    archive_dir.mkdir(parents=True)
    shutil.copy(archive, archive_dir / archive.name)
    released = root / _folder_name(config, "release") / assignment
    released.mkdir(parents=True)
    (released / notebook_name).write_text("{}")  # zip_collect checks names against the release
    app = ZipCollectApp(config=config)
    app.coursedir = CourseDirectory(config=config)
    app.coursedir.assignment_id = assignment
    with _nbgrader_environment():
        _check(capture_log(app), f"extract {archive.name} with zip_collect")

    # Which files did each student send? (zip_collect only moves notebooks.)
    extracted = root / "downloaded" / assignment / "extracted"
    received: dict[str, list[Path]] = {}
    entries: list[_Submission] = []
    for file in _visible_files(extracted):
        match = re.match(name_regexp, str(file))
        if match:
            received.setdefault(match.group("student_id"), []).append(file)
        else:
            entries.append(_Submission(_safe_student_id(file.stem), problem=(
                f"{file.name} in {archive.name}: cannot tell whose file it is (the name does "
                f"not match {name_regexp!r}; set --name-regexp)")))
    submitted_root = root / app.coursedir.submitted_directory
    for raw_id in sorted(received):
        folder = submitted_root / raw_id / assignment
        collected = sorted(folder.glob("*.ipynb")) if folder.is_dir() else []
        entry = _pick_notebook(_safe_student_id(raw_id), collected or received[raw_id],
                               notebook_name)
        if not collected and not entry.problem:  # defensive: a notebook zip_collect skipped
            entry = _Submission(entry.student_id, problem="no notebook collected")
        entries.append(entry)
    return entries


def collect_submissions(submissions: str | Path, assignment: str, work_dir: str | Path,
                        course_root: str | Path = REPO_ROOT,
                        name_regexp: str = DEFAULT_NAME_REGEXP) -> list[_Submission]:
    """Find one notebook per student in a folder or an LMS archive; note why others are unusable.

    A folder may hold ``<student>.ipynb`` files, ``<student>/`` folders, and LMS
    archives (``.zip``); the path may also be an archive itself.

    Example:
        >>> entries = collect_submissions("submissions/", "00_concepts", "/tmp/work")  # doctest: +SKIP
    """
    submissions, work_dir, course_root = Path(submissions), Path(work_dir), Path(course_root)
    notebook_name = _solution_notebook(assignment, course_root).name
    if not submissions.exists():
        raise ValueError(f"No submissions at {submissions}: give a folder or a .zip file")
    if submissions.is_file():
        if submissions.suffix.lower() not in ARCHIVE_SUFFIXES:
            raise ValueError(f"{submissions} is a single file; give a folder of submissions or "
                             "an LMS archive (.zip)")
        entries = _collect_archive(submissions, work_dir, assignment, notebook_name,
                                   course_root, name_regexp)
    else:
        entries = []
        for item in sorted(submissions.iterdir()):
            if item.name.startswith(".") or item.name == "__MACOSX":
                continue
            student = _safe_student_id(item.stem if item.is_file() else item.name)
            if item.is_dir():
                entries.append(_pick_notebook(student, _visible_files(item), notebook_name))
            elif item.suffix.lower() in ARCHIVE_SUFFIXES:
                entries.extend(_collect_archive(item, work_dir, assignment, notebook_name,
                                                course_root, name_regexp))
            else:
                entries.append(_Submission(student, item))
    unique: dict[str, _Submission] = {}
    for entry in entries:
        if entry.student_id in unique:
            entry = _Submission(entry.student_id + "-duplicate", problem=(
                f"a second submission for student {entry.student_id}; only the first is graded"))
        unique[entry.student_id] = entry
    return list(unique.values())


_SHADOWABLE = {n for n in dir(builtins) if not n.startswith("_")}


def review_flags(answer_source: str, protected: set[str] = frozenset()) -> list[str]:
    """Answer code that could tamper with the tests (the score is not changed, a human looks).

    Flags: replacing attributes of imported modules (``np.testing.assert_allclose = ...``),
    redefining names the locked cells define (test helpers, model builders), shadowing
    builtins, and IPython/interpreter hooks that can rewrite later cells.

    Example:
        >>> review_flags("import numpy as np\\nnp.testing.assert_allclose = print")
        ['replaces np.testing.assert_allclose']
    """
    try:
        tree = ast.parse(answer_source)
    except SyntaxError:
        return []
    modules = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    modules |= {"np", "numpy", "torch", "tf", "keras", "math", "sklearn", "nn", "F", "builtins",
                "sys", "os"}
    flags = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node in tree.body and node.name in protected:
            flags.append(f"redefines {node.name} (defined in a locked cell)")
        for target in targets:
            if isinstance(target, ast.Attribute):
                root = target
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in modules:
                    flags.append(f"replaces {ast.unparse(target)}")
            elif isinstance(target, ast.Name) and node in tree.body:
                if target.id in protected:
                    flags.append(f"redefines {target.id} (defined in a locked cell)")
                elif target.id in _SHADOWABLE:
                    flags.append(f"shadows the built-in {target.id}")
        if isinstance(node, ast.Name) and node.id in {"get_ipython", "__builtins__", "settrace",
                                                      "setprofile"}:
            flags.append(f"uses {node.id}")
        if isinstance(node, ast.Attribute) and node.attr == "modules" \
                and isinstance(node.value, ast.Name) and node.value.id == "sys":
            flags.append("uses sys.modules")  # model.modules() is ordinary PyTorch
        if isinstance(node, ast.Attribute) and node.attr in {"settrace", "setprofile",
                                                             "set_custom_exc",
                                                             "input_transformers_post",
                                                             "input_transformers_cleanup",
                                                             "ast_transformers"}:
            flags.append(f"uses {ast.unparse(node)}")
    return sorted(set(flags))


def _protected_names(solution: Path) -> set[str]:
    """Names bound in the locked code cells (helpers, builders): answers should not rebind them."""
    nb = json.loads(solution.read_text(encoding="utf-8"))
    names = set()
    for cell in nb["cells"]:
        nbg = _nbgrader(cell)
        if cell["cell_type"] != "code" or not nbg.get("locked") or nbg.get("grade"):
            continue
        for node in ast.parse(_source(cell)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


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


def _feedback_html(api, assignment: str, student: str, solution: Path) -> str | None:
    """Generate the student's feedback page; its path, or None if nbgrader failed."""
    coursedir = api.coursedir
    with _nbgrader_environment():
        made = api.generate_feedback(assignment, student, force=True)
    html = Path(coursedir.format_path(coursedir.feedback_directory, student, assignment)) \
        / f"{solution.stem}.html"
    return str(html) if made.get("success") and html.is_file() else None


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
    for student, path in _progress(students, progress, f"grading {assignment}"):
        started = time.perf_counter()
        result = _autograde_one(api, config, assignment, student, solution)
        answers = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
        result.review = sorted({flag for cell in answers if _nbgrader(cell).get("solution")
                                for flag in review_flags(_source(cell), protected)})
        if feedback and result.status == "graded":
            result.feedback = _feedback_html(api, assignment, student, solution)
            if result.feedback is None:
                result.message = "; ".join(filter(None, [result.message,
                                                         "feedback HTML could not be generated"]))
        result.seconds = time.perf_counter() - started
        results.append(result)
    return results


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
    if not enabled or os.environ.get("XFER_PROGRESS") == "0":
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


# --------------------------------------------------------------------------- command line

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
    """Add the ``grade`` subcommand to the ``xfer`` command's subparsers.

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


def main(argv: list[str] | None = None) -> int:
    """``python -m xfer_helpers.grading {grade,release,lint}`` (``make release`` uses this)."""
    parser = argparse.ArgumentParser(prog="python -m xfer_helpers.grading")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    p = sub.add_parser("release", help="regenerate exercises/ from solutions/")
    p.add_argument("assignments", nargs="*", help="exercise names (default: all)")
    p = sub.add_parser("lint", help="check the instructor notebooks in solutions/")
    p.add_argument("notebooks", nargs="*", type=Path, help="default: solutions/*/*.ipynb")
    args = parser.parse_args(argv)
    if args.command == "grade":
        return args.func(args)
    if args.command == "release":
        for folder in release(args.assignments or None):
            print(f"released {folder.relative_to(REPO_ROOT)}")
        return 0
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


if __name__ == "__main__":
    sys.exit(main())
