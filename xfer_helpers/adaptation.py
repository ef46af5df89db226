"""Domain adaptation, framework-neutral: the target data set, the DANN schedule, reference maths.

Nothing here imports PyTorch or TensorFlow. The framework versions of the
losses live in ``xfer_helpers.pytorch.adaptation`` and
``xfer_helpers.keras.adaptation``; the NumPy versions here are the reference
the tests (and the curious reader) compare them with.

=============================  =================================================
:func:`make_fashion_mnist_m`   Fashion-MNIST blended over patches of colour photos
:func:`dann_lambda`            the reversal-strength schedule of Ganin et al. (2016)
:func:`coral_loss`             Deep CORAL's loss ||C_s - C_t||_F^2 / (4 d^2)
:func:`coral_align`            classic CORAL: recolour source features like the target
:func:`mmd2`                   squared MMD with a Gaussian kernel (biased or unbiased)
:func:`importance_weights`     p_target(x) / p_source(x) from domain-classifier probabilities
:func:`domain_classifier_weights`  fit the domain classifier and return those weights
:func:`effective_sample_size`  how many source points the weighted sample is worth
:func:`select_epoch`           model selection without target labels
:func:`gap_closed`             the share of the source-only -> oracle gap a method closes
:func:`batch_plan`             the training loops' batches: source shuffled, target cycled
:func:`annealed_lr`            the DANN paper's learning-rate schedule lr / (1 + 10 p)^0.75
=============================  =================================================

Example:
    >>> import numpy as np
    >>> round(dann_lambda(0.0), 3), round(dann_lambda(1.0), 3)
    (0.0, 1.0)
"""
from __future__ import annotations

import functools
import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["BACKGROUND_PHOTOS", "background_photos", "make_fashion_mnist_m", "dann_lambda",
           "coral_loss", "coral_align", "mmd2", "importance_weights",
           "domain_classifier_weights", "effective_sample_size", "select_epoch", "gap_closed",
           "SELECTION_KEYS", "batch_plan", "annealed_lr"]

# Colour photos that ship inside the scikit-image wheel (no download): the "BSDS500" of our MNIST-M.
BACKGROUND_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "stereo_motorcycle",
                     "hubble_deep_field")


@functools.lru_cache(maxsize=1)
def background_photos() -> tuple[np.ndarray, ...]:
    """The colour photos the target images are cut from (uint8, H x W x 3), loaded once.

    Example:
        >>> len(background_photos()), background_photos()[0].dtype.name
        (6, 'uint8')
    """
    import skimage.data
    photos = []
    for name in BACKGROUND_PHOTOS:
        photo = getattr(skimage.data, name)()
        photo = photo[0] if isinstance(photo, tuple) else photo  # stereo pair: the left image
        photos.append(np.ascontiguousarray(photo[..., :3]))
    return tuple(photos)


def make_fashion_mnist_m(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Fashion-MNIST-M: each grey image blended over a random patch of a colour photo.

    This is how Ganin et al. (2016) made MNIST-M from MNIST and the BSDS500
    photos: output pixel = |patch - image| per colour channel, so the clothing
    keeps its shape but its colours and background change from image to image.
    The patches are cut from scikit-image's bundled photos (see
    ``BACKGROUND_PHOTOS``). Same seed, same patches.

    Example:
        >>> x = np.zeros((2, 28, 28), np.uint8)
        >>> out = make_fashion_mnist_m(x, seed=0)
        >>> out.shape, out.dtype.name
        ((2, 28, 28, 3), 'uint8')
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError("make_fashion_mnist_m expects grey uint8 images of shape N x H x W, "
                         f"got {images.dtype} with shape {images.shape}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    n, height, width = images.shape
    photos = background_photos()
    rng = np.random.default_rng(seed)
    which = rng.integers(len(photos), size=n)
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        photo = photos[which[i]]
        top = rng.integers(photo.shape[0] - height + 1)
        left = rng.integers(photo.shape[1] - width + 1)
        patch = photo[top:top + height, left:left + width].astype(np.int16)
        out[i] = np.abs(patch - images[i, :, :, None].astype(np.int16))
    return out


def dann_lambda(progress, gamma: float = 10.0):
    """The DANN reversal strength at training progress p in [0, 1]: 2 / (1 + exp(-gamma p)) - 1.

    Starts at 0 (the domain classifier's noisy early gradients do not disturb
    the features) and rises smoothly to almost 1 (Ganin et al., 2016, sec. 5.2.2).

    Example:
        >>> [round(float(dann_lambda(p)), 3) for p in (0.0, 0.1, 0.5)]
        [0.0, 0.462, 0.987]
    """
    p = np.asarray(progress, dtype=np.float64)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError(f"progress must be between 0 and 1 (the fraction of training done), got {progress}")
    value = 2.0 / (1.0 + np.exp(-gamma * p)) - 1.0
    return float(value) if value.ndim == 0 else value


def _features_pair(source, target, what: str) -> tuple[np.ndarray, np.ndarray]:
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"{what} needs two 2-D arrays (samples x features) with the same number "
                         f"of features, got shapes {source.shape} and {target.shape}")
    return source, target


