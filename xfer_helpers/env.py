"""Environment report, device choice and thread settings.

Nothing here imports PyTorch or TensorFlow until a function that needs it is
called, so ``import xfer_helpers`` stays fast.

Example:
    >>> from xfer_helpers import env
    >>> env.torch_device().type in {"cuda", "mps", "cpu"}
    True
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import platform
import sys
import warnings

from . import assets, profiles

FRAMEWORK_PACKAGES = ("numpy", "torch", "torchvision", "tensorflow", "keras", "keras-hub",
                      "tensorflow-text", "transformers", "timm", "scikit-learn",
                      "matplotlib", "nbgrader", "jupyterlab")
SETUP_FIX = "make setup   (creates .venv with every pinned package)"


def version_of(package: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ and Python logs (call before importing it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN stays on (TensorFlow's default on x86). Switched off, the Keras MiniLM step ran
    # at 1144 instead of 1786 tokens/s on the 2-core CPU (python benchmarks/run.py step_keras
    # with TF_ENABLE_ONEDNN_OPTS=0 / 1). Its notice is an INFO log, hidden by the level above.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="keras")
    warnings.filterwarnings("ignore", module="tensorflow")


def preload_triton() -> None:
    """Import Triton (PyTorch's GPU compiler) before TensorFlow can be loaded.

    With torch 2.14 and TensorFlow 2.21 in one process, importing Triton
    *after* TensorFlow crashes Python (segmentation fault: the two ship
    clashing LLVM symbols). Triton is imported by torchvision and timm, so a
    notebook that imports TensorFlow first and timm second dies. Loading
    Triton first (0.2 s, it does not import torch) avoids the clash.
    """
    if "triton" not in sys.modules and "tensorflow" not in sys.modules \
            and importlib.util.find_spec("triton") is not None:
        import triton  # noqa: F401


def import_tensorflow():
    """Import TensorFlow with its start-up chatter silenced; return the module.

    TensorFlow's C++ layer prints a few lines to the process's stderr while it
    loads (e.g. "Could not find cuda drivers"), even with TF_CPP_MIN_LOG_LEVEL
    set. Under nbgrader any stderr output zeroes a test cell, so the first
    import runs with file descriptor 2 pointed at /dev/null.
    """
    quiet_tensorflow()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    preload_triton()
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
        tf.config.list_physical_devices("GPU")  # the CUDA probe also logs: do it now
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


def torch_device(prefer: str | None = None):
    """The best PyTorch device: CUDA, then Apple MPS, then CPU. Never fails.

    ``prefer="cpu"`` (or the ``XFER_DEVICE`` environment variable) forces one.

    Example:
        >>> torch_device("cpu")
        device(type='cpu')
    """
    import torch
    prefer = (prefer or os.environ.get("XFER_DEVICE") or "").strip().lower()
    if prefer:
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"Device {prefer!r} was asked for but no CUDA GPU is visible. "
                             "Use 'cpu', or unset XFER_DEVICE to choose automatically.")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def torch_devices() -> list[str]:
    """Every PyTorch device that can be used, best first; always ends with 'cpu'."""
    import torch
    found = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def tf_devices() -> list[str]:
    """TensorFlow's devices (GPUs first, always at least the CPU), memory growth on."""
    tf = import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised: growth must be set before first use
            pass
    cpus = tf.config.list_physical_devices("CPU")
    return [d.name.replace("/physical_device:", "") for d in gpus + cpus] or ["CPU:0"]


def progress_enabled(progress: bool = True) -> bool:
    """Show progress bars? Yes, unless ``progress`` is False or ``XFER_PROGRESS`` switches them off.

    The one place that reads ``XFER_PROGRESS`` (0, false, no or off: no bars), for the
    PyTorch and Keras loops and the grader alike.

    Example:
        >>> os.environ["XFER_PROGRESS"] = "off"
        >>> progress_enabled(), progress_enabled(False)
        (False, False)
        >>> os.environ["XFER_PROGRESS"] = "1"
        >>> progress_enabled(), progress_enabled(False)
        (True, False)
        >>> del os.environ["XFER_PROGRESS"]
    """
    switched_off = os.environ.get("XFER_PROGRESS", "1").strip().lower() in {"0", "false", "no",
                                                                             "off"}
    return bool(progress) and not switched_off


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")  # read by the maths libraries


def set_threads(n: int | None = None) -> int:
    """Use ``n`` CPU threads in NumPy-backed libraries, PyTorch and TensorFlow.

    Default: ``XFER_THREADS`` or the number of cores. Returns the number used.
    """
    n = n or int(os.environ.get("XFER_THREADS", 0)) or os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(n))
    if "torch" in sys.modules:
        import torch
        torch.set_num_threads(n)
    if "tensorflow" in sys.modules:
        import tensorflow as tf
        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(min(n, 2))
        except RuntimeError:  # TF already running: its thread pools are fixed
            pass
    return n


