"""The examples in the helpers' docstrings are run, so what a learner reads is what the code does.

Examples that need pretrained weights or a dataset are marked ``# doctest: +SKIP``;
the others must print exactly what the docstring shows.
"""
import doctest
import importlib
import pkgutil

import pytest

import xfer_helpers

MODULES = sorted(m.name for m in pkgutil.walk_packages(xfer_helpers.__path__, "xfer_helpers."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed (see stdout)"


def test_a_wrong_example_fails(tmp_path, monkeypatch):
    """The check can fail: a module whose example is wrong is caught."""
    (tmp_path / "wrong_example.py").write_text('def double(x):\n    """\n    >>> double(2)\n    5\n    """\n'
                                               '    return 2 * x\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    result = doctest.testmod(importlib.import_module("wrong_example"), report=False)
    assert (result.failed, result.attempted) == (1, 1)
