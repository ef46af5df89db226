"""Keras (keras-hub) pieces for BERT-style text classification, mirroring ``xfer_helpers.pytorch.text``.

The token arrays come from :func:`xfer_helpers.text.encode_texts`, the same as in
PyTorch; :func:`to_keras_inputs` renames them to keras-hub's ``token_ids`` and
``padding_mask``.

Example:
    >>> from xfer_helpers.keras.text import build_text_classifier, to_keras_inputs
    >>> model = build_text_classifier(minilm_encoder(), num_classes=3, pooling="mean")  # doctest: +SKIP
    >>> model(to_keras_inputs(batch)).shape                                            # doctest: +SKIP
    TensorShape([2000, 3])
"""
from __future__ import annotations

import functools

import numpy as np
from tqdm.auto import tqdm

from ..env import import_tensorflow, progress_enabled
from ..text import inference_batches, length_grouped_batches, warmup_linear

tf = import_tensorflow()  # quiet TensorFlow's start-up logs before Keras loads it

import keras  # noqa: E402
from keras import ops  # noqa: E402


POOLINGS = ("cls", "mean")


def to_keras_inputs(encodings: dict) -> dict[str, np.ndarray]:
    """``{"input_ids", "attention_mask"}`` (transformers names) -> keras-hub's int32 inputs.

    Example:
        >>> to_keras_inputs({"input_ids": np.array([[101, 102]]), "attention_mask": np.array([[1, 1]])})
        {'token_ids': array([[101, 102]], dtype=int32), 'padding_mask': array([[1, 1]], dtype=int32)}
    """
    return {"token_ids": np.asarray(encodings["input_ids"], np.int32),
            "padding_mask": np.asarray(encodings["attention_mask"], np.int32)}


