"""N-way K-shot episodes for few-shot learning, and accuracy with a confidence interval.

Framework-neutral (NumPy only). An *episode* is a tiny classification task: pick
``n_way`` classes, take ``k_shot`` labelled examples of each (the **support**
set) and ``n_query`` other examples of each (the **query** set). Labels are
renumbered 0..n_way-1 in the order the classes were drawn, so a model cannot
rely on a class's global number; support and query never share an image.

Example:
    >>> import numpy as np
    >>> labels = np.repeat(np.arange(10), 6)
    >>> images = np.arange(60)
    >>> ep = sample_episode(images, labels, n_way=3, k_shot=2, n_query=4, seed=0)
    >>> ep.support_x.shape, ep.query_x.shape, sorted(set(ep.support_y.tolist()))
    ((6,), (12,), [0, 1, 2])
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Episode", "sample_episode", "sample_episodes", "mean_confidence_interval",
           "format_accuracy", "nearest_prototype_accuracy", "linear_probe_accuracy",
           "episode_accuracies"]


@dataclass
class Episode:
    """One N-way K-shot task: support and query examples with labels 0..n_way-1.

    ``classes[j]`` is the original class of episode label ``j``. Support
    examples come class by class (all of label 0 first, then label 1, ...).

    Example:
        >>> ep = sample_episode(np.zeros((20, 4)), np.repeat(np.arange(4), 5), 2, 1, 3, seed=1)
        >>> ep.n_way, ep.k_shot, ep.support_x.shape, ep.query_y.tolist()
        (2, 1, (2, 4), [0, 0, 0, 1, 1, 1])
    """

    support_x: np.ndarray
    support_y: np.ndarray
    query_x: np.ndarray
    query_y: np.ndarray
    classes: np.ndarray

    @property
    def n_way(self) -> int:
        return len(self.classes)

    @property
    def k_shot(self) -> int:
        return len(self.support_y) // len(self.classes)

    def __repr__(self) -> str:
        return (f"Episode({self.n_way}-way {self.k_shot}-shot: support {self.support_x.shape}, "
                f"query {self.query_x.shape})")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")


def sample_episode(images, labels, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                   seed: int | None = None, rng: np.random.Generator | None = None) -> Episode:
    """Draw one N-way K-shot episode from ``images`` (any array) and their class ``labels``.

    Pass ``rng`` (a ``np.random.Generator``) to draw many episodes in a row, or
    ``seed`` for one reproducible episode. Raises ValueError when there are
    fewer than ``n_way`` classes with ``k_shot + n_query`` examples each.

    Example:
        >>> labels = np.repeat(np.arange(8), 5)
        >>> ep = sample_episode(np.arange(40), labels, n_way=4, k_shot=2, n_query=3, seed=0)
        >>> bool(set(ep.support_x.tolist()) & set(ep.query_x.tolist()))   # no overlap
        False
    """
    for name, value in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query)):
        _check_positive(name, value)
    images, labels = np.asarray(images), np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must be one label per image: {len(images)} images, "
                         f"labels of shape {labels.shape}")
    rng = rng if rng is not None else np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    usable = classes[counts >= k_shot + n_query]
    if len(usable) < n_way:
        raise ValueError(f"a {n_way}-way episode with {k_shot} support + {n_query} query examples "
                         f"per class needs {n_way} classes with at least {k_shot + n_query} "
                         f"examples each; only {len(usable)} have that many")
    chosen = rng.choice(usable, size=n_way, replace=False)
    support, query = [], []
    for cls in chosen:
        picked = rng.permutation(np.flatnonzero(labels == cls))[:k_shot + n_query]
        support.append(picked[:k_shot])
        query.append(picked[k_shot:])
    support_idx, query_idx = np.concatenate(support), np.concatenate(query)
    return Episode(images[support_idx], np.repeat(np.arange(n_way), k_shot),
                   images[query_idx], np.repeat(np.arange(n_way), n_query), chosen)


def sample_episodes(images, labels, n_episodes: int, n_way: int = 5, k_shot: int = 1,
                    n_query: int = 15, seed: int = 0) -> list[Episode]:
    """A reproducible list of ``n_episodes`` episodes (the same for every framework).

    Example:
        >>> eps = sample_episodes(np.arange(40), np.repeat(np.arange(8), 5), 3, 4, 1, 2, seed=0)
        >>> len(eps), eps[0].support_x.shape
        (3, (4,))
    """
    _check_positive("n_episodes", n_episodes)
    rng = np.random.default_rng(seed)
    return [sample_episode(images, labels, n_way, k_shot, n_query, rng=rng)
            for _ in range(n_episodes)]


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its normal-approximation confidence interval.

    The few-shot papers report ``mean ± 1.96 * std / sqrt(n)`` over test
    episodes; that is what this returns for ``confidence=0.95``.

    Example:
        >>> mean, half = mean_confidence_interval([0.8, 0.9, 1.0, 0.7])
        >>> round(mean, 3), round(half, 3)
        (0.85, 0.127)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(values) < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {len(values)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    z = math.sqrt(2) * _erfinv(confidence)
    return float(values.mean()), float(z * values.std(ddof=1) / math.sqrt(len(values)))


def _erfinv(y: float) -> float:
    """Inverse error function by bisection (no SciPy needed; 1e-12 is plenty)."""
    lo, hi = 0.0, 6.0
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid) < y else (lo, mid)
    return (lo + hi) / 2


def format_accuracy(values, confidence: float = 0.95) -> str:
    """Accuracies in 0..1 as 'mean ± half-width %' (the way few-shot papers print them).

    Example:
        >>> format_accuracy([0.8, 0.9, 1.0, 0.7])
        '85.0 ± 12.7 %'
    """
    mean, half = mean_confidence_interval(values, confidence)
    return f"{100 * mean:.1f} ± {100 * half:.1f} %"


# ------------------------------------------------- evaluation on fixed features
def nearest_prototype_accuracy(support, support_y, query, query_y) -> float:
    """Query accuracy of the nearest class mean (prototype), squared Euclidean distance.

    ``support`` and ``query`` are feature vectors (NumPy), labels 0..n_way-1.

    Example:
        >>> nearest_prototype_accuracy(np.array([[0.], [4.]]), np.array([0, 1]),
        ...                            np.array([[1.], [3.], [9.]]), np.array([0, 1, 0]))
        0.6666666666666666
    """
    support, query = np.asarray(support, np.float64), np.asarray(query, np.float64)
    support_y, query_y = np.asarray(support_y), np.asarray(query_y)
    classes = np.unique(support_y)
    protos = np.stack([support[support_y == c].mean(0) for c in classes])
    distances = ((query[:, None, :] - protos[None, :, :]) ** 2).sum(-1)
    return float(np.mean(classes[distances.argmin(1)] == query_y))


def linear_probe_accuracy(support, support_y, query, query_y, c: float = 1.0) -> float:
    """Chen et al.'s baseline: a new linear classifier on frozen features of the support set.

    Multinomial logistic regression (scikit-learn, L2 strength ``1/c``) on the
    support features; returns the query accuracy.

    Example:
        >>> linear_probe_accuracy(np.array([[0.], [4.]]), np.array([0, 1]),
        ...                       np.array([[1.], [3.]]), np.array([0, 1]))
        1.0
    """
    from sklearn.linear_model import LogisticRegression
    head = LogisticRegression(C=c, max_iter=1000)
    head.fit(np.asarray(support), np.asarray(support_y))
    return float(np.mean(head.predict(np.asarray(query)) == np.asarray(query_y)))


_METHODS = {"prototypes": nearest_prototype_accuracy, "linear probe": linear_probe_accuracy}


def episode_accuracies(features, labels, n_episodes: int, n_way: int = 5, k_shot: int = 1,
                       n_query: int = 15, method: str = "prototypes", seed: int = 0) -> np.ndarray:
    """Accuracy on each of ``n_episodes`` test episodes, from precomputed features.

    The network embeds every test image once (in evaluation mode an image's
    embedding does not depend on the rest of the batch); episodes then only
    pick rows. The same ``seed`` gives the same episodes to every framework.
    ``method``: "prototypes" (ProtoNets) or "linear probe" (Chen et al.'s baseline).

    Example:
        >>> feats = np.repeat(np.eye(6), 4, axis=0)
        >>> accs = episode_accuracies(feats, np.repeat(np.arange(6), 4), 5, 3, 1, 2)
        >>> accs.shape, float(accs.mean())
        ((5,), 1.0)
    """
    if method not in _METHODS:
        raise KeyError(f"Unknown method {method!r}. Valid methods: {', '.join(_METHODS)}")
    features = np.asarray(features)
    rng = np.random.default_rng(seed)
    score = _METHODS[method]
    accuracies = []
    for _ in range(n_episodes):
        ep = sample_episode(np.arange(len(features)), labels, n_way, k_shot, n_query, rng=rng)
        accuracies.append(score(features[ep.support_x], ep.support_y,
                                features[ep.query_x], ep.query_y))
    return np.array(accuracies)
