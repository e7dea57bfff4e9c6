"""Raw sources (text files, image/audio/3D folders) → a feature memory (DESIGN §3), in shards.

Extraction of millions of items takes hours and may run on several GPUs, so it is cut into
shards of `shard_size` items per modality:

- a *plan* (the sorted item list of every modality, the encoders' weights, dtype, shard size)
  has a fingerprint; shards live in `OUT/.shards/<fingerprint>/<modality>/<index>/` and each
  appears through one directory rename, so a finished shard is whole and an interrupted run
  resumes with the shards it had not finished. Another plan (new files, other weights) never
  reuses them;
- under `torchrun`, rank r takes every world_size-th shard (RANK / WORLD_SIZE / LOCAL_RANK);
  the ranks meet at a barrier and rank 0 merges (or `finalise` runs later, separately);
- the merge streams the shards into the memory through `FeatureMemory.writer`, then swaps the
  modality folders in, records the fingerprint in `extraction.json` and drops the shards. A run
  whose fingerprint matches `extraction.json` does nothing: that is the pipeline's cache;
- files that cannot be decoded are skipped, listed in `skipped.jsonl` and counted: one bad
  file in a million is not worth a failed night.

Decoding runs in `torch.utils.data.DataLoader` workers; encoders (built lazily, so a cached run
loads none) run in the main process, in bf16 autocast on GPU (the encoders' "auto" dtype).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cmcr.errors import InputError
from cmcr.data.features import FeatureMemory
from cmcr.models.registry import MODALITIES, MODALITY_ENCODERS

PLAN_VERSION = 1
SHARDS_DIR = ".shards"
RECORD_NAME = "extraction.json"
SKIPPED_NAME = "skipped.jsonl"
ITEMS_NAME = "items.jsonl"
MEDIA_MODALITIES = ("image", "audio", "points")
TEXT_SUFFIXES = (".txt", ".jsonl", ".csv")


# --- sources ----------------------------------------------------------------------------------


def read_text_file(path: str | Path, column: str = "text") -> list[dict]:
    """Text items of one file: .txt (one per line), .jsonl (a "text" field), .csv (a `column`).

    Empty lines and duplicate texts are dropped (a duplicate adds nothing to a memory); ids are
    `<file name>:<line number>`, stable as long as the file is.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"text source {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise InputError(f"text source {path} must be .txt (one text per line), .jsonl (with a "
                         f"'text' field) or .csv (with a '{column}' column)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(_text_rows(handle, suffix, path, column))
    except UnicodeDecodeError as exc:
        raise InputError(f"text source {path} is not UTF-8: {exc}") from exc
    seen: set[str] = set()
    items = []
    for line, text in rows:
        text = " ".join(text.split())
        if text and text not in seen:
            seen.add(text)
            items.append({"id": f"{path.name}:{line}", "text": text})
    if not items:
        raise InputError(f"text source {path} holds no text")
    return items


def _text_rows(handle, suffix: str, path: Path, column: str) -> Iterator[tuple[int, str]]:
    if suffix == ".txt":
        yield from enumerate(handle, start=1)
    elif suffix == ".jsonl":
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path} line {number} is not JSON: {exc}") from exc
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise InputError(f"{path} line {number} has no string 'text' field")
            yield number, record["text"]
    else:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            raise InputError(f"{path} has no '{column}' column; its columns are {reader.fieldnames}")
        for number, record in enumerate(reader, start=2):
            yield number, record[column] or ""


