"""Shared test setup.

Importing xfer_helpers first loads Triton before anything can import
TensorFlow: with torch 2.14 + TensorFlow 2.21 in one process, Triton imported
after TensorFlow segfaults (see xfer_helpers.env.preload_triton).
"""
import os

os.environ.setdefault("XFER_PROGRESS", "0")      # no progress bars in test logs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

import xfer_helpers  # noqa: E402,F401  (preloads Triton)
