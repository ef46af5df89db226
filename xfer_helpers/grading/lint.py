"""The notebook linter: an instructor notebook in ``solutions/`` against the course rules.

Each rule is a small function that returns the problems it finds (``[]`` when the
notebook follows it). Notebook rules see the whole notebook; cell rules see one cell
and apply to one kind of cell ("any", "plain" for cells without nbgrader metadata,
"nbgrader", "ungraded" for nbgrader cells that are not graded, "graded" for graded test
cells). A cell rule marked ``stops`` ends the checks of that cell when it finds a
problem, because the rules after it would only repeat it.

Example:
    >>> [rule.__name__ for rule in NOTEBOOK_RULES][:3]
    ['nbformat_4_5', 'valid_notebook', 'python3_kernel']
    >>> lint_notebook("solutions/00_concepts/00_concepts.ipynb")  # doctest: +SKIP
    []
"""
from __future__ import annotations

import ast
import functools
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from .config import (ASSERT_HELPERS, BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION,
                     MIN_GRADED_CELLS, _nbgrader, _source)


@dataclass
class Cell:
    """One cell as the rules see it: its index, raw JSON, nbgrader metadata and source."""

    index: int
    raw: dict
    notebook: list

    @functools.cached_property
    def nbg(self) -> dict:
        return _nbgrader(self.raw)

    @functools.cached_property
    def source(self) -> str:
        return _source(self.raw)

    @functools.cached_property
    def tree(self) -> ast.Module | None:
        """The cell's syntax tree, parsed once for every rule; None if it does not parse."""
        return _parse(self.source)

    @property
    def where(self) -> str:
        return f"cell {self.index} ({self.nbg.get('grade_id') or self.raw.get('id', '?')})"

    @property
    def kind(self) -> str:
        if not self.nbg:
            return "plain"
        return "graded" if self.nbg.get("grade") else "ungraded"


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


def _imported_modules(tree: ast.AST) -> list[str]:
    return [name for node in ast.walk(tree) for name in
            ([a.name for a in node.names] if isinstance(node, ast.Import)
             else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])]


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


# --------------------------------------------------------------------------- cell rules

CELL_RULES: list = []


def cell_rule(kind: str, stops: bool = False):
    """Register a cell rule for one kind of cell (see the module's docstring)."""
    def register(rule):
        rule.kind, rule.stops = kind, stops
        CELL_RULES.append(rule)
        return rule
    return register


@cell_rule("any")
def has_cell_id(cell: Cell) -> list[str]:
    return [] if "id" in cell.raw else [f"{cell.where}: no cell id (nbformat 4.5 cells need one)"]


@cell_rule("any")
def no_outputs(cell: Cell) -> list[str]:
    if cell.raw.get("outputs") or cell.raw.get("execution_count"):
        return [f"{cell.where}: has outputs; commit notebooks without outputs"]
    return []


@cell_rule("plain")
def markers_only_in_nbgrader_cells(cell: Cell) -> list[str]:
    if any(marker in cell.source for marker in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN,
                                                END_HIDDEN)):
        return [f"{cell.where}: solution or hidden-test markers in a cell that is not an "
                "nbgrader cell"]
    return []


@cell_rule("nbgrader")
def schema_version_3(cell: Cell) -> list[str]:
    version = cell.nbg.get("schema_version")
    return [] if version == 3 else [
        f"{cell.where}: nbgrader schema_version should be 3, found {version!r}"]


@cell_rule("nbgrader")
def unique_grade_id(cell: Cell) -> list[str]:
    grade_id = cell.nbg.get("grade_id")
    if not grade_id:
        return [f"{cell.where}: nbgrader cell without a grade_id"]
    if any(_nbgrader(c).get("grade_id") == grade_id for c in cell.notebook[:cell.index]):
        return [f"{cell.where}: grade_id {grade_id!r} is used twice"]
    return []


@cell_rule("nbgrader")
def solution_markers_in_answer_cells(cell: Cell) -> list[str]:
    has_markers = BEGIN_SOLUTION in cell.source or END_SOLUTION in cell.source
    if cell.nbg.get("solution"):
        if BEGIN_SOLUTION not in cell.source or END_SOLUTION not in cell.source:
            return [f"{cell.where}: answer cell without {BEGIN_SOLUTION} ... {END_SOLUTION}"]
    elif has_markers:
        return [f"{cell.where}: solution markers outside an answer cell"]
    return []


@cell_rule("ungraded")
def hidden_tests_only_in_graded_cells(cell: Cell) -> list[str]:
    if BEGIN_HIDDEN in cell.source or END_HIDDEN in cell.source:
        return [f"{cell.where}: hidden tests in a cell that is not graded"]
    return []


