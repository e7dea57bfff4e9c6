"""The run configuration of the pipeline: one YAML/TOML file plus `--set section.key=value`.

Sections are typed dataclasses, read by the one config reader (`cmcr.config`); source paths in a
file are relative to that file, so a config travels with its data. A bare trainer field
(`epochs=3`) means `train.epochs`, as in `scripts/train.py --features`.
"""

from __future__ import annotations

import dataclasses
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmcr import config as configfile
from cmcr.data.connections import CONNECTIONS, get_connection
from cmcr.data.hub_uri import is_hub_uri
from cmcr.data.plan import ExtractOptions
from cmcr.data.selection import SourceOptions
from cmcr.errors import InputError
from cmcr.models.space_format import METHODS
from cmcr.training import config as training_config
from cmcr.training.config import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
PROFILE_CONFIGS = {"full": "small.yaml", "tiny": "tiny.yaml"}  # used when no --config is given
SOURCE_PATHS = ("text", "images", "audio", "points")  # the sources keys that name files or folders


@dataclass
class SourcesConfig:
    """Raw data: folders and text files, or Hub datasets (`hf://datasets/OWNER/NAME[@REVISION][/PATH]`)
    in their place. Paths in a config file are relative to that file; on the command line, to the
    working directory. `<modality>_column` picks a csv/parquet column or webdataset member extension
    (null: the usual names), `<modality>_rows` caps each source's rows (null: all), drawn with
    `seed` (null: the first rows). `corpus_size` sentences of cmcr.data.corpus are added to the
    text (0: none)."""

    text: list[str] = field(default_factory=list)
    text_column: str | None = None
    text_rows: int | None = None
    corpus_size: int = 3000
    images: str | None = None
    image_column: str | None = None
    image_rows: int | None = None
    audio: str | None = None
    audio_column: str | None = None
    audio_rows: int | None = None
    points: str | None = None
    points_column: str | None = None
    points_rows: int | None = None
    seed: int | None = 0

    def options(self) -> dict[str, SourceOptions]:
        """Column, row limit and seed of each modality's sources."""
        return {modality: SourceOptions(getattr(self, f"{key}_column"), getattr(self, f"{key}_rows"), self.seed)
                for modality, key in (("text", "text"), ("image", "image"), ("audio", "audio"), ("points", "points"))}


@dataclass
class ExtractConfig:
    """cmcr.data.plan.ExtractOptions without the profile (the run's own)."""

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
    overlap_ablation: bool = False  # train a connection that lacks its p or q data on its overlap alone
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    train: TrainConfig = field(default_factory=TrainConfig,
                               metadata={configfile.LABEL: training_config.LABEL})
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    hub: HubConfig = field(default_factory=HubConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_run_file(path: str | Path) -> dict:
    """A YAML or TOML run config as a nested dict; relative source paths are made relative to the
    file's folder."""
    path = Path(path)
    values = configfile.read_config_file(path)
    sources = values.get("sources")
    if isinstance(sources, dict):
        values["sources"] = {key: _anchor(value, path.parent) if key in SOURCE_PATHS else value
                             for key, value in sources.items()}
    return values


def _anchor(value: Any, folder: Path) -> Any:
    if isinstance(value, list):  # one level only: YAML aliases can nest lists 9**9 items deep
        return [_anchor(item, folder) if isinstance(item, str) else item for item in value]
    if isinstance(value, str) and not is_hub_uri(value) and not Path(value).expanduser().is_absolute():
        return str((folder / value).resolve())
    return value


def apply_overrides(values: dict, overrides: list[str]) -> dict:
    """`section.key=value` (value parsed as YAML: `null`, `false`, `3e-4`, `[a, b]`); a bare
    TrainConfig field (`epochs=3`) means `train.epochs`."""
    train_fields = {spec.name: "train" for spec in dataclasses.fields(TrainConfig)}
    return configfile.apply_overrides(values, overrides, sections=train_fields)


def build_config(values: dict) -> PipelineConfig:
    """A checked PipelineConfig from nested plain data; every unknown key is an InputError."""
    config = configfile.build(PipelineConfig, _one_or_many(values), "config key")
    config.train.check()
    if config.profile not in ("full", "tiny"):
        raise InputError(f"profile must be 'full' or 'tiny', not {reprlib.repr(config.profile)}")
    if config.method not in METHODS:
        raise InputError(f"method must be one of {list(METHODS)}, not {reprlib.repr(config.method)}")
    if not config.connections:
        raise InputError(f"connections must be a non-empty list, e.g. {list(CONNECTIONS)}")
    config.connections = [get_connection(name).name for name in config.connections]
    _check_ranges(config)
    return config


def _one_or_many(values: dict) -> dict:
    """A single connection or text file may be given as a plain string."""
    values = dict(values)
    if isinstance(values.get("connections"), str):
        values["connections"] = [values["connections"]]
    sources = values.get("sources")
    if isinstance(sources, dict) and isinstance(sources.get("text"), str):
        values["sources"] = {**sources, "text": [sources["text"]]}
    return values


def _check_ranges(config: PipelineConfig) -> None:
    evaluation, sources = config.evaluation, config.sources
    if not 0 <= evaluation.holdout_fraction < 1:
        raise InputError("evaluation.holdout_fraction must be in [0, 1), "
                         f"got {reprlib.repr(evaluation.holdout_fraction)}")
    if sources.corpus_size < 0:
        raise InputError(f"sources.corpus_size must be 0 or more, got {reprlib.repr(sources.corpus_size)}")
    for modality, options in sources.options().items():
        options.check(modality)
    if config.hub.repo_id is not None and config.method == "c-mcr" and len(config.connections) > 1:
        raise InputError("a Hub repo holds one space, and c-mcr trains one space per connection: "
                         "push one at a time, e.g. --set connections=[clap→clip]")
    extract_options(config).check()


def load_pipeline_config(path: str | Path | None, overrides: list[str] = ()) -> PipelineConfig:
    return build_config(apply_overrides(read_run_file(path) if path else {}, list(overrides)))


def extract_options(config: PipelineConfig) -> ExtractOptions:
    return ExtractOptions(profile=config.profile, **dataclasses.asdict(config.extract))
