"""The pipeline's evaluation tables: held-out overlap retrieval, and retrieval between items whose
file names match, each beside the chance level of its gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmcr.data.features import FeatureMemory
from cmcr.evaluation.metrics import chance_metrics, retrieval_metrics
from cmcr.models.space import UnifiedSpace
from cmcr.pipeline.plan import ConnectionPlan


def evaluate_connection(memory: FeatureMemory, plan: ConnectionPlan, space: UnifiedSpace,
                        held_out: np.ndarray) -> dict:
    """Held-out overlap retrieval (Y's view → X's view of the same items), both ways, + chance."""
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


def evaluate_named_pairs(memory: FeatureMemory, space: UnifiedSpace) -> dict:
    """Cross-modal retrieval between items whose file names match (dog.wav ↔ dog.png ↔ dog.ply),
    for every pair of modalities the space projects. Training saw these items unpaired."""
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
