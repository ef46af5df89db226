"""Tests for xfer_helpers.keras.training: History format, learning rate, early stopping, input checks."""
import math

import numpy as np
import pytest

from xfer_helpers.env import import_tensorflow
from xfer_helpers.history import REQUIRED_KEYS

tf = import_tensorflow()
import keras  # noqa: E402

from xfer_helpers.keras.training import (distribution_scope, evaluate, fit, predict,  # noqa: E402
                                         set_mixed_precision)

N_TRAIN, N_VAL = 96, 32


def toy_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_TRAIN + N_VAL, 8, 8, 3)).astype("float32")
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0).astype("int32")
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def toy_model(lr=0.05, seed=0, metric="accuracy"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(4, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2),
    ])
    model.compile(optimizer=keras.optimizers.SGD(lr),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[metric])
    return model


def test_history_has_the_pytorch_format_keys():
    (x, y), val = toy_data()
    # SparseCategoricalAccuracy logs as "sparse_categorical_accuracy"; the History says "accuracy".
    model = toy_model(metric=keras.metrics.SparseCategoricalAccuracy())
    history = fit(model, x, y, validation_data=val, epochs=2, batch_size=32, progress=False)
    assert history.framework == "keras"
    assert len(history) == 2 and history["epoch"] == [1, 2]
    assert set(REQUIRED_KEYS) <= set(history.keys())
    assert set(history.keys()) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                                   "lr", "seconds", "samples_per_second"}
    for record in history.records:
        assert 0 <= record["accuracy"] <= 1 and 0 <= record["val_accuracy"] <= 1
        assert record["seconds"] > 0 and math.isfinite(record["samples_per_second"])
        assert record["lr"] == pytest.approx(0.05)
        # samples/s is measured on the training part only, which is shorter than the epoch,
        # and counts samples, not batches (3 batches of 32 here).
        assert record["samples_per_second"] * record["seconds"] >= N_TRAIN * (1 - 1e-9)


def test_history_from_a_dataset_counts_samples():
    (x, y), _ = toy_data()
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    history = fit(toy_model(), dataset, epochs=1, progress=False)
    assert set(history.keys()) == {"epoch", "loss", "accuracy", "lr", "seconds", "samples_per_second"}
    # Without validation the training part is the whole epoch.
    assert history["samples_per_second"][0] * history["seconds"][0] == pytest.approx(N_TRAIN)


def test_an_endless_dataset_trains_in_epochs_of_steps_per_epoch():
    (x, y), _ = toy_data()
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).repeat()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        fit(toy_model(), endless, epochs=1, progress=False)      # would never end an epoch
    history = fit(toy_model(), endless, epochs=2, steps_per_epoch=N_TRAIN // 32, progress=False)
    assert history["epoch"] == [1, 2]
    assert history["samples_per_second"][1] * history["seconds"][1] == pytest.approx(N_TRAIN)


def test_lr_is_recorded_with_a_schedule():
    (x, y), _ = toy_data()
    model = toy_model()
    steps_per_epoch = N_TRAIN // 32
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=steps_per_epoch,
                                                           decay_rate=0.5, staircase=True)
    model.compile(optimizer=keras.optimizers.SGD(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = fit(model, x, y, epochs=3, batch_size=32, progress=False)
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])  # the rate of each epoch's first step


def test_lr_is_recorded_with_a_scheduler_callback():
    (x, y), _ = toy_data()
    halve = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.2 / 2 ** epoch)
    history = fit(toy_model(), x, y, epochs=3, batch_size=32, callbacks=[halve], progress=False)
    assert history["lr"] == pytest.approx([0.2, 0.1, 0.05])
    assert "learning_rate" not in history.keys()


def test_early_stopping_restores_the_best_weights():
    (x, y), (xv, yv) = toy_data()
    # Validation labels are flipped: the better the model fits, the worse val_loss gets.
    model = toy_model(lr=0.5)
    history = fit(model, x, y, validation_data=(x, 1 - y), epochs=20, batch_size=32,
                  early_stopping_patience=1, progress=False)
    assert len(history) < 20, "training should have stopped early"
    best, last = history.best("val_loss")["val_loss"], history["val_loss"][-1]
    assert best < last
    restored = model.evaluate(x, 1 - y, batch_size=32, verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(best, rel=1e-4)


def test_progress_bar_shows_unless_switched_off(capsys, monkeypatch):
    (x, y), _ = toy_data()
    model = toy_model()
    monkeypatch.setenv("XFER_PROGRESS", "1")
    fit(model, x, y, epochs=1, batch_size=32, progress=False)
    assert capsys.readouterr() == ("", "")
    fit(model, x, y, epochs=1, batch_size=32, progress=True)
    shown = capsys.readouterr()
    assert "epoch" in shown.out and shown.err == ""  # stdout: stderr output fails nbgrader test cells
    monkeypatch.setenv("XFER_PROGRESS", "0")
    fit(model, x, y, epochs=1, batch_size=32, progress=True)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs must be at least 1, got 0"),
    (dict(epochs=1, batch_size=0), "batch_size"),
    (dict(epochs=1, verbose=1), "progress="),
    (dict(epochs=1, early_stopping_patience=2), "needs validation_data"),
    (dict(epochs=1, early_stopping_patience=-1, validation_data="unused"), "0 or more"),
])
def test_bad_arguments_raise_value_error(kwargs, message):
    (x, y), _ = toy_data()
    with pytest.raises(ValueError, match=message):
        fit(toy_model(), x, y, progress=False, **kwargs)


