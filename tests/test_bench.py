"""benchmarks/run.py: the report format (checked-in schema and example) and failures that must show.

The benchmarks themselves are not run here (they measure time; see `make bench`).
"""
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import run as bench_run  # noqa: E402

SCHEMA = json.loads((ROOT / "benchmarks" / "report.schema.json").read_text())


def test_the_checked_in_example_report_matches_the_schema():
    example = json.loads((ROOT / "benchmarks" / "example-report.json").read_text())
    jsonschema.validate(example, SCHEMA)
    names = {r["name"] for r in example["results"]}
    # the example is a real `make bench` run: every benchmark module contributed rows
    for module in bench_run.discover():
        assert any(r["module"] == module.stem for r in example["results"]), module.stem
    assert {"cnn_throughput_pytorch_over_keras", "text_throughput_pytorch_over_keras"} <= names


def test_the_schema_rejects_a_row_without_a_unit():
    report = {"created": "2026-11-22T02:00:00+00:00", "errors": [], "seconds": {},
              "machine": {"python": "3.11", "platform": "Linux", "cpu_count": 2, "versions": {},
                          "cpu": {"model": "Some CPU", "cores": 2, "isa": {"avx2": True}}},
              "results": [{"module": "bench_x", "name": "x", "value": 1.0, "unit": "s"}]}
    jsonschema.validate(report, SCHEMA)
    del report["results"][0]["unit"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, SCHEMA)


def test_a_benchmark_that_fails_or_returns_bad_rows_is_reported(tmp_path):
    good, bad, broken = tmp_path / "bench_good.py", tmp_path / "bench_bad.py", tmp_path / "bench_broken.py"
    good.write_text("def run():\n    return [{'name': 'n', 'value': 2.0, 'unit': 's'}]\n")
    bad.write_text("def run():\n    return [{'name': 'n', 'value': 2.0}]\n")        # no unit
    broken.write_text("def run():\n    raise RuntimeError('boom')\n")
    rows, error, seconds = bench_run.run_module(good)
    assert rows == [{"name": "n", "value": 2.0, "unit": "s"}] and error is None and seconds > 0
    for path in (bad, broken):
        rows, error, _ = bench_run.run_module(path)
        assert rows == [] and "exit status 1" in error, path.name


def test_no_matching_benchmark_fails_the_run():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "no_such_benchmark"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "No benchmarks match" in proc.stdout


def test_precision_variants_are_paired_and_compared_with_fp32():
    row = lambda framework, variant, value: {"name": f"{framework}-{variant}", "job": "cnn", "value": value,
                                             "framework": framework, "variant": variant, "unit": "images/s"}
    rows = [row("PyTorch", "fp32", 100.0), row("PyTorch", "amp", 250.0), row("PyTorch", "amp+channels_last", 300.0),
            row("Keras", "fp32", 80.0), row("Keras", "amp", 200.0)]
    compared = {r["name"]: r["value"] for r in bench_run.compare_frameworks(rows)}
    assert compared == {"cnn_throughput_pytorch_over_keras": 1.25, "cnn_amp_throughput_pytorch_over_keras": 1.25}
    speedups = {r["name"]: r["value"] for r in bench_run.speedups_over_fp32(rows)}
    assert speedups == {"pytorch_cnn_amp_over_fp32": 2.5, "pytorch_cnn_amp_channels_last_over_fp32": 3.0,
                        "keras_cnn_amp_over_fp32": 2.5}


def test_bench_variants_default_to_fp32_on_a_cpu_and_can_be_chosen(monkeypatch):
    import bench_step_torch
    monkeypatch.delenv("XFER_BENCH_VARIANTS", raising=False)
    assert bench_step_torch.variants_for("cnn", on_gpu=False) == ["fp32"]
    assert bench_step_torch.variants_for("cnn", on_gpu=True) == ["fp32", "amp", "amp+channels_last",
                                                                 "amp+channels_last+compile"]
    monkeypatch.setenv("XFER_BENCH_VARIANTS", "fp32, amp+channels_last")
    assert bench_step_torch.variants_for("text", on_gpu=False) == ["fp32"]     # channels_last is for images
    assert bench_step_torch.variants_for("cnn", on_gpu=False) == ["fp32", "amp+channels_last"]
    monkeypatch.setenv("XFER_BENCH_VARIANTS", "fp32,xla")                      # Keras's XLA, opt-in only
    assert bench_step_torch.variants_for("cnn", on_gpu=False) == ["fp32"]
    assert bench_step_torch.variants_for("text", on_gpu=True, opt_in=("xla",)) == ["fp32", "xla"]
    monkeypatch.setenv("XFER_BENCH_VARIANTS", "fp16")
    with pytest.raises(ValueError, match="unknown variants"):
        bench_step_torch.variants_for("cnn", on_gpu=False)


def test_markdown_tables_show_every_notebook_and_job_of_the_example_report():
    example = json.loads((ROOT / "benchmarks" / "example-report.json").read_text())
    tables = bench_run.markdown_tables(example)
    for name in {r["notebook"] for r in example["results"] if "notebook" in r}:
        assert f"| {name} | " in tables
    assert "| cnn | fp32 |" in tables and "| text | fp32 |" in tables and "whole course" in tables
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--markdown",
                           str(ROOT / "benchmarks" / "example-report.json")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == tables


def test_the_calibration_steps_take_turns_and_keep_each_best_round(monkeypatch):
    """xfer_helpers.speed: warm-ups first, then one round of every step in turn; best = fastest."""
    from xfer_helpers import speed

    calls, clock = [], iter(range(1000))
    monkeypatch.setattr(speed.time, "perf_counter", lambda: next(clock))   # each step takes 1 tick...
    slow_once = {"b": 2}

    def step(name):
        def run():
            calls.append(name)
            if name == "b" and len(calls) > 4 and slow_once["b"]:   # ...except b's first timed rounds
                slow_once["b"] -= 1
                next(clock)
        return run

    speeds = speed._best_throughputs({"a": (step("a"), 10.0), "b": (step("b"), 5.0)}, rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert speeds["a"] == [10.0, 10.0, 10.0]
    assert speeds["b"] == [2.5, 2.5, 5.0] and max(speeds["b"]) == 5.0
    assert round(speed.speed_index({k: 2 * v for k, v in speed.REFERENCE.items()}), 6) == 2.0
