"""A short, readable PyTorch training loop: ``fit``, ``evaluate`` and ``predict``.

Loaders yield ``(inputs, targets)`` pairs. ``inputs`` may be a tensor, a tuple
(called as ``model(*inputs)``) or a dict (``model(**inputs)``); outputs with a
``.logits`` attribute (Hugging Face models) are unwrapped.

Example:
    >>> from xfer_helpers.pytorch import fit, evaluate, predict
    >>> history = fit(model, train_loader, val_loader, epochs=3)  # doctest: +SKIP
    >>> evaluate(model, test_loader)                              # doctest: +SKIP
    {'loss': 0.41, 'accuracy': 0.86}
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import env
from ..history import History


def accuracy(outputs, targets):
    """Fraction of correct predictions in a batch (one logit per sample: its sign decides)."""
    if outputs.dim() == 1 or outputs.shape[-1] == 1:
        return ((outputs.reshape(targets.shape) > 0).long() == targets.long()).float().mean()
    return (outputs.argmax(-1) == targets).float().mean()


METRICS = {"accuracy": accuracy}   # add your own: name -> fn(outputs, targets) -> batch mean
AMP_CHOICES = ("auto", "bf16", "fp16", False)


def _metric_fns(metrics) -> dict:
    """Metric names (or functions) -> {name: function}."""
    unknown = [m for m in metrics if not callable(m) and m not in METRICS]
    if unknown:
        raise ValueError(f"metrics: unknown metric(s) {unknown}. Choose from {sorted(METRICS)} "
                         "or pass a function fn(outputs, targets) -> batch mean.")
    return {m.__name__ if callable(m) else m: m if callable(m) else METRICS[m] for m in metrics}


def to_device(x, device):
    """Move a tensor, or a tuple/list/dict of tensors, to ``device``."""
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(to_device(v, device) for v in x)
    return x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x


def forward_logits(model, inputs):
    """Call the model on a tensor, a tuple or a dict of inputs; return the logits."""
    out = (model(**inputs) if isinstance(inputs, dict) else
           model(*inputs) if isinstance(inputs, (tuple, list)) else model(inputs))
    return getattr(out, "logits", out)


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode and no gradients inside the block; every submodule's mode comes back after."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, training in modes.items():
            m.train(training)


def _run_epoch(net, loader, loss_fn, metric_fns, device, *, optimizer=None, scaler=None,
               scheduler=None, amp_dtype=None, accum=1, clip=None, bar=None, reduce=False) -> dict:
    """One pass over ``loader``, training when an optimizer is given. Returns the mean loss and metrics."""
    seen, sums = 0, torch.zeros(1 + len(metric_fns), device=device)  # samples; loss and metric sums
    n_batches = len(loader)
    autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                else contextlib.nullcontext())
    for i, (inputs, targets) in enumerate(loader):
        inputs, targets = to_device(inputs, device), to_device(targets, device)
        update = optimizer is not None and ((i + 1) % accum == 0 or i + 1 == n_batches)
        # Under DDP, skip the gradient all-reduce on accumulation steps without an update.
        skip_sync = optimizer is not None and not update and hasattr(net, "no_sync")
        with net.no_sync() if skip_sync else contextlib.nullcontext():
            with autocast:
                outputs = forward_logits(net, inputs)
                loss = loss_fn(outputs, targets)
            if optimizer is not None:
                scaler.scale(loss / accum if accum > 1 else loss).backward()
        if update:
            if clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
        n, outputs = len(targets), outputs.detach().float()
        seen += n
        batch_means = [loss.detach(), *[torch.as_tensor(fn(outputs, targets), device=device)
                                        for fn in metric_fns.values()]]
        sums += torch.stack([m.float() for m in batch_means]) * n
        if bar is not None:
            bar.update(1)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{sums[0].item() / seen:.4f}")
    totals = torch.cat([torch.tensor([seen], device=device, dtype=sums.dtype), sums])
    if reduce:
        torch.distributed.all_reduce(totals)  # sum over processes: the means below are global
    n, loss_sum, *metric_sums = totals.tolist()
    return {"loss": loss_sum / max(n, 1), **{k: s / max(n, 1) for k, s in zip(metric_fns, metric_sums)},
            "samples": n}


def model_device(model, device=None):
    """Move the model to ``device`` if one is given; return the device the model is on."""
    if device is not None:
        model.to(device)
    return next(model.parameters()).device


def evaluate(model, loader, loss_fn=None, metrics=("accuracy",), device=None) -> dict:
    """Mean loss and metrics of ``model`` on ``loader`` (eval mode, no gradients).

    The train/eval mode of every submodule is restored afterwards. ``device`` (default: where
    the model is) moves the model there.

    Example:
        >>> evaluate(model, test_loader)  # doctest: +SKIP
        {'loss': 0.41, 'accuracy': 0.86}
    """
    device = model_device(model, device)
    with eval_mode(model):
        result = _run_epoch(model, loader, loss_fn or torch.nn.CrossEntropyLoss(),
                            _metric_fns(metrics), device)
    result.pop("samples")
    return result


def predict(model, data, device=None, batch_size=256, probabilities=False) -> np.ndarray:
    """Model outputs (logits, or softmax probabilities) for a loader, tensor or array, as NumPy.

    For a loader, the first element of each batch is the input. ``device`` as in :func:`evaluate`.

    Example:
        >>> predict(model, x_test[:8], probabilities=True).shape  # doctest: +SKIP
        (8, 10)
    """
    device = model_device(model, device)
    if not isinstance(data, torch.utils.data.DataLoader):
        data = torch.as_tensor(data)
        data = data.to(torch.get_default_dtype()) if data.is_floating_point() else data
        data = torch.split(data, batch_size)
    with eval_mode(model):
        out = torch.cat([forward_logits(model, to_device(b[0] if isinstance(b, (tuple, list)) else b,
                                                    device)).float() for b in data])
    return (out.softmax(-1) if probabilities else out).cpu().numpy()


def _maybe_distributed(model, loaders, device):
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group, wrap the model in
    DistributedDataParallel and give each loader a DistributedSampler.

    Returns ``(net, loaders, rank)``; outside torchrun ``(model, loaders, 0)``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return model, loaders, 0
    import torch.distributed as dist
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None)
    sharded = []
    for loader in loaders:
        if loader is not None and not isinstance(loader.sampler, DistributedSampler):
            sampler = DistributedSampler(loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler))
            loader = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                                num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                                pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                                worker_init_fn=loader.worker_init_fn)
        sharded.append(loader)
    return net, sharded, dist.get_rank()


def _rng_state(loader) -> dict:
    """Random states of Python, NumPy, PyTorch (CPU, CUDA) and the loader's shuffling generator."""
    name, keys, *rest = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (name, keys.tolist(), *rest),
             "torch": torch.get_rng_state(), "loader": [g.get_state() for g in _generators(loader)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state, loader) -> None:
    """Put back the random states saved by :func:`_rng_state`."""
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    for generator, saved in zip(_generators(loader), state["loader"]):
        generator.set_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _generators(loader) -> list:
    """The loader's own random generators (they decide its shuffling), if it has any."""
    gens = [loader.generator, getattr(loader.sampler, "generator", None)]
    return [g for i, g in enumerate(gens) if g is not None and g not in gens[:i]]


