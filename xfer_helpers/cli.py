"""The ``xfer`` command: ``xfer doctor`` checks the environment, ``xfer download`` fetches
originals, ``xfer grade`` autogrades a class's submissions."""
from __future__ import annotations

import argparse
import json
import sys

from . import assets, env, grading


def doctor(args: argparse.Namespace) -> int:
    """Print the environment report; exit 1 if something is missing."""
    frameworks = tuple(f for f in ("torch", "tensorflow") if f not in (args.skip or []))
    info = env.collect(frameworks)
    print(json.dumps(info, indent=2, default=str) if args.json else env.format_report(info))
    return 1 if info["problems"] else 0


def download(args: argparse.Namespace) -> int:
    """Download an asset's online original into the cache (needs XFER_ONLINE=1)."""
    try:
        folder = assets.download_asset(args.name)
    except (KeyError, ValueError, assets.OfflineError, assets.ChecksumError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: downloaded and checked, in {folder}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xfer", description="Transfer-learning course helper")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("doctor", help="check Python, frameworks, devices, profile and assets")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--skip", action="append", choices=["torch", "tensorflow"],
                   help="do not import this framework (faster)")
    p.set_defaults(func=doctor)
    p = sub.add_parser("download", help="download an asset's original (needs XFER_ONLINE=1)")
    p.add_argument("name", help=f"one of: {', '.join(n for n, a in assets.ASSETS.items() if a.online)}")
    p.set_defaults(func=download)
    grading.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
