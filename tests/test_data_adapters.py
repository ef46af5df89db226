"""Tests for the framework data adapters: same arrays -> same batches in PyTorch and Keras."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xfer_helpers import datasets as ds

torch = pytest.importorskip("torch")
from xfer_helpers.pytorch.data import ArrayDataset, prepare_images as torch_prepare  # noqa: E402
from xfer_helpers.pytorch.data import to_dataloader  # noqa: E402


@pytest.fixture(scope="module")
def images():
    d = ds.load_fashion_mnist(n_train=50, seed=0)
    return ds.prepare_images(d.x_train, size=32, mean=0.5, std=0.5), d.y_train


# ------------------------------------------------------------------- PyTorch
def test_dataloader_keeps_order_without_shuffle(images):
    x, y = images
    batches = list(to_dataloader(x, y, batch_size=16))
    assert [len(yb) for _, yb in batches] == [16, 16, 16, 2]
    xb, yb = batches[0]
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    np.testing.assert_array_equal(torch.cat([b for b, _ in batches]).numpy(), x)
    np.testing.assert_array_equal(torch.cat([b for _, b in batches]).numpy(), y)


def test_dataloader_shuffle_is_seeded_and_a_permutation():
    x = np.arange(100)

    def epoch_orders(seed):
        loader = to_dataloader(x, x, batch_size=10, shuffle=True, seed=seed)
        return [torch.cat([yb for _, yb in loader]).tolist() for _ in range(2)]

    first, second = epoch_orders(0)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert first != second, "each epoch should have a new order"
    assert epoch_orders(0) == [first, second], "same seed, same orders"
    assert epoch_orders(1)[0] != first


def test_dataloader_without_labels_transform_and_texts():
    loader = to_dataloader(np.arange(6, dtype=np.float32), batch_size=4, transform=lambda v: v * 2)
    batches = list(loader)
    assert isinstance(batches[0], torch.Tensor)
    assert torch.cat(batches).tolist() == [0, 2, 4, 6, 8, 10]
    texts = ["a", "b", "c"]
    xb, yb = next(iter(to_dataloader(texts, np.array([0, 1, 2]), batch_size=3)))
    assert list(xb) == texts and yb.tolist() == [0, 1, 2]


@pytest.mark.parametrize("kwargs", [{"y": np.arange(3)}, {"batch_size": 0}, {"seed": -1}])
def test_dataloader_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        to_dataloader(np.zeros((4, 2)), **({"y": np.arange(4)} | kwargs))


def test_array_dataset_checks_lengths():
    with pytest.raises(ValueError, match="same length"):
        ArrayDataset(np.zeros(3), np.zeros(4))


def test_torch_prepare_images_is_the_neutral_version_in_nchw():
    x = ds.load_fashion_mnist(n_train=4, seed=0).x_train
    neutral = ds.prepare_images(x, 40, mean=0.5, std=0.5)
    nchw = torch_prepare(x, 40, mean=0.5, std=0.5)
    assert tuple(nchw.shape) == (4, 3, 40, 40) and nchw.dtype == torch.float32
    np.testing.assert_array_equal(nchw.numpy(), neutral.transpose(0, 3, 1, 2))


# ------------------------------------------------------------ TensorFlow/Keras
@pytest.mark.slow
def test_tf_and_torch_batches_are_identical(images):
    pytest.importorskip("tensorflow")
    from xfer_helpers.keras.data import prepare_images as keras_prepare
    from xfer_helpers.keras.data import to_tf_dataset
    x, y = images
    torch_batches = list(to_dataloader(torch_prepare(ds.load_fashion_mnist(n_train=50, seed=0).x_train,
                                                     32, 0.5, 0.5).numpy(), y, batch_size=16))
    tf_batches = list(to_tf_dataset(x, y, batch_size=16))
    assert len(tf_batches) == len(torch_batches) == 4
    for (tx, ty), (kx, ky) in zip(torch_batches, tf_batches):
        assert kx.dtype.name == "float32" and ky.dtype.name == "int64"
        np.testing.assert_array_equal(tx.numpy().transpose(0, 2, 3, 1), kx.numpy())
        np.testing.assert_array_equal(ty.numpy(), ky.numpy())
    x_uint8 = ds.load_fashion_mnist(n_train=5, seed=0).x_train
    np.testing.assert_array_equal(keras_prepare(x_uint8, 32, 0.5, 0.5),
                                  ds.prepare_images(x_uint8, 32, 0.5, 0.5))


@pytest.mark.slow
def test_tf_dataset_shuffle_texts_and_errors():
    pytest.importorskip("tensorflow")
    from xfer_helpers.keras.data import to_tf_dataset
    x = np.arange(100)

    def epoch_orders(seed):
        dataset = to_tf_dataset(x, x, batch_size=10, shuffle=True, seed=seed)
        return [np.concatenate([yb.numpy() for _, yb in dataset]).tolist() for _ in range(2)]

    first, second = epoch_orders(0)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert first != second
    assert epoch_orders(0) == [first, second]
    assert epoch_orders(1)[0] != first
    only_x = [b.numpy().tolist() for b in to_tf_dataset(x[:5], batch_size=2)]
    assert only_x == [[0, 1], [2, 3], [4]]
    texts, labels = next(iter(to_tf_dataset(["good", "bad"], [2, 0], batch_size=2)))
    assert [t.decode() for t in texts.numpy()] == ["good", "bad"] and labels.numpy().tolist() == [2, 0]
    with pytest.raises(ValueError, match="same length"):
        to_tf_dataset(x, x[:3])
    with pytest.raises(ValueError, match="batch_size"):
        to_tf_dataset(x, x, batch_size=0)


# ---------------------------------------------------------------- isolation
def _imported(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print(' '.join(m for m in ('torch', 'tensorflow') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_neutral_modules_import_no_framework():
    assert _imported("import xfer_helpers.datasets, xfer_helpers.plots") == set()


def test_keras_data_does_not_import_torch():
    assert _imported("import xfer_helpers.keras.data") == {"tensorflow"}


def test_pytorch_data_does_not_import_tensorflow():
    assert _imported("import xfer_helpers.pytorch.data") == {"torch"}
