"""The notebook linter: every instructor notebook passes, and each rule can fail."""
from __future__ import annotations

import ast
import copy
import json

import pytest

import grading_utils as gu
from xfer_helpers import grading

SOLUTIONS = sorted((gu.REPO / "solutions").glob("*/*.ipynb"))


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=lambda p: p.parent.name)
def test_solution_notebook_follows_the_course_rules(notebook):
    assert grading.lint_notebook(notebook) == []


def test_there_is_a_chapter_00_exercise():
    assert gu.REPO / "solutions" / "00_concepts" / "00_concepts.ipynb" in SOLUTIONS


def lint_modified(tmp_path, change) -> list[str]:
    raw = json.loads(gu.solution_path("00_concepts").read_text())
    raw = copy.deepcopy(raw)
    change(raw)
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(raw))
    return grading.lint_notebook(path)


def by_id(raw, grade_id):
    return next(c for c in raw["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id")
                == grade_id)


def set_source(raw, grade_id, text):
    by_id(raw, grade_id)["source"] = text


BROKEN = {
    "no cell ids": (lambda raw: raw["cells"][3].pop("id"), "no cell id"),
    "old nbformat": (lambda raw: raw.update(nbformat_minor=4), "nbformat should be 4.5"),
    "schema 1": (lambda raw: by_id(raw, "strategy_tests")["metadata"]["nbgrader"].update(
        schema_version=1), "schema_version should be 3"),
    "duplicate grade_id": (lambda raw: by_id(raw, "metrics_tests")["metadata"]["nbgrader"].update(
        grade_id="strategy_tests"), "grade_id 'strategy_tests' is used twice"),
    "zero points": (lambda raw: by_id(raw, "strategy_tests")["metadata"]["nbgrader"].update(
        points=0), "worth points > 0"),
    "ends in an expression": (lambda raw: by_id(raw, "strategy_tests")["source"].append(
        "\n1.0"), "must end in an assert statement"),
    "assert without message": (lambda raw: set_source(
        raw, "strategy_tests", "expect_true(True, 'x')\n### BEGIN HIDDEN TESTS\n"
        "assert choose_strategy(1, 0.5)\n### END HIDDEN TESTS"), "assert without a message"),
    "no hidden tests": (lambda raw: set_source(raw, "strategy_tests", "assert True, 'x'"),
                        "needs both visible tests and a ### BEGIN HIDDEN TESTS block"),
    "hidden test without checks": (lambda raw: set_source(
        raw, "strategy_tests", "expect_true(True, 'x')\n### BEGIN HIDDEN TESTS\n"
        "assert choose_strategy(1, 0.5), 'x'\n### END HIDDEN TESTS"),
        "the hidden tests need a ### CHECKS part"),
    "probe asserts": (lambda raw: set_source(
        raw, "strategy_tests", "expect_true(True, 'x')\n### BEGIN HIDDEN TESTS\n"
        "got = {'a': choose_strategy(1, 0.5)}\nassert got, 'x'\n### CHECKS\n"
        "assert got['a'], 'x'\n### END HIDDEN TESTS"), "the probe asserts"),
    "probe without got": (lambda raw: set_source(
        raw, "strategy_tests", "expect_true(True, 'x')\n### BEGIN HIDDEN TESTS\n"
        "result = choose_strategy(1, 0.5)\n### CHECKS\nassert got, 'x'\n### END HIDDEN TESTS"),
        "the probe must assign the dict `got`"),
    "checks import torch": (lambda raw: set_source(
        raw, "strategy_tests", "expect_true(True, 'x')\n### BEGIN HIDDEN TESTS\n"
        "got = {}\n### CHECKS\nimport torch\nassert got == {}, 'x'\n### END HIDDEN TESTS"),
        "the checks import torch"),
    "wrong total": (lambda raw: by_id(raw, "strategy_tests")["metadata"]["nbgrader"].update(
        points=5), "states 18 points but the graded cells add up to 21"),
    "no learning goals": (lambda raw: set_source(raw, "intro", "# Exercise\n**Total: 18 points**"),
                          "'What you will learn'"),
    "unlocked test cell": (lambda raw: by_id(raw, "head_tests")["metadata"]["nbgrader"].update(
        locked=False), "test cells must be locked"),
    "direct tensorflow import": (lambda raw: by_id(raw, "copy_answer")["source"].insert(
        0, "import tensorflow as tf\n"), "imports tensorflow directly"),
    "setup not locked": (lambda raw: by_id(raw, "setup")["metadata"]["nbgrader"].update(
        locked=False), "locked setup cell"),
    "outputs committed": (lambda raw: by_id(raw, "models").update(execution_count=3),
                          "has outputs"),
    "solution outside answer": (lambda raw: by_id(raw, "models")["source"].append(
        "\n### BEGIN SOLUTION\n### END SOLUTION"), "solution markers outside an answer cell"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_linter_reports_each_broken_rule(tmp_path, name):
    change, words = BROKEN[name]
    problems = lint_modified(tmp_path, change)
    assert any(words in p for p in problems), f"{name}: {problems}"


def test_too_few_graded_cells_is_reported(tmp_path):
    def keep_four(raw):
        graded = [c for c in raw["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
        for c in graded[4:]:
            raw["cells"].remove(c)
    problems = lint_modified(tmp_path, keep_four)
    assert any("only 4 graded test cells" in p for p in problems), problems


@pytest.mark.parametrize("assignment", [p.parent.name for p in SOLUTIONS])
def test_every_graded_cell_has_mutants_that_apply(assignment):
    """tests/mutants/<exercise>/mutants.yaml: at least one mutant per graded cell, all valid."""
    solution = gu.read(gu.solution_path(assignment))
    perfect = gu.filled_release(assignment)
    mutants = gu.load_mutants(assignment)
    missing = set(gu.graded_ids(solution)) - {m["target"] for m in mutants}
    assert not missing, f"graded cells without a mutant: {missing}"
    for mutant in mutants:
        assert mutant["cell"] in gu.answer_ids(solution), mutant["name"]
        assert mutant["target"] in gu.graded_ids(solution), mutant["name"]
        changed = gu.cell(gu.mutate(perfect, mutant), mutant["cell"]).source
        assert changed != gu.cell(perfect, mutant["cell"]).source, mutant["name"]
        ast.parse(changed)
