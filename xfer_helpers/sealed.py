"""Hidden tests out of the student's reach: a probe runs in the student's kernel, the check runs in the grader.

A test cell's hidden block has two parts::

    ### BEGIN HIDDEN TESTS
    # What must hold: ...            (for the instructor; never shown to students)
    got = {"small": choose_strategy(300, 0.1)}      # probe: calls the student's code
    ### CHECKS
    assert got["small"] == "feature_extraction", "With 300 examples ..."
    ### END HIDDEN TESTS

At grading time (:class:`SealedExecute`, which replaces nbgrader's ``Execute``), the
student's kernel runs the visible tests and the **probe**, and sends ``got`` back as plain
JSON (numbers, strings, lists, arrays as lists). The **checks** never enter the kernel: the
grader runs them in its own process on those plain values, so nothing the student's code
does (hooks, input transformers, monkeypatching, values with rigged ``==``) can change
their verdict. A failed check becomes the cell's error output, which is what nbgrader
scores; a value the probe made up can only be right by being the right answer.

Inputs for the checks come from the checks themselves (regenerated from the same seeds),
never from ``got``: the student's kernel could rewrite anything it reports.

Example:
    >>> split_test_cell("x = 1\\n### BEGIN HIDDEN TESTS\\ngot = {'a': 1}\\n### CHECKS\\n"
    ...                 "assert got['a'] == 1, 'a'\\n### END HIDDEN TESTS")
    ('x = 1', "got = {'a': 1}", "assert got['a'] == 1, 'a'")
    >>> run_check("assert got['a'] == 1, 'a should be 1'", {"a": 2})
    'a should be 1'
"""
from __future__ import annotations

import builtins
import math
import numbers
import time

BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CHECKS = "### CHECKS"
RECORD_MIME = "application/x-xfer-record+json"
SEND = '__import__("xfer_helpers.sealed").sealed.send(got)'
STDERR_NOTE = "[this cell wrote to stderr; it does not cost points]\n"
MAX_DEPTH = 12
ARRAY_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                "float16", "float32", "float64"}


def split_test_cell(source: str) -> tuple[str, str, str]:
    """(visible tests, probe, checks) of a test cell; probe and checks are '' if absent.

    Example:
        >>> split_test_cell("assert True, 'ok'")
        ("assert True, 'ok'", '', '')
    """
    parts = {"visible": [], "probe": [], "checks": []}
    part = "visible"
    for line in source.split("\n"):
        if BEGIN_HIDDEN in line:
            part = "probe"
        elif CHECKS in line and part == "probe":
            part = "checks"
        elif END_HIDDEN in line:
            part = "visible"
        else:
            parts[part].append(line)
    return tuple("\n".join(parts[p]).strip("\n") for p in ("visible", "probe", "checks"))


# --------------------------------------------------------------------------- kernel side

def to_plain(value, _depth: int = 0):
    """A JSON-ready copy of ``value``: arrays and tensors become {"__ndarray__": ...}.

    Example:
        >>> import numpy as np
        >>> to_plain({"x": np.array([1.5, 2.0], dtype=np.float32), "n": np.int64(3)})
        {'x': {'__ndarray__': [1.5, 2.0], 'dtype': 'float32', 'shape': [2]}, 'n': 3}
    """
    if _depth > MAX_DEPTH:
        return {"__object__": "too deep"}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [to_plain(v, _depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_plain(v, _depth + 1) for v in value), key=repr)
    array = _as_array(value)
    if array is not None:
        if array.dtype.name in ARRAY_DTYPES:
            return {"__ndarray__": array.tolist(), "dtype": array.dtype.name,
                    "shape": list(array.shape)}
        return {"__ndarray__": [to_plain(v, _depth + 1) for v in array.ravel().tolist()],
                "dtype": "object", "shape": list(array.shape)}
    return {"__object__": type(value).__name__, "repr": repr(value)[:300]}


