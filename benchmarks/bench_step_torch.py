"""PyTorch training-step throughput on the course's two fine-tuning jobs (compare: bench_step_keras.py).

- ``cnn``: EfficientNet-Lite0 (ImageNet weights, new 10-class head), every
  layer trainable except BatchNorm, which stays frozen in inference mode
  (``freeze_batchnorm``), as in the Keras benchmark; AdamW, cross-entropy, on a
  batch of random images at the profile's image size (64 px in lite, 224 px in full);
- ``text``: MiniLM (6 layers) + masked-mean pooling + a new 3-class head
  (``TextClassifier``), every layer trainable, AdamW, on a batch of random token
  ids at the profile's ``max_length``.

One step = zero_grad, forward, loss, backward, optimizer step. Two untimed
warm-up steps (three with ``torch.compile``), then the median of ``steps`` timed
steps. Random inputs are fine here: the work per step does not depend on the values.

Variants (``variant`` in each row): ``fp32`` always; on a GPU also ``amp`` (autocast
to bfloat16 where the GPU supports it, else float16 with a gradient scaler),
``amp+channels_last`` (CNN only) and ``+compile`` (``torch.compile``). On a CPU
only ``fp32`` runs unless ``XFER_BENCH_VARIANTS`` lists others, e.g.
``XFER_BENCH_VARIANTS=fp32,amp`` (autocast to bfloat16 on the CPU).

Rows: seconds per step and throughput (images/s, tokens/s), each with ``job``,
``framework`` and ``variant``, so that ``benchmarks/run.py`` can put PyTorch and
Keras side by side and compute each variant's speed-up over fp32.

Run alone: ``python benchmarks/bench_step_torch.py``.
"""
from __future__ import annotations

import contextlib
import json
import os

from timing import median_step_seconds   # benchmarks/timing.py

GPU_VARIANTS = {"cnn": ["fp32", "amp", "amp+channels_last", "amp+channels_last+compile"],
                "text": ["fp32", "amp", "amp+compile"]}
# Variants one framework has (Keras's XLA): run only when XFER_BENCH_VARIANTS names them.
OPT_IN_VARIANTS = ("xla",)


def variants_for(job: str, on_gpu: bool, opt_in: tuple[str, ...] = ()) -> list[str]:
    """The variants to time for ``job``: all on a GPU, fp32 on a CPU, or ``XFER_BENCH_VARIANTS``.

    ``opt_in``: the ones of ``OPT_IN_VARIANTS`` the caller's framework has; they run only when
    ``XFER_BENCH_VARIANTS`` names them, and the other framework leaves them out.

    Example:
        >>> variants_for("text", on_gpu=True)
        ['fp32', 'amp', 'amp+compile']
    """
    chosen = os.environ.get("XFER_BENCH_VARIANTS")
    if chosen:
        wanted = [v.strip() for v in chosen.split(",") if v.strip()]
        known = set(GPU_VARIANTS["cnn"]) | set(GPU_VARIANTS["text"]) | set(OPT_IN_VARIANTS)
        unknown = [v for v in wanted if v not in known]
        if unknown:
            raise ValueError(f"XFER_BENCH_VARIANTS: unknown variants {unknown}; choose from {sorted(known)}")
        return [v for v in wanted if v in GPU_VARIANTS[job] or v in opt_in]
    return GPU_VARIANTS[job] if on_gpu else ["fp32"]


def run(steps: int = 8, batch_size: int = 32, seed: int = 0) -> list[dict]:
    """Time one training step of each job and variant; return rows {"name", "value", "unit", ...}."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    import torch

    from xfer_helpers import env, profiles
    from xfer_helpers.pytorch import models
    from xfer_helpers.pytorch.text import TextClassifier
    from xfer_helpers.pytorch.transfer import freeze_batchnorm

    profile = profiles.get_profile()
    device = env.torch_device()
    on_gpu = device.type == "cuda"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    half = torch.bfloat16 if not on_gpu or torch.cuda.is_bf16_supported() else torch.float16
    rows = []

    def job(name, make_model, inputs, labels, per_step, unit):
        for variant in variants_for(name, on_gpu):
            parts = set(variant.split("+"))
            torch.manual_seed(seed)
            model = make_model().to(device).train()
            if name == "cnn":
                freeze_batchnorm(model)
            x = [t.to(device) for t in inputs]
            if "channels_last" in parts:
                model = model.to(memory_format=torch.channels_last)
                x = [x[0].contiguous(memory_format=torch.channels_last)]
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            forward = torch.compile(model) if "compile" in parts else model
            amp_dtype = half if "amp" in parts else None
            scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
            y = labels.to(device)

            def step():
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
                    loss = torch.nn.functional.cross_entropy(forward(*x), y)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
            seconds = median_step_seconds(step, steps, warmup=3 if "compile" in parts else 2, sync=sync)
            suffix = "" if variant == "fp32" else "_" + variant.replace("+", "_")
            common = {"job": name, "framework": "PyTorch", "variant": variant, "device": str(device),
                      "input": "x".join(str(s) for s in inputs[0].shape),
                      "amp_dtype": str(amp_dtype).removeprefix("torch.") if amp_dtype else None}
            rows.append({"name": f"torch_{name}{suffix}_step_s", "value": seconds, "unit": "s", **common})
            rows.append({"name": f"torch_{name}{suffix}_throughput", "value": per_step / seconds, "unit": unit,
                         **common})
            del model, forward, optimizer

    size = profile.image_size
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, size, size, generator=generator)
    job("cnn", lambda: models.efficientnet_lite0(num_classes=10), [images],
        torch.randint(0, 10, (batch_size,), generator=generator), batch_size, "images/s")

    length = profile.max_length
    ids = torch.randint(1000, 20000, (batch_size, length), generator=generator)
    mask = torch.ones(batch_size, length, dtype=torch.long)
    job("text", lambda: TextClassifier(models.minilm_encoder(), num_classes=3, pooling="mean"), [ids, mask],
        torch.randint(0, 3, (batch_size,), generator=generator), batch_size * length, "tokens/s")
    return rows


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
