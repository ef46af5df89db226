"""NumPy arrays from ``xfer_helpers.datasets`` -> ``tf.data.Dataset`` for Keras.

The pixels are prepared once, framework-neutrally, by
:func:`xfer_helpers.datasets.prepare_images`, whose N x H x W x C layout is
already the one Keras uses. TensorFlow is imported (quietly) only when a
function here needs it.

Example:
    >>> import numpy as np
    >>> ds = to_tf_dataset(np.zeros((10, 8, 8, 3), np.float32), np.arange(10), batch_size=4)
    >>> [tuple(xb.shape) for xb, yb in ds]
    [(4, 8, 8, 3), (4, 8, 8, 3), (2, 8, 8, 3)]
"""
from __future__ import annotations

import numpy as np

from .. import datasets
from ..env import import_tensorflow

__all__ = ["prepare_images", "to_tf_dataset"]


def prepare_images(x: np.ndarray, size: int | None, mean, std) -> np.ndarray:
    """uint8 images -> float32 N x size x size x 3 (NHWC), normalised with mean/std.

    Same pixels as the PyTorch version; see :func:`xfer_helpers.datasets.prepare_images`.

    Example:
        >>> prepare_images(np.zeros((2, 28, 28), np.uint8), 32, mean=0.5, std=0.5).shape
        (2, 32, 32, 3)
    """
    return datasets.prepare_images(x, size, mean, std)


def to_tf_dataset(x, y=None, batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                  drop_remainder: bool = False):
    """A batched ``tf.data.Dataset`` over NumPy arrays (or a list of texts).

    Elements are ``(x_batch, y_batch)``, or just ``x_batch`` without ``y``.
    With ``shuffle=True`` the whole dataset is shuffled with ``seed``: a new
    order every epoch, the same sequence of orders every run. Without
    shuffling the batches hold the same values as
    :func:`xfer_helpers.pytorch.data.to_dataloader`'s.

    Example:
        >>> ds = to_tf_dataset(np.arange(6), np.arange(6), batch_size=3)
        >>> [yb.numpy().tolist() for _, yb in ds]
        [[0, 1, 2], [3, 4, 5]]
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    if y is not None and len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    tf = import_tensorflow()
    x = np.asarray(x)
    dataset = tf.data.Dataset.from_tensor_slices(x if y is None else (x, np.asarray(y)))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