def coral_loss(source, target) -> float:
    """Deep CORAL loss: squared Frobenius distance of the feature covariances / (4 d^2).

    Covariances use the unbiased (n - 1) normalisation, as in Sun & Saenko (2016).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> coral_loss(rng.normal(size=(50, 3)), rng.normal(size=(50, 3))) < 0.05
        True
    """
    source, target = _features_pair(source, target, "coral_loss")
    d = source.shape[1]
    difference = np.cov(source, rowvar=False) - np.cov(target, rowvar=False)
    return float((difference ** 2).sum() / (4 * d * d))


def _matrix_power(covariance: np.ndarray, power: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    return (vectors * np.clip(values, 1e-12, None) ** power) @ vectors.T


def coral_align(source, target, eps: float = 1.0) -> np.ndarray:
    """Classic CORAL (Sun, Feng & Saenko 2016): whiten the source features, recolour them like the target.

    Returns ``source @ C_s^(-1/2) @ C_t^(1/2)`` with ``C = cov + eps * I``.
    Train the classifier on the aligned source features, test it on the raw
    target features.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> s, t = rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) * [3.0, 0.5]
        >>> np.round(np.cov(coral_align(s, t, eps=0.0), rowvar=False), 1).tolist() == \\
        ...     np.round(np.cov(t, rowvar=False), 1).tolist()
        True
    """
    source, target = _features_pair(source, target, "coral_align")
    if eps < 0:
        raise ValueError(f"eps must be zero or positive, got {eps}")
    eye = np.eye(source.shape[1])
    c_source = np.cov(source, rowvar=False) + eps * eye
    c_target = np.cov(target, rowvar=False) + eps * eye
    return source @ _matrix_power(c_source, -0.5) @ _matrix_power(c_target, 0.5)


def mmd2(x, y, sigma: float | Sequence[float] = 1.0, unbiased: bool = True) -> float:
    """Squared maximum mean discrepancy with the Gaussian kernel exp(-||a - b||^2 / (2 sigma^2)).

    Several widths (``sigma=(0.5, 1, 2)``) sum their kernels (a multi-kernel MMD, as in
    Long et al. 2015), which works over a wider range of distances.

    Unbiased (Gretton et al. 2012, eq. 3): the within-sample averages skip the
    diagonal (a point compared with itself), so the estimate is 0 on average
    when both samples come from the same distribution, and can be negative.
    Biased (``unbiased=False``): plain means over all pairs, always >= 0.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> a, b = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
        >>> abs(mmd2(a, b)) < 0.01, mmd2(a, b + 3.0) > 0.5
        (True, True)
    """
    x, y = _features_pair(x, y, "mmd2")
    sigmas = np.atleast_1d(np.asarray(sigma, np.float64))
    if sigmas.ndim != 1 or len(sigmas) == 0 or np.any(sigmas <= 0):
        raise ValueError(f"sigma (the kernel width) must be positive, got {sigma}")
    if unbiased and (len(x) < 2 or len(y) < 2):
        raise ValueError("the unbiased MMD needs at least 2 samples on each side")

    def kernel(a, b):
        squared = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
        squared = np.maximum(squared, 0)
        return sum(np.exp(-squared / (2 * s ** 2)) for s in sigmas)

    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    if unbiased:
        m, n = len(x), len(y)
        within = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                  + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)))
    else:
        within = kxx.mean() + kyy.mean()
    return float(within - 2 * kxy.mean())


