"""Pretrained models for Keras (keras-hub), loaded offline from the same weights as PyTorch.

Example:
    >>> from xfer_helpers.keras.models import efficientnet_lite0
    >>> model = efficientnet_lite0(num_classes=10)   # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

from ..env import import_tensorflow
from ..pretrained import (EFFICIENTNET_LITE0, ONLINE_TEXT_MODELS, bert_keras_preset,
                          efficientnet_keras_preset, text_model_dir)

import_tensorflow()  # quiet TensorFlow's start-up logs before Keras loads it

import keras  # noqa: E402


def _use_tensorflow_same_padding(backbone) -> int:
    """Make keras-hub's EfficientNet pad like TensorFlow's "same" (as the weights were trained).

    keras-hub pads every depthwise convolution symmetrically, like timm's
    ``efficientnet_lite0``. The weights come from TensorFlow, whose "same"
    padding for a stride-2 convolution on an even-sized input puts one pixel
    less at the top/left. The shift is small but changes the logits by ~1.
    Returns how many layers were changed. Input sizes must be multiples of 32.
    """
    changed = 0
    for layer in backbone.layers:
        if layer.name.endswith("dwconv_pad"):
            conv = backbone.get_layer(layer.name.replace("dwconv_pad", "dwconv"))
            k = conv.kernel_size[0]
            if conv.strides[0] == 2:
                layer.padding = ((k // 2 - 1, k // 2), (k // 2 - 1, k // 2))
                changed += 1
    return changed


def efficientnet_lite0_backbone(pretrained: bool = True):
    """The EfficientNet-Lite0 feature extractor (keras-hub), output (N, H/32, W/32, 1280).

    Example:
        >>> efficientnet_lite0_backbone().output_shape   # doctest: +SKIP
        (None, None, None, 1280)
    """
    import keras_hub
    backbone = keras_hub.models.Backbone.from_preset(
        str(efficientnet_keras_preset()), load_weights=pretrained,
        batch_norm_epsilon=1e-3, include_stem_padding=False, stem_conv_padding="same")
    _use_tensorflow_same_padding(backbone)
    return backbone


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True, dropout: float = 0.2,
                       image_size: int | None = None):
    """EfficientNet-Lite0 classifier in Keras with the same weights as the PyTorch model.

    The backbone is called with ``training=False`` (the classic Keras advice).
    In Keras 3 that alone no longer keeps BatchNorm in inference mode once the
    backbone is unfrozen (``model.fit`` passes ``training=True`` down;
    keras-team/keras#20285): unfreeze with ``xfer_helpers.keras.transfer.unfreeze``,
    which keeps the BatchNorm layers frozen, and frozen BN layers run in
    inference mode. With ``num_classes != 1000`` the head is new and random.
    Inputs: RGB in [-1, 1], channels last, sides a multiple of 32.

    Example:
        >>> efficientnet_lite0(num_classes=3).layers[-1].units   # doctest: +SKIP
        3
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive whole number, got {num_classes!r}")
    if image_size is not None and (image_size < 32 or image_size % 32):
        raise ValueError(f"image_size must be a multiple of 32 (32, 64, ..., 224), got {image_size}")
    backbone = efficientnet_lite0_backbone(pretrained)
    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = backbone(inputs, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pooler")(features)
    pooled = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    outputs = keras.layers.Dense(num_classes, name="classifier")(pooled)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    if pretrained and num_classes == EFFICIENTNET_LITE0["num_classes"]:
        from safetensors.numpy import load_file
        weights = load_file(str(efficientnet_keras_preset() / "model.safetensors"))
        model.get_layer("classifier").set_weights([weights["classifier.weight"].T,
                                                    weights["classifier.bias"]])
    return model


def keras_text_model_dir(name: str = "minilm") -> str:
    """The offline MiniLM folder, or the downloaded BERT-base converted for keras-hub.

    ``"bert-base-uncased"`` is the registry's download (``XFER_ONLINE=1``), the same weights as the
    PyTorch helpers load (:func:`xfer_helpers.pretrained.bert_keras_preset`); the other hub names
    are for PyTorch only.

    Example:
        >>> keras_text_model_dir("distilbert-base-uncased")
        Traceback (most recent call last):
        ...
        ValueError: The Keras helpers load 'minilm' and 'bert-base-uncased', not 'distilbert-base-uncased'. Use the PyTorch helpers with 'distilbert-base-uncased'.
    """
    if name == "bert-base-uncased":
        return str(bert_keras_preset(name))
    if name in ONLINE_TEXT_MODELS:
        raise ValueError(f"The Keras helpers load 'minilm' and 'bert-base-uncased', not {name!r}. "
                         f"Use the PyTorch helpers with {name!r}.")
    return text_model_dir(name)


def minilm_tokenizer(name: str = "minilm", sequence_length: int = 64):
    """keras-hub BERT preprocessor (WordPiece tokenizer + packer) for MiniLM.

    Returns a layer mapping strings to ``token_ids``, ``segment_ids`` and ``padding_mask``.

    Example:
        >>> minilm_tokenizer()(["Hello!"])["token_ids"][0][:4]   # doctest: +SKIP
        [101, 7592, 999, 102]
    """
    import keras_hub
    if sequence_length < 4:
        raise ValueError(f"sequence_length must be at least 4 tokens, got {sequence_length}")
    return keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        keras_text_model_dir(name), sequence_length=sequence_length)


def minilm_encoder(name: str = "minilm"):
    """The pretrained MiniLM encoder as a keras-hub ``BertBackbone``.

    Its outputs are ``sequence_output`` (N, T, 384) and ``pooled_output``.

    Example:
        >>> minilm_encoder().hidden_dim   # doctest: +SKIP
        384
    """
    import keras_hub
    return keras_hub.models.BertBackbone.from_preset(keras_text_model_dir(name))


def wordpiece_tokenizer(vocab_file: str, lowercase: bool, sequence_length: int = 64):
    """keras-hub BERT preprocessor (WordPiece + [CLS]/[SEP] + padding) from a ``vocab.txt``.

    The twin of ``xfer_helpers.pytorch.models.wordpiece_tokenizer``. Use ``lowercase=False``
    for Chinese BERT: keras-hub's lowercasing folds full-width punctuation to ASCII as well.

    Example:
        >>> wordpiece_tokenizer("vocab.txt", lowercase=False)(["你好，世界！"])["token_ids"]  # doctest: +SKIP
    """
    import keras_hub
    if sequence_length < 4:
        raise ValueError(f"sequence_length must be at least 4 tokens, got {sequence_length}")
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=str(vocab_file), lowercase=lowercase)
    return keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)


