"""Train C-MCR / Ex-MCR projectors: the whole pipeline, or only the training step.

Whole pipeline (cmcr.pipeline): raw data → features (cached) → both connections → held-out
evaluation → space folder + model card → Hub. With no arguments it runs configs/small.yaml: both
connections on Hub datasets (100k captions, 50k images, 50k audio clips, 20k shapes).

    python scripts/train.py --profile tiny                       # offline smoke run, ~1 min on a CPU
    python scripts/train.py [--config configs/small.yaml|configs/paper.yaml] [--images DIR --audio DIR
                            --points DIR --text FILE] [--set train.epochs=40] [--push-to-hub OWNER/NAME]
    python scripts/train.py --images hf://datasets/OWNER/NAME@main/data --image-column image ...

Every source may be a Hub dataset, hf://datasets/OWNER/NAME[@REVISION][/FOLDER, FILE or GLOB]
(parquet, webdataset tars or plain files); cap its rows with --set sources.image_rows=N (a seeded
subsample: sources.seed). A connection whose image, audio or 3D data is missing stops the run
with what to add, unless --overlap-ablation asks for the overlap-only ablation.

Training only, from a feature memory folder (no encoder is loaded):

    python scripts/train.py --features DIR --output OUT [--method ex-mcr|c-mcr]
                            [--config FILE.yaml|.toml] [--set epochs=3 --set lr=3e-4]

With --features, every connection whose overlap the memory holds is trained on all its rows;
Ex-MCR writes one unified space into OUT and C-MCR writes OUT/clap-clip/ and OUT/ulip-clip/: the
same space folders as the pipeline's (model card, training.json with metrics and per-epoch
history, a curve PNG per connection), without the evaluation tables.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from cmcr.atomic import check_writable
from cmcr.cli import run_reporting_errors
from cmcr.data.features import FeatureMemory
from cmcr.data.hub_uri import is_hub_uri
from cmcr.errors import InputError
from cmcr.models.space_format import METHODS
from cmcr.pipeline.config import CONFIG_DIR, PROFILE_CONFIGS, HubConfig, PipelineConfig, load_pipeline_config
from cmcr.pipeline.publish import TrainedSpace, push_space, write_space_folder
from cmcr.pipeline.plan import connections_with_overlap, plan_connections
from cmcr.pipeline.run import card_datasets, dataset_note, memory_provenance, run_pipeline, train_planned
from cmcr.training.config import load_config
from cmcr.training.spaces import build_spaces, json_safe, spaces_by_folder

RESUME_HINT = "interrupted: finished feature shards are kept; run the same command again to resume"
PIPELINE_ONLY = ("profile", "text", "images", "audio", "points", "text_column", "image_column", "audio_column",
                 "points_column", "push_to_hub", "private", "revision", "push_folder")  # no meaning with --features
SOURCE_FLAGS = (("text", "text"), ("images", "image"), ("audio", "audio"), ("points", "points"))


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
    parser.add_argument("--config", type=Path, help="YAML/TOML run config (default: configs/small.yaml, or "
                                                      "configs/tiny.yaml with --profile tiny); with --features, "
                                                      "a file of training options")
    parser.add_argument("--profile", choices=("full", "tiny"), help="encoder sizes (default: full)")
    parser.add_argument("--output", help="run folder: features/ and space/ go here; with --features, "
                                         "where the trained spaces go")
    parser.add_argument("--method", choices=METHODS, help="default: the config's, or ex-mcr with --features")
    parser.add_argument("--features", type=Path, metavar="DIR",
                        help="train only, from this feature memory folder (no encoder is loaded)")
    parser.add_argument("--text", action="append", help="text file (.txt/.jsonl/.csv) or hf://datasets/..., repeatable")
    parser.add_argument("--images", help="folder of images, or hf://datasets/OWNER/NAME[@REVISION][/PATH]")
    parser.add_argument("--audio", help="folder of audio files, or hf://datasets/...")
    parser.add_argument("--points", help="folder of 3D files, or hf://datasets/...")
    for flag, key in SOURCE_FLAGS:
        parser.add_argument(f"--{key}-column", metavar="NAME",
                            help=f"column of the {flag} source (csv / parquet column, webdataset member extension)")
    parser.add_argument("--overlap-ablation", action="store_true", default=None,
                        help="train a connection that lacks its image, audio or 3D data on its overlap alone "
                             "(the 'overlap pairs only' ablation) instead of stopping")
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
    sources = [("sources.text", [_where(text) for text in args.text] if args.text else None)]
    sources += [(f"sources.{flag}", _where(getattr(args, flag))) for flag in ("images", "audio", "points")]
    sources += [(f"sources.{key}_column", getattr(args, f"{key}_column")) for _, key in SOURCE_FLAGS]
    flags = [f"{key}={json.dumps(value)}" for key, value in (
        ("profile", args.profile), ("output", args.output), ("method", args.method), *sources,
        ("overlap_ablation", args.overlap_ablation), ("hub.repo_id", args.push_to_hub),
        ("hub.private", args.private or None), ("hub.revision", args.revision)) if value is not None]
    return load_pipeline_config(path, flags + args.overrides)


def _where(source: str | None) -> str | None:
    """A source as the config holds it: a Hub URI as written, a local path made absolute."""
    return source if source is None or is_hub_uri(source) else str(Path(source).resolve())


def main(argv: list[str] | None = None) -> int:
    """Exit codes as in `cmcr.cli`."""
    args = parse_args(argv)
    if args.features is not None:
        return run_reporting_errors(lambda: train_from_features(args),
                                    f"interrupted: the training state is kept in {features_state(args.output)}; "
                                    "run the same command again to resume")
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
    """Every connection whose overlap the memory holds, trained on all its rows (missing p or q
    data stops the run, as in the pipeline), into the pipeline's space folders."""
    config = load_config(args.config, args.overrides)
    if not args.features.is_dir():
        raise InputError(f"feature folder {args.features} does not exist")
    check_writable(args.output)
    memory = FeatureMemory(args.features)
    memory.validate()
    plans, notes = plan_connections(memory, connections_with_overlap(memory),
                                    overlap_ablation=bool(args.overlap_ablation))
    for note in notes:
        print(f"NOTE: {note}")
    method = args.method or "ex-mcr"
    state = features_state(args.output)
    results = train_planned(memory, plans, config, method, state_root=state)
    report = {name: {"metrics": json_safe(result.metrics), "history": result.history}
              for name, result in results.items()}
    encoders, datasets = memory_provenance(memory)
    spaces = build_spaces(results, method, config, encoders=encoders)
    output = Path(args.output)
    run_config = {"method": method, "train": config.to_dict()}
    notes += [dataset_note(entry) for entry in datasets]
    folders = []
    for name, (space, connections) in spaces_by_folder(spaces, list(report)).items():
        folder = output if name == "unified" else output / name
        own = {connection: report[connection] for connection in connections}
        space.config["datasets"] = card_datasets(datasets)
        trained = TrainedSpace(name, space, evaluation=None,
                               histories={connection: entry["history"] for connection, entry in own.items()})
        folders.append(write_space_folder(folder, trained, own, run_config=run_config, notes=notes))
    for name, entry in report.items():
        print(f"{name}: held-out {config.selection} R@1 {entry['metrics']['val_r1']} "
              f"(best epoch {entry['metrics']['best_epoch']})")
    shutil.rmtree(state, ignore_errors=True)  # the spaces hold everything now
    print("saved:", ", ".join(str(folder) for folder in folders))


def features_state(output: Path) -> Path:
    """Where `--features` keeps its per-epoch state: beside the output, which is swapped in whole."""
    output = Path(output).absolute()
    return output.parent / f".{output.name}.train-state"


if __name__ == "__main__":
    sys.exit(main())