def collect(frameworks: tuple[str, ...] = ("torch", "tensorflow")) -> dict:
    """Gather the environment facts (versions, devices, threads, profile, assets)."""
    info: dict = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "executable": sys.executable,
        "cpu_cores": os.cpu_count(),
        "versions": {p: version_of(p) for p in FRAMEWORK_PACKAGES},
        "profile": profiles.get_profile().name,
        "profile_env": os.environ.get(profiles.PROFILE_ENV, "(not set: automatic)"),
        "online": assets.online_allowed(),
        "data_dir": str(assets.data_dir()),
        "assets": assets.source_report(),
        "problems": [],
    }
    missing = [p for p in ("numpy", "torch", "tensorflow", "keras", "keras-hub", "transformers",
                           "timm", "scikit-learn", "matplotlib") if info["versions"][p] is None]
    for package in missing:
        info["problems"].append((f"Python package {package} is not installed", SETUP_FIX))
    if "torch" in frameworks and info["versions"]["torch"]:
        try:
            import torch
            info["torch_devices"] = torch_devices()
            info["torch_device"] = str(torch_device())
            info["torch_threads"] = torch.get_num_threads()
            info["torch_cuda"] = torch.version.cuda
        except Exception as exc:  # a broken install must be reported, not crash the report
            info["problems"].append((f"PyTorch fails to import: {exc}", SETUP_FIX))
    if "tensorflow" in frameworks and info["versions"]["tensorflow"]:
        try:
            info["tf_devices"] = tf_devices()
            tf = import_tensorflow()
            info["tf_threads"] = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
        except Exception as exc:
            info["problems"].append((f"TensorFlow fails to import: {exc}", SETUP_FIX))
    for row in info["assets"]:
        if row["status"] == "MISSING":
            info["problems"].append((f"{row['kind']} '{row['name']}' is missing", row["fix"]))
    return info


def format_report(info: dict) -> str:
    """Turn :func:`collect`'s dict into the text that ``xfer doctor`` prints."""
    v = info["versions"]
    lines = [
        f"Python {info['python']} on {info['platform']} ({info['cpu_cores']} CPU cores)",
        "Frameworks: " + ", ".join(f"{k} {v[k] or 'MISSING'}" for k in
                                   ("torch", "torchvision", "tensorflow", "keras", "keras-hub",
                                    "transformers", "timm")),
    ]
    if "torch_device" in info:
        lines.append(f"PyTorch device: {info['torch_device']}  (all: {', '.join(info['torch_devices'])}; "
                     f"CUDA build {info['torch_cuda'] or 'none'}; {info['torch_threads']} threads)")
    if "tf_devices" in info:
        lines.append(f"TensorFlow devices: {', '.join(info['tf_devices'])}  ({info['tf_threads']} threads)")
    lines.append(f"Profile: {info['profile']}  (XFER_PROFILE={info['profile_env']})")
    lines.append(f"Mode: {'ONLINE (sha256-checked downloads allowed)' if info['online'] else 'offline (nothing is downloaded)'}"
                 f"; cache {info['data_dir']}")
    lines.append("Assets:")
    for row in info["assets"]:
        lines.append(f"  [{row['status']:>7}] {row['name']:<18} {row['source']}")
    if info["problems"]:
        lines.append("Problems found, with the command that fixes each:")
        for problem, fix in info["problems"]:
            lines.append(f"  - {problem}\n      fix: {fix}")
    else:
        lines.append("Everything needed is here. Happy transferring!")
    return "\n".join(lines)


def report(frameworks: tuple[str, ...] = ("torch", "tensorflow")) -> dict:
    """Print the environment report at the top of a notebook and return it.

    Example:
        >>> info = report(frameworks=())   # doctest: +SKIP
    """
    info = collect(frameworks)
    print(format_report(info))
    return info
