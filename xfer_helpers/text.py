"""Framework-neutral helpers for text classification: tokenised batches, lengths, scores, schedules.

Nothing here imports PyTorch or TensorFlow. The tokenizer is any Hugging Face
tokenizer (``xfer_helpers.pytorch.models.minilm_tokenizer()``); its NumPy
output feeds both frameworks, so PyTorch and Keras see the very same tokens.

Example:
    >>> choose_max_length([12, 30, 31, 45, 60], coverage=0.8)
    48
    >>> warmup_linear(step=5, total_steps=100, warmup_steps=10)
    0.5
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["encode_texts", "token_lengths", "length_summary", "choose_max_length",
           "classification_scores", "warmup_linear", "most_confident_errors", "length_grouped_batches",
           "inference_batches"]


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, np.ndarray]:
    """Tokenise texts once: ``input_ids`` and ``attention_mask``, int64 arrays (N, max_length).

    Every row starts with [CLS] and ends with [SEP] before its padding; longer texts are
    truncated. The mask is 1 on real tokens and 0 on padding.

    Example:
        >>> batch = encode_texts(tokenizer, ["Hello!", "Thanks @united"], max_length=8)  # doctest: +SKIP
        >>> batch["attention_mask"][0].tolist()                                        # doctest: +SKIP
        [1, 1, 1, 1, 0, 0, 0, 0]
    """
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings, not one string: wrap it as [text]")
    if not isinstance(max_length, int) or max_length < 4:
        raise ValueError(f"max_length must be a whole number of at least 4 tokens, got {max_length!r}")
    batch = tokenizer(list(texts), max_length=max_length, truncation=True, padding="max_length",
                      return_tensors="np", return_token_type_ids=False)
    return {"input_ids": batch["input_ids"].astype(np.int64),
            "attention_mask": batch["attention_mask"].astype(np.int64)}


def length_grouped_batches(lengths, batch_size: int, seed: int = 0, epoch: int = 0,
                           pool: int = 50) -> list[np.ndarray]:
    """One epoch of shuffled batches (index arrays) of texts of similar length.

    The texts are shuffled, cut into pools of ``pool`` batches, sorted by length inside
    each pool and batched; then the batches are shuffled. Every text appears once; the
    order changes with ``epoch`` and is the same in PyTorch and Keras for the same seed
    (Hugging Face's ``group_by_length``). Cut each batch to its longest text and far
    fewer padding tokens are computed on.

    Example:
        >>> [b.tolist() for b in length_grouped_batches([5, 9, 6, 8], batch_size=2, seed=0)]
        [[2, 0], [1, 3]]
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    lengths = np.asarray(lengths)
    rng = np.random.default_rng([seed, epoch])
    order, size = rng.permutation(len(lengths)), batch_size * pool
    batches = []
    for start in range(0, len(order), size):
        chunk = order[start:start + size]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def inference_batches(attention_mask, batch_size: int = 64, by_length: bool = True) -> list[tuple[np.ndarray, int]]:
    """Batches for running a model over every text once: ``(indices, width)`` pairs.

    ``by_length=True`` takes the texts from longest to shortest, so each batch can be cut
    to ``width`` columns, its longest text (dynamic padding). Put each batch's outputs
    back at ``indices`` to restore the original order. ``by_length=False`` keeps the
    order and the full width (every text padded to ``max_length``).

    Example:
        >>> mask = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
        >>> [(index.tolist(), width) for index, width in inference_batches(mask, batch_size=2)]
        [([1, 2], 3), ([0], 1)]
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    mask = np.asarray(attention_mask)
    lengths = mask.sum(1)
    order = np.argsort(-lengths, kind="stable") if by_length else np.arange(len(mask))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [(index, int(lengths[index].max()) if by_length else mask.shape[1]) for index in batches]


def token_lengths(tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Number of tokens of each text, [CLS] and [SEP] included, without truncation.

    Example:
        >>> token_lengths(tokenizer, ["Hello!"]).tolist()   # doctest: +SKIP
        [4]
    """
    return np.array([len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]])


def length_summary(lengths) -> dict[str, float]:
    """Mean, median, 90/95/99th percentile and maximum of token lengths.

    Example:
        >>> length_summary([10, 20, 30])["median"]
        20.0
    """
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        raise ValueError("lengths is empty: tokenise at least one text")
    p50, p90, p95, p99 = np.percentile(lengths, [50, 90, 95, 99])
    return {"mean": float(lengths.mean()), "median": float(p50), "p90": float(p90),
            "p95": float(p95), "p99": float(p99), "max": float(lengths.max())}


def choose_max_length(lengths, coverage: float = 0.98, multiple: int = 8,
                      cap: int | None = None) -> int:
    """The shortest max_length (a multiple of ``multiple``) that fits ``coverage`` of the texts.

    Attention costs grow with the square of the length, so padding every tweet to 512 tokens
    wastes most of the compute. ``cap`` (e.g. the profile's ``max_length``) is an upper bound.

    Example:
        >>> choose_max_length([10, 20, 30, 40, 70], coverage=0.8, multiple=8)
        40
    """
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        raise ValueError("lengths is empty: tokenise at least one text")
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be a fraction in (0, 1], got {coverage}")
    if multiple < 1:
        raise ValueError(f"multiple must be at least 1, got {multiple}")
    needed = int(np.sort(lengths)[math.ceil(coverage * lengths.size) - 1])  # the shortest that fits enough
    chosen = int(math.ceil(needed / multiple) * multiple)
    return min(chosen, cap) if cap is not None else chosen


def classification_scores(y_true, y_pred) -> dict[str, float]:
    """Accuracy and macro-F1 (each class counts the same, however rare), via scikit-learn.

    Example:
        >>> classification_scores([0, 0, 0, 1], [0, 0, 0, 0])
        {'accuracy': 0.75, 'macro_f1': 0.42857142857142855}
    """
    from sklearn.metrics import accuracy_score, f1_score
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}")
    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def warmup_linear(step, total_steps: int, warmup_steps: int) -> float:
    """Learning-rate multiplier: 0 -> 1 over ``warmup_steps``, then 1 -> 0 at ``total_steps``.

    The schedule of BERT (Devlin et al., 2019); multiply the peak learning rate by it.
    Both frameworks use this one function (``xfer_helpers.pytorch.text.warmup_linear_scheduler``,
    ``xfer_helpers.keras.text.WarmupLinearSchedule``).

    Example:
        >>> [warmup_linear(s, total_steps=10, warmup_steps=2) for s in (0, 1, 2, 6, 10)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be between 0 and total_steps ({total_steps}), got {warmup_steps}")
    if step < warmup_steps:
        return step / warmup_steps
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def most_confident_errors(probabilities, labels, k: int = 5) -> np.ndarray:
    """Indices of the ``k`` wrong predictions with the highest predicted probability.

    Example:
        >>> most_confident_errors([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]], [1, 1, 0], k=2).tolist()
        [0, 2]
    """
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if probabilities.ndim != 2 or len(probabilities) != len(labels):
        raise ValueError(f"probabilities must be (N, classes) with one row per label, got "
                         f"{probabilities.shape} for {len(labels)} labels")
    wrong = np.flatnonzero(probabilities.argmax(1) != labels)
    confidence = probabilities[wrong].max(1)
    return wrong[np.argsort(-confidence, kind="stable")[:k]]
