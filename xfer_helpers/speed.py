"""How fast is this machine? CPU facts, a speed index, and how long the course will take.

The speed index compares this machine with the one the README's timings come from: the
geometric mean of three training-step throughputs at the lite sizes (batch 32): PyTorch
EfficientNet-Lite0 on 64 px images, PyTorch MiniLM and Keras MiniLM on 64-token texts, each
divided by that machine's figure. 1.0 = the README's machine; 0.5 = half as fast. The Keras
step is there because the course spends about half its time in TensorFlow, and TensorFlow's
speed does not follow PyTorch's from one CPU to another (on the slow machine of issue 16 the
Keras step ran at 0.28 of the README machine's speed, PyTorch's at 0.44-0.61).
Each throughput is the *best* of several short rounds: other work on the machine can only
slow a round down, so the best round is what the machine can do, and it moves less from run to
run than a mean or a median (on a virtual machine whose speed swings within seconds it still
moves by about +-10 %).

    python -m xfer_helpers.speed          # CPU facts, the speed index, the course estimate
"""
from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import time

# The README's machine (2-core Intel Xeon, torch 2.14, TensorFlow 2.21), `make bench` of
# 2026-11-22, lite fp32 (benchmarks/example-report.json).
REFERENCE = {"cnn_images_per_s": 104.7, "text_tokens_per_s": 1591.0, "keras_text_tokens_per_s": 1806.0}
# `make course` of this version at index 1.00: 1321 s measured on a 2-core AMD EPYC (Zen 3) of
# index 0.94-1.01 (four calibrations, mean 0.967; README, "Lecture notebooks", 2026-12-06),
# times 0.967. (The README machine itself ran the course of 6 Dec in 952 s: the index is a
# guide to about +-25 % between machines, not better.)
REFERENCE_COURSE_S = 1278.0
# The slow machine of issue 16 (2-core first-generation AMD EPYC, AVX2 only): the best of
# four idle runs of the same step benchmarks. Its `make course` took 2904 s where the course of
# then (990 s at index 1.00) / its index predicted 2340 s (1904 s by the PyTorch steps alone).
SLOW = {"cnn_images_per_s": 64.0, "text_tokens_per_s": 705.0, "keras_text_tokens_per_s": 505.0}
SLOW_SLACK = 2904.0 / (990.0 / 0.4231)
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def speed_index(figures: dict, reference: dict = REFERENCE) -> float:
    """Geometric mean of ``figures[k] / reference[k]`` over the reference's keys.

    Example:
        >>> round(speed_index({"cnn_images_per_s": 52.35, "text_tokens_per_s": 795.5,
        ...                    "keras_text_tokens_per_s": 903.0}), 3)
        0.5
        >>> round(speed_index(SLOW), 2)   # the slow machine of issue 16
        0.42
    """
    ratios = [figures[key] / reference[key] for key in reference]
    return math.exp(sum(math.log(r) for r in ratios) / len(ratios))


def course_minutes(index: float) -> tuple[float, float]:
    """(likely, at most) minutes of `make course` (lite) on a machine with this speed index.

    Likely scales the README machine's time by 1 / index. On the slow machine the course took
    1.24x what that predicts (memory-bound work slowed down more than the training steps), so
    "at most" allows for that.

    Example:
        >>> [round(m) for m in course_minutes(1.0)]
        [21, 26]
    """
    if index <= 0:
        raise ValueError(f"the speed index must be positive, got {index}")
    likely = REFERENCE_COURSE_S / index / 60
    return likely, likely * SLOW_SLACK


def cpu_facts(cpuinfo: str | None = None) -> dict:
    """CPU model, core count and the instruction-set flags that decide CPU speed for deep learning.

    Example:
        >>> facts = cpu_facts("model name\\t: Some CPU\\nflags\\t\\t: fpu avx2 fma\\n")
        >>> facts["model"], facts["isa"]["avx2"], facts["isa"]["avx512f"]
        ('Some CPU', True, False)
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:   # macOS, Windows: no /proc
            cpuinfo = ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.M)
    present = set(flags.group(1).split()) if flags else set()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model.group(1).strip() if model else platform.processor() or platform.machine(),
            "cores": cores, "isa": {flag: flag in present for flag in ISA_FLAGS}}


def onednn_isa() -> str | None:
    """The instruction set oneDNN (PyTorch's CPU convolutions) dispatches to, from its verbose log."""
    code = ("import torch\n"
            "with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):\n"
            "    torch.nn.functional.conv2d(torch.ones(8, 32, 28, 28), torch.ones(64, 32, 3, 3))\n")
    try:   # a child process: the verbose log goes to its stdout, not the caller's
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"isa:([^,\n]+)", out)
    return found.group(1).strip() if found else None


