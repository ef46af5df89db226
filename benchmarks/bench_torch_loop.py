"""Overhead of ``xfer_helpers.pytorch.fit`` over a hand-written PyTorch training loop.

All variants train the same small CNN (two conv layers, ~20 k parameters) on the
same Fashion-MNIST images (random images if the data set is missing), with the
same seed, AdamW(1e-3), batch 128, shuffled, on ``env.torch_device()``:

- ``minimal``: the textbook loop (zero_grad, forward, loss, backward, step) that
  also tracks the epoch's loss and accuracy with ``.item()``, as tutorials print;
- ``bare``: the same loop tracking nothing (the least work possible);
- ``helper``: ``fit(..., progress=False, amp=False)`` (AMP off, as in the loops).

Each variant gets its own fresh model (same seed), one untimed warm-up epoch,
then ``epochs`` timed epochs; the variants take turns epoch by epoch, in
alternating order, so that machine noise hits all alike (the helper is called
with ``epochs=1`` each time, so its set-up cost is included). Reported: median
and fastest epoch seconds per variant, and the overhead ratios helper/minimal
and helper/bare: the median over epochs of the helper's epoch time divided by
the baseline epoch run next to it (target <= 1.05). On a busy machine the
wall-clock ratios move by several per cent between runs; the rows also give the
process's CPU seconds (``cpu_s``, ``ratio_of_cpu_time``), which other programs
disturb less. Quote numbers from a quiet machine. A last row gives the helper's
fixed cost per batch (CPU milliseconds over the minimal loop) measured with a
one-layer model on one thread, where that cost is not hidden by the model's work.

Threads: ``XFER_THREADS`` (default: all cores), as everywhere in the course.
Run alone: ``python benchmarks/bench_torch_loop.py`` prints the rows.
"""
from __future__ import annotations

import json
import statistics
import time

TARGET_RATIO = 1.05


def _data(n_samples: int, seed: int):
    """Fashion-MNIST images scaled to [0, 1] as (N, 1, 28, 28) float tensors, or random ones."""
    import numpy as np
    import torch
    try:
        from xfer_helpers.datasets import load_fashion_mnist
        data = load_fashion_mnist(n_train=n_samples, n_test=10, seed=seed)
        x, y, source = data.x_train, data.y_train, "fashion-mnist"
    except Exception as exc:  # no data set here: same shapes, random values
        rng = np.random.default_rng(seed)
        x, y = rng.integers(0, 256, (n_samples, 28, 28), dtype=np.uint8), rng.integers(0, 10, n_samples)
        source = f"random ({type(exc).__name__})"
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1) / 255, torch.tensor(y, dtype=torch.long), source


def _cnn():
    """The benchmark model: a small CNN for 28x28 grey images (~20 k parameters)."""
    from torch import nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def _linear():
    """A model so small that the loop's own Python work dominates (for the per-batch overhead)."""
    from torch import nn
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def _setup(make_model, x, y, batch_size: int, seed: int, device):
    """A fresh seeded model, its AdamW optimizer and a seeded shuffled loader."""
    import torch
    torch.manual_seed(seed)
    model = make_model().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size,
                                         shuffle=True, generator=torch.Generator().manual_seed(seed))
    return model, optimizer, loader


def _hand_epoch(model, optimizer, loader, device, track: bool) -> None:
    """One epoch of the plain PyTorch loop."""
    import torch.nn.functional as F
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        optimizer.step()
        if track:
            total_loss += loss.item() * len(yb)
            correct += (out.argmax(1) == yb).sum().item()
            seen += len(yb)


def _helper_epoch(model, optimizer, loader, device) -> None:
    """One epoch with the course's fit (each call also pays fit's small set-up cost)."""
    from xfer_helpers.pytorch import fit
    fit(model, loader, epochs=1, optimizer=optimizer, device=device, amp=False, progress=False)


