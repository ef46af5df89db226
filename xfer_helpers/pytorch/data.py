"""NumPy arrays from ``xfer_helpers.datasets`` -> PyTorch tensors and DataLoaders.

The pixels are prepared once, framework-neutrally, by
:func:`xfer_helpers.datasets.prepare_images`; this module only changes the
layout to PyTorch's N x C x H x W and batches the arrays.

Example:
    >>> import numpy as np
    >>> loader = to_dataloader(np.zeros((10, 3, 8, 8), np.float32), np.arange(10), batch_size=4)
    >>> [tuple(xb.shape) for xb, yb in loader]
    [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)]
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import datasets

__all__ = ["ArrayDataset", "prepare_images", "to_dataloader"]


def prepare_images(x: np.ndarray, size: int | None, mean, std) -> torch.Tensor:
    """uint8 images -> float32 tensor N x 3 x size x size, normalised with mean/std.

    Same pixels as the Keras version; see :func:`xfer_helpers.datasets.prepare_images`.

    Example:
        >>> prepare_images(np.zeros((2, 28, 28), np.uint8), 32, mean=0.5, std=0.5).shape
        torch.Size([2, 3, 32, 32])
    """
    nhwc = datasets.prepare_images(x, size, mean, std)
    return torch.from_numpy(datasets.to_nchw(nhwc))


class ArrayDataset(Dataset):
    """A map-style Dataset over an array (or list) ``x`` and optional labels ``y``.

    ``transform``, if given, is applied to each ``x[i]`` when it is read.

    Example:
        >>> ds = ArrayDataset(np.arange(6).reshape(3, 2), np.array([0, 1, 0]))
        >>> len(ds), ds[1]
        (3, (array([2, 3]), np.int64(1)))
    """

    def __init__(self, x, y=None, transform: Callable | None = None):
        if y is not None and len(x) != len(y):
            raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
        self.x, self.y, self.transform = x, (None if y is None else np.asarray(y)), transform

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        item = self.x[index]
        if self.transform is not None:
            item = self.transform(item)
        return item if self.y is None else (item, self.y[index])


def to_dataloader(x, y=None, batch_size: int = 32, shuffle: bool = False, seed: int = 0,
                  transform: Callable | None = None, drop_last: bool = False,
                  num_workers: int = 0) -> DataLoader:
    """A DataLoader over NumPy arrays; shuffling is seeded and so reproducible.

    Batches are ``(x_batch, y_batch)`` tensors, or just ``x_batch`` without
    ``y``. Texts come out as a sequence of strings. The shuffling order comes
    from a ``torch.Generator`` seeded with ``seed``: a new order every epoch,
    the same sequence of orders every run.

    Example:
        >>> loader = to_dataloader(np.arange(6), np.arange(6), batch_size=3, shuffle=True, seed=0)
        >>> [yb.tolist() for _, yb in loader] == [yb.tolist() for _, yb in
        ...     to_dataloader(np.arange(6), np.arange(6), batch_size=3, shuffle=True, seed=0)]
        True
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    dataset = ArrayDataset(x, y, transform)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=drop_last, num_workers=num_workers)
