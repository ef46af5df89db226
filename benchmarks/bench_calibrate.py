"""The machine's speed index (xfer_helpers.speed): the figure to compare machines by.

Three training steps at the lite sizes (batch 32): PyTorch EfficientNet-Lite0 at 64 px, PyTorch
and Keras MiniLM at 64 tokens; the steps take turns, and each figure is the best of ``rounds``
single steps, divided by the README machine's figure; a geometric mean combines them.
Run it three times on an idle machine to see how steady it is:
``for i in 1 2 3; do python benchmarks/run.py calibrate; done``.

Run alone: ``python benchmarks/bench_calibrate.py``.
"""
from __future__ import annotations

import json


def run(rounds: int = 10) -> list[dict]:
    """Rows: the speed index, the three throughputs (best round) and the course estimate in minutes."""
    from xfer_helpers import speed

    result = speed.calibrate(rounds=rounds)
    likely, most = speed.course_minutes(result["index"])
    common = {"job": "calibration", "threads": result["threads"]}
    return [{"name": "speed_index", "value": result["index"], "unit": "x README machine",
             "slow_reference": speed.speed_index(speed.SLOW), **common},
            *({"name": f"calibration_{key}", "value": result[key], "unit": key.split("_", 1)[1].replace("_per_", "/"),
               "rounds": result["rounds"][key], "reference": speed.REFERENCE[key],
               "framework": "Keras" if key.startswith("keras") else "PyTorch", **common}
              for key in speed.REFERENCE),
            {"name": "course_estimate_min", "value": likely, "unit": "min", "at_most": most, **common}]


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
