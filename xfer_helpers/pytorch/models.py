"""Pretrained models for PyTorch, loaded offline from the asset registry.

Example:
    >>> from xfer_helpers.pytorch.models import efficientnet_lite0
    >>> model = efficientnet_lite0(num_classes=10)   # ImageNet backbone, new 10-class head
    >>> model.classifier.out_features
    10
"""
from __future__ import annotations

from pathlib import Path

import torch

from .. import assets
from ..pretrained import EFFICIENTNET_LITE0, text_model_dir


def _lite0_state_dict(model: torch.nn.Module) -> dict:
    """The packaged weights renamed to timm's names.

    The file uses the names of the original EfficientNet-PyTorch port
    (``_conv_stem.weight``...). Both list the 296 tensors in the same order
    with the same shapes, so we match them by position and check every shape.
    """
    source = torch.load(assets.asset_path("efficientnet_lite0"), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"weight file has {len(source)} tensors, the model {len(target)}")
    renamed = {}
    for (name, tensor), (src_name, src) in zip(target.items(), source.items()):
        if tensor.shape != src.shape:
            raise RuntimeError(f"shape mismatch: {src_name} {tuple(src.shape)} vs {name} {tuple(tensor.shape)}")
        renamed[name] = src
    return renamed


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True,
                       drop_rate: float = 0.2) -> torch.nn.Module:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with ImageNet weights.

    With ``num_classes != 1000`` the ImageNet head is replaced by a new,
    randomly initialised ``model.classifier`` with that many outputs.
    ``pretrained=False`` gives the same architecture with random weights
    (for the train-from-scratch baseline). Inputs: RGB in [-1, 1].

    Example:
        >>> efficientnet_lite0(num_classes=3).classifier
        Linear(in_features=1280, out_features=3, bias=True)
    """
    import timm
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive whole number, got {num_classes!r}")
    model = timm.create_model(EFFICIENTNET_LITE0["timm_name"], pretrained=False, drop_rate=drop_rate)
    if pretrained:
        model.load_state_dict(_lite0_state_dict(model))
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


def export_timm_safetensors(path: str) -> None:
    """Write the pretrained EfficientNet-Lite0 weights, timm names, to a safetensors file.

    keras-hub reads this file (see ``xfer_helpers.pretrained.efficientnet_keras_preset``).
    """
    _save_timm_safetensors(efficientnet_lite0(), path)


def _save_timm_safetensors(model: torch.nn.Module, path) -> None:
    from safetensors.torch import save_file
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    save_file(tensors, str(path))


def export_timm_preset(model: torch.nn.Module, folder) -> Path:
    """Write a timm image classifier as the hub has it: ``config.json`` + ``model.safetensors``.

    keras-hub reads such a folder (``xfer_helpers.keras.models.timm_classifier``) through its timm
    converters (ResNet, VGG, EfficientNet, ...). The tests use it to prove a conversion on random
    weights of the real architecture, with no download.

    Example:
        >>> export_timm_preset(timm.create_model("resnet18"), "resnet18_preset")   # doctest: +SKIP
        PosixPath('resnet18_preset')
    """
    import json
    cfg = model.pretrained_cfg
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architecture": cfg["architecture"], "num_classes": model.num_classes,
              "num_features": model.num_features,
              "pretrained_cfg": {key: cfg[key] for key in ("classifier", "input_size", "interpolation",
                                                           "crop_pct", "mean", "std")}}
    _save_timm_safetensors(model, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


# The articles' ImageNet CNNs: registry asset -> timm model whose checkpoint filter reads the file.
TORCHVISION_CNNS = {"resnet18": "resnet18.tv_in1k", "vgg16": "vgg16.tv_in1k"}


def torchvision_cnn(name: str = "resnet18", num_classes: int = 1000) -> torch.nn.Module:
    """ResNet-18 or VGG16 (timm) with torchvision's ImageNet weights, from the downloaded file.

    The file is torchvision's own (``XFER_ONLINE=1 xfer download resnet18``; timm's
    ``resnet18.tv_in1k`` names the same file). timm maps its keys (for VGG16, torchvision's dense
    ``classifier`` becomes timm's convolutional ``pre_logits``). A ``num_classes`` other than
    1000 gets a new, random head. In eval mode; inputs are RGB with ImageNet's mean and std.

    Example:
        >>> torchvision_cnn("resnet18").num_features   # doctest: +SKIP
        512
    """
    import timm
    if name not in TORCHVISION_CNNS:
        raise ValueError(f"name must be one of {', '.join(TORCHVISION_CNNS)}, got {name!r}")
    (remote,) = assets.get_asset(name).online
    weights = assets.asset_path(name) / remote.filename   # a clear error with the fix when missing
    model = timm.create_model(TORCHVISION_CNNS[name], pretrained=True, num_classes=num_classes,
                              pretrained_cfg_overlay={"file": str(weights)})
    return model.eval()


def _quiet_transformers() -> None:
    import transformers
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def minilm_tokenizer(name: str = "minilm"):
    """The WordPiece tokenizer of MiniLM (or of an online checkpoint name).

    Example:
        >>> minilm_tokenizer()("Hello!")["input_ids"]
        [101, 7592, 999, 102]
    """
    from transformers import AutoTokenizer
    _quiet_transformers()
    return AutoTokenizer.from_pretrained(text_model_dir(name))


def minilm_encoder(name: str = "minilm") -> torch.nn.Module:
    """The pretrained BERT-architecture encoder (``transformers.AutoModel``), in eval mode.

    Example:
        >>> minilm_encoder().config.hidden_size
        384
    """
    from transformers import AutoModel
    _quiet_transformers()
    return AutoModel.from_pretrained(text_model_dir(name)).eval()


def minilm_classifier(num_labels: int, name: str = "minilm") -> torch.nn.Module:
    """Pretrained encoder + a new, randomly initialised classification head.

    Example:
        >>> minilm_classifier(3).classifier.out_features
        3
    """
    from transformers import AutoModelForSequenceClassification
    if not isinstance(num_labels, int) or num_labels < 2:
        raise ValueError(f"num_labels must be a whole number of at least 2, got {num_labels!r}")
    _quiet_transformers()
    return AutoModelForSequenceClassification.from_pretrained(text_model_dir(name), num_labels=num_labels)


# Keras Applications' VGG16 layers, in the order of torchvision's vgg16 layers that hold weights.
KERAS_VGG16_CONVS = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                     for c in range(1, n + 1)]
KERAS_VGG16_DENSES = ["fc1", "fc2", "predictions"]


def vgg16_from_keras(keras_model) -> torch.nn.Module:
    """torchvision's VGG16 holding the weights of a Keras Applications ``VGG16`` (with its top).

    This is how the articles' Keras model (``VGG16(weights="imagenet")``, weights converted
    from Caffe) runs in PyTorch. Three things change between the frameworks:

    - convolution kernels are ``(height, width, in, out)`` in Keras and ``(out, in, height, width)``
      in PyTorch, dense kernels ``(in, out)`` and ``(out, in)``;
    - **the first dense layer reads the flattened 7 x 7 x 512 feature map**: Keras flattens
      channels-last (row, column, channel), PyTorch channels-first (channel, row, column), so its
      25 088 input weights must be put in PyTorch's order, or the network runs and is wrong;
    - the inputs stay Keras's: BGR, 0-255 with the Caffe means subtracted
      (``keras.applications.vgg16.preprocess_input``), transposed to ``(N, 3, 224, 224)``;
    - Keras's model ends in a softmax (probabilities), torchvision's gives logits.

    Example:
        >>> torch_vgg = vgg16_from_keras(keras.applications.VGG16(weights=None))   # doctest: +SKIP
        >>> torch_vgg(torch.from_numpy(x_bgr.transpose(0, 3, 1, 2))).shape          # doctest: +SKIP
        torch.Size([2, 1000])
    """
    from torchvision.models import vgg16
    names = [layer.name for layer in keras_model.layers]
    missing = [n for n in KERAS_VGG16_CONVS + KERAS_VGG16_DENSES if n not in names]
    if missing:
        raise ValueError(f"not a Keras Applications VGG16 with its top (include_top=True): no layer "
                         f"{', '.join(missing[:3])}. Build it with keras.applications.VGG16().")
    units = keras_model.get_layer("predictions").get_weights()[1].shape[0]
    model = vgg16(weights=None, num_classes=units).eval()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    denses = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for conv, name in zip(convs, KERAS_VGG16_CONVS):
            kernel, bias = keras_model.get_layer(name).get_weights()
            conv.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
            conv.bias.copy_(torch.from_numpy(bias))
        for i, (linear, name) in enumerate(zip(denses, KERAS_VGG16_DENSES)):
            kernel, bias = keras_model.get_layer(name).get_weights()
            if i == 0:   # rows in Keras's (row, column, channel) order -> PyTorch's (channel, row, column)
                kernel = kernel.reshape(7, 7, 512, -1).transpose(2, 0, 1, 3).reshape(7 * 7 * 512, -1)
            linear.weight.copy_(torch.from_numpy(kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(bias))
    return model


def wordpiece_tokenizer(vocab_file: str, lowercase: bool):
    """A BERT WordPiece tokenizer (transformers) from a ``vocab.txt``, e.g. ``bert-base-chinese``'s.

    The twin of ``xfer_helpers.keras.models.wordpiece_tokenizer``: the same ids for the same
    text when ``lowercase`` is the same. Chinese BERT is cased (``lowercase=False``): with
    lowercasing on, keras-hub also folds full-width punctuation (，！) to ASCII (,!) and the two
    frameworks part ways (``tests/test_conversions.py``).

    Example:
        >>> wordpiece_tokenizer("vocab.txt", lowercase=False)("你好，世界！")["input_ids"]  # doctest: +SKIP
        [2, 5, 6, 7, 8, 9, 10, 3]
    """
    from transformers import BertTokenizer
    _quiet_transformers()
    return BertTokenizer(vocab=str(vocab_file), do_lower_case=lowercase)
