"""Shared test setup.

Importing xfer_helpers first loads Triton before anything can import
TensorFlow: with torch 2.14 + TensorFlow 2.21 in one process, Triton imported
after TensorFlow segfaults (see xfer_helpers.env.preload_triton).
"""
import os

os.environ.setdefault("XFER_PROGRESS", "0")      # no progress bars in test logs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the same cores: each takes its share (set before PyTorch
    # starts its thread pool). Kernels started from here (lectures, graded notebooks) inherit
    # XFER_THREADS. Two processes that each use every core slow down several times over.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("XFER_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))

import xfer_helpers  # noqa: E402,F401  (preloads Triton)

import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns the marks into node ids
def pytest_collection_modifyitems(config, items):
    """`make test` runs two pytest workers (pytest-xdist, ``--dist loadgroup``).

    Tests that share an expensive module-scoped fixture (a graded class, the classroom, a
    loaded model) are put in one group, so that one worker builds the fixture once; each
    exercise's graded class is its own group, so the five classes spread over the workers.
    Without ``-n`` the groups change nothing.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "graded" in callspec.params:
            group = f"graded-{callspec.params['graded']}"
        elif any(defs[-1].scope == "module"
                 for defs in item._fixtureinfo.name2fixturedefs.values()):
            group = item.module.__name__
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