def test_bad_inputs_raise_value_error():
    (x, y), _ = toy_data()
    model = toy_model()
    with pytest.raises(ValueError, match="same number of samples, got 96 and 95"):
        fit(model, x, y[:-1], epochs=1, progress=False)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    with pytest.raises(ValueError, match="y must be None"):
        fit(model, dataset, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="batch the dataset itself"):
        fit(model, dataset, epochs=1, batch_size=32, progress=False)
    uncompiled = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not compiled"):
        fit(uncompiled, x, y, epochs=1, progress=False)


def test_set_mixed_precision_policies():
    has_gpu = bool(tf.config.list_logical_devices("GPU"))
    try:
        assert set_mixed_precision(True) == ("mixed_float16" if has_gpu else "float32")
        assert set_mixed_precision(True, dtype="bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"
        assert set_mixed_precision(False) == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
        with pytest.raises(ValueError, match="float16' or 'bfloat16"):
            set_mixed_precision(True, dtype="int8")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_distribution_scope_uses_mirrored_strategy_only_with_several_gpus():
    n_gpus = len(tf.config.list_logical_devices("GPU"))
    with distribution_scope() as strategy:
        assert tf.distribute.get_strategy() is strategy
        model = toy_model()
    assert isinstance(strategy, tf.distribute.MirroredStrategy) == (n_gpus > 1)
    assert strategy.num_replicas_in_sync == (n_gpus if n_gpus > 1 else 1)
    (x, y), _ = toy_data()
    assert len(fit(model, x, y, epochs=1, batch_size=32, progress=False)) == 1


def counting_train_step(model):
    """Wrap model.train_step to count how often TensorFlow traces it (a Python call = a trace)."""
    calls, original = [], model.train_step

    def train_step(data):
        calls.append(1)
        return original(data)
    model.train_step = train_step
    return calls


@pytest.mark.parametrize("as_dataset", [False, True])
def test_fit_traces_the_training_step_once_and_trains_as_before(as_dataset, monkeypatch):
    from xfer_helpers.keras import training
    (x, y), _ = toy_data()

    def train(build):   # seeded model, then a new dataset (its shuffle order follows the seed)
        model = toy_model()
        data = ((tf.data.Dataset.from_tensor_slices((x, y)).shuffle(96, seed=1).batch(32),)
                if as_dataset else (x, y))
        calls = counting_train_step(model)
        with monkeypatch.context() as m:
            if not build:
                m.setattr(training, "build_before_tracing", lambda *args: False)
            fit(model, *data, epochs=2, progress=False, **({} if as_dataset else {"batch_size": 32}))
        return model, calls
    before, before_calls = train(build=False)
    after, after_calls = train(build=True)
    assert len(before_calls) == 2, "without it, Keras traces twice (the reason for build_before_tracing)"
    assert len(after_calls) == 1
    for a, b in zip(before.get_weights(), after.get_weights()):
        np.testing.assert_array_equal(a, b)                 # the same batches, the same numbers


def test_evaluate_and_predict_mirror_the_pytorch_helpers():
    (x, y), (xv, yv) = toy_data()
    model = toy_model()
    fit(model, x, y, epochs=1, batch_size=32, progress=False)
    logits = predict(model, xv, batch_size=8)
    assert logits.shape == (N_VAL, 2) and logits.dtype == np.float32
    probabilities = predict(model, xv, probabilities=True)
    assert np.allclose(probabilities, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), atol=1e-6)
    dataset = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(8)
    assert np.allclose(predict(model, dataset.map(lambda a, b: a)), logits, atol=1e-5)
    result = evaluate(model, xv, yv)
    assert set(result) == {"loss", "accuracy"}  # plain names, as PyTorch's evaluate returns
    cross_entropy = float(np.mean(keras.losses.sparse_categorical_crossentropy(yv, logits, from_logits=True)))
    assert result["loss"] == pytest.approx(cross_entropy, abs=1e-4)
    assert result["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == yv)))
    assert evaluate(model, dataset) == pytest.approx(result, abs=1e-5)


def test_evaluate_needs_a_compiled_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="compile"):
        evaluate(model, np.zeros((4, 2), np.float32), np.zeros(4, np.int64))
