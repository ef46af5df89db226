"""Keras training helpers: ``fit``, ``evaluate`` and ``predict`` as on the PyTorch side, mixed
precision, multi-GPU scope.

``fit`` wraps ``model.fit`` and returns the same :class:`xfer_helpers.history.History`
as the PyTorch side: one record per epoch with ``epoch`` (1-based), ``loss``,
metrics by their plain names (``accuracy``), ``val_*``, ``lr``, ``seconds`` and
``samples_per_second``. Two small callbacks do the work and can be reused on
their own: :class:`EpochRecorder` (timing, learning rate, throughput) and
:class:`TqdmProgress` (a tqdm.auto bar that renders as a widget in JupyterLab).

Example:
    >>> from xfer_helpers.keras import fit                       # doctest: +SKIP
    >>> history = fit(model, x, y, validation_data=(xv, yv), epochs=3, batch_size=64)  # doctest: +SKIP
    >>> history["val_accuracy"]                                  # doctest: +SKIP
    [0.61, 0.70, 0.74]
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time

import numpy as np

from ..env import import_tensorflow, progress_enabled
from ..history import History

tf = import_tensorflow()  # first, so TensorFlow's start-up logs stay quiet
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras  # noqa: E402

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"xfer_helpers.keras needs the TensorFlow backend of Keras, but KERAS_BACKEND is "
                      f"{keras.backend.backend()!r}. Unset KERAS_BACKEND or set it to 'tensorflow'.")

# Keras names accuracy after the metric class; the course uses the plain name on both sides.
PLAIN_METRIC_NAMES = {"sparse_categorical_accuracy": "accuracy", "categorical_accuracy": "accuracy",
                      "binary_accuracy": "accuracy"}


def plain_metric_name(key: str) -> str:
    """``"val_sparse_categorical_accuracy"`` -> ``"val_accuracy"``; other names are kept."""
    prefix = "val_" if key.startswith("val_") else ""
    base = key[len(prefix):]
    return prefix + PLAIN_METRIC_NAMES.get(base, base)


def learning_rate_of(optimizer) -> float:
    """The optimizer's current learning rate as a float (schedules are evaluated at the current step).

    Loss-scale wrappers are looked through; for a ``keras.optimizers.MultiOptimizer``
    (discriminative learning rates) the first sub-optimizer's rate is returned,
    which is the head's one for :func:`xfer_helpers.keras.transfer.discriminative_optimizer`.

    Example:
        >>> round(learning_rate_of(keras.optimizers.SGD(0.1)), 6)
        0.1
    """
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if isinstance(optimizer, keras.optimizers.MultiOptimizer):
        optimizer = getattr(optimizer.optimizers[0], "inner_optimizer", optimizer.optimizers[0])
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class EpochRecorder(keras.callbacks.Callback):
    """Callback that writes one course-format record per epoch into a History.

    ``seconds`` is the whole epoch (training and validation); ``samples_per_second``
    is training samples divided by the training part only. ``lr`` is read when the
    epoch starts, i.e. the rate of its first step (after LR-scheduler callbacks that
    run earlier in the callback list). ``samples_per_epoch`` may be None (unknown):
    then the count is optimizer steps times ``batch_size`` (NaN if that is unknown too).

    Example:
        >>> history = History(framework="keras")
        >>> recorder = EpochRecorder(history, samples_per_epoch=len(x), batch_size=32)  # doctest: +SKIP
        >>> model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[recorder])   # doctest: +SKIP
    """

    def __init__(self, history: History, samples_per_epoch: int | None = None,
                 batch_size: int | None = None):
        super().__init__()
        self.history = history
        self.samples_per_epoch = samples_per_epoch
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self._lr = learning_rate_of(self.model.optimizer)
        self._first_step = int(self.model.optimizer.iterations)
        self._train_end = None
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):  # validation starts: the training part of the epoch is over
        if getattr(self, "_train_end", 0) is None:
            self._train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        end = time.perf_counter()
        train_seconds = (self._train_end or end) - self._start
        steps = int(self.model.optimizer.iterations) - self._first_step
        samples, batch = self.samples_per_epoch, self.batch_size
        if samples is None or batch is None or steps != math.ceil(samples / batch):
            samples = steps * batch if batch else math.nan  # dataset, unknown size or partial epoch
        record = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            if key not in ("learning_rate", "lr") and np.isscalar(value):  # LR callbacks log it; ours is "lr"
                plain = plain_metric_name(key)
                record[plain if plain not in record else key] = value
        record.update(lr=self._lr, seconds=end - self._start,
                      samples_per_second=samples / train_seconds if train_seconds > 0 else math.nan)
        self.history.append(**record)


class TqdmProgress(keras.callbacks.Callback):
    """Callback showing an epoch bar and a batch bar with tqdm.auto (a widget in JupyterLab).

    The batch bar advances in ``on_train_batch_begin``, so Keras keeps dispatching
    batch-end callbacks asynchronously (no extra device synchronisation per step).
    Outside notebooks the bars go to stdout, as on the PyTorch side: under nbgrader,
    any stderr output would zero a test cell.

    Example:
        >>> model.fit(x, y, epochs=3, verbose=0, callbacks=[TqdmProgress()])  # doctest: +SKIP
    """

    def __init__(self, description: str = "fit"):
        super().__init__()
        self.description = description
        self.epoch_bar = self.batch_bar = None

    def on_train_begin(self, logs=None):
        from tqdm.auto import tqdm
        self._tqdm = tqdm
        self.epoch_bar = tqdm(total=self.params.get("epochs"), desc=self.description, unit="epoch",
                              file=sys.stdout, dynamic_ncols=True)

    def on_epoch_begin(self, epoch, logs=None):
        self.batch_bar = self._tqdm(total=self.params.get("steps"), desc=f"epoch {epoch + 1}",
                                    unit="batch", leave=False, file=sys.stdout, dynamic_ncols=True)

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_bar.update(batch - self.batch_bar.n)  # `batch` steps are done

    def on_epoch_end(self, epoch, logs=None):
        self.batch_bar.close()
        shown = {plain_metric_name(k): f"{v:.4g}" for k, v in (logs or {}).items()
                 if np.isscalar(v) and k != "learning_rate"}
        self.epoch_bar.set_postfix(shown, refresh=False)
        self.epoch_bar.update(1)

    def on_train_end(self, logs=None):
        for bar in (self.batch_bar, self.epoch_bar):
            if bar is not None:
                bar.close()


def _is_dataset(data) -> bool:
    return isinstance(data, tf.data.Dataset)


def _n_samples(data) -> int | None:
    """Samples in an array-like input (or a dict/list/tuple of them, which must agree)."""
    leaves = tf.nest.flatten(data)
    lengths = {len(leaf) for leaf in leaves if hasattr(leaf, "__len__") and hasattr(leaf, "shape")}
    if len(lengths) > 1:
        raise ValueError(f"All inputs must have the same number of samples, got lengths {sorted(lengths)}")
    return lengths.pop() if lengths else None


def _dataset_batch_size(dataset) -> int | None:
    """Batch size of a batched tf.data.Dataset: from its spec, else from its first batch."""
    first = tf.nest.flatten(dataset.element_spec)[0]
    if first.shape.rank and first.shape[0] is not None:
        return int(first.shape[0])
    for batch in dataset.take(1):  # one batch is read; exact only when all batches are full
        return int(tf.shape(tf.nest.flatten(batch)[0])[0])
    return None


def _validate(model, x, y, epochs, batch_size, validation_data, early_stopping_patience, monitor, kwargs):
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive whole number or None, got {batch_size!r}")
    if not getattr(model, "compiled", False):
        raise ValueError("The model is not compiled yet: call model.compile(optimizer=..., loss=..., "
                         "metrics=['accuracy']) before fit().")
    if "verbose" in kwargs:
        raise ValueError("fit() draws its own progress bar: use progress=True/False instead of verbose.")
    if _is_dataset(x):
        if y is not None:
            raise ValueError("y must be None when x is a tf.data.Dataset (the dataset yields (x, y) pairs).")
        if batch_size is not None:
            raise ValueError("batch_size must be None for a tf.data.Dataset: batch the dataset itself, "
                             "e.g. dataset.batch(64).")
        if int(x.cardinality()) == tf.data.INFINITE_CARDINALITY and not kwargs.get("steps_per_epoch"):
            raise ValueError("This dataset never ends (it repeats), so an epoch would never end either: "
                             "pass steps_per_epoch=<batches in one pass>, e.g. math.ceil(n_examples / batch_size).")
    elif y is not None:
        nx, ny = _n_samples(x), _n_samples(y)
        if nx is not None and ny is not None and nx != ny:
            raise ValueError(f"x and y must have the same number of samples, got {nx} and {ny}.")
    if early_stopping_patience is not None:
        if early_stopping_patience < 0:
            raise ValueError(f"early_stopping_patience must be 0 or more, got {early_stopping_patience}")
        if monitor.startswith("val_") and validation_data is None and not kwargs.get("validation_split"):
            raise ValueError(f"Early stopping on {monitor!r} needs validation_data (or validation_split).")


def build_before_tracing(model, x_or_dataset, y=None) -> bool:
    """Create a compiled model's metric and optimizer variables now, from the data's shapes only.

    Without it, TensorFlow meets the new variables while it traces the training step and
    traces the whole step a second time (about 6 s for EfficientNet-Lite0 on a 2-core CPU,
    every ``compile``). Reads no batch, so a shuffled dataset's order is unchanged. Returns
    False (and changes nothing) where Keras's internals differ: Keras then builds them itself.
    """
    if _is_dataset(x_or_dataset):
        spec = x_or_dataset.element_spec
        batch = spec if isinstance(spec, tuple) else (spec,)
    elif y is not None and _n_samples(x_or_dataset) is not None:
        batch = (tf.nest.map_structure(lambda a: np.asarray(a)[:1], x_or_dataset), np.asarray(y)[:1])
    else:
        return False
    try:
        model._symbolic_build(data_batch=batch)     # Keras 3's own pre-build (trainers/trainer.py)
    except Exception:   # noqa: BLE001 - a Keras without it or an unusual model: nothing lost
        return False
    return True


def build_optimizer(optimizer, variables) -> None:
    """Create an optimizer's slots (Adam's moments ...) before a ``tf.function`` step first runs.

    Created inside the step, they make TensorFlow trace it twice. Every variable must exist.
    """
    if not optimizer.built:
        optimizer.build(list(variables))


def fit(model, x_or_dataset, y=None, *, validation_data=None, epochs: int, batch_size: int | None = None,
        callbacks=None, early_stopping_patience: int | None = None, monitor: str = "val_loss",
        progress: bool = True, **kwargs) -> History:
    """Train a compiled Keras model and return the course's per-epoch History.

    ``x_or_dataset`` is an array (with labels ``y``) or a batched ``tf.data.Dataset``
    of ``(x, y)`` pairs. ``early_stopping_patience=N`` stops after N epochs without
    improvement of ``monitor`` and restores the best weights. Progress is a tqdm
    bar, silent with ``progress=False`` or ``XFER_PROGRESS=0``. Other keyword
    arguments (``shuffle``, ``class_weight``, ``validation_split`` ...) go to
    ``model.fit``, which always runs with ``verbose=0``.

    Example:
        >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
        ...               metrics=["accuracy"])                    # doctest: +SKIP
        >>> history = fit(model, x, y, validation_data=(xv, yv), epochs=5, batch_size=64,
        ...               early_stopping_patience=2)               # doctest: +SKIP
        >>> history.best("val_accuracy")["epoch"]                   # doctest: +SKIP
        3
    """
    _validate(model, x_or_dataset, y, epochs, batch_size, validation_data,
              early_stopping_patience, monitor, kwargs)
    if _is_dataset(x_or_dataset):
        samples, step_size = None, _dataset_batch_size(x_or_dataset)
        kwargs.setdefault("shuffle", False)  # Keras ignores it for datasets (shuffle the dataset itself)
    else:
        samples = _n_samples(x_or_dataset)
        if samples is not None and kwargs.get("validation_split"):
            samples = math.floor(samples * (1 - kwargs["validation_split"]))  # as Keras splits
        step_size = batch_size or (32 if samples is not None else None)  # Keras's default batch size
    history = History(framework="keras")
    extra = list(callbacks or [])
    if early_stopping_patience is not None:
        extra.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping_patience,
                                                   restore_best_weights=True))
    if progress_enabled(progress):
        extra.append(TqdmProgress())
    # The recorder runs last, so it sees the learning rate that LR-scheduler callbacks just set.
    extra.append(EpochRecorder(history, samples_per_epoch=samples, batch_size=step_size))
    build_before_tracing(model, x_or_dataset, y)   # one trace of the training step instead of two
    model.fit(x_or_dataset, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size,
              callbacks=extra, verbose=0, **kwargs)
    return history


def evaluate(model, x_or_dataset, y=None, *, batch_size: int = 256) -> dict:
    """Mean loss and metrics of a compiled model, by their plain names, as on the PyTorch side.

    ``x_or_dataset`` is an array (with labels ``y``) or a batched ``tf.data.Dataset`` of
    ``(x, y)`` pairs; Keras runs in inference mode (dropout off, BatchNorm's moving averages).

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
        >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ...               metrics=["accuracy"])
        >>> sorted(evaluate(model, np.zeros((4, 2), np.float32), np.zeros(4, np.int64)))
        ['accuracy', 'loss']
    """
    if getattr(model, "compiled_loss", None) is None and not getattr(model, "loss", None):
        raise ValueError("evaluate needs a compiled model: call model.compile(loss=..., "
                         "metrics=[...]) first")
    if y is not None and _is_dataset(x_or_dataset):
        raise ValueError("pass labels inside the dataset, not as y")
    result = model.evaluate(x_or_dataset, y, batch_size=None if _is_dataset(x_or_dataset)
                            else batch_size, verbose=0, return_dict=True)
    return {plain_metric_name(k): float(v) for k, v in result.items()}


def predict(model, data, *, batch_size: int = 256, probabilities: bool = False) -> np.ndarray:
    """Model outputs (logits, or softmax probabilities) for an array or a dataset, as NumPy.

    The PyTorch ``predict``'s twin: inference mode, in batches of ``batch_size``.

    Example:
        >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        >>> predict(model, np.ones((5, 2), np.float32), probabilities=True).sum(axis=1).round(6)
        array([1., 1., 1., 1., 1.], dtype=float32)
    """
    out = model.predict(data, batch_size=None if _is_dataset(data) else batch_size, verbose=0)
    out = np.asarray(out, np.float32)
    return keras.ops.convert_to_numpy(keras.ops.softmax(out, axis=-1)) if probabilities else out


def set_mixed_precision(enabled: bool = True, dtype: str = "float16") -> str:
    """Switch Keras's global dtype policy; return the policy name now in force.

    - ``enabled=False`` -> ``"float32"``.
    - ``dtype="float16"`` -> ``"mixed_float16"`` when a GPU is visible. On a CPU,
      float16 maths is emulated and slower than float32, so the policy quietly
      stays ``"float32"`` (no warning; check the returned name).
    - ``dtype="bfloat16"`` -> ``"mixed_bfloat16"`` on any device (TPUs and recent
      CPUs/GPUs run it natively).

    Build models *after* this call: layers take the policy when they are created.
    Keep the last layer in float32 (``build_classifier`` does) for stable losses.

    Example:
        >>> set_mixed_precision(True)      # 'float32' on a CPU            # doctest: +SKIP
        'mixed_float16'
        >>> set_mixed_precision(False)
        'float32'
    """
    if dtype not in ("float16", "bfloat16"):
        raise ValueError(f"dtype must be 'float16' or 'bfloat16', got {dtype!r}")
    if not enabled:
        policy = "float32"
    elif dtype == "bfloat16":
        policy = "mixed_bfloat16"
    else:
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


@contextlib.contextmanager
def distribution_scope():
    """Context manager: build and compile models inside it to use every visible GPU.

    With more than one GPU it enters ``tf.distribute.MirroredStrategy().scope()``
    (one model copy per GPU, gradients averaged, each batch split across GPUs);
    otherwise the default strategy's scope, which changes nothing. It yields the
    strategy: scale the global batch size by ``strategy.num_replicas_in_sync``.
    ``fit`` itself can run outside the scope.

    Example:
        >>> with distribution_scope() as strategy:                 # doctest: +SKIP
        ...     model = build_classifier(backbone, num_classes=10)
        ...     model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        >>> batch_size = 64 * strategy.num_replicas_in_sync          # doctest: +SKIP
    """
    gpus = tf.config.list_logical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    with strategy.scope():
        yield strategy
