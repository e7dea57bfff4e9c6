"""What can be trained from a feature memory, and the rows each connection trains on.

A connection needs its overlap memory in both encoders (the overlap modality of the connection
table, `cmcr.data.connections`), and its `p` and `q` memories: they are what the heads learn to
carry across. Without `p` or `q` the heads would only learn the map between the overlap pairs
(the "overlap pairs only" ablation, far weaker on the unpaired modalities), so such a run stops
and says which modality to add, unless the ablation is asked for (`overlap_ablation`): then the
pseudo partners are drawn from the overlap memory itself, and notes saying so land in the output
and the model card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cmcr.data.connections import CONNECTIONS, get_connection
from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError
from cmcr.pipeline.config import EvaluationConfig
from cmcr.training.memories import ConnectionMemories

FLAGS = {"text": "--text", "image": "--images", "audio": "--audio", "points": "--points"}
ABLATION_HINT = ("or, to train it on its overlap alone as the 'overlap pairs only' ablation, pass "
                 "--overlap-ablation (overlap_ablation: true in a config file)")


@dataclass
class ConnectionPlan:
    """Which memory files feed each role of one connection, after fallbacks."""

    name: str
    files: dict[str, tuple[str, str]]
    notes: list[str]


def _add(modality: str) -> str:
    flag = FLAGS[modality]
    return (f"add {modality} data ({flag} FOLDER or {flag} hf://datasets/OWNER/NAME, sources.{flag[2:]} in a "
            "config file; into an existing feature memory with scripts/extract_features.py)")


def plan_connections(memory: FeatureMemory, names: Sequence[str], *, overlap_ablation: bool = False
                     ) -> tuple[list[ConnectionPlan], list[str]]:
    """A plan for every connection in `names`, or one InputError naming each missing modality."""
    plans, notes, problems = [], [], []
    for name in names:
        files = get_connection(name).files()
        overlap = files["o_x"][0]
        missing = [f"{m}/{e}" for m, e in (files["o_x"], files["o_y"]) if not memory.has(m, e)]
        if missing:
            problems.append(f"{name} connects through {overlap}, and the features lack {', '.join(missing)}: "
                            f"{_add(overlap)}, or leave it out (--set connections=[...]).")
            continue
        own = []
        for role, fallback in (("p", "o_x"), ("q", "o_y")):
            if memory.has(*files[role]):
                continue
            modality, encoder = files[role]
            if not overlap_ablation:
                problems.append(f"{name} has no {modality} data ({modality}/{encoder}, what its heads learn to "
                                f"reach): {_add(modality)}; {ABLATION_HINT}.")
                continue
            own.append(f"{name}: no {modality} data, so (overlap ablation, as asked) its {encoder} pseudo "
                       f"partners come from the {overlap} memory itself: the heads never saw {modality} "
                       f"and reach it only through {encoder}'s own alignment.")
            files = {**files, role: files[fallback]}
        plans.append(ConnectionPlan(name, files, own))
        notes += own
    if problems:
        raise InputError("cannot train as asked:\n" + "\n".join(f"- {problem}" for problem in problems))
    return plans, notes


def connections_with_overlap(memory: FeatureMemory) -> list[str]:
    """The connections whose overlap memory is there in both encoders (what a feature memory made
    for them holds); an InputError naming what each needs when there is none."""
    names = [name for name, c in CONNECTIONS.items() if memory.has(*c.o_x) and memory.has(*c.o_y)]
    if not names:
        needs = "; ".join(f"{name} needs {', '.join(f'{m}/{e}' for m, e in c.files().values())}"
                          for name, c in CONNECTIONS.items())
        raise InputError(f"{memory.root} holds no complete connection: {needs}")
    return names


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