def _best_throughputs(steps: dict, rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Every step's throughput in each round; the steps take turns, round after round.

    ``steps``: name -> (step function, work per step). Taking turns spreads each step's
    rounds over the whole measurement, so a slow spell of the machine does not fall on the
    rounds of one step only.
    """
    for step, _ in steps.values():
        for _ in range(warmup):
            step()
    speeds = {name: [] for name in steps}
    for _ in range(rounds):
        for name, (step, per_step) in steps.items():
            start = time.perf_counter()
            step()
            speeds[name].append(per_step / (time.perf_counter() - start))
    return speeds


def calibrate(rounds: int = 6, batch_size: int = 32, seed: int = 0) -> dict:
    """Measure the three training steps (best of ``rounds`` each) and the speed index.

    Takes 40-60 s on a 2-core CPU (model loading and Keras's first, traced step included).
    Returns the figures, every round's throughput (to see the noise) and ``index``.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    import torch

    from .pytorch import models
    from .pytorch.text import TextClassifier
    from .pytorch.transfer import freeze_batchnorm

    generator = torch.Generator().manual_seed(seed)

    def step_of(model, inputs, labels):
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(*inputs), labels).backward()
            optimizer.step()
        return step

    torch.manual_seed(seed)
    cnn = models.efficientnet_lite0(num_classes=10).train()
    freeze_batchnorm(cnn)
    images = torch.randn(batch_size, 3, 64, 64, generator=generator)
    text = TextClassifier(models.minilm_encoder(), num_classes=3, pooling="mean").train()
    ids = torch.randint(1000, 20000, (batch_size, 64), generator=generator)
    mask = torch.ones(batch_size, 64, dtype=torch.long)
    steps = {
        "cnn_images_per_s": (step_of(cnn, [images], torch.randint(0, 10, (batch_size,), generator=generator)),
                             batch_size),
        "text_tokens_per_s": (step_of(text, [ids, mask], torch.randint(0, 3, (batch_size,), generator=generator)),
                              ids.numel()),
        "keras_text_tokens_per_s": (_keras_text_step(ids.numpy(), seed), ids.numel()),
    }
    speeds = _best_throughputs(steps, rounds)
    figures = {name: max(values) for name, values in speeds.items()}
    return {**figures, "rounds": speeds, "threads": torch.get_num_threads(), "index": speed_index(figures)}


def _keras_text_step(ids, seed: int):
    """One Keras MiniLM training step (``train_on_batch``, as ``make bench``), as a function.

    Its first call traces the graph (10-20 s on a 2-core CPU): the warm-up takes it.
    """
    import numpy as np

    from . import env
    env.import_tensorflow()
    import keras

    from .keras import models
    from .keras.text import build_text_classifier

    keras.utils.set_random_seed(seed)
    model = build_text_classifier(models.minilm_encoder(), 3, pooling="mean")
    model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    inputs = {"token_ids": ids.astype("int32"), "padding_mask": np.ones(ids.shape, bool)}
    labels = np.random.default_rng(seed).integers(0, 3, len(ids))
    return lambda: model.train_on_batch(inputs, labels)


def describe(result: dict) -> str:
    """A few lines for a learner: the speed index, what it means, and the course estimate."""
    likely, most = course_minutes(result["index"])
    return (f"Speed index {result['index']:.2f} (1.00 = the machine of the README's timings; the slow "
            f"reference machine is {speed_index(SLOW):.2f}): PyTorch steps at "
            f"{result['cnn_images_per_s']:.0f} images/s and {result['text_tokens_per_s']:.0f} tokens/s, "
            f"Keras at {result['keras_text_tokens_per_s']:.0f} tokens/s.\n"
            f"`make course` (lite) should take about {likely:.0f} minutes here "
            f"(up to {most:.0f} on an older CPU with the same index).")


def main() -> int:
    facts = cpu_facts()
    isa = ", ".join(flag for flag, has in facts["isa"].items() if has) or "none of " + "/".join(ISA_FLAGS)
    print(f"CPU: {facts['model']}, {facts['cores']} cores; ISA: {isa}; oneDNN uses: {onednn_isa()}")
    print("Measuring (about 45 s) ...", flush=True)
    print(describe(calibrate()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
