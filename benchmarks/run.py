"""Run the benchmarks (``make bench``) and write ``bench-results/report.json``.

Every ``benchmarks/bench_*.py`` module is a benchmark if it defines
``run() -> list[dict]``; each row has at least ``name``, ``value`` and ``unit``
(more keys such as ``target``, ``ok`` or ``min`` are kept in the report). Each
module runs in its own Python process, so PyTorch and TensorFlow never share a
process and one benchmark's threads or memory cannot slow the next.

Usage:
    python benchmarks/run.py                 # all benchmarks
    python benchmarks/run.py torch_loop      # only modules whose name contains "torch_loop"
    python benchmarks/run.py --list          # show what would run
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xfer_helpers.env import version_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = ROOT / "bench-results" / "report.json"


def discover(filters: list[str] | None = None) -> list[Path]:
    """The bench_*.py files, sorted; only those whose name contains one of ``filters`` if given."""
    found = sorted(HERE.glob("bench_*.py"))
    return [p for p in found if not filters or any(f in p.stem for f in filters)]


def machine_info() -> dict:
    """Where the numbers come from: CPU, load, library versions and the PyTorch device."""
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "versions": {p: version_of(p) for p in ("torch", "tensorflow", "keras", "numpy")}}
    from xfer_helpers import speed
    info["cpu"] = speed.cpu_facts()            # model, cores, avx2 / avx512f / avx512_bf16 / amx
    info["onednn_isa"] = speed.onednn_isa()   # what PyTorch's CPU convolutions dispatch to
    try:
        import torch

        from xfer_helpers import env
        device = env.torch_device()
        info.update(torch_device=str(device), torch_threads=torch.get_num_threads(),
                    gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    except Exception as exc:  # a report without a device beats no report
        info["torch_device"] = f"unavailable ({exc})"
    return info


def run_module_here(path: Path, out: Path) -> None:
    """Import one benchmark module, call its run() and write the rows as JSON (child process)."""
    sys.path[:0] = [str(ROOT), str(HERE)]   # xfer_helpers, and benchmarks/timing.py
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.run()
    for row in rows:
        missing = {"name", "value", "unit"} - set(row)
        if missing:
            raise ValueError(f"{path.name}: row {row} lacks {sorted(missing)}")
    out.write_text(json.dumps(rows))


def run_module(path: Path) -> tuple[list[dict], str | None, float]:
    """Run one benchmark in a fresh process; return (rows, error or None, seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", str(path),
                               "--rows", str(out)], cwd=ROOT)
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            return [], f"exit status {proc.returncode} (see the output above)", seconds
        return json.loads(out.read_text()), None, seconds


def _label(job: str, variant: str) -> str:
    """Row-name stem of a job's variant: ``cnn``, ``cnn_amp_channels_last``."""
    return job if variant == "fp32" else f"{job}_{variant.replace('+', '_')}"


def _speeds(rows: list[dict]) -> dict:
    return {(r["job"], r["framework"], r.get("variant", "fp32")): r for r in rows
            if "job" in r and r.get("unit", "").endswith("/s") and isinstance(r.get("value"), (int, float))}


def compare_frameworks(rows: list[dict]) -> list[dict]:
    """For each job and variant timed in both frameworks, PyTorch's throughput over Keras's.

    Example:
        >>> rows = [{"name": "a", "job": "cnn", "framework": "PyTorch", "value": 30.0, "unit": "images/s"},
        ...         {"name": "b", "job": "cnn", "framework": "Keras", "value": 20.0, "unit": "images/s"}]
        >>> [(r["name"], r["value"]) for r in compare_frameworks(rows)]
        [('cnn_throughput_pytorch_over_keras', 1.5)]
    """
    speed = _speeds(rows)
    out = []
    for job, variant in sorted({(j, v) for j, _, v in speed}):
        if (job, "PyTorch", variant) in speed and (job, "Keras", variant) in speed:
            torch_row, keras_row = speed[job, "PyTorch", variant], speed[job, "Keras", variant]
            out.append({"module": "compare", "name": f"{_label(job, variant)}_throughput_pytorch_over_keras",
                        "value": round(torch_row["value"] / keras_row["value"], 3), "unit": "x", "job": job,
                        "variant": variant, "detail": f"PyTorch {torch_row['value']:.4g} vs Keras "
                                                      f"{keras_row['value']:.4g} {torch_row['unit']}"})
    return out


def speedups_over_fp32(rows: list[dict]) -> list[dict]:
    """For each framework, job and variant other than fp32: its throughput over fp32's.

    Example:
        >>> rows = [{"name": "a", "job": "cnn", "framework": "PyTorch", "value": 30.0, "unit": "images/s"},
        ...         {"name": "b", "job": "cnn", "framework": "PyTorch", "variant": "amp", "value": 75.0,
        ...          "unit": "images/s"}]
        >>> [(r["name"], r["value"]) for r in speedups_over_fp32(rows)]
        [('pytorch_cnn_amp_over_fp32', 2.5)]
    """
    speed = _speeds(rows)
    out = []
    for job, framework, variant in sorted(speed):
        base = speed.get((job, framework, "fp32"))
        if variant != "fp32" and base is not None:
            out.append({"module": "compare", "name": f"{framework.lower()}_{_label(job, variant)}_over_fp32",
                        "value": round(speed[job, framework, variant]["value"] / base["value"], 3), "unit": "x",
                        "job": job, "framework": framework, "variant": variant})
    return out


