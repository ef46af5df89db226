"""Claims of course/00_concepts.ipynb, checked against the numbers its lite run saved."""
import numpy as np
import pytest

KEYS = {"runs", "curve_sizes", "full_run_sizes", "probe_accuracy_by_depth",
        "negative_transfer", "metrics", "parity_tolerance", "feature_max_abs_difference"}
PARITY_TOLERANCE = 0.05   # the notebook states the same tolerance (TOLERANCE)
STRATEGIES = ("feature extraction", "fine-tuning", "scratch (EfficientNet)", "scratch (small CNN)")
FRAMEWORKS = ("PyTorch", "Keras")


def check(result: dict) -> None:
    acc = {(r["framework"], r["strategy"], r["n"]): r["accuracy"] for r in result["runs"]}
    first_full = min(result["full_run_sizes"])
    smallest, largest = min(result["curve_sizes"]), max(result["curve_sizes"])
    for framework in FRAMEWORKS:
        for strategy in STRATEGIES:   # all three strategies, both frameworks, the same data
            assert (framework, strategy, first_full) in acc, (framework, strategy, first_full)
        for strategy in ("fine-tuning", "feature extraction"):
            # Transfer beats the same architecture trained from scratch with the same budget ...
            assert acc[framework, strategy, first_full] >= acc[framework, "scratch (EfficientNet)", first_full] + 0.2
        # ... and beats a small CNN from scratch when labels are scarcest.
        assert acc[framework, "feature extraction", smallest] >= \
            acc[framework, "scratch (small CNN)", smallest] + 0.03, framework

    def gain(n):
        return np.mean([acc[f, "feature extraction", n] - acc[f, "scratch (small CNN)", n] for f in FRAMEWORKS])

    assert gain(smallest) >= gain(largest) + 0.03, "transfer should help most where labels are few"

    # Same weights, same setup: PyTorch and Keras agree.
    assert result["feature_max_abs_difference"] < 1e-3
    assert result["parity_tolerance"] <= PARITY_TOLERANCE
    for n in [n for n in result["curve_sizes"] if n >= first_full]:
        gap = abs(acc["PyTorch", "feature extraction", n] - acc["Keras", "feature extraction", n])
        assert gap <= PARITY_TOLERANCE, f"feature extraction n={n}: gap {gap:.3f}"
    for n in result["full_run_sizes"]:
        gap = abs(acc["PyTorch", "fine-tuning", n] - acc["Keras", "fine-tuning", n])
        assert gap <= PARITY_TOLERANCE, f"fine-tuning n={n}: gap {gap:.3f}"

    # What transfers: the first block is the weakest, and the top (ImageNet-specific) layers are no
    # better than the middle blocks.
    probe = result["probe_accuracy_by_depth"]
    assert probe["block 1"] == min(probe.values())
    middle = max(probe[f"block {i}"] for i in (3, 4, 5, 6))
    assert middle >= probe["features (1280)"] and middle >= probe["ImageNet scores (1000)"]

    # Negative transfer: the shuffled-label source is worse than no source, frozen and fine-tuned.
    negative = result["negative_transfer"]["accuracy"]
    scratch = negative["no source (scratch)"]
    for start in ("B: shuffled labels, frozen features", "B: shuffled labels, fine-tuned"):
        assert negative[start] <= scratch - 0.1, (start, negative[start], scratch)
    silent = result["negative_transfer"]["silent_features"]
    assert silent["B: shuffled labels"] > silent["A: real labels"]

    # Metrics: micro precision = micro recall = micro F1 = accuracy for single-label classes.
    m = result["metrics"]
    for key in ("micro_precision", "micro_recall", "micro_f1"):
        assert m[key] == pytest.approx(m["accuracy"])
    assert 0 < m["macro_f1"] <= 1
