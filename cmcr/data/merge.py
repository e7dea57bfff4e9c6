"""Merging a plan's shards into the feature memory, then recording what it holds.

The merge streams the shards into a staging memory through `FeatureMemory.writer`, swaps its
modality folders in, records the fingerprint in `extraction.json` and drops the shards. It runs
on rank 0 at the end of `cmcr.data.extract.extract`, or later on its own (`finalise`) after a
multi-rank run whose ranks could not meet at a barrier.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from cmcr.atomic import write_json
from cmcr.data.features import FeatureMemory
from cmcr.data.memory_format import ITEMS_NAME, MANIFEST_NAME
from cmcr.data.plan import (RECORD_NAME, SHARDS_DIR, SKIPPED_NAME, ExtractOptions, ExtractReport, Plan, Task,
                            cached_commit, read_jsonl, recorded_fingerprint, stored_settings, write_jsonl)
from cmcr.data.sources import Sources
from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES, MODALITY_ENCODERS


def finalise(sources: Sources, output: str | Path, options: ExtractOptions = ExtractOptions()) -> ExtractReport:
    """Merge every shard of the plan into the memory (the `--finalise` step after multi-rank runs)."""
    plan = Plan.make(sources, options)
    report = ExtractReport(plan.fingerprint, len(plan.tasks))
    if recorded_fingerprint(Path(output)) == plan.fingerprint:
        report.up_to_date = True
        return report
    merge_shards(plan, Path(output), report)
    return report


def merge_shards(plan: Plan, output: Path, report: ExtractReport) -> None:
    """Build the memory from every shard of `plan`, swap it in and record it; fills `report`."""
    missing = [t.name for t in plan.tasks if not plan.shard_dir(output, t).is_dir()]
    if missing:
        raise InputError(f"{len(missing)} of {len(plan.tasks)} shards are not extracted yet "
                         f"(e.g. {missing[:3]}): run the extraction (every rank) before merging")
    staging = output / f".merge-{uuid.uuid4().hex[:8]}"
    report.skipped += plan.sources.skipped  # Hub rows that held no usable text, found while listing
    try:
        memory = FeatureMemory(staging)
        for modality in plan.sources.modalities:
            tasks = [t for t in plan.tasks if t.modality == modality]
            report.skipped += [s for t in tasks for s in read_jsonl(plan.shard_dir(output, t) / SKIPPED_NAME)]
            count = _merge_modality(plan, output, memory, modality, tasks)
            if count:
                report.counts[modality] = count
        if not report.counts:
            raise InputError("every file was skipped as unreadable; nothing to write (see the reasons above)")
        _swap_in(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_jsonl(output / SKIPPED_NAME, report.skipped)
    encoders = {name: {**entry, "commit": cached_commit(entry)} for name, entry in plan.encoders.items()}
    record = {"fingerprint": plan.fingerprint, "encoders": encoders, "counts": report.counts,
              "skipped": len(report.skipped), "sources": plan.sources.described,
              "datasets": plan.sources.datasets, "options": stored_settings(plan.options)}
    write_json(output / RECORD_NAME, record)
    shutil.rmtree(output / SHARDS_DIR, ignore_errors=True)
    report.finalised = True


def _merge_modality(plan: Plan, output: Path, memory: FeatureMemory, modality: str,
                    tasks: list[Task]) -> int:
    """Stream one modality's shards into the memory, encoder by encoder; returns its rows
    (0, and nothing written, when every file of the modality was skipped)."""
    shards = [(plan.shard_dir(output, t), read_jsonl(plan.shard_dir(output, t) / ITEMS_NAME))
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
        os.replace(staging / MANIFEST_NAME, output / MANIFEST_NAME)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
