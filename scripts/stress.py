"""The longer reliability runs: the tests of tests/reliability at stress sizes, then one table.

    python scripts/stress.py                       # ~5 min on the 2-core development machine
    python scripts/stress.py --examples 100 --users 12 --burst 160   # a shorter pass

It runs the same tests CI runs (fuzzing under memory/time caps, header-claim bombs, concurrent
gradio_client users and a burst past the queue limit, faults, security), with every hypothesis test
at `--examples` cases and the load test at `--users` x `--requests` plus a burst of `--burst`, and
prints what was tried and what held as the markdown table docs/reliability.md quotes. Exit status:
pytest's (0 when everything held).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="cases per hypothesis test (CI: 25-40)")
    parser.add_argument("--users", type=int, default=24, help="concurrent gradio_client users (CI: 6)")
    parser.add_argument("--requests", type=int, default=5, help="requests per user (CI: 3)")
    parser.add_argument("--burst", type=int, default=256, help="simultaneous requests past the queue (CI: 128)")
    parser.add_argument("--report", type=Path, help="keep the JSON record here (default: a temp file)")
    return parser.parse_args(argv)


def table(report: dict) -> str:
    """Markdown: one row per fuzz suite (cases, how they ended, worst time and memory), then figures."""
    rows = ["| suite | cases | outcomes | worst time (s) | worst peak RSS (MB) |", "|---|---|---|---|---|"]
    for name, entry in sorted(report["suites"].items()):
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(entry["kinds"].items()))
        worst = f"{entry['max_seconds']:.2f} | {entry['max_peak_mb']:.0f}"
        rows.append(f"| {name} | {entry['cases']} | {kinds} | {worst} |")
    figures = [f"- **{name}**: `{json.dumps(value)}`" for name, value in report["figures"].items()]
    return "\n".join(rows + [""] + figures)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = args.report or Path(tempfile.mkdtemp(prefix="cmcr-stress-")) / "reliability.json"
    report.unlink(missing_ok=True)
    env = {**os.environ, "CMCR_FUZZ_EXAMPLES": str(args.examples), "CMCR_LOAD_USERS": str(args.users),
           "CMCR_LOAD_REQUESTS": str(args.requests), "CMCR_LOAD_BURST": str(args.burst),
           "CMCR_RELIABILITY_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-s", "-p", "no:cacheprovider",
               "--timeout=3600"]
    print("running:", " ".join(command[2:]), f"(examples={args.examples}, users={args.users}x{args.requests}, "
          f"burst={args.burst})", flush=True)
    status = subprocess.call(command, cwd=REPO, env=env)
    if report.is_file():
        print("\n" + table(json.loads(report.read_text())))
        print(f"\nrecord: {report}")
    return status


if __name__ == "__main__":
    sys.exit(main())
