"""Helpers for the transfer-learning course.

The core (this package's top level) is framework-neutral: importing it does
not import PyTorch or TensorFlow. Framework code lives in
``xfer_helpers.pytorch`` and ``xfer_helpers.keras``.

Example:
    >>> import xfer_helpers as xh
    >>> xh.get_profile("lite").name
    'lite'
"""
from __future__ import annotations

from . import env as _env
from .assets import asset_path, get_asset
from .profiles import Profile, get_profile
from .seeding import seed_everything

_env.preload_triton()  # must happen before any TensorFlow import: see env.preload_triton

__version__ = "0.1.0"
__all__ = ["Profile", "asset_path", "get_asset", "get_profile", "seed_everything",
           "setup_notebook"]


def setup_notebook(seed: int = 0, frameworks: tuple[str, ...] = ("torch", "tensorflow"),
                   deterministic: bool = False, verbose: bool = True) -> dict:
    """First call of every notebook: quiet logs, threads, seeds, and an environment report.

    Returns the report as a dict (profile, devices, asset sources, problems).

    Example:
        >>> info = setup_notebook(seed=0, frameworks=("torch",))  # doctest: +SKIP
    """
    import warnings

    from . import env
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    env.quiet_tensorflow()
    env.set_threads()
    seed_everything(seed, deterministic=deterministic, frameworks=frameworks)
    env.set_threads()  # again, now that the frameworks are imported
    info = env.collect(frameworks)
    if verbose:
        print(env.format_report(info))
    return info
