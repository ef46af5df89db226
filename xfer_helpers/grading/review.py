"""Answer code that a human should look at: what could tamper with the tests.

The score is never changed by these flags; they go to the ``review`` column of
``grades.csv`` (the sealed grader already keeps the verdicts out of the student's reach).
"""
from __future__ import annotations

import ast
import builtins
import json
from pathlib import Path

from .config import _nbgrader, _source

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
    """Names the locked code cells bind (helpers, builders, the checks they import from the course's
    package): answers should not rebind them."""
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
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xfer_helpers"):
                names |= {alias.asname or alias.name for alias in node.names}  # e.g. expect_true
    return names
