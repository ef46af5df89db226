"""xfer_helpers.cache: computed once, read later; a wrong key, a damaged file or a crash never gives stale data."""
import warnings

import numpy as np
import pytest

from xfer_helpers import cache


class Counter:
    """compute() that counts its calls."""

    def __init__(self, value):
        self.value, self.calls = value, 0

    def __call__(self):
        self.calls += 1
        return self.value


def test_second_call_reads_the_file(tmp_path):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    compute = Counter({"train": x * 2, "test": x[:1]})
    first = cache.cached("features", compute, x, folder=tmp_path)
    second = cache.cached("features", compute, x, folder=tmp_path)
    assert compute.calls == 1
    assert list(second) == ["train", "test"]
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
        assert second[k].dtype == first[k].dtype
    assert len(list(tmp_path.glob("features-*.npz"))) == 1 and len(list(tmp_path.iterdir())) == 1
    result, info = cache.cached("features", compute, x, folder=tmp_path, with_info=True)
    assert info["read"] and info["compute_seconds"] >= 0 and compute.calls == 1


def test_any_change_to_the_key_computes_again(tmp_path):
    x = np.zeros((4, 4), np.float32)
    compute = Counter(np.ones(3))
    cache.cached("f", compute, x, "efficientnet", folder=tmp_path)
    changed = x.copy()
    changed[3, 3] = 1e-7                                          # one element
    for parts in [(changed, "efficientnet"), (x.astype(np.float64), "efficientnet"), (x.reshape(2, 8), "efficientnet"),
                  (x, "minilm"), (x, "efficientnet", 64)]:
        before = compute.calls
        cache.cached("f", compute, *parts, folder=tmp_path)
        assert compute.calls == before + 1, parts
    cache.cached("g", compute, x, "efficientnet", folder=tmp_path)  # another name
    assert compute.calls == 7


def test_other_code_or_a_changed_helper_computes_again(tmp_path, monkeypatch):
    x = np.arange(4.0)
    assert cache.cached("f", lambda: x * 2, x, folder=tmp_path).tolist() == [0, 2, 4, 6]
    assert cache.cached("f", lambda: x * 3, x, folder=tmp_path).tolist() == [0, 3, 6, 9]   # same key, other code
    double, triple = (lambda v: v * 2), (lambda v: v * 3)
    for extract, expected in ((double, [0, 2, 4, 6]), (triple, [0, 3, 6, 9])):   # the function a lambda calls
        assert cache.cached("g", lambda: extract(x), x, folder=tmp_path).tolist() == expected
    for size, expected in ((2, [0, 1]), (3, [0, 1, 2])):                         # a value it closes over
        assert cache.cached("h", lambda: x[:size], x, folder=tmp_path).tolist() == expected
    compute = Counter(x * 3)
    monkeypatch.setattr(cache, "_package_source", lambda: "a helper was edited")
    cache.cached("f", compute, x, folder=tmp_path)
    assert compute.calls == 1


def test_a_changed_model_weight_changes_the_fingerprint():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    before = cache.fingerprint(model)
    with torch.no_grad():
        model[0].weight[0, 0] += 1e-6
    assert cache.fingerprint(model) != before
    after_weight = cache.fingerprint(model)
    model[1].running_mean += 1                                   # a buffer counts too
    assert cache.fingerprint(model) != after_weight


def test_a_keras_model_is_fingerprinted_by_its_weights():
    from xfer_helpers import env
    env.import_tensorflow()
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    before = cache.fingerprint(model)
    assert cache.fingerprint(model) == before
    kernel, bias = model.get_weights()
    kernel[0, 0] += 1e-6
    model.set_weights([kernel, bias])
    assert cache.fingerprint(model) != before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "foreign"])
def test_a_damaged_or_foreign_file_is_reported_and_rebuilt(tmp_path, damage):
    x, other = np.arange(100.0), np.arange(50.0)
    compute = Counter(x * 3)
    cache.cached("f", compute, x, folder=tmp_path)
    path = next(tmp_path.glob("f-*.npz"))
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an npz file at all")
    elif damage == "truncated":
        path.write_bytes(good[:len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:                                   # a valid cache file of another key, under this name
        cache.cached("f", Counter(other), other, folder=tmp_path)
        foreign = next(p for p in tmp_path.glob("f-*.npz") if p != path)
        foreign.replace(path)
    with pytest.warns(UserWarning, match="damaged or out of date"):
        result = cache.cached("f", compute, x, folder=tmp_path)
    assert compute.calls == 2
    np.testing.assert_array_equal(result, x * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # rebuilt: read again without a warning
        np.testing.assert_array_equal(cache.cached("f", compute, x, folder=tmp_path), x * 3)
    assert compute.calls == 2


def test_a_failure_leaves_no_file(tmp_path, monkeypatch):
    x = np.arange(5.0)

    def fails():
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError):
        cache.cached("f", fails, x, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []

    def savez_that_dies(file, **arrays):       # half a file written, then the process is interrupted
        file.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt
    monkeypatch.setattr(cache.np, "savez", savez_that_dies)
    with pytest.raises(KeyboardInterrupt):
        cache.cached("f", lambda: x, x, folder=tmp_path)
    assert list(tmp_path.iterdir()) == []      # neither the half file nor its temporary name
    monkeypatch.undo()
    compute = Counter(x)
    cache.cached("f", compute, x, folder=tmp_path)
    assert compute.calls == 1                  # the next run computes and keeps it


def test_switched_off_and_bad_input(tmp_path, monkeypatch):
    x = np.arange(3.0)
    compute = Counter(x)
    monkeypatch.setenv("XFER_CACHE", "0")
    cache.cached("f", compute, x, folder=tmp_path)
    cache.cached("f", compute, x, folder=tmp_path)
    assert compute.calls == 2 and list(tmp_path.iterdir()) == []
    monkeypatch.delenv("XFER_CACHE")
    with pytest.raises(ValueError, match="letters, digits"):
        cache.cached("../escape", compute, x, folder=tmp_path)
    with pytest.raises(TypeError, match="cannot fingerprint"):
        cache.fingerprint(object())


def test_default_folder_is_under_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XFER_DATA_DIR", str(tmp_path))
    cache.cached("f", lambda: np.ones(2), np.ones(2))
    assert len(list((tmp_path / "cache").glob("f-*.npz"))) == 1
