"""One training-history format for PyTorch and Keras.

A history is a list of per-epoch records. Every record has ``epoch`` (1-based),
``loss``, ``lr``, ``seconds`` and ``samples_per_second``; validation values
are prefixed with ``val_`` (``val_loss``, ``val_accuracy``); metrics use their
plain names (``accuracy``). Both ``xfer_helpers.pytorch.fit`` and
``xfer_helpers.keras.fit`` return a :class:`History`, so plots and result
tables treat the two frameworks the same way.

Example:
    >>> h = History()
    >>> h.append(epoch=1, loss=0.9, val_accuracy=0.6, lr=1e-3, seconds=2.0, samples_per_second=500.0)
    >>> h.append(epoch=2, loss=0.5, val_accuracy=0.7, lr=1e-3, seconds=2.0, samples_per_second=500.0)
    >>> h["val_accuracy"]
    [0.6, 0.7]
    >>> h.best("val_accuracy")["epoch"]
    2
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

REQUIRED_KEYS = ("epoch", "loss", "lr", "seconds", "samples_per_second")


@dataclass
class History:
    """Per-epoch records of a training run (see the module docstring)."""

    records: list[dict] = field(default_factory=list)
    framework: str = ""

    def append(self, **record) -> None:
        """Add one epoch's record; values are stored as plain Python numbers."""
        missing = [k for k in REQUIRED_KEYS if k not in record]
        if missing:
            raise ValueError(f"history record is missing {missing}; got {sorted(record)}")
        self.records.append({k: (float(v) if k != "epoch" else int(v)) for k, v in record.items()})

    def __getitem__(self, key: str) -> list[float]:
        if not self.records or key not in self.records[-1]:
            raise KeyError(f"No {key!r} in this history. Available: {self.keys()}")
        return [r.get(key, math.nan) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[str]:
        """Names recorded in the last epoch."""
        return list(self.records[-1]) if self.records else []

    def best(self, monitor: str = "val_loss", mode: str | None = None) -> dict:
        """The record with the best ``monitor`` value (min for losses, else max)."""
        mode = mode or ("min" if "loss" in monitor else "max")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        values = self[monitor]
        pick = min if mode == "min" else max
        return self.records[values.index(pick(values))]

    def total_seconds(self) -> float:
        """Training time over all epochs."""
        return float(sum(r["seconds"] for r in self.records))

    def to_dict(self) -> dict:
        """JSON-friendly form: framework and the list of records."""
        return {"framework": self.framework, "records": self.records}

    def to_json(self, path) -> None:
        """Write the history to a JSON file."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)

    @classmethod
    def from_dict(cls, data: dict) -> "History":
        """Inverse of :meth:`to_dict`."""
        return cls(records=[dict(r) for r in data["records"]], framework=data.get("framework", ""))