def _check_args(epochs, lr, optimizer, grad_accum_steps, clip_grad_norm, patience, amp,
                scheduler_step, resume, checkpoint_path) -> None:
    for problem, message in [
        (not isinstance(epochs, int) or epochs < 1, f"epochs must be at least 1, got {epochs!r}"),
        (lr is not None and not lr > 0, f"lr must be a positive number such as 1e-3, got {lr!r}"),
        (lr is not None and optimizer is not None,
         "lr: pass lr only when fit builds the optimizer; set it on your own optimizer instead"),
        (not isinstance(grad_accum_steps, int) or grad_accum_steps < 1,
         f"grad_accum_steps must be a whole number >= 1, got {grad_accum_steps!r}"),
        (clip_grad_norm is not None and not clip_grad_norm > 0,
         f"clip_grad_norm must be positive (or None), got {clip_grad_norm!r}"),
        (patience is not None and (not isinstance(patience, int) or patience < 1),
         f"early_stopping_patience must be a whole number >= 1 (or None), got {patience!r}"),
        (amp is not None and amp not in AMP_CHOICES, f"amp must be one of {AMP_CHOICES}, got {amp!r}"),
        (scheduler_step not in ("epoch", "batch"),
         f"scheduler_step must be 'epoch' or 'batch', got {scheduler_step!r}"),
        (resume and not checkpoint_path, "resume=True needs checkpoint_path (the file to resume from)"),
    ]:
        if problem:
            raise ValueError(message)


