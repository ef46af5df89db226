"""Freezing, parameter counts, classifier heads and discriminative learning rates for Keras.

The same API as :mod:`xfer_helpers.pytorch.transfer`. Words used here:

- **name**: a Keras layer's ``name``. Layers inside a nested model (a backbone
  used as one layer of a classifier) are reached too; the nested model's own
  name selects all of its layers.
- **block**: consecutive layers whose names start with the same block prefix,
  found with the regular expression ``block_pattern`` (default ``r"^(block\\d+)"``).
  keras-hub's EfficientNet names its layers ``block1a_dwconv``, ``block2b_project_bn``
  ..., so its blocks are the stages ``block1`` ... ``block7``: the same seven
  stages as the children of ``model.blocks`` in timm's EfficientNet.
- **all but the last N blocks**: every layer that comes before the first layer
  of the N-th block from the end (the stem and the earlier blocks). Layers after
  the blocks (``top_conv``, the head) are not part of it.

BatchNormalization in Keras 3: a BN layer with ``trainable=False`` runs in
inference mode (it uses and keeps its moving statistics), so frozen BN layers are
safe. :func:`unfreeze` therefore leaves BN layers frozen unless asked otherwise,
and :func:`freeze_batchnorm` re-freezes them after any unfreezing. The Keras 2
recipe ``x = backbone(inputs, training=False)`` does *not* protect them any
more: ``fit`` calls the model with ``training=True``, which overrides the
``training=False`` stored in the functional graph (keras-team/keras#20285;
measured with Keras 3.15). Call ``model.compile(...)`` again after freezing or
unfreezing: Keras reads the trainable flags when it compiles.

Only layers reachable through ``model.layers`` (descending into nested models)
are handled; a BN layer inside a custom non-model layer freezes with that layer.

Example:
    >>> model = build_classifier(backbone, num_classes=10)          # doctest: +SKIP
    >>> freeze_backbone(model, head_names=["classifier"])                # doctest: +SKIP
    12810
"""
from __future__ import annotations

import math
import re

from ..blocks import select_by_blocks
from ..env import import_tensorflow

import_tensorflow()  # first, so TensorFlow's start-up logs stay quiet
import keras  # noqa: E402

BLOCK_PATTERN = r"^(block\d+)"


