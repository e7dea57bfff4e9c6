"""One command from raw data to weights on the Hub: what `python scripts/train.py` runs.

    sources → features (cached, cmcr.data.extract) → both connections (cmcr.training.trainer) → held-out
    evaluation (cmcr.evaluation.protocols) → space folder + model card (cmcr.models.card) → Hub (cmcr.hub)

The run is described by one YAML/TOML file (configs/default.yaml, configs/tiny.yaml) plus
`--set section.key=value` overrides. Everything it writes goes under `output`:
`features/` (the memory, reused while sources, weights and settings stay the same) and `space/`
(the folder that is pushed: config.json, model.safetensors, README.md, curves, training.json).

What can be trained depends on what data there is, and the run says so rather than pretend:
a connection needs its overlap memory in both encoders (CLAP→CLIP: text; ULIP→CLIP: images).
Without images, ULIP→CLIP cannot be trained at all. When a connection's `p` or `q` modality is
missing (e.g. text only: no images for CLIP, no audio for CLAP), its pseudo partners are drawn
from the overlap memory itself: the heads then learn the CLAP→CLIP map from text pairs alone and
reach audio only through CLAP's own audio–text alignment. The notes land in the output and the
model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmcr import config as configfile
from cmcr.atomic import replace_folder
from cmcr.cli import run_reporting_errors
from cmcr.errors import InputError
from cmcr.data.features import CONNECTIONS, FeatureMemory, get_connection

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
PROFILE_CONFIGS = {"full": "default.yaml", "tiny": "tiny.yaml"}  # used when no --config is given
SPACE_DIR = "space"
FEATURES_DIR = "features"


# --- configuration ----------------------------------------------------------------------------


@dataclass
class SourcesConfig:
    """Raw data. Paths in a config file are relative to that file; on the command line, to the
    working directory. `corpus_size` sentences of cmcr.data.corpus are added to the text (0: none)."""

    text: list[str] = field(default_factory=list)
    text_column: str = "text"
    corpus_size: int = 3000
    images: str | None = None
    audio: str | None = None
    points: str | None = None


@dataclass
class ExtractConfig:
    """cmcr.data.extract.ExtractOptions without the profile (the run's own)."""

    shard_size: int = 1024
    batch_size: int = 128
    num_workers: int = 4
    device: str | None = None
    dtype: str = "float16"
    num_points: int = 8192


@dataclass
class EvaluationConfig:
    """Overlap rows held out of training for the evaluation tables."""

    holdout_fraction: float = 0.1
    max_rows: int = 5000
    seed: int = 0


@dataclass
class HubConfig:
    repo_id: str | None = None
    private: bool = False
    revision: str | None = None


@dataclass
class PipelineConfig:
    profile: str = "full"
    output: str = "runs/cmcr-space"
    method: str = "ex-mcr"
    connections: list[str] = field(default_factory=lambda: list(CONNECTIONS))
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    train: Any = None  # cmcr.training.trainer.TrainConfig (imported lazily: it pulls in torch)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(dataclasses.replace(self, train=None))
        values["train"] = self.train.to_dict()
        return values


SECTIONS = {"sources": SourcesConfig, "extract": ExtractConfig, "evaluation": EvaluationConfig,
            "hub": HubConfig}
PATH_KEYS = {("sources", "images"), ("sources", "audio"), ("sources", "points"), ("sources", "text")}


def read_config_file(path: str | Path) -> dict:
    """A YAML or TOML run config as a nested dict; relative source paths are made relative to the
    file's folder."""
    path = Path(path)
    values = configfile.read_config_file(path)
    sources = values.get("sources")
    if isinstance(sources, dict):
        values["sources"] = {key: _anchor(value, path.parent) if ("sources", key) in PATH_KEYS else value
                             for key, value in sources.items()}
    return values


def _anchor(value: Any, folder: Path) -> Any:
    if isinstance(value, list):  # one level only: YAML aliases can nest lists 9**9 items deep
        return [_anchor(item, folder) if isinstance(item, str) else item for item in value]
    if isinstance(value, str) and not Path(value).expanduser().is_absolute():
        return str((folder / value).resolve())
    return value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """`section.key=value` (value parsed as YAML: `null`, `false`, `3e-4`, `[a, b]`); a bare
    TrainConfig field (`epochs=3`) means `train.epochs`, as in the `--features` mode."""
    from cmcr.training.trainer import TrainConfig

    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {key: dict(value) if isinstance(value, dict) else value for key, value in values.items()}
    for override in overrides:
        key, value = configfile.parse_override(override)
        section, dot, name = key.rpartition(".")
        if not dot and name in train_fields:
            section = "train"
        if section:
            table = values.setdefault(section, {})
            if not isinstance(table, dict):
                raise InputError(f"{section} must be a section, not {reprlib.repr(table)}")
            table[name] = value
        else:
            values[name] = value
    return values


def build_config(values: Mapping) -> PipelineConfig:
    """A checked PipelineConfig from nested plain data; every unknown key is an InputError."""
    from cmcr.training.trainer import METHODS, TrainConfig

    top = {f.name for f in dataclasses.fields(PipelineConfig)}
    unknown = sorted(set(values) - top, key=str)  # YAML keys may be numbers or null
    if unknown:
        raise InputError(f"unknown config key(s) {unknown}; known: {sorted(top)}")
    kwargs = {name: _section(name, cls, values.get(name) or {}) for name, cls in SECTIONS.items()}
    train = values.get("train") or {}
    if not isinstance(train, dict):
        raise InputError("train must be a section of training options")
    kwargs["train"] = TrainConfig.from_dict(train)
    for key in ("profile", "output", "method", "connections"):
        if key in values:
            kwargs[key] = values[key]
    config = PipelineConfig(**kwargs)
    if config.profile not in ("full", "tiny"):
        raise InputError(f"profile must be 'full' or 'tiny', not {reprlib.repr(config.profile)}")
    if config.method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, not {reprlib.repr(config.method)}")
    if isinstance(config.connections, str):
        config.connections = [config.connections]
    if not isinstance(config.connections, list) or not config.connections:
        raise InputError(f"connections must be a non-empty list, e.g. {list(CONNECTIONS)}")
    config.connections = [get_connection(name).name for name in config.connections]
    if isinstance(config.sources.text, str):
        config.sources.text = [config.sources.text]
    if not isinstance(config.sources.text, list) or not all(isinstance(t, str) for t in config.sources.text):
        raise InputError("sources.text must be a path or a list of paths")
    _check_ranges(config)
    return config


def _section(name: str, cls: type, values: Any):
    if not isinstance(values, dict):
        raise InputError(f"{name} must be a section of options, not {reprlib.repr(values)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known, key=str)
    if unknown:
        raise InputError(f"unknown {name} option(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def _check_ranges(config: PipelineConfig) -> None:
    evaluation, sources = config.evaluation, config.sources
    if not isinstance(evaluation.holdout_fraction, (int, float)) or not 0 <= evaluation.holdout_fraction < 1:
        raise InputError("evaluation.holdout_fraction must be in [0, 1), "
                         f"got {reprlib.repr(evaluation.holdout_fraction)}")
    if not isinstance(sources.corpus_size, int) or sources.corpus_size < 0:
        raise InputError(f"sources.corpus_size must be 0 or more, got {reprlib.repr(sources.corpus_size)}")
    if config.hub.repo_id is not None and config.method == "c-mcr" and len(config.connections) > 1:
        raise InputError("a Hub repo holds one space, and c-mcr trains one space per connection: "
                         "push one at a time, e.g. --set connections=[clap→clip]")
    extract_options(config).check()


def load_pipeline_config(path: str | Path | None, overrides: list[str] = ()) -> PipelineConfig:
    return build_config(apply_overrides(read_config_file(path) if path else {}, list(overrides)))


def extract_options(config: PipelineConfig):
    from cmcr.data.extract import ExtractOptions

    return ExtractOptions(profile=config.profile, **dataclasses.asdict(config.extract))


# --- connections from what the memory holds ---------------------------------------------------


@dataclass
class ConnectionPlan:
    """Which memory files feed each role of one connection, after fallbacks."""

    name: str
    files: dict[str, tuple[str, str]]
    notes: list[str]


def plan_connections(memory: FeatureMemory, names: list[str]) -> tuple[list[ConnectionPlan], list[str]]:
    """Trainable connections (with fallbacks for a missing p or q) and notes on the others."""
    plans, notes = [], []
    for name in names:
        connection = get_connection(name)
        files = connection.files()
        missing = [f"{m}/{e}" for m, e in (files["o_x"], files["o_y"]) if not memory.has(m, e)]
        if missing:
            notes.append(f"{name} was NOT trained: it connects through {files['o_x'][0]}, and the "
                         f"features lack {', '.join(missing)} (add a source of {files['o_x'][0]} files).")
            continue
        own = []
        for role, fallback in (("p", "o_x"), ("q", "o_y")):
            if not memory.has(*files[role]):
                modality, encoder = files[role]
                own.append(f"{name}: no {modality} data, so its {encoder} pseudo partners come "
                           f"from the {files[fallback][0]} memory itself: the heads never saw "
                           f"{modality} and reach it only through {encoder}'s own alignment.")
                files = {**files, role: files[fallback]}
        plans.append(ConnectionPlan(name, files, own))
        notes += own
    if not plans:
        raise InputError("no connection can be trained from these features:\n" + "\n".join(notes))
    return plans, notes


def _split(rows: int, config: EvaluationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train rows, held-out rows) of the overlap; held-out is empty when too small."""
    order = np.random.default_rng(config.seed).permutation(rows)
    held = min(config.max_rows, int(round(config.holdout_fraction * rows)))
    if held < 2 or rows - held < 2:
        held = 0
    return np.sort(order[held:]), np.sort(order[:held])


def connection_memories(memory: FeatureMemory, plan: ConnectionPlan, train_rows: np.ndarray):
    """ConnectionMemories of the training rows; a fallback p/q is restricted to them too."""
    from cmcr.training.trainer import ConnectionMemories

    connection = get_connection(plan.name)
    arrays = {}
    for role, where in plan.files.items():
        array = memory.load(*where)
        is_overlap = role in ("o_x", "o_y") or where in (plan.files["o_x"], plan.files["o_y"])
        arrays[role] = np.asarray(array[train_rows] if is_overlap else array, dtype=np.float32)
    return ConnectionMemories(**arrays, x=connection.x, y=connection.y)


# --- evaluation -------------------------------------------------------------------------------


def evaluate_connection(memory: FeatureMemory, plan: ConnectionPlan, space, held_out: np.ndarray) -> dict:
    """Held-out overlap retrieval (Y's view → X's view of the same items), both ways, + chance."""
    from cmcr.evaluation.protocols import chance_metrics, retrieval_metrics

    if not len(held_out):
        return {}
    (modality, x), (_, y) = plan.files["o_x"], plan.files["o_y"]
    projected = {encoder: space.project(encoder=encoder, modality=modality,
                                        features=np.asarray(memory.load(modality, encoder)[held_out], np.float32))
                 for encoder in (x, y)}
    return {
        f"{y} {modality} → {x} {modality} (held-out)": retrieval_metrics(projected[y], projected[x]),
        f"{x} {modality} → {y} {modality} (held-out)": retrieval_metrics(projected[x], projected[y]),
        f"chance ({len(held_out)} items)": chance_metrics(len(held_out)),
    }


def evaluate_named_pairs(memory: FeatureMemory, space) -> dict:
    """Cross-modal retrieval between items whose file names match (dog.wav ↔ dog.png ↔ dog.ply),
    for every pair of modalities the space projects. Training saw these items unpaired."""
    from cmcr.evaluation.protocols import chance_metrics, retrieval_metrics

    sets = [(m, e) for e in space.encoders for m in space.modalities(e)
            if m != "text" and memory.has(m, e)]
    rows, sizes = {}, set()
    for query in sets:
        for target in sets:
            if query[0] == target[0] or query[1] == target[1]:  # same encoder: its own alignment
                continue
            pairs = _matching_rows(memory, query[0], target[0])
            if len(pairs) < 2:
                continue
            q_rows, t_rows = (np.array(side) for side in zip(*pairs))
            embedded = [space.project(encoder=e, modality=m,
                                      features=np.asarray(memory.load(m, e)[r], np.float32))
                        for (m, e), r in ((query, q_rows), (target, t_rows))]
            rows[f"{query[1]} {query[0]} → {target[1]} {target[0]} ({len(pairs)} pairs)"] = \
                retrieval_metrics(*embedded)
            sizes.add(len(pairs))
    rows.update({f"chance ({size} items)": chance_metrics(size) for size in sorted(sizes)})
    return rows


def _matching_rows(memory: FeatureMemory, first: str, second: str) -> list[tuple[int, int]]:
    def stems(modality: str) -> dict[str, int]:
        found: dict[str, list[int]] = {}
        for row, item in enumerate(memory.items(modality)):
            found.setdefault(Path(str(item["id"])).stem, []).append(row)
        return {stem: rows[0] for stem, rows in found.items() if len(rows) == 1}

    left, right = stems(first), stems(second)
    return [(left[stem], right[stem]) for stem in sorted(left) if stem in right]


# --- the run ----------------------------------------------------------------------------------


@dataclass
class PipelineResult:
    features: Path
    spaces: dict[str, Path]  # space name → folder
    evaluation: dict[str, dict]
    notes: list[str]
    pushed: str | None = None


def run_pipeline(config: PipelineConfig, *, progress: bool = True,
                 log: Callable[[str], None] = print) -> PipelineResult:
    """Extract (or reuse) features, train, evaluate, write the space folder(s), push if asked."""
    from cmcr.data.extract import Rank, extract

    features = Path(config.output) / FEATURES_DIR
    sources = collect(config.sources)
    log(f"[1/4] features → {features} ({config.profile} profile)")
    report = extract(sources, features, extract_options(config), rank=Rank(), progress=progress)
    log(report.summary())
    return train_and_publish(FeatureMemory(features), config, progress=progress, log=log)


def train_and_publish(memory: FeatureMemory, config: PipelineConfig, *, progress: bool = True,
                      log: Callable[[str], None] = print) -> PipelineResult:
    """Steps 2-4 on a feature memory: train, evaluate, write the space folder(s), push."""
    memory.validate()
    plans, notes = plan_connections(memory, config.connections)
    if config.profile == "tiny":
        notes.insert(0, "Tiny profile: random toy encoders. These heads and numbers carry no meaning; "
                        "they only show that the pipeline works.")
    for note in notes:
        log(f"NOTE: {note}")
    log(f"[2/4] training {', '.join(p.name for p in plans)} ({config.method})")
    trained = _train_and_evaluate(memory, plans, config, progress)
    log("[3/4] writing the space folder(s)")
    folders, evaluation = {}, {}
    for out in trained:
        folder = Path(config.output) / (SPACE_DIR if len(trained) == 1 else f"{SPACE_DIR}-{out.name}")
        folders[out.name] = write_space_folder(folder, out, config, notes)
        evaluation.update(out.evaluation)
    for table, rows in evaluation.items():
        log(f"{table}: " + ("; ".join(f"{row} R@1 {m['R@1']:.1f}" for row, m in rows.items())
                            or "too few items to hold out for evaluation"))
    result = PipelineResult(memory.root, folders, evaluation, notes)
    if config.hub.repo_id:
        (folder,) = folders.values()
        log(f"[4/4] pushing {folder} to {config.hub.repo_id}")
        result.pushed = push_space(folder, config.hub)
        log(f"pushed: {result.pushed}")
    return result


def collect(sources: SourcesConfig):
    from cmcr.data.corpus import default_corpus
    from cmcr.data.extract import collect_sources

    corpus = default_corpus(sources.corpus_size) if sources.corpus_size else None
    return collect_sources(text=sources.text, texts=corpus, images=sources.images, audio=sources.audio,
                           points=sources.points, text_column=sources.text_column)


@dataclass
class TrainedSpace:
    """One space to write: its heads, the connections in it, their tables and curves."""

    name: str
    space: Any
    evaluation: dict[str, dict] = field(default_factory=dict)
    histories: dict[str, dict] = field(default_factory=dict)


def _train_and_evaluate(memory: FeatureMemory, plans: list[ConnectionPlan], config: PipelineConfig,
                        progress: bool) -> list[TrainedSpace]:
    """Train each connection on its training rows; assemble the space(s); evaluate them."""
    from cmcr.training.trainer import build_spaces, train_connection

    results, held = {}, {}
    for plan in plans:
        rows = memory.load(*plan.files["o_x"]).shape[0]
        train_rows, held[plan.name] = _split(rows, config.evaluation)
        mem = connection_memories(memory, plan, train_rows)
        results[plan.name] = train_connection(mem, config.train, config.method, progress=progress)
    spaces = build_spaces(results, config.method, config.train, encoders=_encoder_provenance(memory))
    if config.method == "ex-mcr":
        groups = {"unified": (spaces, plans)}
    else:
        groups = {name: (space, [p for p in plans if p.name.replace("→", "-") == name])
                  for name, space in spaces.items()}
    trained = []
    for name, (space, members) in groups.items():
        out = TrainedSpace(name, space)
        for plan in members:
            out.evaluation[plan.name] = evaluate_connection(memory, plan, space, held[plan.name])
            out.histories[plan.name] = results[plan.name].history
        named = evaluate_named_pairs(memory, space)
        if named:
            out.evaluation["matching file names"] = named
        space.config["metrics"]["evaluation"] = _strict(out.evaluation)
        trained.append(out)
    return trained


def _encoder_provenance(memory: FeatureMemory) -> dict[str, dict]:
    """Weights, revision, commit and profile of each encoder: from the extraction record, or
    (a memory made elsewhere) the checkpoint its manifest names."""
    from cmcr.data.extract import RECORD_NAME

    record = memory.root / RECORD_NAME
    if not record.is_file():
        return {name: {"weights": entry.get("checkpoint")} for name, entry in memory.manifest()["encoders"].items()}
    return {name: {key: entry.get(key) for key in ("weights", "revision", "commit", "profile")}
            for name, entry in json.loads(record.read_text())["encoders"].items()}


def _strict(values: Any) -> Any:
    """NaN → None, recursively: config.json and training.json stay strict JSON."""
    if isinstance(values, dict):
        return {key: _strict(value) for key, value in values.items()}
    if isinstance(values, float) and math.isnan(values):
        return None
    return values


def write_space_folder(folder: Path, trained: TrainedSpace, config: PipelineConfig, notes: list[str]) -> Path:
    """Save weights, config, curves, training.json and the model card, then swap the folder in
    whole: a crash mid-way never leaves a half-written space under the real name."""
    from cmcr.models.card import render_model_card
    from cmcr.training.trainer import save_training_curve

    def build(staging: Path) -> None:
        trained.space.save_pretrained(staging)
        curves = {}
        for name, history in trained.histories.items():
            file = f"curve-{name.replace('→', '-')}.png"
            save_training_curve(history, staging / file, title=name)
            curves[name] = file
        (staging / "training.json").write_text(json.dumps(
            _strict({"history": trained.histories, "evaluation": trained.evaluation, "notes": notes}),
            indent=2, ensure_ascii=False) + "\n")
        card = render_model_card(trained.space.config, evaluation=trained.evaluation, curves=curves,
                                 run_config=config.to_dict(), notes=notes, repo_id=config.hub.repo_id)
        (staging / "README.md").write_text(card)

    return replace_folder(folder, build)


def push_space(folder: Path, hub: HubConfig) -> str:
    """One commit of the whole folder (repo and branch created when missing); the error of a
    failed push names the command that retries it without training again."""
    from cmcr.hub import push_folder

    retry = f"python scripts/train.py --push-folder {folder} --push-to-hub {hub.repo_id}"
    retry += " --private" * hub.private + (f" --revision {hub.revision}" if hub.revision else "")
    return push_folder(folder, hub.repo_id, private=hub.private, revision=hub.revision,
                       commit_message="Upload C-MCR space (scripts/train.py)", retry_command=retry)


# --- command line -----------------------------------------------------------------------------


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
                                                      "configs/tiny.yaml with --profile tiny)")
    parser.add_argument("--profile", choices=("full", "tiny"), help="encoder sizes (default: full)")
    parser.add_argument("--output", help="run folder: features/ and space/ go here")
    parser.add_argument("--method", choices=("ex-mcr", "c-mcr"))
    parser.add_argument("--text", action="append", help="text file (.txt/.jsonl/.csv), repeatable")
    parser.add_argument("--images", help="folder of images")
    parser.add_argument("--audio", help="folder of audio files")
    parser.add_argument("--points", help="folder of 3D files")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. train.epochs=5 or extract.num_workers=0")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="push the space to this Hub repo")
    parser.add_argument("--private", action="store_true", help="create the Hub repo private")
    parser.add_argument("--revision", metavar="BRANCH", help="Hub branch to push to (created if missing)")
    parser.add_argument("--push-folder", type=Path, metavar="DIR",
                        help="only push this existing space folder (e.g. to retry a failed push)")
    return parser


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
    """`scripts/train.py` without `--features`; exit codes as in `cmcr.cli`."""
    args = build_parser().parse_args(argv)
    return run_reporting_errors(
        lambda: _run_command(args),
        "interrupted: finished feature shards are kept; run the same command again to resume")


def _run_command(args: argparse.Namespace) -> None:
    if args.push_folder:
        if not args.push_to_hub:
            raise InputError("--push-folder needs --push-to-hub REPO_ID")
        print("pushed:", push_space(args.push_folder, HubConfig(args.push_to_hub, args.private, args.revision)))
        return
    result = run_pipeline(config_from_args(args))
    for folder in result.spaces.values():
        print(f"space saved: {folder}")
