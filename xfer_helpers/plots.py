"""Plots the chapters share: learning curves, confusion matrices, image grids, embeddings.

matplotlib only (works with the non-interactive Agg backend). Every function
returns the ``Figure`` and leaves nothing open in pyplot: in a notebook the
figure shows when it is the cell's last value (or with ``display(fig)``), and a
script saves it with ``fig.savefig(path)``.

Example:
    >>> from xfer_helpers.history import History
    >>> h = History()
    >>> h.append(epoch=1, loss=1.0, val_accuracy=0.5, lr=1e-3, seconds=1.0, samples_per_second=10.0)
    >>> h.append(epoch=2, loss=0.6, val_accuracy=0.7, lr=1e-3, seconds=1.0, samples_per_second=10.0)
    >>> len(plot_learning_curves({"PyTorch": h}).axes)
    2
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .history import History

__all__ = ["plot_learning_curves", "plot_confusion_matrix", "show_image_grid", "plot_embedding_2d"]


def _new_figure(width: float, height: float):
    # Made by pyplot (so Jupyter knows how to show it), then closed at once so that
    # it is not shown a second time at the end of the cell and does not pile up.
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)
    return fig


def plot_learning_curves(histories: History | Mapping[str, History],
                         metrics: Sequence[str] = ("loss", "val_accuracy")):
    """One panel per metric, one line per run (e.g. PyTorch vs Keras), over epochs.

    A run that did not record a metric is left out of that panel. A metric
    that no run recorded raises ``KeyError`` listing the ones available.

    Example:
        >>> h = History()
        >>> h.append(epoch=1, loss=0.9, lr=1e-3, seconds=1.0, samples_per_second=10.0)
        >>> fig = plot_learning_curves(h, metrics=("loss",))
        >>> fig.axes[0].get_ylabel()
        'loss'
    """
    if isinstance(histories, History):
        histories = {histories.framework or "run": histories}
    if not histories:
        raise ValueError("plot_learning_curves needs at least one history")
    if isinstance(metrics, str):
        metrics = (metrics,)
    available = sorted({k for h in histories.values() for k in h.keys()})
    for metric in metrics:
        if metric not in available:
            raise KeyError(f"No run recorded {metric!r}. Available: {', '.join(available)}")
    fig = _new_figure(4.2 * len(metrics), 3.2)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for name, history in histories.items():
            if metric in history.keys():
                ax.plot(history["epoch"], history[metric], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def plot_confusion_matrix(y_true, y_pred, class_names: Sequence[str] | None = None,
                          normalize: bool = False, title: str | None = None):
    """Confusion matrix: rows are the true classes, columns the predictions.

    ``normalize=True`` shows each row as fractions (the recall of each class
    is on the diagonal).

    Example:
        >>> fig = plot_confusion_matrix([0, 1, 1], [0, 1, 0], ["cat", "dog"])
        >>> fig.axes[0].get_xlabel()
        'Predicted label'
    """
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} "
                         f"and {len(y_pred)}")
    n_classes = len(class_names) if class_names is not None else int(max(y_true.max(), y_pred.max())) + 1
    matrix = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes),
                              normalize="true" if normalize else None)
    fig = _new_figure(1.0 + 0.55 * n_classes + 2, 0.55 * n_classes + 2)
    ax = fig.subplots()
    ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(
        ax=ax, cmap="Blues", colorbar=False, values_format=".2f" if normalize else "d",
        xticks_rotation=45 if n_classes > 4 else "horizontal")
    ax.set_title(title or ("Confusion matrix (rows sum to 1)" if normalize else "Confusion matrix"))
    return fig


def _displayable(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
        image = image.transpose(1, 2, 0)  # C x H x W (PyTorch) -> H x W x C
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:  # normalised floats: stretch to 0..1 for display
        low, high = float(image.min()), float(image.max())
        image = (image - low) / (high - low) if high > low else np.zeros_like(image, dtype=float)
    return image


def show_image_grid(images, labels=None, ncols: int = 8, titles: Sequence[str] | None = None,
                    class_names: Sequence[str] | None = None, cell_size: float = 1.2):
    """Show images in a grid, titled with their labels (or class names, or ``titles``).

    Accepts N x H x W, N x H x W x C or N x C x H x W arrays, uint8 or float.

    Example:
        >>> fig = show_image_grid(np.zeros((5, 8, 8), np.uint8), labels=[0, 1, 2, 3, 4], ncols=4)
        >>> len(fig.axes)
        8
    """
    images = np.asarray(images)
    n = len(images)
    if n == 0:
        raise ValueError("show_image_grid needs at least one image")
    if not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols!r}")
    for name, values in (("labels", labels), ("titles", titles)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} must have one entry per image: {len(values)} for {n} images")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = _new_figure(cell_size * ncols, cell_size * nrows + (0.25 * nrows if labels is not None
                                                             or titles is not None else 0))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        image = _displayable(images[i])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
        elif labels is not None:
            label = labels[i]
            ax.set_title(class_names[int(label)] if class_names is not None else str(label), fontsize=8)
    return fig


def plot_embedding_2d(features, labels, method: str = "pca", class_names: Sequence[str] | None = None,
                      seed: int = 0, title: str | None = None):
    """Scatter plot of features reduced to 2-D with PCA or t-SNE, coloured by label.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> fig = plot_embedding_2d(rng.normal(size=(30, 5)), np.arange(30) % 3, method="pca")
        >>> len(fig.axes[0].collections)
        3
    """
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"features and labels must have the same length, got {len(features)} "
                         f"and {len(labels)}")
    methods = ("pca", "tsne")
    if method not in methods:
        raise ValueError(f"Unknown method {method!r}. Valid methods: {', '.join(methods)}")
    if method == "pca":
        from sklearn.decomposition import PCA
        points = PCA(n_components=2, random_state=seed).fit_transform(features)
    else:
        from sklearn.manifold import TSNE
        perplexity = min(30.0, (len(features) - 1) / 3)
        points = TSNE(n_components=2, perplexity=perplexity, init="pca",
                      random_state=seed).fit_transform(features)
    fig = _new_figure(5.0, 4.2)
    ax = fig.subplots()
    for label in np.unique(labels):
        mask = labels == label
        name = class_names[int(label)] if class_names is not None else str(label)
        ax.scatter(points[mask, 0], points[mask, 1], s=10, alpha=0.8, label=name)
    ax.set_title(title or f"Features in 2-D ({'PCA' if method == 'pca' else 't-SNE'})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=8, loc="best")
    return fig
