"""The run: extract (or reuse) features, train, evaluate, write the space folder(s), push."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmcr.atomic import check_writable
from cmcr.data.corpus import default_corpus
from cmcr.data.extract import Rank, extract
from cmcr.data.features import FeatureMemory
from cmcr.data.plan import RECORD_NAME
from cmcr.data.sources import Sources, collect_sources
from cmcr.pipeline.config import PipelineConfig, SourcesConfig, extract_options
from cmcr.pipeline.evaluate import evaluate_connection, evaluate_named_pairs
from cmcr.pipeline.plan import ConnectionPlan, connection_memories, plan_connections, split_held_out
from cmcr.pipeline.publish import TrainedSpace, push_space, write_space_folder
from cmcr.training.spaces import build_spaces, json_safe, spaces_by_folder
from cmcr.training.config import TrainConfig
from cmcr.training.trainer import STATE_FILE, TrainResult, train_connection

SPACE_DIR = "space"
FEATURES_DIR = "features"
TRAIN_STATE_DIR = "train-state"  # per-epoch training state, kept until the spaces are written


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
    check_writable(config.output)
    features = Path(config.output) / FEATURES_DIR
    sources = collect(config.sources, progress)
    log(f"[1/4] features → {features} ({config.profile} profile)")
    report = extract(sources, features, extract_options(config), rank=Rank(), progress=progress)
    log(report.summary())
    return train_and_publish(FeatureMemory(features), config, progress=progress, log=log)


def train_and_publish(memory: FeatureMemory, config: PipelineConfig, *, progress: bool = True,
                      log: Callable[[str], None] = print) -> PipelineResult:
    """Steps 2-4 on a feature memory: train, evaluate, write the space folder(s), push."""
    memory.validate()
    plans, notes = plan_connections(memory, config.connections, overlap_ablation=config.overlap_ablation)
    encoders, datasets = memory_provenance(memory)
    notes += [dataset_note(entry) for entry in datasets]
    if config.profile == "tiny":
        notes.insert(0, "Tiny profile: random toy encoders. These heads and numbers carry no meaning; "
                        "they only show that the pipeline works.")
    for note in notes:
        log(f"NOTE: {note}")
    log(f"[2/4] training {', '.join(p.name for p in plans)} ({config.method})")
    trained = _train_and_evaluate(memory, plans, config, progress, encoders, datasets)
    log("[3/4] writing the space folder(s)")
    folders, evaluation = {}, {}
    for out in trained:
        folder = Path(config.output) / (SPACE_DIR if len(trained) == 1 else f"{SPACE_DIR}-{out.name}")
        record = {"history": out.histories, "evaluation": out.evaluation, "notes": notes}
        folders[out.name] = write_space_folder(folder, out, record, run_config=config.to_dict(), notes=notes,
                                               repo_id=config.hub.repo_id)
        evaluation.update(out.evaluation)
    for table, rows in evaluation.items():
        log(f"{table}: " + ("; ".join(f"{row} R@1 {m['R@1']:.1f}" for row, m in rows.items())
                            or "too few items to hold out for evaluation"))
    shutil.rmtree(Path(config.output) / TRAIN_STATE_DIR, ignore_errors=True)  # the spaces hold it all now
    result = PipelineResult(memory.root, folders, evaluation, notes)
    if config.hub.repo_id:
        (folder,) = folders.values()
        log(f"[4/4] pushing {folder} to {config.hub.repo_id}")
        result.pushed = push_space(folder, config.hub)
        log(f"pushed: {result.pushed}")
    return result


def collect(sources: SourcesConfig, progress: bool = True) -> Sources:
    corpus = default_corpus(sources.corpus_size) if sources.corpus_size else None
    return collect_sources(text=sources.text, texts=corpus, images=sources.images, audio=sources.audio,
                           points=sources.points, options=sources.options(), progress=progress)


def train_planned(memory: FeatureMemory, plans: list[ConnectionPlan], config: TrainConfig, method: str, *,
                  rows: dict[str, np.ndarray] | None = None, progress: bool = True,
                  state_root: Path | None = None, log: Callable[[str], None] = print) -> dict[str, TrainResult]:
    """Train each planned connection on its `rows` of the overlap (all of them when not given).

    With `state_root`, each connection saves its state there after every epoch and a rerun of the
    same command resumes from it (the caller removes it once the spaces are written)."""
    results = {}
    for plan in plans:
        train_rows = rows[plan.name] if rows else np.arange(memory.load(*plan.files["o_x"]).shape[0])
        state_dir = None if state_root is None else state_root / plan.name
        if state_dir is not None and (state_dir / STATE_FILE).is_file():
            log(f"resuming {plan.name} from {state_dir}")
        results[plan.name] = train_connection(connection_memories(memory, plan, train_rows), config, method,
                                              progress=progress, state_dir=state_dir)
    return results


def _train_and_evaluate(memory: FeatureMemory, plans: list[ConnectionPlan], config: PipelineConfig,
                        progress: bool, encoders: dict[str, dict], datasets: list[dict]) -> list[TrainedSpace]:
    """Train each connection on its training rows; assemble the space(s); evaluate them."""
    split = {plan.name: split_held_out(memory.load(*plan.files["o_x"]).shape[0], config.evaluation)
             for plan in plans}
    results = train_planned(memory, plans, config.train, config.method, progress=progress,
                            rows={name: train for name, (train, _) in split.items()},
                            state_root=Path(config.output) / TRAIN_STATE_DIR)
    spaces = build_spaces(results, config.method, config.train, encoders=encoders)
    by_name = {plan.name: plan for plan in plans}
    trained = []
    for name, (space, members) in spaces_by_folder(spaces, list(by_name)).items():
        out = TrainedSpace(name, space)
        for connection in members:
            out.evaluation[connection] = evaluate_connection(memory, by_name[connection], space, split[connection][1])
            out.histories[connection] = results[connection].history
        named = evaluate_named_pairs(memory, space)
        if named:
            out.evaluation["matching file names"] = named
        space.config["metrics"]["evaluation"] = json_safe(out.evaluation)
        space.config["datasets"] = card_datasets(datasets)
        trained.append(out)
    return trained


def memory_provenance(memory: FeatureMemory) -> tuple[dict[str, dict], list[dict]]:
    """Weights, revision, commit and profile of each encoder, and the Hub datasets the memory was
    extracted from (repo, commit, rows): from the extraction record, or (a memory made elsewhere)
    the checkpoint its manifest names and no datasets."""
    record = memory.root / RECORD_NAME
    if not record.is_file():
        return {name: {"weights": entry.get("checkpoint")} for name, entry in memory.manifest()["encoders"].items()}, []
    values = json.loads(record.read_text())
    encoders = {name: {key: entry.get(key) for key in ("weights", "revision", "commit", "profile")}
                for name, entry in values["encoders"].items()}
    return encoders, list(values.get("datasets", []))


def card_datasets(records: list[dict]) -> list[dict]:
    """One entry per Hub dataset (the card's `datasets:` metadata reads their ids), with the
    commit read and the rows taken per modality."""
    entries: dict[tuple[str, str], dict] = {}
    for record in records:
        entry = entries.setdefault((record["id"], record["commit"]), {
            "id": record["id"], "revision": record["revision"], "commit": record["commit"], "rows": {}, "sources": []})
        entry["rows"][record["modality"]] = record["rows"]
        entry["sources"].append(record["source"])
    return list(entries.values())


def dataset_note(entry: dict) -> str:
    """One line of the card about a dataset the heads were trained on."""
    column = f", column {entry['column']}" if entry.get("column") else ""
    return (f"{entry['modality']} data: {entry['rows']:,} rows of the Hub dataset {entry['id']} at commit "
            f"{entry['commit']} (revision {entry['revision']}{column}; {entry['source']}).")
