"""Raw sources → a feature memory, in shards that survive interruption and split across ranks.

- each shard appears through one folder rename, so a finished shard is whole and an interrupted
  run resumes with the shards it had not finished (`cmcr.data.plan` names and fingerprints them);
- under `torchrun`, rank r takes every world_size-th shard (RANK / WORLD_SIZE / LOCAL_RANK);
  the ranks meet at a barrier and rank 0 merges (`cmcr.data.merge`; or `finalise` runs later,
  separately). A run whose fingerprint matches `extraction.json` does nothing: that is the
  pipeline's cache;
- files that cannot be decoded are skipped, listed in `skipped.jsonl` and counted: one bad
  file in a million is not worth a failed night.

Decoding runs in `torch.utils.data.DataLoader` workers; encoders (built lazily, so a cached run
loads none) run in the main process, in bf16 autocast on GPU (the encoders' "auto" dtype).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from cmcr.atomic import replace_folder
from cmcr.data import media
from cmcr.data.hub_rows import RowReader
from cmcr.data.memory_format import ITEMS_NAME
from cmcr.data.merge import merge_shards
from cmcr.data.plan import SKIPPED_NAME, ExtractOptions, ExtractReport, Plan, Task, recorded_fingerprint, write_jsonl
from cmcr.data.sources import Sources
from cmcr.errors import InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.registry import MODALITIES, MODALITY_ENCODERS


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
            self.built[name] = build_encoder(name, self.options.profile, device=self.device,
                                             batch_size=self.options.batch_size)
        return self.built[name]


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
                 preparers: dict[str, Callable[[Sequence], Any] | None], min_side: int | None = None,
                 reader: RowReader | None = None) -> None:
        self.modality, self.items, self.num_points = modality, items, num_points
        self.preparers, self.min_side, self.reader = preparers, min_side, reader or RowReader({})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[int, dict[str, Any] | None, str | None]:
        item = self.items[index]
        try:
            decoded = _decode(self.modality, item, self.num_points, self.min_side, self.reader)
            return index, {name: decoded if prepare is None else prepare([decoded])[0]
                           for name, prepare in self.preparers.items()}, None
        except InputError as exc:
            return index, None, str(exc)


def _decode(modality: str, item: dict, num_points: int, min_side: int | None, reader: RowReader) -> Any:
    """One item decoded: a local file, or a row of a Hub dataset (bytes, or coordinates for points)."""
    if modality == "text":
        return item["text"]
    source, hint = reader.source(item)
    if modality == "image":
        return media.load_image(source, min_side=min_side, format=hint)
    if modality == "audio":
        return media.load_audio(source, format=hint)
    if isinstance(source, np.ndarray):
        return media.normalise_points(source, num_points=num_points, label=item["id"])
    return media.load_points(source, num_points=num_points, format=hint)


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
    if recorded_fingerprint(output) == plan.fingerprint:
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
        merge_shards(plan, output, report)
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
    dataset = _Decoded(modality, items, options.num_points, preparers, min_side, RowReader(plan.sources.local_files))
    loader = DataLoader(dataset, batch_sampler=batches,
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
    """What items.jsonl keeps: id plus text, path, or where in a Hub dataset (repo@commit, file, row
    or tar member); not the fingerprint's size/mtime or a tar member's offset."""
    return {key: item[key] for key in ("id", "text", "path", "hub", "file", "row", "member") if key in item}


def _write_shard(target: Path, modality: str, rows: dict[str, list[np.ndarray]], kept: list[dict],
                 skipped: list[dict], dtype: str) -> None:
    """Write a shard beside its place, then rename it in: a shard folder is always whole."""
    def build(staging: Path) -> None:
        for name in MODALITY_ENCODERS[modality]:
            parts = rows.get(name) or [np.zeros((0, 1), np.float32)]
            np.save(staging / f"{name}.npy", np.concatenate(parts).astype(dtype))
        write_jsonl(staging / ITEMS_NAME, kept)
        write_jsonl(staging / SKIPPED_NAME, skipped)

    replace_folder(target, build)


def _all_ranks_done(rank: Rank) -> bool:
    """Under torchrun, wait at a barrier for every rank; a bare multi-rank run cannot know."""
    if rank.world_size == 1:
        return True
    if "MASTER_ADDR" not in os.environ:
        return False
    if not dist.is_initialized():  # gloo: the barrier is a CPU rendezvous, GPUs or not
        dist.init_process_group("gloo", timeout=timedelta(hours=48))
    dist.barrier()
    dist.destroy_process_group()  # the barrier was the only collective step
    return True