def timm_classifier(folder):
    """A timm classifier folder (``config.json`` + ``model.safetensors``) as a keras-hub ``ImageClassifier``.

    The folder is what the hub serves, or what ``xfer_helpers.pytorch.models.export_timm_preset``
    writes. Give it normalised images, channels last: it returns the same logits as the timm model on
    ``x.transpose(0, 3, 1, 2)``, through ``model(x)`` and through ``fit``, ``predict`` and the
    ``*_on_batch`` methods alike. (keras-hub attaches the preset's preprocessor, which in those
    methods resizes every batch to the preset's 224 px and normalises it again; it is removed here.)

    Example:
        >>> timm_classifier("resnet18_preset")(x).shape   # doctest: +SKIP
        TensorShape([2, 1000])
    """
    import keras_hub
    model = keras_hub.models.ImageClassifier.from_preset(str(folder))
    model.preprocessor = None
    return model


def torchvision_cnn(name: str = "resnet18"):
    """ResNet-18 or VGG16 with torchvision's ImageNet weights as a keras-hub ``ImageClassifier``.

    The same downloaded file as ``xfer_helpers.pytorch.models.torchvision_cnn``, written once as a
    timm preset under ``XFER_DATA_DIR/<name>/keras-hub`` and read by keras-hub's timm converter
    (:func:`timm_classifier`): the same logits, channels last. keras-hub's own
    ``resnet_18_imagenet`` preset is a different training recipe, not these weights.

    Example:
        >>> torchvision_cnn("resnet18")(x).shape   # doctest: +SKIP
        TensorShape([2, 1000])
    """
    from .. import assets
    from ..pytorch.models import export_timm_preset
    from ..pytorch.models import torchvision_cnn as torch_cnn
    model = torch_cnn(name)                     # checks the name and that the file is there
    folder = assets.build_folder(assets.asset_path(name) / "keras-hub",
                                 lambda folder: export_timm_preset(model, folder),
                                 lambda folder: (folder / "config.json").is_file())
    return timm_classifier(folder)


def vgg16_keras(classifier_activation=None):
    """Keras Applications' ``VGG16`` with its ImageNet weights (the articles' model), from the download.

    The weights were converted from Caffe: inputs are BGR, 0-255, Caffe means subtracted
    (``keras.applications.vgg16.preprocess_input``). ``XFER_ONLINE=1 xfer download vgg16_keras``
    fetches the file Keras itself would, checked by the MD5 in Keras' source. Logits out by
    default (Keras ends in a softmax otherwise); ``xfer_helpers.pytorch.models.vgg16_from_keras``
    puts the same weights into torchvision's VGG16.

    Example:
        >>> vgg16_keras().count_params()   # doctest: +SKIP
        138357544
    """
    from .. import assets
    (remote,) = assets.get_asset("vgg16_keras").online
    weights = assets.asset_path("vgg16_keras") / remote.filename
    return keras.applications.VGG16(weights=str(weights), classifier_activation=classifier_activation)