@cell_rule("graded", stops=True)
def graded_cells_are_code_tests(cell: Cell) -> list[str]:
    if cell.nbg.get("solution") or cell.raw.get("cell_type") != "code":
        return [f"{cell.where}: graded cells must be autograded code test cells"]
    return []


@cell_rule("graded")
def worth_points(cell: Cell) -> list[str]:
    points = cell.nbg.get("points") or 0
    return [] if points > 0 else [
        f"{cell.where}: a graded test cell must be worth points > 0, found {points!r}"]


@cell_rule("graded")
def test_cells_locked(cell: Cell) -> list[str]:
    return [] if cell.nbg.get("locked") else [f"{cell.where}: test cells must be locked"]


@cell_rule("graded", stops=True)
def test_cell_parses(cell: Cell) -> list[str]:
    if cell.tree is None:
        try:
            ast.parse(cell.source)
        except SyntaxError as exc:   # parsed again only to say why
            return [f"{cell.where}: does not parse: {exc}"]
    return []


@cell_rule("graded")
def ends_in_assertion(cell: Cell) -> list[str]:
    """A final expression would become the cell's score in nbgrader, not a pass or fail."""
    body = cell.tree.body
    last = body[-1] if body else None
    if isinstance(last, ast.Assert) or (
            isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name) and last.value.func.id in ASSERT_HELPERS):
        return []
    return [f"{cell.where}: must end in an assert statement or a call to "
            f"{'/'.join(ASSERT_HELPERS)} (a final expression becomes the score)"]


@cell_rule("graded")
def asserts_have_messages(cell: Cell) -> list[str]:
    return [f"{cell.where}, line {node.lineno}: assert without a message (say what was "
            "expected, in domain terms)" for node in ast.walk(cell.tree)
            if isinstance(node, ast.Assert) and node.msg is None]


@cell_rule("graded", stops=True)
def visible_and_hidden_tests(cell: Cell) -> list[str]:
    visible, hidden = split_hidden_tests(cell.source)
    if not visible.strip() or not hidden.strip():
        return [f"{cell.where}: needs both visible tests and a {BEGIN_HIDDEN} block"]
    return []


