"""Overhead of ``xfer_helpers.keras.fit`` over a plain ``model.fit(verbose=0)``.

Both run the same small CNN on the same synthetic data, one epoch per call, on
the same model (so they share Keras's compiled train function), alternating
plain and helper calls so that machine noise hits both alike. One warm-up epoch
each is not timed. Reported: median (and fastest) seconds per epoch for each,
and the overhead ratio: the median over repeats of helper time / plain time of
the same repeat (target <= 1.05). Pairing runs that are close in time keeps
the ratio steadier than the epoch times on a busy machine, but a loaded
machine still moves it by a few per cent; compare runs from a quiet machine.
The helper runs with ``progress=False``; a last row times it with the tqdm
progress bar on (output discarded), for information.
``keras_fit_own_code_ms`` times the helper's own code per call directly
(wrapper and callbacks), which machine noise cannot hide.

Run alone: ``python benchmarks/bench_keras_fit.py`` prints the rows.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time

TARGET_RATIO = 1.05


def _model_and_data(n_samples: int, image_size: int, seed: int):
    from xfer_helpers.env import import_tensorflow
    import_tensorflow()
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_samples, image_size, image_size, 3)).astype("float32")
    y = rng.integers(0, 10, n_samples).astype("int32")
    model = keras.Sequential([
        keras.Input((image_size, image_size, 3)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return model, x, y


def _own_code_ms(model, x, y, batch_size: int, calls: int) -> float:
    """Median milliseconds per helper fit() call spent outside Keras: the wrapper and our callbacks.

    Timed directly (Keras's model.fit and the callback methods are wrapped with
    timers), so machine noise in the epochs themselves does not blur it.
    """
    from xfer_helpers.keras.training import EpochRecorder, fit

    spent = {"keras": 0.0, "callbacks": 0.0}

    def timed(function, bucket):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[bucket] += time.perf_counter() - start
        return wrapper

    hooks = ("on_epoch_begin", "on_epoch_end", "on_test_begin")
    saved_hooks = {name: getattr(EpochRecorder, name) for name in hooks}
    keras_fit = model.fit
    per_call = []
    try:
        for name in hooks:
            setattr(EpochRecorder, name, timed(saved_hooks[name], "callbacks"))
        object.__setattr__(model, "fit", timed(keras_fit, "keras"))
        for _ in range(calls):
            spent.update(keras=0.0, callbacks=0.0)
            start = time.perf_counter()
            fit(model, x, y, epochs=1, batch_size=batch_size, progress=False)
            total = time.perf_counter() - start
            per_call.append(total - spent["keras"] + spent["callbacks"])
    finally:
        for name, hook in saved_hooks.items():
            setattr(EpochRecorder, name, hook)
        object.__delattr__(model, "fit")
    return 1000 * statistics.median(per_call)


def run(repeats: int = 15, n_samples: int = 1024, image_size: int = 32, batch_size: int = 64,
        seed: int = 0) -> list[dict]:
    """Time plain vs helper-wrapped Keras fit; return rows {"name", "value", "unit", ...}.

    Example:
        >>> rows = run(repeats=3)                                    # doctest: +SKIP
        >>> [r["name"] for r in rows][-2]                             # doctest: +SKIP
        'keras_fit_overhead_ratio'
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    from xfer_helpers.env import import_tensorflow
    tf = import_tensorflow()
    from xfer_helpers.keras.training import fit

    model, x, y = _model_and_data(n_samples, image_size, seed)

    def plain():
        model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)

    def helper(progress=False):
        fit(model, x, y, epochs=1, batch_size=batch_size, progress=progress)

    def helper_with_bar():
        saved = os.environ.get("XFER_PROGRESS")
        os.environ["XFER_PROGRESS"] = "1"  # show the bar even if the caller switched bars off
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                helper(progress=True)
        finally:
            if saved is None:
                del os.environ["XFER_PROGRESS"]
            else:
                os.environ["XFER_PROGRESS"] = saved

    runs = {"plain": plain, "helper": helper, "helper_progress": helper_with_bar}
    times = {name: [] for name in runs}
    for call in runs.values():  # warm-up: tracing, first-epoch allocations
        call()
    for i in range(repeats):
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]  # alternate, so drift hits all alike
        for name in order:
            start = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - start)

    median = {name: statistics.median(values) for name, values in times.items()}
    fastest = {name: min(values) for name, values in times.items()}

    def paired_ratio(name):  # median over repeats of (this run / the plain run next to it)
        return statistics.median(t / p for t, p in zip(times[name], times["plain"]))

    ratio = paired_ratio("helper")

    own_ms = _own_code_ms(model, x, y, batch_size, calls=repeats)
    common = {"repeats": repeats, "samples": n_samples, "batch_size": batch_size, "image_size": image_size,
              "device": "gpu" if tf.config.list_logical_devices("GPU") else "cpu"}
    return [
        {"name": "keras_fit_plain_epoch_s", "value": median["plain"], "unit": "s", "min": fastest["plain"],
         **common},
        {"name": "keras_fit_helper_epoch_s", "value": median["helper"], "unit": "s", "min": fastest["helper"],
         **common},
        {"name": "keras_fit_overhead_ratio", "value": ratio, "unit": "x", "target": f"<= {TARGET_RATIO}",
         "ok": ratio <= TARGET_RATIO, "ratio_of_medians": median["helper"] / median["plain"],
         "ratio_of_min": fastest["helper"] / fastest["plain"], **common},
        {"name": "keras_fit_own_code_ms", "value": own_ms, "unit": "ms",
         "note": "time per fit() call spent in xfer_helpers code (wrapper + callbacks), median", **common},
        {"name": "keras_fit_progress_bar_ratio", "value": paired_ratio("helper_progress"),
         "unit": "x", "note": "helper with the tqdm bar on, for information", **common},
    ]


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
