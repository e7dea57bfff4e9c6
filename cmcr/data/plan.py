"""What an extraction will do, fingerprinted: the plan of shards, its options and its records.

Extraction of millions of items takes hours and may run on several GPUs, so it is cut into shards
of `shard_size` items per modality. A *plan* (the sorted item list of every modality, the
encoders' weights, dtype, shard size) has a fingerprint; shards live in
`OUT/.shards/<fingerprint>/<modality>/<index>/`, so another plan (new files, other weights) never
reuses them, and `extraction.json` records the fingerprint of the memory that was merged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache

from cmcr.atomic import write_text
from cmcr.data.sources import Sources
from cmcr.errors import InputError
from cmcr.models.encoders import encoder_config
from cmcr.models.registry import MODALITY_ENCODERS

PLAN_VERSION = 1
SHARDS_DIR = ".shards"
RECORD_NAME = "extraction.json"
SKIPPED_NAME = "skipped.jsonl"


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract. Profile, shard size, dtype and points per cloud decide what is stored, so
    they are part of the plan fingerprint; the rest only decides how fast."""

    profile: str = "full"
    shard_size: int = 1024
    batch_size: int = 128  # items decoded and embedded per step (also each encoder's batch)
    num_workers: int = 0  # DataLoader decoding processes (0: decode in the main process)
    device: str | None = None  # None: cuda:LOCAL_RANK when a GPU exists, else cpu
    dtype: str = "float16"  # of the stored features
    num_points: int = 8192  # points sampled per 3D file
    reduced_decode: bool = True  # JPEGs decoded at the smallest DCT scale the encoders' input allows

    def check(self) -> None:
        if self.profile not in ("full", "tiny"):
            raise InputError(f"profile must be 'full' or 'tiny', not {self.profile!r}")
        if self.dtype not in ("float16", "float32"):
            raise InputError(f"feature dtype must be float16 or float32, not {self.dtype!r}")
        for name in ("shard_size", "num_points", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise InputError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise InputError(f"num_workers must be 0 or more, got {self.num_workers!r}")


def stored_settings(options: ExtractOptions) -> dict[str, Any]:
    """The options that decide what is stored (part of the fingerprint and of the record)."""
    return {name: getattr(options, name) for name in ("profile", "shard_size", "dtype", "num_points",
                                                      "reduced_decode")}


def encoder_provenance(name: str, profile: str) -> dict[str, Any]:
    """Which weights an encoder uses: words for the manifest and the model card, plus the Hub
    file (repo type, repo id, filename) when they come from the Hub."""
    config = encoder_config(name, profile)
    hub, revision = _hub_file(name, config), getattr(config, "revision", None)
    if name == "ulip":
        revision = config.checkpoint_revision if hub else None
    if getattr(config, "checkpoint", None):
        weights = f"local file {config.checkpoint}"
    elif hub:
        weights = f"hf {hub[0]} {hub[1]}/{hub[2]}"
    else:
        weights = f"random weights, seed {config.seed} ({profile} profile: no meaning)"
    return {"profile": profile, "weights": weights, "revision": revision, "dim": config.dim,
            "hub": list(hub) if hub else None}


def _hub_file(name: str, config: Any) -> tuple[str, str, str] | None:
    if getattr(config, "checkpoint", None):
        return None
    # the encoder modules load torch and their model libraries: imported only for their encoder
    if name == "clip" and config.pretrained:
        from cmcr.models.encoders.clip import pretrained_hub_file

        return ("model", *pretrained_hub_file(config.model_name, config.pretrained))
    if name == "clap" and config.hub_filename:
        return "model", config.hub_repo, config.hub_filename
    if name == "ulip" and config.checkpoint_repo:
        from cmcr.models.encoders.ulip import ULIP_REPO_TYPE

        return ULIP_REPO_TYPE, config.checkpoint_repo, config.checkpoint_file
    return None


def cached_commit(provenance: dict) -> str | None:
    """The commit of the cached Hub file an encoder loaded (None: not from the Hub, or not
    cached here): what "revision main" meant on the day of the run."""
    if not provenance.get("hub"):
        return None
    repo_type, repo_id, filename = provenance["hub"]
    path = try_to_load_from_cache(repo_id, filename, revision=provenance.get("revision"), repo_type=repo_type)
    if not isinstance(path, str):
        return None
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


@dataclass(frozen=True)
class Task:
    """One shard: `count` items of `modality` starting at `start`."""

    modality: str
    index: int
    start: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.modality}/{self.index:05d}"


@dataclass
class Plan:
    """Every shard of one extraction, and the fingerprint that names their folder."""

    sources: Sources
    options: ExtractOptions
    encoders: dict[str, dict]
    fingerprint: str
    tasks: list[Task]

    @classmethod
    def make(cls, sources: Sources, options: ExtractOptions) -> "Plan":
        options.check()
        needed = sorted({e for m in sources.modalities for e in MODALITY_ENCODERS[m]})
        encoders = {name: encoder_provenance(name, options.profile) for name in needed}
        settings = stored_settings(options)
        digest = hashlib.sha256(json.dumps(
            {"version": PLAN_VERSION, "settings": settings, "encoders": encoders,
             "items": {m: sources.items[m] for m in sources.modalities}}, sort_keys=True).encode())
        tasks = [Task(m, index, start, min(options.shard_size, len(sources.items[m]) - start))
                 for m in sources.modalities
                 for index, start in enumerate(range(0, len(sources.items[m]), options.shard_size))]
        return cls(sources, options, encoders, digest.hexdigest()[:16], tasks)

    def shard_dir(self, root: Path, task: Task) -> Path:
        return root / SHARDS_DIR / self.fingerprint / task.modality / f"{task.index:05d}"


@dataclass
class ExtractReport:
    """What a call did: shards embedded now / found finished, and the merge's outcome."""

    fingerprint: str
    shards_total: int
    shards_embedded: int = 0
    shards_reused: int = 0
    up_to_date: bool = False
    finalised: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        if self.up_to_date:
            return "features are up to date (same sources, weights and settings): reused, nothing embedded"
        lines = [f"{self.shards_embedded} shard(s) embedded, {self.shards_reused} already done, "
                 f"of {self.shards_total}"]
        if self.finalised:
            lines.append("memory: " + ", ".join(f"{m} {n}" for m, n in self.counts.items()))
            lines.append(f"{len(self.skipped)} file(s) skipped as unreadable"
                         + (f" (listed in {SKIPPED_NAME})" if self.skipped else ""))
            lines += [f"  skipped {s['modality']} {s['id']}: {s['reason']}" for s in self.skipped[:10]]
        return "\n".join(lines)


def write_jsonl(path: Path, records: list[dict]) -> None:
    """One JSON record per line, written atomically."""
    write_text(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def recorded_fingerprint(output: Path) -> str | None:
    """The fingerprint of the plan whose merge made the memory in `output` (None: none recorded)."""
    record = output / RECORD_NAME
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
