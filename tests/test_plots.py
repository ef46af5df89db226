"""Tests for xfer_helpers.plots: every function returns a Figure with the expected content."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from xfer_helpers import plots  # noqa: E402
from xfer_helpers.history import History  # noqa: E402


def make_history(framework: str, losses, accuracies=None) -> History:
    h = History(framework=framework)
    for epoch, loss in enumerate(losses, start=1):
        extra = {} if accuracies is None else {"val_accuracy": accuracies[epoch - 1]}
        h.append(epoch=epoch, loss=loss, lr=1e-3, seconds=1.0, samples_per_second=100.0, **extra)
    return h


def assert_saves_png(fig, tmp_path, name="figure.png"):
    path = tmp_path / name
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_learning_curves_one_panel_per_metric_one_line_per_run(tmp_path):
    open_before = plt.get_fignums()
    histories = {"PyTorch": make_history("torch", [1.0, 0.7, 0.5], [0.5, 0.6, 0.7]),
                 "Keras": make_history("keras", [1.1, 0.8, 0.6], [0.4, 0.6, 0.65])}
    fig = plots.plot_learning_curves(histories, metrics=("loss", "val_accuracy"))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["PyTorch", "Keras"]
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), [0.4, 0.6, 0.65])
    np.testing.assert_allclose(loss_ax.get_lines()[0].get_xdata(), [1, 2, 3])
    assert plt.get_fignums() == open_before, "the figure must not stay open in pyplot"
    assert_saves_png(fig, tmp_path)


def test_learning_curves_single_history_and_missing_metrics():
    fig = plots.plot_learning_curves(make_history("torch", [1.0, 0.5]), metrics=("loss",))
    assert len(fig.axes) == 1 and fig.axes[0].get_lines()[0].get_label() == "torch"
    # a run without val_accuracy is left out of that panel only
    fig = plots.plot_learning_curves({"a": make_history("a", [1.0], [0.5]),
                                      "b": make_history("b", [0.9])})
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 1
    with pytest.raises(KeyError, match="Available: .*loss"):
        plots.plot_learning_curves(make_history("a", [1.0]), metrics=("val_f1",))


def test_confusion_matrix_counts_and_normalisation(tmp_path):
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 0]
    fig = plots.plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), [[2, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_ylabel() == "True label"
    assert_saves_png(fig, tmp_path)
    fig = plots.plot_confusion_matrix(y_true, y_pred, ["a", "b", "c"], normalize=True)
    matrix = np.asarray(fig.axes[0].images[0].get_array())
    np.testing.assert_allclose(matrix.sum(1), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(matrix[0], [2 / 3, 1 / 3, 0])
    with pytest.raises(ValueError, match="same length"):
        plots.plot_confusion_matrix([0, 1], [0], ["a", "b"])


def test_image_grid_layout_titles_and_layouts(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, size=(5, 28, 28), dtype=np.uint8)
    fig = plots.show_image_grid(images, labels=[0, 1, 2, 1, 0], ncols=3,
                                class_names=["shirt", "shoe", "bag"])
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5
    assert [ax.get_title() for ax in shown] == ["shirt", "shoe", "bag", "shoe", "shirt"]
    np.testing.assert_array_equal(shown[2].images[0].get_array(), images[2])
    assert_saves_png(fig, tmp_path)
    chw = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    fig = plots.show_image_grid(chw, titles=["x", "y"])
    array = np.asarray(fig.axes[0].images[0].get_array())
    assert array.shape == (16, 16, 3) and array.min() >= 0.0 and array.max() <= 1.0
    assert fig.axes[1].get_title() == "y"
    with pytest.raises(ValueError, match="one entry per image"):
        plots.show_image_grid(images, labels=[0, 1])


@pytest.mark.parametrize("method", ["pca", pytest.param("tsne", marks=pytest.mark.slow)])
def test_embedding_2d_one_group_per_class(method, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    features = rng.normal(size=(60, 10)) + labels[:, None] * 5.0
    fig = plots.plot_embedding_2d(features, labels, method=method, class_names=["a", "b", "c"])
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(ax.collections) == 3
    assert [c.get_label() for c in ax.collections] == ["a", "b", "c"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 60
    # well-separated classes stay apart in 2-D: centres further apart than the spread
    centres = np.array([c.get_offsets().mean(0) for c in ax.collections])
    spread = max(np.asarray(c.get_offsets()).std(0).max() for c in ax.collections)
    assert np.linalg.norm(centres[0] - centres[1]) > 2 * spread
    assert_saves_png(fig, tmp_path)


def test_embedding_2d_bad_arguments():
    with pytest.raises(ValueError, match="pca, tsne"):
        plots.plot_embedding_2d(np.zeros((4, 3)), [0, 1, 0, 1], method="umap")
    with pytest.raises(ValueError, match="same length"):
        plots.plot_embedding_2d(np.zeros((4, 3)), [0, 1])
