"""Train C-MCR / Ex-MCR projectors: the whole pipeline, or only the training step.

Whole pipeline (cmcr.pipeline; `--help` without `--features` lists its options): raw data →
features (cached) → both connections → held-out evaluation → space folder + model card → Hub.

    python scripts/train.py --profile tiny                       # offline smoke run, ~1 min on a CPU
    python scripts/train.py [--config configs/default.yaml] [--images DIR --audio DIR --points DIR
                            --text FILE] [--set train.epochs=40] [--push-to-hub OWNER/NAME]

Training only, from a feature memory folder (no encoder is loaded):

    python scripts/train.py --features DIR --output OUT [--method ex-mcr|c-mcr]
                            [--config FILE.yaml|.toml] [--set epochs=3 --set lr=3e-4]

Ex-MCR writes one unified space into OUT; C-MCR writes OUT/clap-clip/ and OUT/ulip-clip/.
Each space folder also gets training.json (metrics and per-epoch history) and a curve PNG per
connection.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cmcr import pipeline
from cmcr.cli import run_reporting_errors
from cmcr.errors import InputError
from cmcr.data.features import FeatureMemory
from cmcr.training.trainer import METHODS, load_config, save_training_curve, train_space


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", required=True, type=Path, help="feature memory folder")
    parser.add_argument("--output", required=True, type=Path, help="where trained spaces go")
    parser.add_argument("--method", default="ex-mcr", choices=METHODS)
    parser.add_argument("--config", type=Path, help="YAML or TOML file of TrainConfig fields")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override one TrainConfig field")
    return parser.parse_args(argv)


def write_outputs(spaces, report: dict, output: Path) -> list[Path]:
    """Save each space with its training report and curves; returns the space folders."""
    folders = {output: spaces} if not isinstance(spaces, dict) else {
        output / name: space for name, space in spaces.items()}
    for folder, space in folders.items():
        space.save_pretrained(folder)
        own = {name: entry for name, entry in report.items()
               if len(folders) == 1 or name.replace("→", "-") == folder.name}
        (folder / "training.json").write_text(json.dumps(own, indent=2) + "\n")
        for name, entry in own.items():
            save_training_curve(entry["history"], folder / f"curve-{name.replace('→', '-')}.png",
                                title=name)
    return list(folders)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not any(arg == "--features" or arg.startswith("--features=") for arg in argv):
        return pipeline.main(argv)
    args = parse_args(argv)
    return run_reporting_errors(lambda: train_from_features(args))


def train_from_features(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    if not args.features.is_dir():
        raise InputError(f"feature folder {args.features} does not exist")
    spaces, report = train_space(FeatureMemory(args.features), args.method, config)
    folders = write_outputs(spaces, report, args.output)
    for name, entry in report.items():
        print(f"{name}: validation R@1 {entry['metrics']['val_r1']} "
              f"(best epoch {entry['metrics']['best_epoch']})")
    print("saved:", ", ".join(str(folder) for folder in folders))


if __name__ == "__main__":
    sys.exit(main())
