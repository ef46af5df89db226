"""Tests for xfer_helpers.pytorch.training: fit, evaluate, predict (tiny MLPs on synthetic data)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from xfer_helpers.pytorch import evaluate, fit, predict

ROOT = Path(__file__).resolve().parents[1]


def blobs(n=256, seed=0, dim=8, shift=3.0):
    """Two Gaussian blobs at +-shift: an easy binary problem when they are far apart."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, dim, generator=g) + shift * (2 * y[:, None] - 1)
    return x, y


def loader(x, y, batch_size=32, shuffle=False, seed=0):
    g = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=g)


def mlp(seed=0, dim=8, dropout=0.0, classes=2):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- basic training and history

def test_fit_learns_easy_problem_and_fills_history():
    x, y = blobs(320)
    model = mlp()
    history = fit(model, loader(x[:256], y[:256], shuffle=True), loader(x[256:], y[256:]),
                  epochs=3, lr=1e-2, device="cpu", progress=False)
    assert history.framework == "pytorch"
    assert len(history) == 3
    for key in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                "samples_per_second"):
        assert key in history.keys(), key
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] >= 0.95
    assert history["lr"] == [1e-2] * 3
    assert all(s > 0 for s in history["seconds"] + history["samples_per_second"])
    # the recorded validation numbers are what evaluate() says about the final model
    result = evaluate(model, loader(x[256:], y[256:]))
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    assert result["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_fit_reduces_loss_on_a_harder_problem():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR-like: needs the hidden layer
    model = mlp(seed=1)
    history = fit(model, loader(x, y, shuffle=True), epochs=12, lr=1e-2, device="cpu", progress=False)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["accuracy"][0] < 0.7 < 0.9 < history["accuracy"][-1]


def test_evaluate_uses_eval_mode_and_restores_the_previous_mode():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    x, y = blobs(64)
    model = nn.Sequential(mlp(dropout=0.5), Spy())
    model.train()
    first = evaluate(model, loader(x, y))
    second = evaluate(model, loader(x, y))
    assert first == second  # dropout is off: identical results twice
    assert seen and not any(seen)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    evaluate(model, loader(x, y))
    assert not any(m.training for m in model.modules())
    # control: in train mode the same model is random, so the check above can fail
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_predict_shapes_probabilities_and_modes():
    x, y = blobs(70)
    model = mlp(dropout=0.5)
    model.train()
    logits = predict(model, x.numpy().astype(np.float64), batch_size=32)  # float64 in, chunks of 32
    assert logits.shape == (70, 2) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, predict(model, loader(x, y, batch_size=16)))
    probs = predict(model, x, probabilities=True)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert model.training


def test_submodules_in_eval_mode_stay_frozen_during_fit():
    modes = []

    class Spy(nn.Module):
        def forward(self, x):
            modes.append(self.training)
            return x

    x, y = blobs(64)
    model = nn.Sequential(nn.Linear(8, 8), Spy(), nn.Linear(8, 2))
    model.train()
    model[1].eval()  # e.g. a frozen BatchNorm layer
    fit(model, loader(x, y), epochs=1, device="cpu", progress=False)
    assert modes and not any(modes)
    assert model.training and not model[1].training
    # a model handed over in eval mode is trained in train mode (and put back in eval mode)
    modes.clear()
    model.eval()
    fit(model, loader(x, y), epochs=1, device="cpu", progress=False)
    assert modes and all(modes)
    assert not model.training


# ---------------------------------------------------------------- checkpoints and exact resume

def _resume_setup(seed=0):
    """A shuffled loader with its own generator, dropout, AdamW and a per-epoch scheduler."""
    x, y = blobs(96, seed=3)
    model = mlp(seed=seed, dropout=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # LambdaLR computes the rate from its own epoch counter, so a lost scheduler state shows
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1 / (1 + epoch))
    return model, optimizer, scheduler, loader(x, y, batch_size=16, shuffle=True, seed=5)


def _train(tmp_path, name, epochs, resume=False, seed=0):
    model, optimizer, scheduler, train = _resume_setup(seed)
    history = fit(model, train, epochs=epochs, optimizer=optimizer, scheduler=scheduler,
                  device="cpu", progress=False, checkpoint_path=tmp_path / name, resume=resume)
    return model, history


def test_resume_from_checkpoint_is_exact(tmp_path):
    straight, straight_history = _train(tmp_path, "straight.pt", epochs=4)
    _train(tmp_path, "split.pt", epochs=2)
    assert not (tmp_path / "split.pt.tmp").exists()  # written to a temp file, then renamed
    resumed, resumed_history = _train(tmp_path, "split.pt", epochs=4, resume=True, seed=99)
    assert same_weights(weights(straight), weights(resumed))
    assert resumed_history["loss"] == straight_history["loss"]
    assert resumed_history["lr"] == straight_history["lr"]
    assert resumed_history["epoch"] == [1, 2, 3, 4]
    # resuming a finished run trains no further
    again, again_history = _train(tmp_path, "split.pt", epochs=4, resume=True, seed=7)
    assert same_weights(weights(again), weights(straight)) and len(again_history) == 4


