"""Framework-neutral facts about the pretrained models, and the photos we test them on.

The PyTorch loaders live in ``xfer_helpers.pytorch.models``, the Keras ones in
``xfer_helpers.keras.models``; both read the same weight files listed here.

Example:
    >>> EFFICIENTNET_LITE0["mean"]
    (0.5, 0.5, 0.5)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from . import assets

# EfficientNet-Lite0 was trained in TensorFlow on RGB images scaled to [-1, 1]
# (mean 0.5, std 0.5 after dividing by 255) with TensorFlow "same" padding.
EFFICIENTNET_LITE0 = {
    "timm_name": "tf_efficientnet_lite0",
    "input_size": 224,
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "num_features": 1280,
    "num_classes": 1000,
}

# Names of MiniLM-compatible checkpoints that online mode accepts.
ONLINE_TEXT_MODELS = ("bert-base-uncased", "distilbert-base-uncased")

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat")


def load_photo(name: str = "chelsea", size: int = 224) -> np.ndarray:
    """A scikit-image sample photo as uint8 RGB, resized (whole image, bicubic) to size x size.

    Example:
        >>> load_photo("coffee", 64).shape
        (64, 64, 3)
    """
    from PIL import Image
    from skimage import data
    if name not in PHOTOS:
        raise KeyError(f"Unknown photo {name!r}. Valid names: {', '.join(PHOTOS)}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    image = Image.fromarray(getattr(data, name)()).convert("RGB")
    return np.asarray(image.resize((size, size), Image.BICUBIC))


def normalize_for_efficientnet(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images (..., H, W, 3) -> float32 in [-1, 1], as EfficientNet-Lite0 expects.

    Example:
        >>> normalize_for_efficientnet(np.array([[[0, 255, 127]]], np.uint8)).round(2).tolist()
        [[[-1.0, 1.0, -0.0]]]
    """
    images = np.asarray(images)
    if images.shape[-1] != 3:
        raise ValueError(f"expected RGB images with 3 channels last, got shape {images.shape}")
    mean = np.array(EFFICIENTNET_LITE0["mean"], np.float32)
    std = np.array(EFFICIENTNET_LITE0["std"], np.float32)
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def text_model_dir(name: str = "minilm") -> str:
    """Local folder (offline MiniLM, downloaded BERT-base) or hub name (online) of a BERT-family checkpoint.

    ``"bert-base-uncased"`` is the registry's ``bert_base_uncased``: the hub's files at a fixed
    revision, sha256-checked, downloaded on first use when ``XFER_ONLINE=1`` (or beforehand with
    ``xfer download bert_base_uncased``). ``"distilbert-base-uncased"`` comes from the hub client.

    Example:
        >>> Path(text_model_dir()).name
        'model'
    """
    if name in ("minilm", "all-MiniLM-L6-v2"):
        return str(assets.asset_path("minilm"))
    if name in ONLINE_TEXT_MODELS:
        asset = assets.get_asset("bert_base_uncased")
        here = name == "bert-base-uncased" and asset.locate() is not None
        if not here and not assets.online_allowed():
            raise assets.OfflineError(
                f"{name!r} is a download ({asset.download_size if name == 'bert-base-uncased' else 'from the hub'}), "
                f"but online mode is off. Use 'minilm' (installed offline), or  export {assets.ONLINE_ENV}=1")
        if name == "bert-base-uncased":
            return str(assets.asset_path("bert_base_uncased"))
        # Hub downloads go to the course's one cache folder. The hub client checks
        # each weight file against the sha256 the hub publishes for it.
        os.environ.setdefault("HF_HOME", str(assets.data_dir() / "huggingface"))
        return name
    raise KeyError(f"Unknown text model {name!r}. Valid names: minilm, {', '.join(ONLINE_TEXT_MODELS)}")


def bert_keras_preset(name: str = "bert-base-uncased") -> Path:
    """The downloaded BERT-base files as a folder keras-hub reads: the same weights as PyTorch's.

    The hub's ``pytorch_model.bin`` becomes ``model.safetensors`` (the encoder only: the
    pre-training heads are left out), next to the same ``config.json`` and ``vocab.txt`` and a
    ``tokenizer_config.json`` saying the vocabulary is lower-case. Converted once, in a separate
    Python process (so a Keras session never imports PyTorch), under ``XFER_DATA_DIR``, written
    under a temporary name and renamed when complete.
    """
    if name != "bert-base-uncased":
        raise ValueError(f"Only 'bert-base-uncased' is converted for keras-hub, not {name!r}")
    source = Path(text_model_dir(name))

    def fill(folder: Path) -> None:
        code = ("import torch; from safetensors.torch import save_file; "
                f"weights = torch.load({str(source / 'pytorch_model.bin')!r}, map_location='cpu', weights_only=True); "
                "save_file({k: v.clone().contiguous() for k, v in weights.items() if not k.startswith('cls.')}, "
                f"{str(folder / 'model.safetensors')!r})")
        _run_python(code, f"Converting {source / 'pytorch_model.bin'} for keras-hub")
        for file in ("config.json", "vocab.txt"):
            shutil.copyfile(source / file, folder / file)
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))

    return assets.build_folder(source / "keras-hub", fill, lambda d: (d / "model.safetensors").is_file())


def _run_python(code: str, what: str) -> None:
    """Run ``code`` in a separate Python process (PyTorch stays out of this one); fail with its error."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-2000:]}")


def efficientnet_keras_preset() -> Path:
    """Folder with a timm-style ``config.json`` + ``model.safetensors`` for keras-hub.

    The weights ship as a PyTorch ``.pth`` file; the first call converts them
    in a separate Python process (so a Keras session never imports PyTorch)
    and caches the result under ``XFER_DATA_DIR``. The folder is written
    under a temporary name and renamed when complete.
    """
    source = assets.asset_path("efficientnet_lite0")
    expected = assets.OFFLINE_SHA256["efficientnet_lite0"]

    def fill(folder: Path) -> None:
        _run_python("from xfer_helpers.pytorch.models import export_timm_safetensors; "
                    f"export_timm_safetensors({str(folder / 'model.safetensors')!r})",
                    f"Converting the EfficientNet-Lite0 weights from {source}")
        config = {"architecture": "efficientnet_lite0", "num_classes": 1000, "num_features": 1280,
                  "pretrained_cfg": {"classifier": "classifier", "input_size": [3, 224, 224],
                                     "mean": list(EFFICIENTNET_LITE0["mean"]),
                                     "std": list(EFFICIENTNET_LITE0["std"])}}
        (folder / "config.json").write_text(json.dumps(config, indent=1))
        (folder / "source.sha256").write_text(expected)

    def ready(folder: Path) -> bool:   # converted from the weights the registry has now
        stamp = folder / "source.sha256"
        return stamp.is_file() and stamp.read_text().strip() == expected

    return assets.build_folder(assets.data_dir() / "presets" / "efficientnet_lite0_timm", fill, ready)