def scan_media(folder: str | Path, modality: str) -> list[dict]:
    """Every file of `modality` under `folder` (recursive, by extension), sorted; each item holds
    its path and, for the plan's fingerprint, its size and modification time."""
    from cmcr.retrieval.gallery import EXTENSIONS  # the one list of accepted suffixes

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{modality} source {root} is not a folder")
    suffixes = EXTENSIONS[modality]
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
        stat = path.stat()
        items.append({"id": path.relative_to(root).as_posix(), "path": str(path.resolve()),
                      "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if not items:
        raise InputError(f"{modality} source {root} holds no {modality} files "
                         f"({', '.join(suffixes)})")
    return items


@dataclass
class Sources:
    """The items to extract per modality, and a one-line description of where each came from."""

    items: dict[str, list[dict]] = field(default_factory=dict)
    described: dict[str, str] = field(default_factory=dict)

    def add(self, modality: str, items: list[dict], described: str) -> None:
        if modality in self.items:
            raise InputError(f"{modality} is given twice ({self.described[modality]}, {described})")
        self.items[modality], self.described[modality] = items, described

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.items]


def collect_sources(*, text: Sequence[str | Path] = (), texts: Sequence[str] | None = None,
                    images: str | Path | None = None, audio: str | Path | None = None,
                    points: str | Path | None = None, text_column: str = "text") -> Sources:
    """Gather items from text files (or ready `texts`, e.g. the default corpus) and folders."""
    sources = Sources()
    names = [Path(path).name for path in text]
    if len(set(names)) < len(names):
        raise InputError(f"text files need distinct names (their items are named file:line): {names}")
    text_items = [item for path in text for item in read_text_file(path, text_column)]
    if texts is not None:
        text_items += [{"id": f"corpus:{i}", "text": t} for i, t in enumerate(texts)]
    if text_items:
        described = ", ".join(str(p) for p in text) or "the default corpus (cmcr.data.corpus)"
        if text and texts is not None:
            described += " + the default corpus"
        sources.add("text", text_items, described)
    for modality, folder in (("image", images), ("audio", audio), ("points", points)):
        if folder is not None:
            sources.add(modality, scan_media(folder, modality), str(folder))
    if not sources.items:
        raise InputError("nothing to extract: give --text, --images, --audio or --points")
    return sources


# --- options, ranks, encoders -----------------------------------------------------------------


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


def _stored_settings(options: ExtractOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in ("profile", "shard_size", "dtype", "num_points",
                                                  "reduced_decode")}


@dataclass(frozen=True)
class Rank:
    """This process's place among `torchrun` workers (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Rank":
        try:
            rank = cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))
        except ValueError as exc:
            raise InputError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers: {exc}") from exc
        if not 0 <= rank.rank < rank.world_size:
            raise InputError(f"RANK {rank.rank} is outside WORLD_SIZE {rank.world_size}")
        return rank

    def owns(self, task_index: int) -> bool:
        return task_index % self.world_size == self.rank


def encoder_provenance(name: str, profile: str) -> dict[str, Any]:
    """Which weights an encoder uses: words for the manifest and the model card, plus the Hub
    file (repo type, repo id, filename) when they come from the Hub."""
    from cmcr.models.encoders import encoder_config

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
    from huggingface_hub import try_to_load_from_cache

    if not provenance.get("hub"):
        return None
    repo_type, repo_id, filename = provenance["hub"]
    path = try_to_load_from_cache(repo_id, filename, revision=provenance.get("revision"), repo_type=repo_type)
    if not isinstance(path, str):
        return None
    parts = Path(path).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def _pick_device(options: ExtractOptions, rank: Rank) -> torch.device:
    if options.device is not None:
        return torch.device(options.device)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{rank.local_rank % torch.cuda.device_count()}")
    return torch.device("cpu")


class _Encoders:
    """Encoders built on first use, so a run with nothing left to embed loads no weights."""

    def __init__(self, options: ExtractOptions, device: torch.device) -> None:
        self.options, self.device, self.built = options, device, {}

    def get(self, name: str):
        if name not in self.built:
            from cmcr.models.encoders import build_encoder

            self.built[name] = build_encoder(name, self.options.profile, device=self.device,
                                             batch_size=self.options.batch_size)
        return self.built[name]


# --- the plan ---------------------------------------------------------------------------------


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
        settings = _stored_settings(options)
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


# --- decoding ---------------------------------------------------------------------------------


class _Decoded(Dataset):
    """Decodes and prepares one item per index (in DataLoader workers); unreadable files come
    back as reasons.

    Each item comes back as `{encoder name: that encoder's input}`: the encoders' model-free
    preparation (image resize and crop) runs here too, beside decoding, so it is spread over the
    workers instead of queueing in the process that holds the models.
    Only `InputError` means "bad file" (cmcr.data.media turns every decoding failure into one); any
    other exception is a bug and stops the run rather than silently skipping every file.
    """

    def __init__(self, modality: str, items: list[dict], num_points: int,
                 preparers: dict[str, Callable[[Sequence], Any] | None], min_side: int | None = None) -> None:
        self.modality, self.items, self.num_points = modality, items, num_points
        self.preparers, self.min_side = preparers, min_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, dict[str, Any] | None, str | None]:
        item = self.items[index]
        try:
            decoded = _decode(self.modality, item, self.num_points, self.min_side)
            return index, {name: decoded if prepare is None else prepare([decoded])[0]
                           for name, prepare in self.preparers.items()}, None
        except InputError as exc:
            return index, None, str(exc)


def _decode(modality: str, item: dict, num_points: int, min_side: int | None) -> Any:
    if modality == "text":
        return item["text"]
    from cmcr.data import media

    if modality == "image":
        return media.load_image(item["path"], min_side=min_side)
    if modality == "audio":
        return media.load_audio(item["path"])
    return media.load_points(item["path"], num_points=num_points)


def _collate(batch: list[tuple[int, dict[str, Any] | None, str | None]]
             ) -> tuple[list[tuple[int, str | None]], dict[str, Any]]:
    """In the worker: (index, reason) per item, and each encoder's inputs of the readable items --
    prepared images stacked into one tensor, so a batch crosses to the main process as a few
    shared-memory blocks rather than one per item (each costs a file descriptor)."""
    readable = [inputs for _, inputs, reason in batch if reason is None]
    names = readable[0] if readable else {}
    return ([(index, reason) for index, _, reason in batch],
            {name: _stacked([inputs[name] for inputs in readable]) for name in names})


def _stacked(values: list) -> Any:
    return torch.stack(values) if isinstance(values[0], torch.Tensor) else values


# --- running ----------------------------------------------------------------------------------


def extract(sources: Sources, output: str | Path, options: ExtractOptions = ExtractOptions(), *,
            rank: Rank | None = None, finalise: bool = True, progress: bool = True,
            on_shard: Callable[[Task], None] | None = None) -> ExtractReport:
    """Embed this rank's unfinished shards, then (rank 0, all shards present) merge them.

    `on_shard(task)` runs after each shard is safely on disk (progress hooks; tests interrupt
    there). Returns at once when `extraction.json` already records this plan's fingerprint.
    """
    output = Path(output)
    rank = rank or Rank.from_env()
    plan = Plan.make(sources, options)
    report = ExtractReport(plan.fingerprint, len(plan.tasks))
    if _recorded_fingerprint(output) == plan.fingerprint:
        report.up_to_date = True
        return report
    device = _pick_device(options, rank)
    mine = [task for i, task in enumerate(plan.tasks) if rank.owns(i)]
    pending = [task for task in mine if not plan.shard_dir(output, task).is_dir()]
    report.shards_reused = len(mine) - len(pending)
    encoders = _Encoders(options, device)
    bar = tqdm(total=sum(t.count for t in pending), desc=f"extract (rank {rank.rank})",
               unit="item", disable=not progress)
    for modality in MODALITIES:
        for task in _embed_modality(plan, [t for t in pending if t.modality == modality], output,
                                    encoders, bar):
            report.shards_embedded += 1
            if on_shard:
                on_shard(task)
    bar.close()
    if finalise and _all_ranks_done(rank) and rank.rank == 0:
        _finalise(plan, output, report)
    return report


def _embed_modality(plan: Plan, tasks: list[Task], output: Path, encoders: _Encoders,
                    bar: tqdm) -> Iterator[Task]:
    """Decode (DataLoader workers) and embed the shards of one modality; yields each one written."""
    if not tasks:
        return
    modality, options = tasks[0].modality, plan.options
    items = plan.sources.items[modality]
    batch = options.batch_size
    batches = [list(range(start, min(start + batch, t.start + t.count)))
               for t in tasks for start in range(t.start, t.start + t.count, batch)]
    names = MODALITY_ENCODERS[modality]
    preparers = {name: encoders.get(name).preparer(modality) for name in names}
    sides = [getattr(prepare, "min_side", None) for prepare in preparers.values()]
    min_side = max(sides) if options.reduced_decode and None not in sides else None
    loader = DataLoader(_Decoded(modality, items, options.num_points, preparers, min_side), batch_sampler=batches,
                        num_workers=0 if modality == "text" else options.num_workers,
                        collate_fn=_collate)
    queue = iter(tasks)
    task, rows, kept, skipped = next(queue), {}, [], []
    for decoded, inputs in loader:
        good = [i for i, reason in decoded if reason is None]
        skipped += [{"modality": modality, "id": items[i]["id"], "reason": reason}
                    for i, reason in decoded if reason is not None]
        if good:
            kept += [_stored_item(items[i]) for i in good]
            for name in names:
                embedded = encoders.get(name).embed(modality, inputs[name])
                rows.setdefault(name, []).append(embedded)
        bar.update(len(decoded))
        if decoded[-1][0] == task.start + task.count - 1:
            _write_shard(plan.shard_dir(output, task), modality, rows, kept, skipped, options.dtype)
            yield task
            task, rows, kept, skipped = next(queue, None), {}, [], []


def _stored_item(item: dict) -> dict:
    """What items.jsonl keeps: id plus text or path (not the fingerprint's size/mtime)."""
    return {key: item[key] for key in ("id", "text", "path") if key in item}


def _write_shard(target: Path, modality: str, rows: dict[str, list[np.ndarray]], kept: list[dict],
                 skipped: list[dict], dtype: str) -> None:
    """Write a shard beside its place, then rename it in: a shard folder is always whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        for name in MODALITY_ENCODERS[modality]:
            parts = rows.get(name) or [np.zeros((0, 1), np.float32)]
            np.save(staging / f"{name}.npy", np.concatenate(parts).astype(dtype))
        _write_jsonl(staging / ITEMS_NAME, kept)
        _write_jsonl(staging / SKIPPED_NAME, skipped)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _all_ranks_done(rank: Rank) -> bool:
    """Under torchrun, wait at a barrier for every rank; a bare multi-rank run cannot know."""
    if rank.world_size == 1:
        return True
    if "MASTER_ADDR" not in os.environ:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():  # gloo: the barrier is a CPU rendezvous, GPUs or not
        dist.init_process_group("gloo", timeout=timedelta(hours=48))
    dist.barrier()
    dist.destroy_process_group()  # the barrier was the only collective step
    return True


def _recorded_fingerprint(output: Path) -> str | None:
    record = output / RECORD_NAME
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


# --- merging ----------------------------------------------------------------------------------


def finalise(sources: Sources, output: str | Path, options: ExtractOptions = ExtractOptions()) -> ExtractReport:
    """Merge every shard of the plan into the memory (the `--finalise` step after multi-rank runs)."""
    plan = Plan.make(sources, options)
    report = ExtractReport(plan.fingerprint, len(plan.tasks))
    if _recorded_fingerprint(Path(output)) == plan.fingerprint:
        report.up_to_date = True
        return report
    _finalise(plan, Path(output), report)
    return report


def _finalise(plan: Plan, output: Path, report: ExtractReport) -> None:
    missing = [t.name for t in plan.tasks if not plan.shard_dir(output, t).is_dir()]
    if missing:
        raise InputError(f"{len(missing)} of {len(plan.tasks)} shards are not extracted yet "
                         f"(e.g. {missing[:3]}): run the extraction (every rank) before merging")
    staging = output / f".merge-{uuid.uuid4().hex[:8]}"
    try:
        memory = FeatureMemory(staging)
        for modality in plan.sources.modalities:
            tasks = [t for t in plan.tasks if t.modality == modality]
            report.skipped += [s for t in tasks for s in _read_jsonl(plan.shard_dir(output, t) / SKIPPED_NAME)]
            count = _merge_modality(plan, output, memory, modality, tasks)
            if count:
                report.counts[modality] = count
        if not report.counts:
            raise InputError("every file was skipped as unreadable; nothing to write (see the reasons above)")
        _swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _write_jsonl(output / SKIPPED_NAME, report.skipped)
    encoders = {name: {**entry, "commit": cached_commit(entry)} for name, entry in plan.encoders.items()}
    record = {"fingerprint": plan.fingerprint, "encoders": encoders, "counts": report.counts,
              "skipped": len(report.skipped), "sources": plan.sources.described,
              "options": _stored_settings(plan.options)}
    (output / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(output / SHARDS_DIR, ignore_errors=True)
    report.finalised = True


def _merge_modality(plan: Plan, output: Path, memory: FeatureMemory, modality: str,
                    tasks: list[Task]) -> int:
    """Stream one modality's shards into the memory, encoder by encoder; returns its rows
    (0, and nothing written, when every file of the modality was skipped)."""
    shards = [(plan.shard_dir(output, t), _read_jsonl(plan.shard_dir(output, t) / ITEMS_NAME))
              for t in tasks]
    shards = [(shard, items) for shard, items in shards if items]
    for name in MODALITY_ENCODERS[modality] if shards else ():
        encoder = plan.encoders[name]
        with memory.writer(modality, name, dim=encoder["dim"], dtype=plan.options.dtype,
                           checkpoint=encoder["weights"],
                           source=plan.sources.described[modality]) as writer:
            for shard, items in shards:
                writer.append(np.load(shard / f"{name}.npy", allow_pickle=False), items)
    return sum(len(items) for _, items in shards)


def _swap_in(staging: Path, output: Path) -> None:
    """Replace the modality folders and manifest of `output` with the merged ones."""
    trash = output / f".old-{uuid.uuid4().hex[:8]}"
    trash.mkdir()
    try:
        for modality in MODALITIES:
            if (output / modality).exists():
                os.replace(output / modality, trash / modality)
            if (staging / modality).is_dir():
                os.replace(staging / modality, output / modality)
        os.replace(staging / "manifest.json", output / "manifest.json")
    finally:
        shutil.rmtree(trash, ignore_errors=True)