def importance_weights(p_target, n_source: int, n_target: int, clip: float | None = None) -> np.ndarray:
    """Importance weights w(x) = p_target(x) / p_source(x) for source points, from a domain classifier.

    ``p_target`` is the classifier's probability that a source point comes from
    the target. By Bayes' rule p_t(x) / p_s(x) = [P(t|x) / P(s|x)] * [n_s / n_t]:
    the second factor undoes the classifier's prior, the share of each domain in
    its training data. ``clip`` caps the weights (large weights mean few
    source points carry the whole training loss).

    Example:
        >>> importance_weights([0.5, 0.8, 0.2], n_source=100, n_target=100).round(2).tolist()
        [1.0, 4.0, 0.25]
    """
    p = np.asarray(p_target, np.float64)
    if np.any(p < 0) or np.any(p > 1):
        raise ValueError("p_target must hold probabilities between 0 and 1")
    if n_source < 1 or n_target < 1:
        raise ValueError(f"n_source and n_target must be at least 1, got {n_source} and {n_target}")
    if clip is not None and clip <= 0:
        raise ValueError(f"clip must be positive (or None), got {clip}")
    p = np.clip(p, 1e-6, 1 - 1e-6)
    weights = p / (1 - p) * (n_source / n_target)
    return np.minimum(weights, clip) if clip is not None else weights


