"""Freezing, parameter counts, discriminative learning rates and frozen BatchNorm for PyTorch.

The same API as :mod:`xfer_helpers.keras.transfer`. Words used here:

- **name**: a module or parameter name as in ``model.named_modules()`` /
  ``model.named_parameters()`` (``"classifier"``, ``"blocks.6"``, ``"conv_stem.weight"``).
  A name selects the parameters of that module, matched at dots: ``"blocks.1"``
  selects ``blocks.1.*`` but not ``blocks.10.*``.
- **prefix**: plain text that parameter names start with (``"blocks.1"`` *does*
  match ``blocks.10`` too; add the dot, ``"blocks.1."``, to avoid that).
- **block**: a child of the container module named by ``blocks`` (default
  ``"blocks"``: timm's EfficientNet has 7 stages in ``model.blocks``, ViTs have
  their transformer layers there). ``blocks`` may also be a list of module names,
  e.g. ``["layer1", "layer2", "layer3", "layer4"]`` for a torchvision ResNet.
- **all but the last N blocks**: every parameter registered before the first
  parameter of the N-th block from the end, in ``model.named_parameters()`` order
  (the stem and the earlier blocks). Parameters after the blocks (``conv_head``,
  the classifier) are not part of it.

Freezing sets ``requires_grad``; it does *not* stop BatchNorm layers from
updating their running statistics in ``model.train()`` mode. Call
:func:`freeze_batchnorm_stats` for that (:func:`freeze_backbone`,
:func:`freeze_batchnorm` and :func:`unfreeze` do). Like Keras, :func:`unfreeze`
leaves BatchNorm layers frozen unless ``keep_batchnorm_frozen=False``.

Example:
    >>> freeze_backbone(model, head_names=["classifier"])            # doctest: +SKIP
    12810
    >>> optimizer = torch.optim.AdamW(param_groups(model, ["classifier"], 1e-3, 1e-4))  # doctest: +SKIP
"""
from __future__ import annotations

from torch import nn

from ..blocks import select_by_blocks

_BATCHNORM = nn.modules.batchnorm._BatchNorm  # BatchNorm1d/2d/3d and SyncBatchNorm


def _belongs_to(param_name: str, name: str) -> bool:
    return param_name == name or param_name.startswith(name + ".")


def _names_hint(model) -> str:
    names = [name for name, _ in model.named_children()]
    shown = ", ".join(names[:15]) + (", ..." if len(names) > 15 else "")
    return f"Some valid names: {shown} (see model.named_modules())"


def list_blocks(model, blocks="blocks") -> list[str]:
    """The block module names, in order (see the module docstring).

    Example:
        >>> list_blocks(timm_efficientnet)                           # doctest: +SKIP
        ['blocks.0', 'blocks.1', 'blocks.2', 'blocks.3', 'blocks.4', 'blocks.5', 'blocks.6']
    """
    if not isinstance(blocks, str):
        return list(blocks)
    modules = dict(model.named_modules())
    if blocks not in modules:
        raise ValueError(f"The model has no module {blocks!r} holding its blocks; pass blocks=... "
                         f"(a container name or a list of block names). {_names_hint(model)}")
    return [f"{blocks}.{child}" for child, _ in modules[blocks].named_children()]


def _block_params(model, params, last_blocks, all_but_last_blocks, blocks):
    block_names = list_blocks(model, blocks)
    if not block_names:
        raise ValueError(f"{blocks!r} has no child modules, so the model has no blocks.")
    block_of = [next((b for b in block_names if _belongs_to(name, b)), None) for name, _ in params]
    for b in block_names:
        if b not in block_of:
            raise ValueError(f"Block {b!r} has no parameters (or no module of that name exists).")
    return [params[i] for i in select_by_blocks(block_of, block_names, last_blocks, all_but_last_blocks)]


def _select(model, names=None, prefixes=None, last_blocks=None, all_but_last_blocks=None,
            blocks="blocks") -> list[tuple[str, nn.Parameter]]:
    """``(name, parameter)`` pairs picked by any of the selectors (all when none is given)."""
    params = list(model.named_parameters())
    if names is None and prefixes is None and last_blocks is None and all_but_last_blocks is None:
        return params
    chosen = []
    for kind, wanted, test in (("module or parameter named", names, _belongs_to),
                               ("parameter whose name starts with", prefixes, str.startswith)):
        for pattern in ([wanted] if isinstance(wanted, str) else wanted or []):
            hits = [(n, p) for n, p in params if test(n, pattern)]
            if not hits:
                raise ValueError(f"No {kind} {pattern!r}. {_names_hint(model)}")
            chosen += hits
    if last_blocks is not None or all_but_last_blocks is not None:
        chosen += _block_params(model, params, last_blocks, all_but_last_blocks, blocks)
    return list(dict(chosen).items())


