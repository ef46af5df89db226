"""Does XLA (``jit_compile=True``) pay for the course's Keras training steps on this CPU?

One Keras model, compiled with or without XLA, trained with ``train_on_batch`` on one batch of
random inputs of the lite shapes (batch 32): the first step (tracing, and compiling with XLA)
and the median of the next 10 steps. A fresh process per variant:

    python benchmarks/keras_xla.py cnn 0      # EfficientNet-Lite0, 64 px, backbone unfrozen
    python benchmarks/keras_xla.py cnn 1
    python benchmarks/keras_xla.py text 0     # MiniLM + mean pooling, 64 tokens
    python benchmarks/keras_xla.py text 1

With XLA, every new input shape compiles again: chapter 02's length-grouped batches have
dozens of lengths, so only a clear gain per step could pay for that.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def main(job: str, jit: bool, length: int = 64) -> None:
    from xfer_helpers import env
    env.import_tensorflow()
    import keras

    from xfer_helpers.keras import models, transfer
    from xfer_helpers.keras.text import build_text_classifier

    rng = np.random.default_rng(0)
    if job == "cnn":
        model = models.efficientnet_lite0(num_classes=10, image_size=64)
        transfer.unfreeze(model)                      # BatchNorm stays frozen, as in chapter 01
        x, y = rng.standard_normal((32, 64, 64, 3)).astype("float32"), rng.integers(0, 10, 32)
    elif job == "text":
        model = build_text_classifier(models.minilm_encoder(), 3, pooling="mean")
        x = {"token_ids": rng.integers(1000, 20000, (32, length)).astype("int32"),
             "padding_mask": np.ones((32, length), bool)}
        y = rng.integers(0, 3, 32)
    else:
        raise SystemExit(f"job must be cnn or text, not {job!r}")
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    start = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - start
    times = []
    for _ in range(10):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    print(f"{job} jit_compile={jit}: first step {first:.2f} s, median step {np.median(times):.3f} s")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2] == "1", *(int(a) for a in sys.argv[3:4]))