def test_resume_without_random_states_differs(tmp_path):
    """Shows the exact-resume test can fail: drop the saved random states and the run changes."""
    straight, _ = _train(tmp_path, "straight.pt", epochs=4)
    _train(tmp_path, "split.pt", epochs=2)
    checkpoint = torch.load(tmp_path / "split.pt", weights_only=True)
    del checkpoint["rng"]
    torch.save(checkpoint, tmp_path / "split.pt")
    resumed, _ = _train(tmp_path, "split.pt", epochs=4, resume=True)
    assert not same_weights(weights(straight), weights(resumed))


def test_resume_without_a_checkpoint_file_starts_fresh(tmp_path):
    model, history = _train(tmp_path, "new.pt", epochs=1, resume=True)
    assert len(history) == 1 and (tmp_path / "new.pt").exists()


# ---------------------------------------------------------------- early stopping

def test_early_stopping_restores_the_best_weights():
    x, y = blobs(160, shift=0.7)  # overlapping blobs: the loss cannot reach zero
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    # three calm epochs, then a learning rate so large that the validation loss soon gets worse
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0 if epoch < 3 else 100.0)
    snapshots = {}
    history = fit(model, loader(x[:128], y[:128]), loader(x[128:], y[128:]), epochs=12,
                  optimizer=optimizer, scheduler=scheduler, early_stopping_patience=2,
                  device="cpu", progress=False,
                  callbacks=[lambda record: snapshots.update({record["epoch"]: weights(model)})])
    best = history.best("val_loss")["epoch"]
    assert best > 1
    assert len(history) == best + 2 < 12  # stopped after two epochs without improvement
    assert history["val_loss"][-1] > history["val_loss"][best - 1]
    assert same_weights(weights(model), snapshots[best])
    assert not same_weights(weights(model), snapshots[len(history)])


def test_metric_functions_are_recorded_under_their_name():
    def positive_rate(outputs, targets):
        return (outputs.argmax(-1) == 1).float().mean()

    x, y = blobs(64)
    model = mlp()
    history = fit(model, loader(x, y), loader(x, y), epochs=1, metrics=(positive_rate,),
                  device="cpu", progress=False)
    expected = float((predict(model, x).argmax(1) == 1).mean())
    assert history["val_positive_rate"] == [pytest.approx(expected)]
    assert "accuracy" not in history.keys()


def test_callback_returning_true_stops_training():
    x, y = blobs(64)
    history = fit(mlp(), loader(x, y), epochs=5, device="cpu", progress=False,
                  callbacks=[lambda record: record["epoch"] == 2])
    assert len(history) == 2


# ---------------------------------------------------------------- gradients

def test_gradient_accumulation_matches_a_bigger_batch():
    x, y = blobs(128)
    runs = {}
    for batch_size, accum in [(16, 1), (8, 2), (8, 1)]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        fit(model, loader(x, y, batch_size=batch_size), epochs=2, optimizer=optimizer,
            grad_accum_steps=accum, device="cpu", progress=False)
        runs[batch_size, accum] = weights(model)
    for k in runs[16, 1]:
        torch.testing.assert_close(runs[8, 2][k], runs[16, 1][k], atol=1e-6, rtol=0)
    # control: batch 8 without accumulation takes twice as many steps and ends elsewhere
    assert max((runs[8, 1][k] - runs[16, 1][k]).abs().max().item() for k in runs[16, 1]) > 1e-3


