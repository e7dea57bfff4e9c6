"""Train C-MCR / Ex-MCR projectors: the whole pipeline, or only the training step.

Whole pipeline (cmcr.pipeline): raw data → features (cached) → both connections → held-out
evaluation → space folder + model card → Hub.

    python scripts/train.py --profile tiny                       # offline smoke run, ~1 min on a CPU
    python scripts/train.py [--config configs/default.yaml] [--images DIR --audio DIR --points DIR
                            --text FILE] [--set train.epochs=40] [--push-to-hub OWNER/NAME]

Training only, from a feature memory folder (no encoder is loaded):

    python scripts/train.py --features DIR --output OUT [--method ex-mcr|c-mcr]
                            [--config FILE.yaml|.toml] [--set epochs=3 --set lr=3e-4]

With --features, Ex-MCR writes one unified space into OUT and C-MCR writes OUT/clap-clip/ and
OUT/ulip-clip/: the same space folders as the pipeline's (model card, training.json with metrics
and per-epoch history, a curve PNG per connection), without the evaluation tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cmcr.cli import run_reporting_errors
from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError
from cmcr.models.space_format import METHODS
from cmcr.pipeline.config import CONFIG_DIR, PROFILE_CONFIGS, HubConfig, PipelineConfig, load_pipeline_config
from cmcr.pipeline.publish import TrainedSpace, push_space, write_space_folder
from cmcr.pipeline.run import run_pipeline
from cmcr.training.config import load_config
from cmcr.training.spaces import spaces_by_folder, train_space

RESUME_HINT = "interrupted: finished feature shards are kept; run the same command again to resume"
PIPELINE_ONLY = ("profile", "text", "images", "audio", "points", "push_to_hub", "private", "revision",
                 "push_folder")  # flags that have no meaning with --features


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train C-MCR / Ex-MCR projectors end to end: raw data → features → heads → "
                    "evaluation → model card → Hub.",
        epilog="Examples:\n  python scripts/train.py --profile tiny\n"
               "  python scripts/train.py --images photos/ --audio sounds/ --points shapes/ "
               "--push-to-hub me/cmcr-space\n"
               "  python scripts/train.py --config my.yaml --set train.epochs=10\n"
               "  python scripts/train.py --features FEATURES/ --output OUT/   (train only)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="YAML/TOML run config (default: configs/default.yaml, or "
                                                      "configs/tiny.yaml with --profile tiny); with --features, "
                                                      "a file of training options")
    parser.add_argument("--profile", choices=("full", "tiny"), help="encoder sizes (default: full)")
    parser.add_argument("--output", help="run folder: features/ and space/ go here; with --features, "
                                         "where the trained spaces go")
    parser.add_argument("--method", choices=METHODS, help="default: the config's, or ex-mcr with --features")
    parser.add_argument("--features", type=Path, metavar="DIR",
                        help="train only, from this feature memory folder (no encoder is loaded)")
    parser.add_argument("--text", action="append", help="text file (.txt/.jsonl/.csv), repeatable")
    parser.add_argument("--images", help="folder of images")
    parser.add_argument("--audio", help="folder of audio files")
    parser.add_argument("--points", help="folder of 3D files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.epochs=5 or extract.num_workers=0 "
                             "(a bare training option such as epochs=5 means train.epochs)")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="push the space to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--revision", metavar="BRANCH", help="Hub branch to push to (created if missing)")
    parser.add_argument("--push-folder", type=Path, metavar="DIR",
                        help="only push this existing space folder (e.g. to retry a failed push)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.features is not None:
        given = [name for name in PIPELINE_ONLY if getattr(args, name) not in (None, False)]
        if given:
            parser.error(f"argument --{given[0].replace('_', '-')}: not allowed with argument --features")
        if args.output is None:
            parser.error("the following arguments are required: --output")
    return args


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The config file (or the profile's default), then flags, then --set overrides."""
    path = args.config or CONFIG_DIR / PROFILE_CONFIGS[args.profile or "full"]
    if args.config is None and not path.is_file():
        raise InputError(f"no config given and the default {path} is missing; pass --config FILE")
    flags = [f"{key}={json.dumps(value)}" for key, value in (
        ("profile", args.profile), ("output", args.output), ("method", args.method),
        ("sources.text", [str(Path(t).resolve()) for t in args.text] if args.text else None),
        ("sources.images", args.images and str(Path(args.images).resolve())),
        ("sources.audio", args.audio and str(Path(args.audio).resolve())),
        ("sources.points", args.points and str(Path(args.points).resolve())),
        ("hub.repo_id", args.push_to_hub), ("hub.private", args.private or None),
        ("hub.revision", args.revision)) if value is not None]
    return load_pipeline_config(path, flags + args.overrides)


def main(argv: list[str] | None = None) -> int:
    """Exit codes as in `cmcr.cli`."""
    args = parse_args(argv)
    if args.features is not None:
        return run_reporting_errors(lambda: train_from_features(args))
    return run_reporting_errors(lambda: run_command(args), RESUME_HINT)


def run_command(args: argparse.Namespace) -> None:
    if args.push_folder:
        if not args.push_to_hub:
            raise InputError("--push-folder needs --push-to-hub REPO_ID")
        print("pushed:", push_space(args.push_folder, HubConfig(args.push_to_hub, args.private, args.revision)))
        return
    result = run_pipeline(config_from_args(args))
    for folder in result.spaces.values():
        print(f"space saved: {folder}")


def train_from_features(args: argparse.Namespace) -> None:
    """Every connection the memory holds, trained on all its rows, into the pipeline's space folders."""
    config = load_config(args.config, args.overrides)
    if not args.features.is_dir():
        raise InputError(f"feature folder {args.features} does not exist")
    method = args.method or "ex-mcr"
    spaces, report = train_space(FeatureMemory(args.features), method, config)
    output = Path(args.output)
    run_config = {"method": method, "train": config.to_dict()}
    folders = []
    for name, (space, connections) in spaces_by_folder(spaces, list(report)).items():
        folder = output if name == "unified" else output / name
        own = {connection: report[connection] for connection in connections}
        trained = TrainedSpace(name, space, evaluation=None,
                               histories={connection: entry["history"] for connection, entry in own.items()})
        folders.append(write_space_folder(folder, trained, own, run_config=run_config))
    for name, entry in report.items():
        print(f"{name}: validation R@1 {entry['metrics']['val_r1']} "
              f"(best epoch {entry['metrics']['best_epoch']})")
    print("saved:", ", ".join(str(folder) for folder in folders))


if __name__ == "__main__":
    sys.exit(main())
