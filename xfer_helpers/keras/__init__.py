"""Keras 3 (TensorFlow backend) side of the course helpers.

Importing this package imports TensorFlow (quietly, a few seconds) and never PyTorch.

Example:
    >>> from xfer_helpers.keras import build_classifier, fit, freeze_backbone   # doctest: +SKIP
    >>> model = build_classifier(backbone, num_classes=10)                      # doctest: +SKIP
    >>> freeze_backbone(model, head_names=["classifier"])                         # doctest: +SKIP
    >>> history = fit(model, x, y, validation_data=(xv, yv), epochs=3, batch_size=64)  # doctest: +SKIP
"""
from .training import (EpochRecorder, TqdmProgress, distribution_scope, evaluate, fit,
                       learning_rate_of, predict, set_mixed_precision)
from .transfer import (build_classifier, count_parameters, discriminative_optimizer, freeze,
                       freeze_backbone, freeze_batchnorm, list_blocks, unfreeze)

__all__ = ["EpochRecorder", "TqdmProgress", "build_classifier", "count_parameters",
           "discriminative_optimizer", "distribution_scope", "evaluate", "fit", "freeze", "freeze_backbone",
           "freeze_batchnorm", "learning_rate_of", "list_blocks", "predict", "set_mixed_precision", "unfreeze"]
