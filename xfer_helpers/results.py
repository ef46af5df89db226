"""Save each chapter's key numbers as JSON, so the course summary can collect them.

Files go to ``$XFER_RESULTS_DIR``, one per chapter: ``<chapter>.json``. The
default is ``build/results`` in the course checkout, wherever the notebook
runs (JupyterLab starts notebooks in ``course/``); when the package is
installed outside a checkout, ``build/results`` under the working directory. The profile, the
device and a short hardware description are added to every file, so a number
is never quoted without the machine it came from.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> path = save_results("00_concepts", {"seconds": 12.5, "accuracy": 0.81}, directory=folder)
    >>> path.name
    '00_concepts.json'
    >>> saved = load_results("00_concepts", directory=folder)
    >>> saved["accuracy"], sorted(k for k in saved if k in ("chapter", "profile", "device", "hardware"))
    (0.81, ['chapter', 'device', 'hardware', 'profile'])
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path

from . import profiles

RESULTS_ENV = "XFER_RESULTS_DIR"
DEFAULT_RESULTS_DIR = "build/results"
_CHAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

__all__ = ["RESULTS_ENV", "results_dir", "save_results", "load_results"]


def _project_root() -> Path:
    """The course checkout holding this package, or the working directory if there is none."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "course").is_dir():
        return checkout
    return Path.cwd()


def results_dir(directory: str | os.PathLike | None = None) -> Path:
    """The folder for result files: ``directory``, else ``$XFER_RESULTS_DIR``, else ``build/results``.

    Example:
        >>> results_dir("/tmp/res").as_posix()
        '/tmp/res'
    """
    return Path(directory or os.environ.get(RESULTS_ENV) or _project_root() / DEFAULT_RESULTS_DIR)


def _check_chapter(chapter) -> None:
    if not isinstance(chapter, str) or not _CHAPTER_NAME.match(chapter):
        raise ValueError(f"chapter must be a short name such as '00_concepts' (letters, digits, "
                         f"'_', '-', '.'), got {chapter!r}")


def _device() -> str:
    """The PyTorch device if PyTorch is already loaded, else 'gpu'/'cpu' (no framework import)."""
    if "torch" in sys.modules:
        from .env import torch_device
        return str(torch_device())
    return "gpu" if profiles.gpu_visible() else "cpu"


def _hardware() -> dict:
    info = {"cpu_cores": os.cpu_count(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version()}
    if "torch" in sys.modules:
        import torch
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _plain(value):
    """json.dump's fallback: NumPy scalars and arrays, paths and sets become plain JSON values."""
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot save a {type(value).__name__} as JSON: {value!r}")


def save_results(chapter: str, results: dict, directory: str | os.PathLike | None = None) -> Path:
    """Write ``results`` (plus chapter, profile, device, hardware) to ``<folder>/<chapter>.json``.

    Keys you pass win over the added ones (pass ``device="cuda"`` to override).
    NumPy numbers and arrays are converted. The file is written under a
    temporary name and then renamed, so a reader never sees half a file.
    Returns the path.

    Example:
        >>> import tempfile
        >>> save_results("00_concepts", {"accuracy": 0.81}, directory=tempfile.mkdtemp()).suffix
        '.json'
    """
    _check_chapter(chapter)
    if not isinstance(results, dict):
        raise ValueError(f"results must be a dict of names to numbers, got {type(results).__name__}")
    record = {"chapter": chapter, "profile": profiles.get_profile().name, "device": _device(),
              "hardware": _hardware(), **results}
    folder = results_dir(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{chapter}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    os.replace(tmp, path)
    return path


def load_results(chapter: str, directory: str | os.PathLike | None = None) -> dict:
    """Read a chapter's result file written by :func:`save_results`.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> _ = save_results("demo", {"n": 3}, directory=folder)
        >>> load_results("demo", directory=folder)["n"]
        3
    """
    _check_chapter(chapter)
    path = results_dir(directory) / f"{chapter}.json"
    if not path.exists():
        raise FileNotFoundError(f"No results for chapter {chapter!r} at {path}. Run its notebook "
                                f"first (results go to ${RESULTS_ENV}, default {DEFAULT_RESULTS_DIR}).")
    return json.loads(path.read_text())


def markdown_table(rows, columns) -> str:
    """A list of dicts -> a Markdown table; show it with ``display(Markdown(...))``.

    ``columns`` is a list of ``(title, format)`` pairs; ``format(row)`` returns the cell's text.

    Example:
        >>> print(markdown_table([{"n": 10, "acc": 0.512}], [("n", lambda r: str(r["n"])),
        ...                                                 ("accuracy", lambda r: f"{r['acc']:.2f}")]))
        | n | accuracy |
        |---|---|
        | 10 | 0.51 |
    """
    columns = list(columns)
    if not columns:
        raise ValueError("columns must list at least one (title, format) pair")
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row) for _, fmt in columns) + " |")
    return "\n".join(lines)