def _walk(model, parents=()):
    """Yield ``(layer, parents)`` for every layer that is not itself a model, depth first."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer, parents + (layer,))
        else:
            yield layer, parents


def list_blocks(model, block_pattern: str = BLOCK_PATTERN) -> list[str]:
    """The block names of a model, in layer order (see the module docstring).

    Example:
        >>> list_blocks(efficientnet_backbone)                       # doctest: +SKIP
        ['block1', 'block2', 'block3', 'block4', 'block5', 'block6', 'block7']
    """
    blocks = []
    for layer, _ in _walk(model):
        match = re.match(block_pattern, layer.name)
        if match and match.group(1) not in blocks:
            blocks.append(match.group(1))
    return blocks


def _names_hint(leaves) -> str:
    names = [layer.name for layer, _ in leaves]
    nested = sorted({p.name for _, parents in leaves for p in parents})
    shown = ", ".join(nested + (names if len(names) <= 14 else names[:8] + ["..."] + names[-6:]))
    return f"Some valid layer names: {shown} (all {len(names)}: model.summary(expand_nested=True))"


def _block_layers(model, leaves, last_blocks, all_but_last_blocks, block_pattern):
    blocks = list_blocks(model, block_pattern)
    if not blocks:
        raise ValueError(f"No layer name matches the block pattern {block_pattern!r}, so the model has no "
                         f"blocks. Pass block_pattern=... . {_names_hint(leaves)}")
    block_of = [(re.match(block_pattern, layer.name) or [None, None])[1] for layer, _ in leaves]
    picked = select_by_blocks(block_of, blocks, last_blocks, all_but_last_blocks,
                              hint=f" (the blocks: {blocks})")
    return [leaves[i][0] for i in picked]


def _select(model, names=None, prefixes=None, last_blocks=None, all_but_last_blocks=None,
            block_pattern=BLOCK_PATTERN) -> list:
    """Layers picked by any of the selectors (all layers when none is given)."""
    leaves = list(_walk(model))
    if names is None and prefixes is None and last_blocks is None and all_but_last_blocks is None:
        return [layer for layer, _ in leaves]
    chosen = []
    for kind, wanted, test in (("named", names, str.__eq__),
                               ("whose name starts with", prefixes, str.startswith)):
        for pattern in ([wanted] if isinstance(wanted, str) else wanted or []):
            hits = [layer for layer, parents in leaves
                    if any(test(n, pattern) for n in [layer.name] + [p.name for p in parents])]
            if not hits:
                raise ValueError(f"No layer {kind} {pattern!r}. {_names_hint(leaves)}")
            chosen += hits
    if last_blocks is not None or all_but_last_blocks is not None:
        chosen += _block_layers(model, leaves, last_blocks, all_but_last_blocks, block_pattern)
    return list({id(layer): layer for layer in chosen}.values())


def _set_trainable(model, layers, value: bool) -> int:
    """Set ``trainable`` on ``layers``, keeping every other layer as it is; return the trainable count.

    Keras trains a weight when its own layer is trainable and the outermost model is;
    the flags of nested models in between do not matter to the outer model. So the
    flags live on the innermost layers. A model (outer or nested) is switched off
    only when none of its layers is left to train, so that a later
    ``backbone.trainable = True`` still works (on the TensorFlow backend, setting
    ``trainable`` to the value it already has does nothing, not even to sublayers).
    """
    leaves = list(_walk(model))
    models = [model] + list({id(p): p for _, parents in leaves for p in parents}.values())
    was_trainable = [layer.trainable and model.trainable for layer, _ in leaves]
    for each in models:
        each.trainable = True  # switches on a model that was off, and all its layers ...
    for (layer, _), trainable in zip(leaves, was_trainable):
        layer.trainable = trainable  # ... so put each layer back as it was
    for layer in layers:
        layer.trainable = value
    for each in models:
        inside = [layer for layer, parents in leaves if each is model or any(p is each for p in parents)]
        if not any(layer.trainable and layer.weights for layer in inside):
            each.trainable = False
    return count_parameters(model)


def freeze(model, names=None, prefixes=None, *, last_blocks=None, all_but_last_blocks=None,
           block_pattern: str = BLOCK_PATTERN) -> int:
    """Make layers non-trainable; return the number of trainable parameters left.

    Select by exact layer ``names``, by name ``prefixes``, by ``last_blocks=N`` or
    ``all_but_last_blocks=N`` (see the module docstring); selections add up. With
    no selector the whole model is frozen. Compile the model again afterwards.

    Example:
        >>> freeze(model, all_but_last_blocks=2)     # train the last 2 blocks and the head   # doctest: +SKIP
        >>> freeze(model, prefixes=["stem_", "block1"])                                       # doctest: +SKIP
    """
    return _set_trainable(model, _select(model, names, prefixes, last_blocks, all_but_last_blocks,
                                         block_pattern), False)


def unfreeze(model, names=None, prefixes=None, *, last_blocks=None, all_but_last_blocks=None,
             block_pattern: str = BLOCK_PATTERN, keep_batchnorm_frozen: bool = True) -> int:
    """Make layers trainable again (same selectors as :func:`freeze`); return the trainable count.

    BatchNormalization layers in the selection stay frozen, i.e. in inference mode
    with their pretrained statistics, unless ``keep_batchnorm_frozen=False``.

    Example:
        >>> freeze(model); unfreeze(model, names=["classifier"])         # doctest: +SKIP
        >>> unfreeze(model, last_blocks=1)   # gradual unfreezing, one block at a time   # doctest: +SKIP
    """
    layers = _select(model, names, prefixes, last_blocks, all_but_last_blocks, block_pattern)
    if keep_batchnorm_frozen:
        layers = [layer for layer in layers if not isinstance(layer, keras.layers.BatchNormalization)]
    return _set_trainable(model, layers, True)


def freeze_batchnorm(model) -> int:
    """Freeze every BatchNormalization layer (weights and moving statistics); return how many.

    In Keras 3 a BN layer with ``trainable=False`` runs in inference mode, so its
    moving mean and variance stay the pretrained ones during ``fit``. Use it after
    unfreezing a backbone by other means (e.g. ``backbone.trainable = True``).

    Example:
        >>> backbone.trainable = True; freeze_batchnorm(model)        # doctest: +SKIP
        49
    """
    batchnorm = [layer for layer, _ in _walk(model) if isinstance(layer, keras.layers.BatchNormalization)]
    _set_trainable(model, batchnorm, False)
    return len(batchnorm)


def freeze_backbone(model, head_names) -> int:
    """Freeze every layer except the head layers named in ``head_names``; return the trainable count.

    Frozen BatchNormalization layers run in inference mode (Keras 3 behaviour).
    Later, ``unfreeze(model)`` makes the backbone trainable but keeps its BN layers frozen.

    Example:
        >>> freeze_backbone(model, head_names=["classifier"])            # doctest: +SKIP
        12810
    """
    head = _select(model, names=head_names)  # checks the names before anything changes
    freeze(model)
    return _set_trainable(model, head, True)


def count_parameters(model, trainable_only: bool = True) -> int:
    """Number of parameter values: trainable weights only, or every weight Keras stores.

    ``trainable_only=False`` matches ``model.count_params()``, which includes the
    BatchNormalization moving mean and variance (PyTorch keeps those as buffers,
    not parameters, so its total is smaller by 2 x the BN channels).

    Example:
        >>> count_parameters(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        8
    """
    weights = model.trainable_weights if trainable_only else model.weights
    return sum(math.prod(weight.shape) for weight in weights)


def build_classifier(backbone, num_classes: int, dropout: float = 0.2, *, name: str | None = None):
    """A new classification head on a (pretrained) backbone: pooling, dropout, a logits layer.

    Head: global average pooling for feature maps, ``Dropout(dropout)`` named
    ``head_dropout``, and a float32 ``Dense(num_classes)`` named ``classifier``
    (as in timm and torchvision) that returns logits (use a loss with
    ``from_logits=True``). The backbone stays one
    nested layer, so ``backbone.trainable`` and :func:`freeze` work on it.
    BatchNorm: see the module docstring (``training=False`` here would not help
    in Keras 3; frozen BN layers do).

    Example:
        >>> model = build_classifier(backbone, num_classes=10, dropout=0.2)   # doctest: +SKIP
        >>> freeze_backbone(model, head_names=["classifier"])                      # doctest: +SKIP
        >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ...               metrics=["accuracy"])                                 # doctest: +SKIP
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive whole number, got {num_classes!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=backbone.input_shape[1:], name="inputs")
    features = backbone(inputs)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(name="pooler")(features)
    elif len(features.shape) != 2:
        raise ValueError(f"The backbone must return feature maps (batch, h, w, c) or vectors (batch, c); "
                         f"got shape {tuple(features.shape)}")
    if dropout:
        features = keras.layers.Dropout(dropout, name="head_dropout")(features)
    logits = keras.layers.Dense(num_classes, name="classifier", dtype="float32")(features)
    return keras.Model(inputs, logits, name=name or f"{backbone.name}_classifier")


