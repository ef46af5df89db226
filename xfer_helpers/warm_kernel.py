"""The grading kernel: imports what every exercise's setup cell imports, then starts as usual.

Every exercise's locked setup cell imports ``xfer_helpers``, PyTorch, TensorFlow and Keras:
about 6 s of a graded notebook's 10. A sandboxed grading kernel
(:class:`xfer_helpers.sandbox.SandboxedKernelManager`) is started with
``python -m xfer_helpers.warm_kernel`` instead of ``python -m ipykernel_launcher``: it does
those imports first, in the setup cell's order (quiet TensorFlow's logs, set the threads,
PyTorch, then TensorFlow, then Keras), and only then starts the IPython kernel. The setup
cell still runs every line; its imports find the modules loaded. Nothing is added to the
notebook's variables, and the execution count starts at 1 as before.

That lets the grader start the next student's kernel while the current notebook runs
(:class:`xfer_helpers.sealed.HeadStart`): when its turn comes, it is already warm.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path


def preload() -> None:
    """Import the frameworks the way the exercises' setup cell does, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from xfer_helpers import env  # xfer_helpers first: it loads Triton before TensorFlow

        env.quiet_tensorflow()
        env.set_threads()  # the thread variables, before PyTorch starts its pools
        import torch  # noqa: F401  (the setup cell's order: PyTorch, TensorFlow, Keras)
        env.import_tensorflow()
        import keras  # noqa: F401


if __name__ == "__main__":
    # As ipykernel_launcher does: the working folder (the student's files) is not on the
    # import path while the kernel loads; IPython puts it back for the notebook's cells.
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():
        del sys.path[0]
    preload()
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()
