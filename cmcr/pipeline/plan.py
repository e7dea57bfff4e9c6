"""What can be trained from a feature memory, and the rows each connection trains on.

A connection needs its overlap memory in both encoders (the overlap modality of the connection
table, `cmcr.data.connections`), so without files of that modality it cannot be trained at all.
When a connection's `p` or `q` modality is missing, its pseudo partners are drawn from the overlap
memory itself: the heads then learn the map from overlap pairs alone and reach the missing
modality only through its encoder's own cross-modal alignment. The plan says so in notes that land in
the output and the model card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmcr.data.connections import get_connection
from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError
from cmcr.pipeline.config import EvaluationConfig
from cmcr.training.memories import ConnectionMemories


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


def split_held_out(rows: int, config: EvaluationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train rows, held-out rows) of the overlap; held-out is empty when too small."""
    order = np.random.default_rng(config.seed).permutation(rows)
    held = min(config.max_rows, int(round(config.holdout_fraction * rows)))
    if held < 2 or rows - held < 2:
        held = 0
    return np.sort(order[held:]), np.sort(order[:held])


def connection_memories(memory: FeatureMemory, plan: ConnectionPlan, train_rows: np.ndarray) -> ConnectionMemories:
    """ConnectionMemories of the training rows; a fallback p/q is restricted to them too."""
    connection = get_connection(plan.name)
    arrays = {}
    for role, where in plan.files.items():
        array = memory.load(*where)
        is_overlap = role in ("o_x", "o_y") or where in (plan.files["o_x"], plan.files["o_y"])
        arrays[role] = np.asarray(array[train_rows] if is_overlap else array, dtype=np.float32)
    return ConnectionMemories(**arrays, x=connection.x, y=connection.y)