def _as_array(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and callable(value.numpy):    # tf.Tensor, tf.Variable
        try:
            return np.asarray(value.numpy())
        except Exception:
            return None
    if hasattr(value, "__array__"):                           # keras.Variable and others
        try:
            return np.asarray(value)
        except Exception:
            return None
    return None


def send(got) -> None:
    """Kernel side: publish ``got`` (made plain) as this test cell's record for the grader."""
    from IPython.display import display

    display({RECORD_MIME: to_plain(got)}, raw=True)


# --------------------------------------------------------------------------- grader side

def from_plain(value, _depth: int = 0):
    """Numpy arrays back from a record (a record is JSON: never code, never pickles).

    Example:
        >>> from_plain({"__ndarray__": [[1, 2]], "dtype": "int64", "shape": [1, 2]}).shape
        (1, 2)
    """
    import numpy as np

    if _depth > MAX_DEPTH + 2:
        raise ValueError("record nested too deeply")
    if isinstance(value, dict):
        if "__ndarray__" in value:
            dtype = value.get("dtype")
            if dtype in ARRAY_DTYPES:
                array = np.array(value["__ndarray__"], dtype=dtype)
            else:
                array = np.array([from_plain(v, _depth + 1) for v in value["__ndarray__"]],
                                 dtype=object)
            return array.reshape([int(n) for n in value.get("shape", array.shape)])
        return {str(k): from_plain(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [from_plain(v, _depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"not a plain value: {type(value).__name__}")


def run_check(checks: str, record) -> str | None:
    """Run a cell's checks on its record in this (the grader's) process; the failure message or None.

    Example:
        >>> run_check("assert got == [1, 2], 'the list'", [1, 2]) is None
        True
    """
    import numpy as np

    try:
        got = from_plain(record)
    except (TypeError, ValueError) as exc:
        return f"The result your code produced could not be read ({exc})."
    namespace = {"__builtins__": builtins, "np": np, "math": math, "got": got}
    try:
        exec(compile(checks, "<hidden checks>", "exec"), namespace)  # instructor code only
    except AssertionError as exc:
        return str(exc) or "A hidden test failed."
    except Exception as exc:  # a malformed answer: say so instead of crashing the grader
        return (f"The hidden tests could not check what your code returned ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Check that your function returns what the task asks for "
                "(its type, shape and length).")
    return None


def judge_cell(cell, checks: str, expect_record: bool = True) -> str | None:
    """Turn an executed test cell's outputs into the grader's verdict; the failure message or None.

    Keeps the student's output, except that stderr becomes ordinary output with a note
    (it costs nothing) and values the cell displayed as its result are dropped (nbgrader
    would read them as a score). Appends an error output when the checks fail, so that
    nbgrader gives the cell 0.
    """
    from nbformat.v4 import new_output

    record, missing, outputs = None, True, []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "display_data" and RECORD_MIME in output.get("data", {}):
            record, missing = output["data"][RECORD_MIME], False
        elif kind == "execute_result":
            continue
        elif kind == "stream" and output.get("name") == "stderr":
            outputs.append(new_output("stream", name="stdout", text=STDERR_NOTE + output.text))
        else:
            outputs.append(output)
    kernel_error = any(o.get("output_type") == "error" for o in outputs)
    if not expect_record:  # a test cell without checks: only its kernel outputs count
        message = None
    elif missing:
        message = None if kernel_error else (
            "The hidden tests of this cell did not run to the end (did your code stop the "
            "cell early?).")
    else:
        message = run_check(checks, record)
    if message:
        outputs.append(new_output("error", ename="AssertionError", evalue=message,
                                  traceback=[f"AssertionError: {message}"]))
    cell["outputs"] = outputs
    return message if message or not kernel_error else "error in the kernel"


class HeadStart:
    """The next student's kernel, started while the current notebook runs.

    A graded notebook spends most of its time in the setup cell's imports; the sandboxed
    kernel does them before it answers (:mod:`xfer_helpers.warm_kernel`). The grader says
    how many notebooks are still to come (:attr:`upcoming`); while one runs,
    :class:`SealedExecute` starts a fresh sandboxed kernel, with an empty scratch folder,
    for the next one, and hands it over when its turn comes (the student's files are
    copied in first). It is a kernel of its own in a sandbox of its own, exactly as it
    would have been started later; only the moment differs. :meth:`discard` stops a
    kernel nobody took.
    """

    def __init__(self):
        self.upcoming = 0
        self.manager = None
        self.handed_over = False   # did the last notebook run in a kernel started ahead?

    def take(self, kernel_name: str, cwd: str | None):
        """The kernel started ahead (its scratch filled from ``cwd``), or None."""
        manager, self.manager = self.manager, None
        self.handed_over = False
        if manager is None:
            return None
        if manager.kernel_name != kernel_name or not manager.has_kernel:
            _shut_down(manager)
            return None
        if cwd:
            manager.folders.add_files(cwd)
        self.handed_over = True
        return manager

    def discard(self) -> None:
        """Stop a kernel started ahead that nobody took (end of a shard, or an error)."""
        manager, self.manager = self.manager, None
        if manager is not None:
            _shut_down(manager)


def _shut_down(manager) -> None:
    from jupyter_core.utils import run_sync

    try:
        run_sync(manager.shutdown_kernel)(now=True)
    except Exception:  # already dead: its folders must still go
        run_sync(manager.cleanup_resources)()


HEAD_START = HeadStart()


def _build_sealed_execute():
    from jupyter_core.utils import run_sync
    from nbgrader.preprocessors import Execute
    from nbgrader.utils import is_grade
    from traitlets import Bool, Integer

    from . import sandbox

    class SealedExecute(Execute):
        """nbgrader's Execute with each notebook sealed off and its hidden checks run here.

        - the kernel runs in :class:`xfer_helpers.sandbox.SandboxedKernelManager`;
        - test cells run their visible tests and probe in the kernel; their checks run in
          the grader (:func:`judge_cell`);
        - ``notebook_timeout`` bounds the whole notebook, not just each cell.
        """

        sandbox = Bool(True, help="Run kernels in the bubblewrap sandbox (never switch this "
                                  "off for real grading)").tag(config=True)
        notebook_timeout = Integer(900, help="Seconds the whole notebook may run").tag(config=True)
        head_start = Bool(True, help="While a notebook runs, start the next notebook's kernel "
                                     "(HeadStart; sandboxed kernels only)").tag(config=True)

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.sandbox:
                sandbox.check_sandbox()  # a clear message before any kernel starts
                self.kernel_manager_class = sandbox.SandboxedKernelManager
            # Every output is in by the time the kernel stops: kill it (its sandbox with it)
            # rather than wait about a second for its exit handlers.
            self.shutdown_kernel = "immediate"
            # A kernel does its imports before it answers (xfer_helpers.warm_kernel): a busy,
            # slow machine needs more than nbclient's 60 s for that.
            self.startup_timeout = max(self.startup_timeout, 600)

        def create_kernel_manager(self):
            if not self.sandbox:
                return super().create_kernel_manager()
            name = self.kernel_name or self.nb.metadata.get("kernelspec", {}).get("name", "")
            self.km = HEAD_START.take(name, (self.resources.get("metadata") or {}).get("path"))
            return self.km or super().create_kernel_manager()

        async def async_start_new_kernel_client(self):
            if self.sandbox and self.head_start and HEAD_START.upcoming > 0 \
                    and HEAD_START.manager is None:
                manager = self.kernel_manager_class(kernel_name=self.km.kernel_name,
                                                    config=self.config)
                arguments = list(self.extra_arguments)  # as nbclient's async_start_new_kernel
                if self.ipython_hist_file and not any(
                        a.startswith("--HistoryManager.hist_file") for a in arguments):
                    arguments.append(f"--HistoryManager.hist_file={self.ipython_hist_file}")
                await manager.start_kernel(extra_arguments=arguments)
                HEAD_START.manager = manager
            return await super().async_start_new_kernel_client()

        start_new_kernel_client = run_sync(async_start_new_kernel_client)  # what nbconvert calls

        def preprocess(self, nb, resources=None, km=None):
            plan = {}
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code" and is_grade(cell):
                    visible, probe, checks = split_test_cell(cell.source)
                    plan[index] = (cell.source, checks)
                    cell.source = visible + (f"\n{probe}\n{SEND}" if checks else
                                             f"\n{probe}" if probe else "")
            deadline = time.monotonic() + self.notebook_timeout
            self.timeout_func = lambda cell: max(1, min(self.timeout or self.notebook_timeout,
                                                        int(deadline - time.monotonic())))
            try:
                nb, resources = super().preprocess(nb, resources, km=km)
            finally:
                for index, (source, _) in plan.items():
                    nb.cells[index].source = source
            for index, (_, checks) in plan.items():
                judge_cell(nb.cells[index], checks, expect_record=bool(checks))
            return nb, resources

    return SealedExecute


def __getattr__(name):  # PEP 562: nbgrader is imported only by the grader, never in a kernel
    if name == "SealedExecute":
        cls = _build_sealed_execute()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