def count_parameters(model, trainable_only: bool = True) -> int:
    """Number of parameter values (trainable ones only by default; buffers never count).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def freeze(model, names=None, prefixes=None, *, last_blocks=None, all_but_last_blocks=None,
           blocks="blocks") -> int:
    """Stop gradients for the selected parameters; return the number of trainable parameters left.

    Select by ``names`` (modules or parameters), name ``prefixes``, ``last_blocks=N``
    or ``all_but_last_blocks=N`` (see the module docstring); selections add up.
    With no selector the whole model is frozen.

    Example:
        >>> freeze(model, all_but_last_blocks=2)   # train the last 2 blocks and the head  # doctest: +SKIP
        >>> freeze(model, names=["conv_stem", "bn1", "blocks.0"])                        # doctest: +SKIP
    """
    for _, param in _select(model, names, prefixes, last_blocks, all_but_last_blocks, blocks):
        param.requires_grad_(False)
    return count_parameters(model)


def unfreeze(model, names=None, prefixes=None, *, last_blocks=None, all_but_last_blocks=None,
             blocks="blocks", keep_batchnorm_frozen: bool = True) -> int:
    """Let the selected parameters train again (same selectors as :func:`freeze`); return the trainable count.

    BatchNorm layers in the selection stay frozen, weights and running statistics
    (see :func:`freeze_batchnorm_stats`), unless ``keep_batchnorm_frozen=False``:
    the same rule as in ``xfer_helpers.keras``.

    Example:
        >>> unfreeze(model, last_blocks=1)   # gradual unfreezing, one block at a time   # doctest: +SKIP
    """
    selected = _select(model, names, prefixes, last_blocks, all_but_last_blocks, blocks)
    if keep_batchnorm_frozen:
        batchnorm = {id(p) for m in model.modules() if isinstance(m, _BATCHNORM) for p in m.parameters()}
        selected = [(name, p) for name, p in selected if id(p) not in batchnorm]
        freeze_batchnorm_stats(model)
    for _, param in selected:
        param.requires_grad_(True)
    return count_parameters(model)


def freeze_backbone(model, head_names) -> int:
    """Freeze everything except the modules in ``head_names``; return the trainable count.

    The frozen BatchNorm layers also keep their running statistics
    (:func:`freeze_batchnorm_stats`), as frozen BN layers do in Keras.

    Example:
        >>> freeze_backbone(model, head_names=["classifier"])        # doctest: +SKIP
        12810
    """
    head = _select(model, names=head_names)  # checks the names before anything changes
    freeze(model)
    for _, param in head:
        param.requires_grad_(True)
    freeze_batchnorm_stats(model)
    return count_parameters(model)


def freeze_batchnorm(model) -> int:
    """Freeze every BatchNorm layer, weights and running statistics; return how many.

    Example:
        >>> unfreeze(model, keep_batchnorm_frozen=False); freeze_batchnorm(model)  # doctest: +SKIP
        49
    """
    for module in model.modules():
        if isinstance(module, _BATCHNORM):
            module.requires_grad_(False)
    return freeze_batchnorm_stats(model)


def param_groups(model, head_prefixes, head_lr: float, backbone_lr: float,
                 weight_decay: float | None = None) -> list[dict]:
    """Optimizer parameter groups for discriminative learning rates: the head first, then the backbone.

    Trainable parameters whose names start with one of ``head_prefixes`` get
    ``head_lr``; all other trainable ones get ``backbone_lr``. Frozen parameters
    are left out, so each trainable parameter is in exactly one group. Empty
    groups are dropped. ``weight_decay=None`` keeps the optimizer's default.

    Example:
        >>> groups = param_groups(model, ["classifier"], head_lr=1e-3, backbone_lr=1e-4)  # doctest: +SKIP
        >>> optimizer = torch.optim.AdamW(groups, weight_decay=0.01)                       # doctest: +SKIP
    """
    for label, lr in (("head_lr", head_lr), ("backbone_lr", backbone_lr)):
        if not lr > 0:
            raise ValueError(f"{label} must be positive, got {lr}")
    head_ids = {id(p) for _, p in _select(model, prefixes=head_prefixes)}
    trainable = [p for p in model.parameters() if p.requires_grad]
    head = [p for p in trainable if id(p) in head_ids]
    backbone = [p for p in trainable if id(p) not in head_ids]
    groups = [{"name": "head", "lr": head_lr, "params": head},
              {"name": "backbone", "lr": backbone_lr, "params": backbone}]
    if weight_decay is not None:
        for group in groups:
            group["weight_decay"] = weight_decay
    return [group for group in groups if group["params"]]


def _bn_eval_pre_hook(module, args):
    """Runs before each forward of a BatchNorm layer: eval mode while its weights are frozen."""
    if module.xfer_bn_always_eval or not any(p.requires_grad for p in module.parameters()):
        module.training = False


def freeze_batchnorm_stats(model, always: bool = False) -> int:
    """Keep BatchNorm layers whose weights are frozen in eval mode, even after ``model.train()``.

    A frozen BN layer (``requires_grad=False``) still updates its running mean and
    variance in training mode. This adds a forward pre-hook to each BN layer that
    switches it to eval mode right before it runs, as long as its weights are
    frozen; unfreeze the weights and it trains normally again (from the next
    ``model.train()``). ``always=True`` keeps every BN layer in eval mode (like
    Keras's ``backbone(x, training=False)``). Calling it again only updates
    ``always``. BN layers without weights (``affine=False``) count as frozen.
    Returns the number of BN layers handled.

    Example:
        >>> freeze(model, all_but_last_blocks=2); freeze_batchnorm_stats(model)  # doctest: +SKIP
        49
    """
    count = 0
    for module in model.modules():
        if isinstance(module, _BATCHNORM):
            module.xfer_bn_always_eval = always
            if not getattr(module, "xfer_bn_hooked", False):
                module.register_forward_pre_hook(_bn_eval_pre_hook)
                module.xfer_bn_hooked = True
            count += 1
    return count