def _device_and_amp(device, amp):
    """The device to train on (one GPU per process under torchrun) and the autocast dtype or None."""
    if device is None and int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    device = env.torch_device(str(device) if device is not None else None)
    if amp == "auto" and device.type == "cuda":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return device, {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def show_progress(progress, rank) -> bool:
    """Bars only on rank 0, and never with XFER_PROGRESS=0 or under pytest without a terminal."""
    in_pytest_log = "PYTEST_CURRENT_TEST" in os.environ and not sys.stdout.isatty()
    return env.progress_enabled(progress) and rank == 0 and not in_pytest_log


def fit(model, train_loader, val_loader=None, *, epochs, optimizer=None, lr=None, loss_fn=None,
        metrics=("accuracy",), scheduler=None, scheduler_step="epoch", device=None, amp="auto",
        channels_last=False, compile=False, grad_accum_steps=1, clip_grad_norm=None,
        early_stopping_patience=None, monitor="val_loss", checkpoint_path=None, resume=False,
        progress=True, callbacks=()) -> History:
    """Train ``model`` for ``epochs`` epochs; return a :class:`~xfer_helpers.history.History`.

    Each epoch records loss, metrics, val_* (with a val_loader), lr (at the epoch's start),
    seconds (training + validation) and samples_per_second (training).
    - optimizer: default AdamW(lr=``lr`` or 1e-3) over the parameters with requires_grad.
    - scheduler: stepped after every epoch (``scheduler_step="epoch"``) or after every
      optimizer update (``"batch"``: warmup, OneCycleLR). ReduceLROnPlateau gets ``monitor``.
    - amp: "auto" = bf16 on CUDA when supported, else fp16 with a GradScaler; off on CPU/MPS.
      channels_last: channels-last weights (faster convolutions on GPUs); compile: torch.compile.
    - grad_accum_steps: add up the gradients of k batches per update (the last update of an
      epoch may use fewer). clip_grad_norm: clip the total gradient norm before each update.
    - early_stopping_patience: stop after that many epochs without improvement of ``monitor``
      (lower is better for losses, higher for the rest), then restore the best weights.
    - checkpoint_path: written atomically after every epoch (model, optimizer, scheduler,
      scaler, history, random states); resume=True continues from it exactly if it exists
      (bit for bit in one process; under torchrun every process gets rank 0's random state).
    - callbacks: functions called with each epoch's record; one returning True stops training.
    - Submodules you put in eval mode before fit (e.g. frozen BatchNorm) stay in eval mode.
    - Under ``torchrun --nproc_per_node=N`` it trains with DistributedDataParallel; only rank 0
      shows progress and writes checkpoints; the history holds means over all processes.

    Example:
        >>> history = fit(model, train_loader, val_loader, epochs=5, lr=3e-4)  # doctest: +SKIP
        >>> history["val_accuracy"][-1]                                        # doctest: +SKIP
        0.91
    """
    _check_args(epochs, lr, optimizer, grad_accum_steps, clip_grad_norm, early_stopping_patience,
                amp, scheduler_step, resume, checkpoint_path)
    metric_fns = _metric_fns(metrics)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    known = ["loss", *metric_fns] + (["val_loss", *[f"val_{m}" for m in metric_fns]] if val_loader else [])
    if (early_stopping_patience or plateau) and monitor not in known:
        raise ValueError(f"monitor must be one of {known}, got {monitor!r}"
                         + ("" if val_loader else " (val_* values need a val_loader)"))
    device, amp_dtype = _device_and_amp(device, amp)
    model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr or 1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    loss_fn = loss_fn or torch.nn.CrossEntropyLoss()
    history, early, saved = History(framework="pytorch"), {"best": None, "wait": 0, "state": None}, None
    if resume and os.path.exists(checkpoint_path):
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved["scheduler"] is not None:
            scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        history, early = History.from_dict(saved["history"]), saved["early"]
    net, (train_loader, val_loader), rank = _maybe_distributed(model, [train_loader, val_loader], device)
    distributed = net is not model  # wrapped in DistributedDataParallel
    net = torch.compile(net) if compile else net
    if saved is not None and "rng" in saved:  # restored last: nothing above may draw random numbers
        _set_rng_state(saved["rng"], train_loader)
    show = show_progress(progress, rank)
    modes = {m: m.training for m in model.modules()}
    for m, training in modes.items():  # submodules you put in eval mode (e.g. frozen BatchNorm) stay there
        m.train(training or not modes[model])

    for epoch in range(len(history) + 1, epochs + 1):
        if early.get("stopped"):
            break
        if hasattr(train_loader.sampler, "set_epoch"):
            train_loader.sampler.set_epoch(epoch)  # DistributedSampler: a new shuffle each epoch
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
        bar = tqdm(total=len(train_loader), desc=f"epoch {epoch}/{epochs}", unit="batch",
                   file=sys.stdout, dynamic_ncols=True) if show else None
        t0 = time.perf_counter()
        train = _run_epoch(net, train_loader, loss_fn, metric_fns, device, optimizer=optimizer,
                           scaler=scaler, scheduler=scheduler if scheduler_step == "batch" else None,
                           amp_dtype=amp_dtype, accum=grad_accum_steps, clip=clip_grad_norm,
                           bar=bar, reduce=distributed)
        record["samples_per_second"] = train.pop("samples") / (time.perf_counter() - t0)
        record.update(train)
        if val_loader is not None:
            with eval_mode(model):
                val = _run_epoch(model, val_loader, loss_fn, metric_fns, device,
                                 amp_dtype=amp_dtype, reduce=distributed)
            record.update({f"val_{k}": v for k, v in val.items() if k != "samples"})
        history.append(**record, seconds=time.perf_counter() - t0)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if "loss" in k or "acc" in k})
            bar.close()
        if scheduler is not None and scheduler_step == "epoch":
            scheduler.step(record[monitor]) if plateau else scheduler.step()
        if early_stopping_patience:
            value, best = record[monitor], early["best"]
            if best is None or (value < best if "loss" in monitor else value > best):
                early.update(best=value, wait=0,
                             state={k: v.detach().clone() for k, v in model.state_dict().items()})
            else:
                early["wait"] += 1
        stop = any([bool(callback(history.records[-1])) for callback in callbacks])  # call them all
        early["stopped"] = stop or early["wait"] >= (early_stopping_patience or float("inf"))
        if checkpoint_path and rank == 0:
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict() if scheduler is not None else None,
                          "scaler": scaler.state_dict(), "history": history.to_dict(),
                          "early": early, "rng": _rng_state(train_loader)}
            torch.save(checkpoint, f"{checkpoint_path}.tmp")
            os.replace(f"{checkpoint_path}.tmp", checkpoint_path)  # never a half-written file

    for m, training in modes.items():
        m.train(training)
    if early["state"] is not None:
        model.load_state_dict(early["state"])  # the best epoch's weights
    return history
