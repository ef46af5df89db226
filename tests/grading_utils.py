"""Helpers for the grading-pipeline tests: make "student" notebooks from the instructor's.

A perfect student is the released notebook (exercises/) with every answer cell
replaced by the instructor's answer (solutions/, without the solution markers).
Mutants, tampering and cheating start from there.
"""
from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import nbformat
import yaml

from xfer_helpers import grading

REPO = Path(__file__).resolve().parents[1]
MUTANTS_DIR = REPO / "tests" / "mutants"


def solution_path(assignment: str) -> Path:
    """The instructor notebook of an exercise."""
    return grading._solution_notebook(assignment, REPO)


def release_path(assignment: str) -> Path:
    """The committed student notebook of an exercise."""
    return REPO / "exercises" / assignment / solution_path(assignment).name


def read(path: Path) -> nbformat.NotebookNode:
    """Read a notebook as nbformat v4."""
    return nbformat.read(str(path), as_version=4)


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    """Write a notebook (creating folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def cell(nb: nbformat.NotebookNode, grade_id: str) -> nbformat.NotebookNode:
    """The cell with this nbgrader grade_id."""
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return c
    raise KeyError(f"no cell {grade_id!r}")


def graded_ids(nb: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the graded test cells, in order."""
    return [c.metadata.nbgrader.grade_id for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")]


def answer_ids(nb: nbformat.NotebookNode) -> list[str]:
    """grade_ids of the answer (solution) cells, in order."""
    return [c.metadata.nbgrader.grade_id for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")]


def points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """Points of each graded test cell."""
    return {c.metadata.nbgrader.grade_id: float(c.metadata.nbgrader.points) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def instructor_answer(source: str) -> str:
    """An answer cell's source without the ### BEGIN/END SOLUTION lines."""
    return "\n".join(line for line in source.split("\n")
                     if grading.BEGIN_SOLUTION not in line and grading.END_SOLUTION not in line)


def filled_release(assignment: str) -> nbformat.NotebookNode:
    """The released notebook with the instructor's answers typed in (a perfect student)."""
    nb, solution = read(release_path(assignment)), read(solution_path(assignment))
    for grade_id in answer_ids(nb):
        cell(nb, grade_id).source = instructor_answer(cell(solution, grade_id).source)
    return nb


def replace_once(source: str, old: str, new: str) -> str:
    """Replace `old` (which must occur exactly once) by `new`, keeping the indentation.

    A one-line `old` is replaced inside its line; a multi-line `old` is matched line by
    line at any indentation. Lines of `new` are indented like the line where `old` was.
    """
    old_lines = old.rstrip("\n").split("\n")
    new_lines = new.rstrip("\n").split("\n") if new.strip() else []
    lines = source.split("\n")
    found = []
    for i in range(len(lines) - len(old_lines) + 1):
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if len(old_lines) == 1:
            if lines[i].count(old_lines[0]) == 1:
                found.append((i, indent))
            elif lines[i].count(old_lines[0]) > 1:
                found += [(i, indent), (i, indent)]
        elif all(lines[i + k] == (indent + o if o else "") for k, o in enumerate(old_lines)):
            found.append((i, indent))
    if len(found) != 1:
        raise ValueError(f"expected exactly one match for {old!r}, found {len(found)}")
    i, indent = found[0]
    if len(old_lines) == 1:
        first, *rest = new_lines or [""]
        replaced = [lines[i].replace(old_lines[0], first)] + [indent + r if r else r for r in rest]
    else:
        replaced = [indent + r if r else r for r in new_lines]
    return "\n".join(lines[:i] + replaced + lines[i + len(old_lines):])


def load_mutants(assignment: str) -> list[dict]:
    """The mutants described in tests/mutants/<assignment>/mutants.yaml."""
    return yaml.safe_load((MUTANTS_DIR / assignment / "mutants.yaml").read_text())


def mutate(nb: nbformat.NotebookNode, mutant: dict) -> nbformat.NotebookNode:
    """A copy of `nb` with the mutant's replacements applied to its answer cell."""
    nb = copy.deepcopy(nb)
    target = cell(nb, mutant["cell"])
    for change in mutant["replace"]:
        target.source = replace_once(target.source, change["old"], change["new"])
    return nb


def gradebook_scores(course_dir: str | Path, assignment: str, student: str) -> dict[str, float]:
    """Per-cell scores of one student, read from the nbgrader gradebook of `course_dir`."""
    from nbgrader.api import Gradebook

    db = f"sqlite:///{Path(course_dir) / 'gradebook.db'}"
    with Gradebook(db) as gradebook:
        notebook = gradebook.find_submission_notebook(solution_path(assignment).stem,
                                                      assignment, student)
        return {g.name: g.score for g in notebook.grades}


def autograded(course_dir: str | Path, assignment: str, student: str) -> nbformat.NotebookNode:
    """The notebook nbgrader executed for this student."""
    return read(Path(course_dir) / "autograded" / student / assignment
                / solution_path(assignment).name)


def html_text(path: Path) -> str:
    """The visible text of an HTML page, whitespace removed (for leak checks)."""
    text = re.sub(r"<style.*?</style>|<script.*?</script>", " ", path.read_text(encoding="utf-8"),
                  flags=re.S)
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]+>", "", text)))


def hidden_test_lines(assignment: str) -> list[str]:
    """Distinctive source lines of the hidden tests (to check they never leak)."""
    solution = read(solution_path(assignment))
    visible_text = "\n".join(grading.split_hidden_tests(c.source)[0] for c in solution.cells)
    found = []
    for grade_id in graded_ids(solution):
        _, hidden = grading.split_hidden_tests(cell(solution, grade_id).source)
        for line in hidden.split("\n"):
            line = line.strip()
            # code lines only: the assertion messages are meant to reach the student
            if len(line) >= 25 and line not in visible_text \
                    and not re.match(r"""^(f?["']|\))""", line):
                found.append(line)
    return found


def secret_lines(assignment: str) -> list[str]:
    """Distinctive lines of the solutions and hidden tests that students must never see."""
    public, secret = set(), set()
    for c in read(solution_path(assignment)).cells:
        inside = False
        for line in c.source.split("\n"):
            if grading.BEGIN_SOLUTION in line or grading.BEGIN_HIDDEN in line:
                inside = True
            elif grading.END_SOLUTION in line or grading.END_HIDDEN in line:
                inside = False
            else:
                (secret if inside else public).add(line.strip())
    return sorted(line for line in secret - public if len(line) >= 20)


# Put in front of a student's first answer: "make the tests pass" by disabling every checker.
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


# ... and forge what the hidden tests' probes report: numbers 0, flags False.
def _zero(value):
    if isinstance(value, dict):
        return {k: _zero(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_zero(v) for v in value]
    return False if isinstance(value, bool) else 0 if isinstance(value, (int, float)) else value


get_ipython().input_transformers_post.append(
    lambda lines: "".join(lines).replace("sealed.send(got)", "sealed.send(_zero(got))")
    .splitlines(True))

'''


# --------------------------------------------------------------------------- packing mutants

def _names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell defines at top level, names it reads anywhere)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(), set()
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return defined, used


def test_dependencies(nb: nbformat.NotebookNode) -> dict[str, set[str]]:
    """answer cell grade_id -> the graded test cells whose result can depend on it.

    A test cell depends on an answer cell if it reads a name the answer cell defines, or
    a name defined by another answer cell that depends on it (transitively).
    """
    answers = {gid: _names(cell(nb, gid).source) for gid in answer_ids(nb)}
    reads = {gid: _names(cell(nb, gid).source)[1] for gid in graded_ids(nb)}
    reaches = {gid: {gid} for gid in answers}  # answer -> answers whose names reach it
    changed = True
    while changed:
        changed = False
        for gid, (_, used) in answers.items():
            for other, (defined, _) in answers.items():
                if defined & used and not reaches[other] <= reaches[gid]:
                    reaches[gid] |= reaches[other]
                    changed = True
    out = {gid: set() for gid in answers}
    for test, used in reads.items():
        for gid, (defined, _) in answers.items():
            if defined & used:
                for source in reaches[gid]:
                    out[source].add(test)
    return out


def mutant_dependencies(base: nbformat.NotebookNode, notebooks) -> dict[str, set[str]]:
    """test_dependencies of `base` and of every mutated notebook, merged (a wrong answer
    may call other cells' functions that the correct one does not)."""
    merged = test_dependencies(base)
    for nb in notebooks:
        for gid, tests in test_dependencies(nb).items():
            merged[gid] |= tests
    return merged


def pack(mutants: list[dict], dependencies: dict[str, set[str]]) -> list[list[dict]]:
    """Group mutants (each with a "cell") so that no two in a group can affect the same test.

    Every mutant in a group edits a different answer cell, and the test cells that depend
    on one mutant's cell depend on no other mutant's cell of the group: each target cell
    of a packed notebook loses points only because of its own mutant.
    """
    groups: list[list[dict]] = []
    for mutant in mutants:
        tests = dependencies[mutant["cell"]]
        for group in groups:
            if all(not (tests & dependencies[m["cell"]]) for m in group):
                group.append(mutant)
                break
        else:
            groups.append([mutant])
    return groups


def with_answers(nb: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of `nb` with these answer cells' sources."""
    nb = copy.deepcopy(nb)
    for grade_id, source in answers.items():
        cell(nb, grade_id).source = source
    return nb


# Wrong answers written blind, one file per round (each round by writers who saw no test).
BLIND_SETS = ("blind1", "blind2", "blind3", "blind4", "blind5")


def load_set(assignment: str, name: str) -> list[dict]:
    """A YAML list in tests/mutants/<assignment>/ (one of BLIND_SETS), or [] if absent."""
    path = MUTANTS_DIR / assignment / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else []


def alternatives(assignment: str) -> dict[str, dict[str, str]]:
    """Correct answers in other idioms (tests/mutants/<assignment>/alternatives.yaml)."""
    path = MUTANTS_DIR / assignment / "alternatives.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}