@cell_rule("graded")
def hidden_tests_as_probe_and_checks(cell: Cell) -> list[str]:
    """A probe that sets `got` (student's kernel), then checks that assert on it (the grader)."""
    from ..sealed import CHECKS, split_test_cell

    _, probe, checks = split_test_cell(cell.source)
    if not checks.strip():
        return [f"{cell.where}: the hidden tests need a {CHECKS} part: the probe (run in the "
                "student's kernel) sets `got`, the checks (run by the grader) assert on it"]
    try:
        probe_tree, checks_tree = ast.parse(probe), ast.parse(checks)
    except SyntaxError as exc:
        return [f"{cell.where}: the hidden tests do not parse: {exc}"]
    problems = []
    assigned = {t.id for node in ast.walk(probe_tree) if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    if "got" not in assigned:
        problems.append("the probe must assign the dict `got` that the checks read")
    if any(isinstance(node, ast.Assert) for node in ast.walk(probe_tree)):
        problems.append("the probe asserts: its verdict would run in the student's kernel; "
                        f"move the assert below {CHECKS}")
    if not (checks_tree.body and isinstance(checks_tree.body[-1], ast.Assert)):
        problems.append("the checks must end in a plain assert statement")
    heavy = [m for m in _imported_modules(checks_tree)
             if m.split(".")[0] in {"torch", "tensorflow", "keras"}]
    problems += [f"the checks import {m}: they run in the grader, which stays light (NumPy, "
                 "math, scikit-learn); compute references in NumPy" for m in heavy]
    return [f"{cell.where}: {p}" for p in problems]


def _cell_problems(cell: Cell) -> list[str]:
    kinds = {"any", cell.kind} | ({"nbgrader"} if cell.kind != "plain" else set())
    problems: list[str] = []
    for rule in CELL_RULES:
        if rule.kind in kinds:
            found = rule(cell)
            problems += found
            if found and rule.stops:
                break
    return problems


# --------------------------------------------------------------------------- notebook rules

def _graded(cells: list) -> list[dict]:
    return [c for c in cells if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")
            and c.get("cell_type") == "code"]


def _introduction(cells: list) -> dict | None:
    return next((c for c in cells if c.get("cell_type") == "markdown"), None)


def nbformat_4_5(raw: dict) -> list[str]:
    if (raw.get("nbformat"), raw.get("nbformat_minor", 0) >= 5) != (4, True):
        return [f"nbformat should be 4.5 or later 4.x, found "
                f"{raw.get('nbformat')}.{raw.get('nbformat_minor')}"]
    return []


def valid_notebook(raw: dict) -> list[str]:
    import nbformat

    try:
        with warnings.catch_warnings():  # a missing cell id is reported by has_cell_id, in words
            warnings.simplefilter("ignore")
            nbformat.validate(nbformat.from_dict(raw))
    except nbformat.ValidationError as exc:
        return [f"not a valid notebook: {exc.message}"]
    return []


def python3_kernel(raw: dict) -> list[str]:
    kernel = raw.get("metadata", {}).get("kernelspec", {}).get("name")
    return [] if kernel == "python3" else [f"kernelspec should be 'python3', found {kernel!r}"]


def every_cell(raw: dict) -> list[str]:
    cells = raw.get("cells", [])
    return [p for index, cell in enumerate(cells) for p in _cell_problems(Cell(index, cell, cells))]


def enough_graded_cells(raw: dict) -> list[str]:
    n_graded = len(_graded(raw.get("cells", [])))
    if n_graded < MIN_GRADED_CELLS:
        return [f"only {n_graded} graded test cells; an exercise needs at least "
                f"{MIN_GRADED_CELLS}"]
    return []


def opens_with_introduction(raw: dict) -> list[str]:
    cells = raw.get("cells", [])
    if cells and cells[0] is not _introduction(cells):
        return ["the notebook should open with its introduction (a markdown cell)"]
    return []


def learning_goals(raw: dict) -> list[str]:
    intro = _introduction(raw.get("cells", []))
    if "what you will learn" not in (_source(intro) if intro else "").lower():
        return ["the introduction should have a 'What you will learn' section"]
    return []


def total_points_stated(raw: dict) -> list[str]:
    intro = _introduction(raw.get("cells", []))
    total = sum(_nbgrader(c).get("points") or 0 for c in _graded(raw.get("cells", [])))
    stated = re.search(r"\btotal\W{0,5}(\d+(?:\.\d+)?)\s*points?\b",
                       _source(intro) if intro else "", re.IGNORECASE)
    if not stated:
        return [f"the introduction should state the total, e.g. 'Total: {total:g} points'"]
    if float(stated.group(1)) != total:
        return [f"the introduction states {stated.group(1)} points but the graded cells add "
                f"up to {total:g}"]
    return []


def setup_cell_first(raw: dict) -> list[str]:
    first = next((c for c in raw.get("cells", []) if c.get("cell_type") == "code"), None)
    if first is None or not _nbgrader(first).get("locked") or "setup_notebook(" not in _source(first):
        return ["the first code cell must be a locked setup cell that calls "
                "xfer_helpers.setup_notebook(...)"]
    return []


def tensorflow_through_env(raw: dict) -> list[str]:
    problems = []
    for cell in raw.get("cells", []):
        tree = _parse(_source(cell)) if cell.get("cell_type") == "code" else None
        for module in _imported_modules(tree) if tree else []:
            if module == "tensorflow" or module.startswith("tensorflow."):
                problems.append(f"cell {cell.get('id')}: imports tensorflow directly; use tf = "
                                "xfer_helpers.env.import_tensorflow() (it hides TF's stderr logs)")
    return problems


NOTEBOOK_RULES = [nbformat_4_5, valid_notebook, python3_kernel, every_cell, enough_graded_cells,
                  opens_with_introduction, learning_goals, total_points_stated, setup_cell_first,
                  tensorflow_through_env]


def lint_notebook(path: str | Path) -> list[str]:
    """Check an instructor exercise notebook against the course rules; return the problems.

    Rules (:data:`NOTEBOOK_RULES`, :data:`CELL_RULES`): nbformat 4.5 with cell ids, no
    outputs; nbgrader schema 3 and unique grade ids; a locked setup cell first that calls
    setup_notebook (TensorFlow only through env.import_tensorflow); at least 5 graded test
    cells, each locked, worth points > 0, with visible and hidden tests, every assert with
    a message, ending in an assertion; hidden tests as a probe that sets ``got`` and checks
    that assert on it (no framework imports in the checks: they run in the grader, see
    :mod:`xfer_helpers.sealed`); the introduction says "What you will learn" and states the
    total points.

    Example:
        >>> lint_notebook("solutions/00_concepts/00_concepts.ipynb")  # doctest: +SKIP
        []
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [f"{path.name} is not valid JSON: {exc}"]
    return [problem for rule in NOTEBOOK_RULES for problem in rule(raw)]
