"""PyTorch side of the course helpers (importing it never imports TensorFlow).

Example:
    >>> from xfer_helpers.pytorch import fit, freeze_backbone, param_groups   # doctest: +SKIP
    >>> freeze_backbone(model, head_names=["classifier"])                     # doctest: +SKIP
    >>> history = fit(model, train_loader, val_loader, epochs=3, lr=1e-3)     # doctest: +SKIP
"""
from .training import evaluate, fit, predict
from .transfer import (count_parameters, freeze, freeze_backbone, freeze_batchnorm,
                       freeze_batchnorm_stats, list_blocks, param_groups, unfreeze)

__all__ = ["count_parameters", "evaluate", "fit", "freeze", "freeze_backbone", "freeze_batchnorm",
           "freeze_batchnorm_stats", "list_blocks", "param_groups", "predict", "unfreeze"]
