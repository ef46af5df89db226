"""The machine's speed index (xfer_helpers.speed): the figure to compare machines by.

Two PyTorch training steps at the lite sizes (EfficientNet-Lite0, 64 px; MiniLM, 64 tokens;
batch 32), each the best of ``rounds`` single steps, divided by the README machine's figures and
combined by a geometric mean. Run it three times on an idle machine to see how steady it is:
``for i in 1 2 3; do python benchmarks/run.py calibrate; done``.

Run alone: ``python benchmarks/bench_calibrate.py``.
"""
from __future__ import annotations

import json


def run(rounds: int = 12) -> list[dict]:
    """Rows: the speed index, the two throughputs (best round) and the course estimate in minutes."""
    from xfer_helpers import speed

    result = speed.calibrate(rounds=rounds)
    likely, most = speed.course_minutes(result["index"])
    common = {"job": "calibration", "framework": "PyTorch", "threads": result["threads"]}
    return [{"name": "speed_index", "value": result["index"], "unit": "x README machine",
             "slow_reference": speed.speed_index(speed.SLOW), **common},
            *({"name": f"calibration_{key}", "value": result[key], "unit": key.split("_", 1)[1].replace("_per_", "/"),
               "rounds": result["rounds"][key], "reference": speed.REFERENCE[key], **common}
              for key in speed.REFERENCE),
            {"name": "course_estimate_min", "value": likely, "unit": "min", "at_most": most, **common}]


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
