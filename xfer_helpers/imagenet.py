"""ImageNet-1k class names, read from the text files timm ships (no torch import).

Example:
    >>> imagenet_class_names()[285]
    'Egyptian cat'
"""
from __future__ import annotations

from functools import lru_cache

from .assets import asset_path


@lru_cache(maxsize=1)
def imagenet_class_names() -> list[str]:
    """The 1 000 ImageNet class names in model-output order (short form)."""
    folder = asset_path("imagenet_classes")
    synsets = (folder / "imagenet_synsets.txt").read_text().split()
    lemmas = {}
    for line in (folder / "imagenet_synset_to_lemma.txt").read_text().splitlines():
        synset, _, lemma = line.partition("\t")
        lemmas[synset] = lemma.split(",")[0].strip()
    if len(synsets) != 1000:
        raise RuntimeError(f"expected 1000 ImageNet synsets in {folder}, found {len(synsets)}")
    return [lemmas[s] for s in synsets]


def top_k(probabilities, k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (class name, probability) pairs for each row of a (N, 1000) array.

    Example:
        >>> import numpy as np
        >>> p = np.zeros((1, 1000)); p[0, 285] = 0.9; p[0, 281] = 0.1
        >>> top_k(p, 2)[0]
        [('Egyptian cat', 0.9), ('tabby', 0.1)]
    """
    import numpy as np
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise ValueError(f"expected an array of shape (N, 1000), got {probabilities.shape}")
    names = imagenet_class_names()
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[(names[i], round(float(row[i]), 4)) for i in idx] for row, idx in zip(probabilities, order)]
