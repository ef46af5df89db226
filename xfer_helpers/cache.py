"""Compute once, reuse later: arrays (e.g. frozen-backbone features) cached on disk.

Running a frozen network over the same images gives the same features every
time, so a second run of a chapter (or a later chapter) can read them from
disk instead of computing them again:

    features = cache.cached("fmnist-efficientnet", lambda: predict(extractor, images),
                            extractor, images)

The file's name is a fingerprint of **everything the result depends on**: the
exact input arrays, every weight of the model, the code of ``compute`` (its
constants, such as a batch size, and the functions and values it closes over
included), the source of this package and the framework versions. Change one pixel, one weight or one line of a helper and the
fingerprint changes, so a wrong key can never return stale data. Files live in
``XFER_DATA_DIR/cache/``, are written under a temporary name and renamed when
complete (an interrupted run leaves no half file), and carry their fingerprint
inside: a damaged or foreign file is reported and computed again, never used.
``XFER_CACHE=0`` turns the cache off; deleting the folder is always safe.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .assets import data_dir

CACHE_ENV = "XFER_CACHE"
FORMAT = 1          # bump when the file layout changes: old files then no longer match


def enabled() -> bool:
    """False when ``XFER_CACHE`` is 0/false/no/off."""
    return os.environ.get(CACHE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def cache_dir() -> Path:
    """``XFER_DATA_DIR/cache``: where cached arrays are kept."""
    return data_dir() / "cache"


def _update(digest, part) -> None:
    """Feed one key part into the hash: arrays by dtype, shape and bytes; models by their weights."""
    if hasattr(part, "state_dict"):                       # a PyTorch module: every parameter and buffer
        for name, tensor in part.state_dict().items():
            _update(digest, name)
            _update(digest, tensor.detach().cpu().numpy())
    elif hasattr(part, "weights") and hasattr(part, "get_weights"):   # a Keras model or layer
        for variable, value in zip(part.weights, part.get_weights()):
            _update(digest, variable.path if hasattr(variable, "path") else variable.name)
            _update(digest, value)
    elif isinstance(part, dict):
        for key in sorted(part):
            _update(digest, key)
            _update(digest, part[key])
    elif isinstance(part, (list, tuple)):
        digest.update(f"seq{len(part)}".encode())
        for item in part:
            _update(digest, item)
    elif isinstance(part, (str, int, float, bool, type(None))):
        digest.update(json.dumps(part).encode())
    else:
        array = np.ascontiguousarray(part)
        if array.dtype == object:
            raise TypeError(f"cannot fingerprint a {type(part).__name__}: pass arrays, models, numbers or strings")
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())


def _update_function(digest, function, hashed: set[int], depth: int = 0) -> None:
    """A function's byte code, constants and names; the functions, numbers, strings and arrays it closes over.

    Values whose ``id`` is in ``hashed`` (the key parts, already in the digest) are not read again.
    """
    code = getattr(function, "__code__", None) or getattr(getattr(function, "__call__", None), "__code__", None)
    if code is None or depth > 4:
        digest.update(type(function).__qualname__.encode())
        return
    _update_code(digest, code)
    for cell in getattr(function, "__closure__", None) or ():
        value = cell.cell_contents
        if id(value) in hashed:
            digest.update(b"key part")                          # e.g. the images, hashed once already
        elif callable(value) and hasattr(value, "__code__"):
            _update_function(digest, value, hashed, depth + 1)  # e.g. the extract function a lambda calls
        elif isinstance(value, (str, int, float, bool, type(None), tuple, np.ndarray)):
            try:
                _update(digest, value)                          # e.g. a size or a mean it reads
            except TypeError:
                digest.update(type(value).__qualname__.encode())
        else:                                                   # models, dicts, ...: pass them as key parts
            digest.update(type(value).__qualname__.encode())


def _update_code(digest, code) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if hasattr(const, "co_code"):
            _update_code(digest, const)
        else:
            digest.update(repr(const).encode())


@functools.lru_cache(maxsize=None)
def _package_source() -> str:
    """sha256 of every .py file of xfer_helpers: a changed helper invalidates what it computed.

    Read once per process: the code a running kernel uses is the code it imported.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(*parts) -> str:
    """sha256 (hex) of the key parts plus this package's source, NumPy and framework versions.

    Example:
        >>> a = fingerprint("features", np.zeros((2, 3), np.float32))
        >>> a == fingerprint("features", np.zeros((2, 3), np.float32))
        True
        >>> a == fingerprint("features", np.zeros((3, 2), np.float32))      # same bytes, other shape
        False
    """
    digest = hashlib.sha256()
    versions = {"format": FORMAT, "xfer_helpers": __version__, "source": _package_source(),
                "python": sys.version, "numpy": np.__version__}
    for module in ("torch", "tensorflow", "keras"):             # only the frameworks already loaded
        if module in sys.modules:
            versions[module] = getattr(sys.modules[module], "__version__", "?")
    _update(digest, versions)
    for part in parts:
        _update(digest, part)
    return digest.hexdigest()


