"""The checks that the exercises' visible tests call, one definition for every exercise.

Each says in words what was expected and what was found, so a failing test reads as
advice, not as a bare ``AssertionError``. The exercises' setup cells import them:

    from xfer_helpers.checks import expect_close, expect_equal, expect_true

(The hidden tests do not use them: their verdicts run in the grader, see
:mod:`xfer_helpers.sealed`.)

Example:
    >>> expect_close(0.1 + 0.2, 0.3, "The sum")
    >>> expect_equal(len([1, 2]), 3, "The number of items")
    Traceback (most recent call last):
    ...
    AssertionError: The number of items should be 3, found 2
"""
from __future__ import annotations

import numbers

__all__ = ["expect_close", "expect_equal", "expect_true", "show"]


def show(value) -> str:
    """A value as the checks print it: whole numbers with thousands separators, 4 decimals.

    Example:
        >>> show(1200), show(0.5), show("cls"), show(True)
        ('1,200', '0.5000', "'cls'", 'True')
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.4f}"
    return repr(value)


def expect_equal(actual, expected, what: str) -> None:
    """Check that ``actual == expected``; if not, say what was expected and what was found."""
    assert actual == expected, f"{what} should be {show(expected)}, found {show(actual)}"


def expect_close(actual, expected, what: str, tol: float = 1e-6) -> None:
    """Check that the number ``actual`` is within ``tol`` of ``expected``.

    Example:
        >>> expect_close(2.5, 2, "The mean", tol=0.1)
        Traceback (most recent call last):
        ...
        AssertionError: The mean should be 2.0000, found 2.5000
    """
    actual, expected = float(actual), float(expected)
    assert abs(actual - expected) <= tol, f"{what} should be {show(expected)}, found {show(actual)}"


def expect_true(condition, message: str) -> None:
    """Check that ``condition`` holds; ``message`` says what was expected."""
    assert condition, message
