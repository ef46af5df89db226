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
    # Same share as xfer_helpers.grading.threads_per_job and the same variables as
    # env.THREAD_VARIABLES, written out because importing xfer_helpers would start PyTorch.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _name in ("XFER_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, str(_share))

import xfer_helpers  # noqa: E402,F401  (preloads Triton)

pytest_plugins = ["xdist_groups"]  # tests/xdist_groups.py: what `make test`'s two workers share
