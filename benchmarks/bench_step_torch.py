"""PyTorch training-step throughput on the course's two fine-tuning jobs (compare: bench_step_keras.py).

- ``cnn``: EfficientNet-Lite0 (ImageNet weights, new 10-class head), every
  layer trainable, AdamW, cross-entropy, on a batch of random images at the
  profile's image size (64 px in lite, 224 px in full);
- ``text``: MiniLM (6 layers) + masked-mean pooling + a new 3-class head
  (``TextClassifier``), every layer trainable, AdamW, on a batch of random token
  ids at the profile's ``max_length``.

One step = zero_grad, forward, loss, backward, optimizer step. Two untimed
warm-up steps, then the median of ``steps`` timed steps. Rows: seconds per
step and throughput (images/s, tokens/s), each with ``job`` and ``framework``
so that ``benchmarks/run.py`` can put PyTorch and Keras side by side. Random
inputs are fine here: the work per step does not depend on the pixel values.

Run alone: ``python benchmarks/bench_step_torch.py``.
"""
from __future__ import annotations

import json

from timing import median_step_seconds   # benchmarks/timing.py


def run(steps: int = 8, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Time one training step of each job; return rows {"name", "value", "unit", "job", "framework", ...}."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    import torch

    from xfer_helpers import env, profiles
    from xfer_helpers.pytorch import models
    from xfer_helpers.pytorch.text import TextClassifier

    profile = profiles.get_profile()
    device = env.torch_device()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(seed)
    rows = []

    def job(name, model, inputs, labels, per_step, unit):
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        inputs = [t.to(device) for t in inputs]
        labels = labels.to(device)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(*inputs), labels)
            loss.backward()
            optimizer.step()
        seconds = median_step_seconds(step, steps, sync=sync)
        shape = "x".join(str(s) for s in inputs[0].shape)
        common = {"job": name, "framework": "PyTorch", "device": str(device), "input": shape}
        rows.append({"name": f"torch_{name}_step_s", "value": seconds, "unit": "s", **common})
        rows.append({"name": f"torch_{name}_throughput", "value": per_step / seconds, "unit": unit, **common})

    size = profile.image_size
    images = torch.randn(batch_size, 3, size, size)
    job("cnn", models.efficientnet_lite0(num_classes=10), [images], torch.randint(0, 10, (batch_size,)),
        batch_size, "images/s")

    length = profile.max_length
    ids = torch.randint(1000, 20000, (batch_size, length))
    mask = torch.ones(batch_size, length, dtype=torch.long)
    job("text", TextClassifier(models.minilm_encoder(), num_classes=3, pooling="mean"), [ids, mask],
        torch.randint(0, 3, (batch_size,)), batch_size * length, "tokens/s")
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