class NormRecordingSGD(torch.optim.SGD):
    """SGD that records the total gradient norm it sees at every step."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.norms = []

    def step(self, closure=None):
        grads = [p.grad.flatten() for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        self.norms.append(torch.cat(grads).norm().item())
        return super().step(closure)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_clip_grad_norm_limits_the_gradient_norm(clip):
    x, y = blobs(64)
    model = mlp()
    optimizer = NormRecordingSGD(model.parameters(), lr=0.01)
    fit(model, loader(x, y, batch_size=16), epochs=1, optimizer=optimizer, clip_grad_norm=clip,
        device="cpu", progress=False)
    assert len(optimizer.norms) == 4
    if clip is None:
        assert max(optimizer.norms) > 0.05  # without clipping the norms are larger
    else:
        assert max(optimizer.norms) <= clip * (1 + 1e-5)


# ---------------------------------------------------------------- schedulers, AMP, progress

@pytest.mark.parametrize("step, expected", [("epoch", [0.1, 0.05, 0.025]),
                                            ("batch", [0.1, 0.1 * 0.5 ** 4, 0.1 * 0.5 ** 8])])
def test_scheduler_is_stepped_per_epoch_or_per_batch(step, expected):
    x, y = blobs(64)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, loader(x, y, batch_size=16), epochs=3, optimizer=optimizer,
                  scheduler=scheduler, scheduler_step=step, device="cpu", progress=False)
    assert history["lr"] == pytest.approx(expected)


@pytest.mark.parametrize("amp, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16),
                                        ("auto", torch.float32), (False, torch.float32)])
def test_amp_autocasts_to_the_chosen_dtype(amp, dtype):
    dtypes = []

    class Spy(nn.Module):
        def forward(self, x):
            dtypes.append(x.dtype)
            return x

    x, y = blobs(64)
    model = nn.Sequential(nn.Linear(8, 16), Spy(), nn.ReLU(), nn.Linear(16, 2))
    history = fit(model, loader(x, y), epochs=2, lr=1e-2, amp=amp, device="cpu", progress=False)
    assert set(dtypes) == {dtype}  # "auto" means no autocast on a CPU
    assert history["loss"][-1] < history["loss"][0]
    assert next(model.parameters()).dtype == torch.float32  # the weights stay float32


def test_compile_gives_the_same_training(tmp_path, monkeypatch):
    compiled = []
    real_compile = torch.compile
    # the "eager" backend traces the model like the default but skips the slow C++ code generation
    monkeypatch.setattr(torch, "compile",
                        lambda net: compiled.append(net) or real_compile(net, backend="eager"))
    x, y = blobs(64)
    runs = []
    for compile in (False, True):
        model = mlp()
        history = fit(model, loader(x, y), epochs=2, lr=1e-2, compile=compile, device="cpu",
                      progress=False, checkpoint_path=tmp_path / f"{compile}.pt")
        runs.append((weights(model), history["loss"]))
    assert len(compiled) == 1
    assert runs[0][1] == pytest.approx(runs[1][1], rel=1e-5)
    saved = torch.load(tmp_path / "True.pt", weights_only=True)["model"]
    assert saved.keys() == runs[0][0].keys()  # no "_orig_mod." prefixes in the checkpoint


def test_progress_bar_is_shown_only_when_wanted(capsys, monkeypatch):
    x, y = blobs(64)
    monkeypatch.setenv("XFER_PROGRESS", "1")  # tests/conftest.py turns bars off by default
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    fit(mlp(), loader(x, y), epochs=1, device="cpu", progress=True)
    assert "epoch 1/1" in capsys.readouterr().out
    monkeypatch.setenv("XFER_PROGRESS", "0")
    fit(mlp(), loader(x, y), epochs=1, device="cpu", progress=True)
    monkeypatch.setenv("XFER_PROGRESS", "1")
    fit(mlp(), loader(x, y), epochs=1, device="cpu", progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_is_silent_under_pytest_without_a_terminal(capsys, monkeypatch):
    monkeypatch.setenv("XFER_PROGRESS", "1")
    x, y = blobs(64)
    fit(mlp(), loader(x, y), epochs=1, device="cpu", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, word", [
    ({"epochs": 0}, "epochs"),
    ({"epochs": 1, "lr": -1e-3}, "lr"),
    ({"epochs": 1, "grad_accum_steps": 0}, "grad_accum_steps"),
    ({"epochs": 1, "metrics": ("accuracy", "f2_score")}, "f2_score"),
    ({"epochs": 1, "resume": True}, "checkpoint_path"),
    ({"epochs": 1, "clip_grad_norm": 0}, "clip_grad_norm"),
    ({"epochs": 1, "early_stopping_patience": 0}, "early_stopping_patience"),
    ({"epochs": 1, "early_stopping_patience": 2}, "val_loader"),  # monitor val_loss, no val data
    ({"epochs": 1, "amp": "fp8"}, "amp"),
    ({"epochs": 1, "scheduler_step": "step"}, "scheduler_step"),
])
def test_bad_arguments_raise_value_error_naming_the_argument(kwargs, word):
    x, y = blobs(32)
    with pytest.raises(ValueError, match=word):
        fit(mlp(), loader(x, y), device="cpu", progress=False, **kwargs)


def test_unknown_metric_in_evaluate_lists_the_choices():
    x, y = blobs(32)
    with pytest.raises(ValueError, match="accuracy"):
        evaluate(mlp(), loader(x, y), metrics=("f1",))


# ---------------------------------------------------------------- two processes with torchrun

@pytest.mark.slow
def test_torchrun_two_processes_keep_identical_replicas(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XFER_PROGRESS": "0"}
    env.pop("WORLD_SIZE", None)
    with socket.socket() as s:  # a free port for the rendezvous (--master_port=0 hangs)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # own process group, so that a timeout can stop torchrun *and* its worker processes
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_addr=127.0.0.1", f"--master_port={port}",
         str(ROOT / "tests" / "ddp_worker.py"), str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("torchrun did not finish within 120 s:\n" + output[-3000:])
    assert proc.returncode == 0, output[-3000:]
    initial = torch.load(tmp_path / "initial_rank0.pt", weights_only=True)
    final = [torch.load(tmp_path / f"final_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert same_weights(final[0], final[1])  # DDP kept the replicas in step
    assert not same_weights(final[0], initial)  # and they did train
    # the two processes were seeded differently, so without DDP they would disagree
    assert not same_weights(initial, torch.load(tmp_path / "initial_rank1.pt", weights_only=True))
    info = [json.loads((tmp_path / f"info_rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["history"] == info[1]["history"]  # losses and metrics were all-reduced
    # each process saw its own half of the 128 training samples in each of the 2 epochs
    assert [i["train_items_seen"] for i in info] == [128, 128]
    assert info[0]["history"]["records"][-1]["val_accuracy"] > 0.9