def _load(path: Path, key: str):
    with np.load(path, allow_pickle=False) as stored:
        if str(stored["__key__"]) != key:
            raise ValueError("the fingerprint inside the file does not match its name")
        names = json.loads(str(stored["__names__"]))
        arrays = {name: stored[f"a{i}"] for i, name in enumerate(names)}
    return arrays


def _save(path: Path, key: str, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, __key__=key, __names__=json.dumps(list(arrays)),
                     **{f"a{i}": np.asarray(v) for i, v in enumerate(arrays.values())})
        os.replace(tmp, path)          # atomic: readers see the old file or the whole new one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(name: str, compute: Callable[[], np.ndarray | dict], *key_parts, folder: Path | None = None,
           with_info: bool = False):
    """``compute()``'s result (an array or a flat dict of arrays), read from disk when computed before.

    ``key_parts`` must include the values ``compute`` reads (the inputs and the model);
    see :func:`fingerprint`. ``name`` is only for people reading the folder; ``folder``
    defaults to :func:`cache_dir`. ``with_info=True`` returns ``(result, info)``, where
    ``info = {"read": True/False, "compute_seconds": s}``: how long computing took, also
    when the result was read (report that as the method's cost, not the reading time).

    Example:
        >>> calls, folder = [], Path(tempfile.mkdtemp())
        >>> def square(x): calls.append(1); return x ** 2
        >>> x = np.arange(3.0)
        >>> cached("square", lambda: square(x), x, folder=folder).tolist()
        [0.0, 1.0, 4.0]
        >>> cached("square", lambda: square(x), x, folder=folder).tolist(), len(calls)   # read, not computed
        ([0.0, 1.0, 4.0], 1)
    """
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"name must be letters, digits, - and _ only, got {name!r}")
    if not enabled():
        t0 = time.perf_counter()
        result = compute()
        return (result, {"read": False, "compute_seconds": time.perf_counter() - t0}) if with_info else result
    digest = hashlib.sha256(fingerprint(name, *key_parts).encode())
    _update_function(digest, compute, {id(part) for part in key_parts})
    key = digest.hexdigest()
    path = Path(folder or cache_dir()) / f"{name}-{key[:20]}.npz"
    if path.exists():
        try:
            arrays = _load(path, key)
            seconds = float(arrays.pop("__seconds__"))
            result = arrays["__array__"] if list(arrays) == ["__array__"] else arrays
            return (result, {"read": True, "compute_seconds": seconds}) if with_info else result
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            warnings.warn(f"The cached file {path} is damaged or out of date ({error}); computing it again.",
                          stacklevel=2)
            path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = compute()
    seconds = time.perf_counter() - t0
    arrays = {k: np.asarray(v) for k, v in result.items()} if isinstance(result, dict) else {"__array__": result}
    if any(a.dtype == object for a in arrays.values()) or "__seconds__" in arrays:
        raise TypeError(f"{name}: only numeric arrays (not named __seconds__) can be cached")
    _save(path, key, {**arrays, "__seconds__": np.float64(seconds)})
    return (result, {"read": False, "compute_seconds": seconds}) if with_info else result