def format_table(rows: list[dict]) -> str:
    """A plain-text table: module, name, value, unit, target, ok."""
    header = ("module", "name", "value", "unit", "target", "ok")
    lines = [[r.get("module", ""), r["name"],
              f"{r['value']:.4g}" if isinstance(r["value"], (int, float)) else str(r["value"]),
              r["unit"], str(r.get("target", "")), {True: "yes", False: "NO"}.get(r.get("ok"), "")]
             for r in rows]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))]
                     + [fmt.format(*line) for line in lines])


def markdown_tables(report: dict) -> str:
    """The README's performance tables, read from a report (``run.py --markdown report.json``).

    Example:
        >>> report = {"results": [{"name": "wall_00_x", "value": 100.0, "unit": "s", "notebook": "00_x"}]}
        >>> print(markdown_tables(report).splitlines()[2])
        | 00_x | 100 s | – | – | – |
    """
    rows = report["results"]
    v = {r["name"]: r for r in rows}

    def cell(name, fmt="{:.3g}", unit=""):
        return (fmt.format(v[name]["value"]) + unit) if name in v else "–"
    notebooks = sorted({r["notebook"] for r in rows if "notebook" in r})
    out = ["| notebook | wall time | peak memory | first cell | ready |", "|---|---|---|---|---|"]
    out += [f"| {n} | {cell('wall_' + n, '{:.0f}', ' s')} | {cell('peak_memory_' + n, '{:.2f}', ' GB')} | "
            f"{cell('first_cell_' + n, '{:.1f}', ' s')} | {cell('ready_' + n, '{:.1f}', ' s')} |" for n in notebooks]
    if "wall_whole_course" in v:
        out.append(f"| whole course | {v['wall_whole_course']['value']:.0f} s "
                   f"({v['wall_whole_course']['value'] / 60:.1f} min) | | | |")
    machine = report.get("machine", {})
    if "cpu" in machine or "speed_index" in v:
        cpu = machine.get("cpu", {})
        isa = ", ".join(flag for flag, has in cpu.get("isa", {}).items() if has) or "–"
        index = v.get("speed_index")
        out += ["", f"Machine: {cpu.get('model', '–')}, {cpu.get('cores', '–')} cores; ISA flags: {isa}; "
                f"oneDNN: {machine.get('onednn_isa') or '–'}"
                + (f"; speed index {index['value']:.2f} (slow reference machine "
                   f"{index.get('slow_reference', float('nan')):.2f})" if index else "") + "."]
    speed = _speeds(rows)
    steps = sorted({(job, variant) for job, _, variant in speed})
    if steps:
        out += ["", "| job | variant | input | PyTorch | Keras | PyTorch / Keras |", "|---|---|---|---|---|---|"]
        for job, variant in steps:
            mine = {f: speed[job, f, variant] for f in ("PyTorch", "Keras") if (job, f, variant) in speed}
            shown = [f"{mine[f]['value']:.4g} {mine[f]['unit']}" if f in mine else "–" for f in ("PyTorch", "Keras")]
            out.append(f"| {job} | {variant} | {next(iter(mine.values())).get('input', '')} | {shown[0]} | "
                       f"{shown[1]} | {cell(_label(job, variant) + '_throughput_pytorch_over_keras', '{:.2f}')} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("filters", nargs="*", help="run only modules whose name contains one of these")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report file (default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the benchmark modules and stop")
    parser.add_argument("--markdown", type=Path, metavar="REPORT", help="print a report's tables as Markdown and stop")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)   # internal: child process
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_module_here(args.one, args.rows)
        return 0
    if args.markdown:
        print(markdown_tables(json.loads(args.markdown.read_text())))
        return 0
    modules = discover(args.filters)
    if args.list or not modules:
        print("\n".join(p.name for p in modules) or f"No benchmarks match {args.filters}.")
        return 0 if modules else 1
    report = {"created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine_info(), "results": [], "errors": [], "seconds": {}}
    for path in modules:
        print(f"== {path.stem}", flush=True)
        rows, error, seconds = run_module(path)
        report["seconds"][path.stem] = round(seconds, 1)
        report["results"] += [{"module": path.stem, **row} for row in rows]
        if error:
            report["errors"].append({"module": path.stem, "error": error})
            print(f"   FAILED: {error}", flush=True)
    report["results"] += compare_frameworks(report["results"]) + speedups_over_fp32(report["results"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    m = report["machine"]
    print(f"\n{m['cpu_count']} CPU cores, torch {m['versions']['torch']} on {m.get('torch_device')}, "
          f"load {m['load_average_1min']}")
    print(format_table(report["results"]))
    print(f"\nReport: {args.out}")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