def discriminative_optimizer(model, head_prefixes, head_lr, backbone_lr, optimizer="adam",
                             **optimizer_kwargs):
    """One optimizer with a learning rate for the head and a smaller one for the backbone.

    Built on ``keras.optimizers.MultiOptimizer``: layers whose names start with one of
    ``head_prefixes`` get ``optimizer(learning_rate=head_lr)``, every other trainable
    weight gets ``optimizer(learning_rate=backbone_lr)``; frozen weights get none.
    ``optimizer`` is a Keras optimizer class or name; ``optimizer_kwargs`` (e.g.
    ``weight_decay``) go to both. Freeze/unfreeze first, then build this and compile.

    Example:
        >>> opt = discriminative_optimizer(model, ["classifier"], head_lr=1e-3, backbone_lr=1e-4,
        ...     optimizer=keras.optimizers.AdamW, weight_decay=0.01)                 # doctest: +SKIP
        >>> model.compile(optimizer=opt, loss=loss, metrics=["accuracy"])         # doctest: +SKIP
    """
    for label, lr in (("head_lr", head_lr), ("backbone_lr", backbone_lr)):
        if isinstance(lr, (int, float)) and not lr > 0:
            raise ValueError(f"{label} must be positive, got {lr}")
    optimizer_class = type(keras.optimizers.get(optimizer)) if isinstance(optimizer, str) else optimizer
    head_layers = _select(model, prefixes=head_prefixes)
    head_paths = {w.path for layer in head_layers for w in layer.trainable_weights}
    if not head_paths:
        raise ValueError(f"The head layers {[layer.name for layer in head_layers]} have no trainable "
                         "weights (frozen, or not built yet).")
    head_ids = {id(w) for layer in head_layers for w in layer.weights}
    clash = {w.path for w in model.weights if id(w) not in head_ids} & head_paths
    if clash:
        raise ValueError(f"Head and backbone weights share the paths {sorted(clash)}; "
                         "rename the head layers.")
    head = optimizer_class(learning_rate=head_lr, **optimizer_kwargs)
    backbone = optimizer_class(learning_rate=backbone_lr, **optimizer_kwargs)
    routes = keras.optimizers.OptimizerMap(backbone, {re.escape(path): head for path in sorted(head_paths)})
    return keras.optimizers.MultiOptimizer(routes)
