"""Keras (TensorFlow) training-step throughput on the same two jobs as bench_step_torch.py.

- ``cnn``: ``xfer_helpers.keras.models.efficientnet_lite0`` (same ImageNet
  weights, new 10-class head), unfrozen with ``keras.transfer.unfreeze`` (the
  course's fine-tuning setting: BatchNorm layers stay in inference mode, see
  chapter 01), AdamW, cross-entropy from logits;
- ``text``: keras-hub MiniLM + masked-mean pooling + a new 3-class head
  (``build_text_classifier``), every layer trainable, AdamW.

One step = ``model.train_on_batch`` (a compiled ``tf.function``: forward, loss,
gradients, optimizer step). Two untimed warm-up steps (the first one traces the
graph; it is timed on its own for ``xla``), then the median of ``steps`` timed steps, on the same batch shapes as
the PyTorch benchmark.

Variants (``variant`` in each row): ``fp32`` always; on a GPU also ``amp``, Keras's
``mixed_float16`` policy (the models are built after it is set; ``compile`` adds the
loss-scale optimizer). On a CPU only ``fp32`` runs unless ``XFER_BENCH_VARIANTS``
lists ``amp`` too (then ``mixed_bfloat16``). XLA (``jit_compile``) is left at Keras's
default, which is off on a CPU and on for a GPU; ``XFER_BENCH_VARIANTS=fp32,xla`` adds the
``xla`` variant (float32, ``jit_compile=True``) and its first step, the one that compiles (XLA
compiles again for every new input shape; chapter 02's length-grouped batches have dozens).

Run alone: ``python benchmarks/bench_step_keras.py``.
"""
from __future__ import annotations

import json
import time

from timing import median_step_seconds   # benchmarks/timing.py


def run(steps: int = 8, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Time one training step of each job and variant; return rows {"name", "value", "unit", ...}."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    import numpy as np

    from xfer_helpers import env, profiles
    tf = env.import_tensorflow()
    import keras

    from bench_step_torch import variants_for   # the same variant names and XFER_BENCH_VARIANTS
    from xfer_helpers.keras import models, transfer
    from xfer_helpers.keras.text import build_text_classifier

    profile = profiles.get_profile()
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "gpu" if on_gpu else "cpu"
    rng = np.random.default_rng(seed)
    rows = []

    def job(name, make_model, inputs, labels, per_step, unit, shape):
        for variant in [v for v in variants_for(name, on_gpu, opt_in=("xla",)) if v in ("fp32", "amp", "xla")]:
            policy = "mixed_float16" if variant == "amp" and on_gpu else "mixed_bfloat16" if variant == "amp" \
                else "float32"
            keras.mixed_precision.set_global_policy(policy)
            keras.utils.set_random_seed(seed)
            model = make_model()
            model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          **({"jit_compile": True} if variant == "xla" else {}))
            start = time.perf_counter()
            model.train_on_batch(inputs, labels)      # the first step traces (and with XLA compiles)
            first_step = time.perf_counter() - start
            seconds = median_step_seconds(lambda: model.train_on_batch(inputs, labels), steps, warmup=1)
            keras.mixed_precision.set_global_policy("float32")
            suffix = "" if variant == "fp32" else "_" + variant
            common = {"job": name, "framework": "Keras", "variant": variant, "policy": policy,
                      "device": device, "input": shape}
            rows.append({"name": f"keras_{name}{suffix}_step_s", "value": seconds, "unit": "s", **common})
            rows.append({"name": f"keras_{name}{suffix}_throughput", "value": per_step / seconds, "unit": unit,
                         **common})
            if variant == "xla":   # XLA compiles each new input shape: that cost, beside the step it buys
                rows.append({"name": f"keras_{name}_xla_first_step_s", "value": first_step, "unit": "s", **common})
            del model
            keras.backend.clear_session()

    size = profile.image_size

    def cnn():
        model = models.efficientnet_lite0(num_classes=10, image_size=size)
        transfer.unfreeze(model)                      # BatchNorm stays frozen (inference mode)
        return model
    images = rng.standard_normal((batch_size, size, size, 3)).astype("float32")
    job("cnn", cnn, images, rng.integers(0, 10, batch_size), batch_size, "images/s",
        f"{batch_size}x3x{size}x{size}")

    length = profile.max_length
    text_inputs = {"token_ids": rng.integers(1000, 20000, (batch_size, length)).astype("int32"),
                   "padding_mask": np.ones((batch_size, length), bool)}
    job("text", lambda: build_text_classifier(models.minilm_encoder(), 3, pooling="mean"), text_inputs,
        rng.integers(0, 3, batch_size), batch_size * length, "tokens/s", f"{batch_size}x{length}")
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