def domain_classifier_weights(x_source, x_target, clip: float | None = None, seed: int = 0,
                              hidden: int = 32) -> np.ndarray:
    """Fit a domain classifier (source 0 vs target 1) and return importance weights for the source.

    A small scikit-learn MLP tells the domains apart; its probabilities go
    through :func:`importance_weights`. The weights are for *training*; they
    need target inputs but no target labels.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> w = domain_classifier_weights(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 1)
        >>> w.shape, bool(w.min() > 0)
        ((200,), True)
    """
    from sklearn.neural_network import MLPClassifier
    x_source, x_target = _features_pair(x_source, x_target, "domain_classifier_weights")
    x = np.concatenate([x_source, x_target])
    d = np.r_[np.zeros(len(x_source)), np.ones(len(x_target))]
    mean, std = x.mean(0), x.std(0) + 1e-8
    classifier = MLPClassifier((hidden,), max_iter=2000, random_state=seed).fit((x - mean) / std, d)
    p_target = classifier.predict_proba((x_source - mean) / std)[:, 1]
    return importance_weights(p_target, len(x_source), len(x_target), clip=clip)


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: how many equally weighted points they are worth.

    Example:
        >>> effective_sample_size([1, 1, 1, 1]), effective_sample_size([1, 0, 0, 0])
        (4.0, 1.0)
    """
    w = np.asarray(weights, np.float64)
    if w.ndim != 1 or len(w) == 0 or np.any(w < 0) or w.sum() == 0:
        raise ValueError("weights must be a non-empty 1-D array of non-negative numbers, not all 0")
    return float(w.sum() ** 2 / (w ** 2).sum())


# Per-epoch record keys a selection rule may use: none of them needs a target label.
SELECTION_KEYS = ("source_val_accuracy", "source_val_loss")


def select_epoch(records: Sequence[Mapping[str, float]], criterion: str = "source_val_accuracy") -> int:
    """Pick the epoch (index into ``records``) without looking at target labels.

    ``records`` are per-epoch dicts (e.g. ``History.records``). The rule picks
    the best ``criterion`` (max for accuracies, min for losses; the first on
    ties). Criteria computed from target labels are refused: choosing by
    target-test accuracy makes the reported number optimistic (leakage).

    Example:
        >>> select_epoch([{"source_val_accuracy": 0.8}, {"source_val_accuracy": 0.9}])
        1
    """
    if criterion not in SELECTION_KEYS:
        raise ValueError(f"criterion {criterion!r} is not allowed for honest model selection; "
                         f"use one that needs no target labels: {', '.join(SELECTION_KEYS)}")
    if not records:
        raise ValueError("records is empty: train for at least one epoch first")
    values = np.array([r[criterion] for r in records], np.float64)
    return int(np.argmin(values) if criterion.endswith("loss") else np.argmax(values))


def gap_closed(source_only: float, method: float, oracle: float) -> float:
    """The fraction of the source-only -> oracle gap that a method closes: (method - so) / (oracle - so).

    Example:
        >>> gap_closed(0.5, 0.7, 0.9)
        0.5
    """
    if oracle <= source_only:
        raise ValueError(f"the oracle ({oracle}) must beat source-only ({source_only}) for a gap to exist")
    return round((method - source_only) / (oracle - source_only), 12)


METHODS = ("source_only", "dann", "coral", "mmd")
OPTIMIZERS = ("adam", "sgd")


def check_method(method: str) -> None:
    """Raise a KeyError listing the valid adaptation methods if ``method`` is not one of them.

    Example:
        >>> check_method("dann")
    """
    if method not in METHODS:
        raise KeyError(f"Unknown method {method!r}. Valid methods: {', '.join(METHODS)}")


def check_training_args(method: str, epochs: int, batch_size: int, x_source, y_source,
                        x_target=None, optimizer: str = "adam") -> None:
    """Raise a clear error for bad ``train_adaptation`` arguments (shared by both frameworks).

    Example:
        >>> check_training_args("dann", 0, 64, [0], [0])
        Traceback (most recent call last):
        ...
        ValueError: epochs must be at least 1, got 0
    """
    check_method(method)
    if optimizer not in OPTIMIZERS:
        raise KeyError(f"Unknown optimizer {optimizer!r}. Valid optimizers: {', '.join(OPTIMIZERS)}")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (covariances need 2 samples), got {batch_size}")
    if len(x_source) != len(y_source):
        raise ValueError(f"x_source and y_source must have the same length, got {len(x_source)} "
                         f"and {len(y_source)}")
    if method != "source_only" and x_target is None:
        raise ValueError(f"method {method!r} needs unlabelled target inputs x_target")


def batch_plan(n_source: int, n_target: int, batch_size: int, epochs: int, seed: int = 0):
    """The batches of both frameworks' ``train_adaptation``, epoch by epoch.

    Yields one list per epoch of ``(source_indices, target_indices, progress)`` steps:
    ``batch_size`` source examples in a fresh random order each epoch, as many target
    examples (the target set is cycled when it is smaller), and ``progress`` p, the
    share of training done before the step (0 at the first step, < 1 at the last),
    which drives the DANN schedules. Drawn with NumPy's generator seeded by ``seed``,
    so PyTorch and Keras see the same batches.

    Example:
        >>> plan = list(batch_plan(5, 3, batch_size=2, epochs=2))
        >>> len(plan), [len(s) for s, _, _ in plan[0]], [p for _, _, p in plan[1]]
        (2, [2, 2, 1], [0.5, 0.6666666666666666, 0.8333333333333334])
        >>> sorted(np.concatenate([s for s, _, _ in plan[0]]).tolist())
        [0, 1, 2, 3, 4]
    """
    rng = np.random.default_rng(seed)
    steps = math.ceil(n_source / batch_size)
    for epoch in range(epochs):
        order_source, order_target = rng.permutation(n_source), rng.permutation(n_target)
        yield [(order_source[step * batch_size:(step + 1) * batch_size],
                order_target[np.arange(step * batch_size, (step + 1) * batch_size) % n_target],
                (epoch * steps + step) / (epochs * steps)) for step in range(steps)]


def annealed_lr(lr: float, progress: float, anneal: bool = True) -> float:
    """The learning rate at training progress p: lr / (1 + 10 p)^0.75 (Ganin et al.), or lr.

    Example:
        >>> annealed_lr(0.01, 0.0), round(annealed_lr(0.01, 1.0), 5), annealed_lr(0.01, 1.0, False)
        (0.01, 0.00166, 0.01)
    """
    return lr / (1 + 10 * progress) ** 0.75 if anneal else lr
