"""Pseudo partners from the memories: aggregation centres its queries on their modality's mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmcr.training.config import TrainConfig
from cmcr.training.memories import ConnectionMemories, held_out_pseudo_pairs, memory_centres, pseudo_views

DIM, ITEMS = 8, 6


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _hub_memories() -> ConnectionMemories:
    """Overlap rows k = gap + e_k (every row shares the modality-gap direction e_0); memory rows
    e_1..e_6 (each overlap row's own partner) and one hub close to the gap direction, which every
    raw overlap row scores highest."""
    eye = np.eye(DIM)
    overlap = _unit(2 * eye[0] + eye[1:ITEMS + 1])
    memory = _unit(np.vstack([eye[1:ITEMS + 1], eye[0] + 0.2 * eye[7]]))
    return ConnectionMemories(o_x=overlap, o_y=overlap, p=memory, q=memory, x="x", y="y")


@pytest.mark.parametrize("centre, partners", [(True, np.eye(DIM)[1:ITEMS + 1]),
                                               (False, _unit(np.eye(DIM)[[0]] + 0.2 * np.eye(DIM)[[7]]))])
def test_centred_queries_find_their_own_partner_where_raw_ones_all_find_the_hub(centre, partners):
    config = TrainConfig(agg_centre=centre, val_fraction=0)
    mem, rows, cpu = _hub_memories(), np.arange(ITEMS), torch.device("cpu")
    centre = memory_centres(mem, config, cpu)
    (view,) = pseudo_views(mem, rows, "c-mcr", config, cpu, centre)
    expected = np.broadcast_to(partners, (ITEMS, DIM))
    np.testing.assert_allclose(view.x_p.float().numpy(), expected, atol=2e-3)
    np.testing.assert_allclose(view.y_q.float().numpy(), expected, atol=2e-3)
    q_hat, p_hat = held_out_pseudo_pairs(mem, rows, config, cpu, centre)
    np.testing.assert_allclose(p_hat.float().numpy(), expected, atol=2e-3)
    np.testing.assert_allclose(q_hat.float().numpy(), expected, atol=2e-3)


def test_no_ex_mcr_view_collapses_onto_the_hub():
    """Ex-MCR's three centres (overlap, p and q rows as queries, then mixed overlap rows as
    queries again) all keep one pseudo partner per query apart from the hub."""
    mem, config, cpu = _hub_memories(), TrainConfig(val_fraction=0), torch.device("cpu")
    views = pseudo_views(mem, np.arange(ITEMS), "ex-mcr", config, cpu, memory_centres(mem, config, cpu))
    assert len(views) == 3
    for view in views:
        for mixed in view.tensors():
            distinct = np.unique(np.round(mixed.float().numpy(), 2), axis=0)
            assert len(distinct) >= ITEMS - 1
