"""One call to make a run repeatable: seeds Python, NumPy, PyTorch and TensorFlow."""
from __future__ import annotations

import importlib.util
import os
import random

import numpy as np

FRAMEWORKS = ("torch", "tensorflow")


def seed_everything(seed: int = 0, deterministic: bool = False,
                    frameworks: tuple[str, ...] = FRAMEWORKS) -> list[str]:
    """Seed Python, NumPy and the installed frameworks; return what was seeded.

    ``deterministic=True`` also asks PyTorch and TensorFlow for deterministic
    kernels (slower, but two runs give the same numbers bit for bit).
    Pass ``frameworks=("torch",)`` to avoid importing TensorFlow (~6 s).

    Example:
        >>> seed_everything(42, frameworks=())
        ['python', 'numpy']
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    unknown = set(frameworks) - set(FRAMEWORKS)
    if unknown:
        raise ValueError(f"Unknown framework(s) {sorted(unknown)}; choose from {FRAMEWORKS}")
    seeded = ["python", "numpy"]
    os.environ["PYTHONHASHSEED"] = str(seed)  # affects subprocesses started from here
    random.seed(seed)
    np.random.seed(seed)
    if "torch" in frameworks and importlib.util.find_spec("torch"):
        import torch
        torch.manual_seed(seed)  # also seeds every CUDA device
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        seeded.append("torch")
    if "tensorflow" in frameworks and importlib.util.find_spec("tensorflow"):
        from . import env
        tf = env.import_tensorflow()
        tf.keras.utils.set_random_seed(seed)  # Python, NumPy and TF in one call
        if deterministic:
            tf.config.experimental.enable_op_determinism()
        seeded.append("tensorflow")
    return seeded