def _time_variants(make_model, x, y, batch_size, seed, device, epochs):
    """Wall-clock and CPU seconds of each timed epoch, per variant (see the module docstring)."""
    import torch
    epoch_fns = {"minimal": lambda *a: _hand_epoch(*a, device, track=True),
                 "bare": lambda *a: _hand_epoch(*a, device, track=False),
                 "helper": lambda *a: _helper_epoch(*a, device)}
    setups = {name: _setup(make_model, x, y, batch_size, seed, device) for name in epoch_fns}
    for name, fn in epoch_fns.items():  # warm-up epoch, not timed
        fn(*setups[name])
    times = {name: [] for name in epoch_fns}
    cpu_times = {name: [] for name in epoch_fns}  # this process's CPU seconds: steadier when busy
    for i in range(epochs):
        for name in (list(epoch_fns) if i % 2 == 0 else list(epoch_fns)[::-1]):  # alternate order
            start, cpu_start = time.perf_counter(), time.process_time()
            epoch_fns[name](*setups[name])
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
            cpu_times[name].append(time.process_time() - cpu_start)
    return times, cpu_times


def _paired_ratio(a, b):
    """Median over epochs of a[i] / b[i] (epochs run right next to each other)."""
    return statistics.median(x / y for x, y in zip(a, b))


def run(epochs: int = 10, n_samples: int = 2048, batch_size: int = 128, seed: int = 0) -> list[dict]:
    """Time the helper's fit against hand-written loops; return rows {"name", "value", "unit", ...}.

    Example:
        >>> rows = run(epochs=2, n_samples=512)                  # doctest: +SKIP
        >>> rows[3]["name"]                                      # doctest: +SKIP
        'torch_loop_overhead_ratio'
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    import torch
    from xfer_helpers import env
    env.set_threads()  # XFER_THREADS, else all cores; XFER_THREADS=1 is steadier on a busy machine
    device = env.torch_device()
    x, y, source = _data(n_samples, seed)
    times, cpu_times = _time_variants(_cnn, x, y, batch_size, seed, device, epochs)
    common = {"timed_epochs": epochs, "samples": n_samples, "batch_size": batch_size,
              "device": str(device), "data": source, "threads": torch.get_num_threads()}
    rows = [{"name": f"torch_loop_{name}_epoch_s", "value": statistics.median(values), "unit": "s",
             "min": min(values), "cpu_s": statistics.median(cpu_times[name]), **common}
            for name, values in times.items()]
    for baseline, label in (("minimal", "overhead_ratio"), ("bare", "overhead_ratio_vs_bare")):
        value = _paired_ratio(times["helper"], times[baseline])
        rows.append({"name": f"torch_loop_{label}", "value": value, "unit": "x",
                     "target": f"<= {TARGET_RATIO}", "ok": value <= TARGET_RATIO,
                     "ratio_of_medians": (statistics.median(times["helper"])
                                          / statistics.median(times[baseline])),
                     "ratio_of_min": min(times["helper"]) / min(times[baseline]),
                     "ratio_of_cpu_time": _paired_ratio(cpu_times["helper"], cpu_times[baseline]),
                     **common})
    # The fixed cost per batch: a one-layer model, one thread, small batches, CPU seconds.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        small_batch = 32
        _, cpu_times = _time_variants(_linear, x, y, small_batch, seed, device, epochs)
    finally:
        torch.set_num_threads(threads)
    batches = -(-n_samples // small_batch)
    extra_ms = statistics.median(h - m for h, m in zip(cpu_times["helper"], cpu_times["minimal"]))
    rows.append({"name": "torch_loop_helper_extra_ms_per_batch", "value": 1e3 * extra_ms / batches,
                 "unit": "ms", "note": "helper minus minimal loop, CPU time, 1-layer model, 1 thread",
                 "minimal_ms_per_batch": 1e3 * statistics.median(cpu_times["minimal"]) / batches,
                 **{**common, "batch_size": small_batch, "threads": 1}})
    return rows


if __name__ == "__main__":
    for row in run():
        print(json.dumps(row))
