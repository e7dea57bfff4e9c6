"""Speed and scale benchmarks, each figure next to a baseline measured in the same run.

    python -m benchmarks                                   # small sizes, GPU if present
    python -m benchmarks --device cpu --sizes small --out benchmark-cpu.json
    python -m benchmarks --device cuda --sizes full --out benchmark-h100.json
    python -m benchmarks --only points search              # some sections only
    python -m benchmarks --only train --train-rows 1000000  # one training size
    python -m benchmarks --report gpu-*.json               # tables of split runs, one targets table

Sizes: `tiny` (toy encoders, seconds: the CI smoke run), `small` (full-size architectures,
a few minutes on a 2-core CPU), `full` (the targets' workloads: 1M-row galleries and memories).
Prints a markdown table per section and writes every figure to JSON (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys

from tqdm.auto import tqdm

from benchmarks.bench import SIZE_PLANS
from benchmarks.report import read_results, targets_table, to_markdown, write_results
from benchmarks.run import SECTIONS, run_benchmarks
from cmcr.cli import run_reporting_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="where to run (default: cuda when torch sees a GPU, else cpu)")
    parser.add_argument("--sizes", choices=tuple(SIZE_PLANS), default="small")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="NAME",
                        help=f"run only these sections: {', '.join(SECTIONS)}")
    parser.add_argument("--out", default="benchmark-results.json", help="JSON file to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and FAISS CPU threads (default: theirs, one per core)")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="measure nothing: print the tables of earlier runs' JSON files and one "
                             "table of every target across them")
    parser.add_argument("--train-rows", type=int, nargs="+", metavar="N",
                        help="memory sizes of the train section (default: the --sizes plan's); "
                             "one size per command keeps a full-size GPU run inside a time slot")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_reporting_errors(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    if args.report:
        results = read_results(args.report)
        print("\n\n".join(to_markdown(result) for result in results))
        print("\n## Targets\n\n" + targets_table(results))
        return
    with tqdm(desc="benchmark", bar_format="{desc}: {elapsed} {postfix}", file=sys.stderr) as bar:
        def progress(message: str) -> None:
            bar.set_postfix_str(message)
            bar.update()

        result = run_benchmarks(args.device, args.sizes, args.only, progress, args.seed, args.threads,
                                train_rows=args.train_rows)
    print(to_markdown(result))
    print(f"\nwrote {write_results(result, args.out)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