def text_dataset(encodings: dict, labels, batch_size: int = 32, seed: int = 0):
    """An endless ``tf.data.Dataset`` of length-grouped, trimmed training batches ``(inputs, labels)``.

    The Keras twin of ``text_loader(..., shuffle=True, group_by_length=True)``: the very
    same batches as PyTorch for the same seed (:func:`xfer_helpers.text.length_grouped_batches`),
    pass after pass with a new order each pass, each batch cut to its longest text. It repeats
    forever, so tell ``fit`` how long a pass is: ``steps_per_epoch=math.ceil(n_texts / batch_size)``.
    Keras then reads the whole run through one iterator; a finite dataset gets a new iterator
    every epoch, which costs a long wait on a CPU. (It is built without ``from_generator``:
    after a ``from_generator`` pipeline has run, TensorFlow's training steps in that process
    were 1.7 times slower here, see ``benchmarks/keras_input_pipeline.py``.) Every new iterator
    starts again at the first pass. The sequence length is left open (``None``), so ``model.fit``
    traces its step once and runs it on every length. Do not combine it with ``jit_compile=True``:
    XLA would compile again for every new length.

    Example:
        >>> batch = {"input_ids": np.ones((4, 8), np.int64), "attention_mask": np.ones((4, 8), np.int64)}
        >>> batch["attention_mask"][:, 3:] = 0                    # every text has 3 tokens
        >>> inputs, y = next(iter(text_dataset(batch, [0, 1, 2, 0], batch_size=2)))
        >>> tuple(inputs["token_ids"].shape), tuple(y.shape)
        ((2, 3), (2,))
    """
    inputs = to_keras_inputs(encodings)
    labels = np.asarray(labels, np.int32)
    if len(labels) != len(inputs["token_ids"]):
        raise ValueError(f"labels and texts must match: {len(labels)} labels for {len(inputs['token_ids'])} texts")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    lengths = inputs["padding_mask"].sum(1)
    per_pass = -(-len(labels) // batch_size)

    @functools.lru_cache(maxsize=2)
    def one_pass(epoch):
        return length_grouped_batches(lengths, batch_size, seed, epoch)

    def numpy_batch(step):  # step 0, 1, 2, ... counts batches over all passes
        index = one_pass(int(step) // per_pass)[int(step) % per_pass]
        longest = int(lengths[index].max())
        return inputs["token_ids"][index, :longest], inputs["padding_mask"][index, :longest], labels[index]

    def to_pair(step):
        token_ids, padding_mask, y = tf.numpy_function(numpy_batch, [step], (tf.int32, tf.int32, tf.int32))
        token_ids.set_shape((None, None))
        padding_mask.set_shape((None, None))
        y.set_shape((None,))
        return {"token_ids": token_ids, "padding_mask": padding_mask}, y

    return tf.data.Dataset.counter().map(to_pair)


def masked_mean_pool(hidden, padding_mask):
    """Average the token vectors (N, T, H) over the real tokens only (mask 1) -> (N, H).

    Example:
        >>> hidden = np.array([[[1.0], [3.0], [100.0]]], np.float32)   # the last token is padding
        >>> ops.convert_to_numpy(masked_mean_pool(hidden, np.array([[1, 1, 0]]))).tolist()
        [[2.0]]
    """
    mask = ops.expand_dims(ops.cast(padding_mask, hidden.dtype), -1)
    return ops.sum(hidden * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)


def _encode(encoder, token_ids, padding_mask):
    return encoder({"token_ids": token_ids, "segment_ids": ops.zeros_like(token_ids),
                    "padding_mask": padding_mask})["sequence_output"]


def build_text_classifier(encoder, num_classes: int, pooling: str = "cls", dropout: float = 0.1,
                          name: str | None = None):
    """keras-hub encoder + pooling ([CLS] or masked mean) + dropout + a new Dense ``classifier``.

    Inputs ``{"token_ids", "padding_mask"}`` (see :func:`to_keras_inputs`), output logits.
    Freeze the encoder with ``encoder.trainable = False`` before compiling. The encoder's
    ``pooled_dense`` layer (unused here) is frozen, as PyTorch's ``TextClassifier`` drops it.

    Example:
        >>> model = build_text_classifier(minilm_encoder(), 3, pooling="mean")   # doctest: +SKIP
        >>> model.get_layer("classifier").units                                  # doctest: +SKIP
        3
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number of at least 2, got {num_classes!r}")
    if "pooled_dense" in [layer.name for layer in encoder.layers]:
        encoder.get_layer("pooled_dense").trainable = False
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
    hidden = _encode(encoder, token_ids, padding_mask)
    pooled = hidden[:, 0, :] if pooling == "cls" else masked_mean_pool(hidden, padding_mask)
    pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    logits = keras.layers.Dense(num_classes, name="classifier", dtype="float32")(pooled)
    return keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, logits,
                       name=name or f"text_classifier_{pooling}")


def encoder_features(encoder, encodings: dict, batch_size: int = 64, by_length: bool = True,
                     progress: bool = True) -> dict[str, np.ndarray]:
    """Run the encoder once (inference mode); pooled features as NumPy, as in PyTorch.

    Keys: ``"cls"``, ``"mean"`` (masked) and ``"mean_unmasked"`` (padding averaged in).
    ``by_length=True``: the same length-sorted, trimmed batches as the PyTorch twin.

    Example:
        >>> features = encoder_features(minilm_encoder(), batch)   # doctest: +SKIP
        >>> features["cls"].shape                                  # doctest: +SKIP
        (2000, 384)
    """
    token_ids = keras.Input((None,), dtype="int32")
    padding_mask = keras.Input((None,), dtype="int32")
    hidden = _encode(encoder, token_ids, padding_mask)
    model = keras.Model([token_ids, padding_mask],
                        {"cls": hidden[:, 0, :], "mean": masked_mean_pool(hidden, padding_mask),
                         "mean_unmasked": ops.mean(hidden, axis=1)})
    inputs = to_keras_inputs(encodings)
    out = {key: np.zeros((len(inputs["token_ids"]), encoder.hidden_dim), np.float32)
           for key in ("cls", "mean", "mean_unmasked")}
    for index, width in tqdm(inference_batches(inputs["padding_mask"], batch_size, by_length),
                             desc="encoder features", disable=not progress_enabled(progress), leave=False):
        batch = model.predict_on_batch([inputs["token_ids"][index, :width], inputs["padding_mask"][index, :width]])
        for key in out:
            out[key][index] = np.asarray(batch[key])
    return out


def predict_texts(model, encodings: dict, batch_size: int = 128, probabilities: bool = False) -> np.ndarray:
    """Logits (or softmax probabilities) of a text classifier for every text, in the input order.

    The Keras twin of ``xfer_helpers.pytorch.text.predict_texts``: dynamic padding, the
    texts longest first, each batch cut to its longest text.

    Example:
        >>> predict_texts(model, test_batch).argmax(1)[:5]   # doctest: +SKIP
        array([0, 0, 2, 1, 0])
    """
    inputs = to_keras_inputs(encodings)
    out = None
    for index, width in inference_batches(inputs["padding_mask"], batch_size):
        logits = np.asarray(model.predict_on_batch({k: v[index, :width] for k, v in inputs.items()}), np.float32)
        if out is None:
            out = np.zeros((len(inputs["token_ids"]), logits.shape[1]), np.float32)
        out[index] = logits
    return np.asarray(ops.softmax(out, axis=-1)) if probabilities else out


def train_linear_head(features, labels, num_classes: int, epochs: int = 40, lr: float = 1e-2,
                      batch_size: int = 64, seed: int = 0):
    """Train a Dense classifier (logits) on fixed (cached) features with AdamW; return it.

    Example:
        >>> head = train_linear_head(np.random.rand(40, 8).astype("float32"), np.arange(40) % 2, 2,
        ...                          epochs=2)                     # doctest: +SKIP
        >>> head.output_shape                                      # doctest: +SKIP
        (None, 2)
    """
    from .training import fit
    features = np.asarray(features, np.float32)
    keras.utils.set_random_seed(seed)
    head = keras.Sequential([keras.Input((features.shape[1],)), keras.layers.Dense(num_classes)])
    head.compile(keras.optimizers.AdamW(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    fit(head, features, np.asarray(labels), epochs=epochs, batch_size=batch_size, progress=False)
    return head


class WarmupLinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """peak_lr x :func:`xfer_helpers.text.warmup_linear` as a Keras learning-rate schedule.

    Example:
        >>> schedule = WarmupLinearSchedule(1e-3, total_steps=10, warmup_steps=2)
        >>> round(float(schedule(1)), 6), round(float(schedule(6)), 6)
        (0.0005, 0.0005)
    """

    def __init__(self, peak_lr: float, total_steps: int, warmup_steps: int):
        super().__init__()
        if not peak_lr > 0:
            raise ValueError(f"peak_lr must be positive, got {peak_lr}")
        warmup_linear(0, total_steps, warmup_steps)  # checks the arguments
        self.peak_lr, self.total_steps, self.warmup_steps = float(peak_lr), int(total_steps), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps)
        return self.peak_lr * ops.where(step < self.warmup_steps, warm, ops.maximum(decay, 0.0))

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps, "warmup_steps": self.warmup_steps}


def first_layers_encoder(num_layers: int = 1, name: str = "minilm"):
    """The pretrained keras-hub encoder cut to its first ``num_layers`` layers (fast tests).

    Example:
        >>> first_layers_encoder(1).num_layers   # doctest: +SKIP
        1
    """
    import keras_hub

    from .models import keras_text_model_dir
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be at least 1, got {num_layers!r}")
    return keras_hub.models.BertBackbone.from_preset(keras_text_model_dir(name), num_layers=num_layers)
