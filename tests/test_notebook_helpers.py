"""One helper, one place: no function is copied between lectures, and the exercises' setup
cells do not drift apart.

- A function or class defined at the top of a cell in two lecture notebooks (course/) is
  a copy that will drift (it happened: `probe_accuracy` ran 500 iterations in one chapter
  and 1,000 in another); it belongs in the package.
- A lecture that defines a function the package already offers under the same name
  (chapter 03 had its own `markdown_table`) should import it instead.
- The exercises' setup cells take the visible tests' checks from `xfer_helpers.checks`,
  define no function themselves, and are the same apart from their import lines.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import nbformat
import pytest

import grading_utils as gu
import xfer_helpers
from xfer_helpers import grading

LECTURES = sorted((gu.REPO / "course").glob("*.ipynb"))
SOLUTIONS = sorted((gu.REPO / "solutions").glob("*/*.ipynb"))


def top_level_definitions(notebooks) -> dict[str, list[str]]:
    """name -> the notebooks whose code cells define it at the top level."""
    found: dict[str, list[str]] = {}
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    found.setdefault(node.name, []).append(path.stem)
    return found


def copied(notebooks) -> dict[str, list[str]]:
    """Definitions that appear in more than one notebook."""
    return {name: where for name, where in top_level_definitions(notebooks).items()
            if len(set(where)) > 1}


def package_functions() -> dict[str, str]:
    """Public functions and classes of the package -> the module that defines them."""
    names = {}
    for info in pkgutil.walk_packages(xfer_helpers.__path__, "xfer_helpers."):
        if info.name.endswith("__main__") or ".keras" in info.name:
            continue  # the Keras side mirrors the PyTorch names; importing it starts TensorFlow
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                    and obj.__module__ == info.name:
                names.setdefault(name, info.name)
    return names


def test_no_function_is_defined_in_two_lectures():
    assert len(LECTURES) >= 5
    assert copied(LECTURES) == {}, "move these into xfer_helpers and import them"


def test_the_copy_check_can_fail(tmp_path):
    for name in ("a", "b"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "def to_nchw(x):\n    return x.transpose(0, 3, 1, 2)")])
        nbformat.write(nb, str(tmp_path / f"{name}.ipynb"))
    assert copied(sorted(tmp_path.glob("*.ipynb"))) == {"to_nchw": ["a", "b"]}


def test_no_lecture_redefines_a_package_function():
    offered = package_functions()
    assert {"markdown_table", "to_nchw", "probe_accuracy", "expect_close"} <= set(offered)
    redefined = {name: (where, offered[name])
                 for name, where in top_level_definitions(LECTURES).items() if name in offered}
    assert redefined == {}, "import these from the package instead"


def setup_cell(path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return next(c for c in nb.cells if c.cell_type == "code").source


def without_imports(source: str) -> list[str]:
    """The statements of a cell other than imports, as source text."""
    return [ast.unparse(node) for node in ast.parse(source).body
            if not isinstance(node, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.parent.name)
def test_setup_cell_imports_the_checks_and_defines_nothing(path):
    tree = ast.parse(setup_cell(path))
    imported = {alias.asname or alias.name for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.module == "xfer_helpers.checks"
                for alias in node.names}
    assert set(grading.ASSERT_HELPERS) <= imported, \
        "import expect_equal, expect_close, expect_true from xfer_helpers.checks"
    defined = [node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defined == [], f"the setup cell defines {defined}: put shared helpers in the package"


def test_setup_cells_are_the_same_apart_from_imports():
    reference = without_imports(setup_cell(SOLUTIONS[0]))
    assert any("setup_notebook" in line for line in reference)
    for path in SOLUTIONS[1:]:
        assert without_imports(setup_cell(path)) == reference, f"{path.parent.name} drifted"


def test_the_drift_check_can_fail():
    drifted = setup_cell(SOLUTIONS[0]).replace('print(f"Profile:', 'print(f"Run profile:')
    assert without_imports(drifted) != without_imports(setup_cell(SOLUTIONS[0]))
