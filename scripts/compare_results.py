"""Compare two runs of a chapter: every saved number except timings, key by key.

A change meant only to make a chapter faster must leave its results as they were:

    python scripts/compare_results.py old/results/01_cnn_fine_tuning.json build/results/01_cnn_fine_tuning.json

Prints each difference (path, old, new) and exits with 1 if there is any. Keys that
hold times or speeds (``seconds``, ``*_seconds``, ``*_per_s``, ``*_ms``) and the
run's own facts (``machine``, ``environment``, ``created``) are skipped.
"""
from __future__ import annotations

import json
import sys

SKIPPED = {"seconds", "machine", "environment", "created", "timestamp"}


def skipped(key: str) -> bool:
    """True for keys that hold a time, a speed or the run's own facts.

    Example:
        >>> [skipped(k) for k in ("seconds", "feature_cache_seconds", "train_examples_per_s", "accuracy")]
        [True, True, True, False]
    """
    return key in SKIPPED or key.endswith(("_seconds", "_per_s", "_per_second", "_ms", "_s"))


def differences(old, new, path: str = "") -> list[tuple[str, object, object]]:
    """(path, old, new) for every value that differs, timings skipped.

    Example:
        >>> differences({"accuracy": 0.8, "seconds": 3}, {"accuracy": 0.7, "seconds": 4})
        [('/accuracy', 0.8, 0.7)]
    """
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for key in sorted(set(old) | set(new), key=str) if not skipped(str(key))
                for d in differences(old.get(key), new.get(key), f"{path}/{key}")]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    return [] if old == new else [(path, old, new)]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    old, new = (json.loads(open(p, encoding="utf-8").read()) for p in argv)
    found = differences(old, new)
    for path, a, b in found:
        print(f"{path}: {a!r} -> {b!r}")
    print(f"{len(found)} difference(s) outside the timings")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
