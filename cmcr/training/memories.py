"""What a run trains on: a connection's unpaired memories and the views computed from them.

A connection's memories are unit rows (arrays or memory maps): the overlap embedded by both
encoders and one unrelated item set per encoder. Before training, each run holds out overlap rows
for early stopping and computes the pseudo partners once, by streaming aggregation
(`cmcr.training.enhance.aggregate`), as float16 tensors on the training device; the training loop
only indexes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cmcr.errors import InputError
from cmcr.training.config import CMCR_ARCHITECTURES, TrainConfig
from cmcr.training.enhance import aggregate

ArrayLike = np.ndarray | torch.Tensor


@dataclass
class ConnectionMemories:
    """Unpaired memories of one connection (docs/architecture.md): unit rows, arrays or tensors.

    `o_x[i]` and `o_y[i]` embed the same overlap item with X and Y; `p` (X only) and `q`
    (Y only) are unrelated item sets. X and Y may have different widths. `cmcr_projector` is the
    C-MCR projector architecture the official release uses for this connection.
    """

    o_x: ArrayLike
    o_y: ArrayLike
    p: ArrayLike
    q: ArrayLike
    x: str
    y: str
    cmcr_projector: str = "two-layer"

    def check(self) -> None:
        if self.o_x.shape[0] != self.o_y.shape[0]:
            raise InputError(f"overlap memories must be row-aligned: {self.x} has "
                             f"{self.o_x.shape[0]} rows, {self.y} has {self.o_y.shape[0]}")
        if self.o_x.shape[1] != self.p.shape[1] or self.o_y.shape[1] != self.q.shape[1]:
            raise InputError(f"widths differ within one MCR: o_x {tuple(self.o_x.shape)}, p "
                             f"{tuple(self.p.shape)}, o_y {tuple(self.o_y.shape)}, q "
                             f"{tuple(self.q.shape)}")
        if min(self.o_x.shape[0], self.p.shape[0], self.q.shape[0]) < 2:
            raise InputError("every memory needs at least 2 rows to train on")
        if self.cmcr_projector not in CMCR_ARCHITECTURES:
            raise InputError(f"cmcr_projector {self.cmcr_projector!r}: choose 'two-layer' or 'one-layer'")


@dataclass
class Views:
    """Aligned rows of one aggregation centre: two base (X) views and two leaf (Y) views."""

    x_o: torch.Tensor
    x_p: torch.Tensor
    y_o: torch.Tensor
    y_q: torch.Tensor

    def tensors(self) -> tuple[torch.Tensor, ...]:
        # not dataclasses.astuple: it deep-copies every tensor
        return self.x_o, self.x_p, self.y_o, self.y_q

    def take(self, index: torch.Tensor) -> "Views":
        return Views(*(view[index].float() for view in self.tensors()))

    def __len__(self) -> int:
        return self.x_o.shape[0]


def split_overlap(rows: int, config: TrainConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Seeded hold-out of overlap rows for early stopping; sorted so memmap reads are sequential."""
    order = np.random.default_rng(config.seed).permutation(rows)
    held_out = min(config.val_max_rows, int(round(config.val_fraction * rows)))
    if held_out < 2:
        return np.sort(order), None
    if rows - held_out < 2:
        raise InputError(f"val_fraction {config.val_fraction} leaves no overlap rows to train on")
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def _rows_on(array: ArrayLike, rows: np.ndarray | None, device: torch.device) -> torch.Tensor:
    """Selected rows as float16 on the device: half the memory, ample precision for unit rows."""
    if isinstance(array, torch.Tensor):
        picked = array if rows is None else array[torch.from_numpy(rows).to(array.device)]
    else:
        picked = torch.from_numpy(np.array(array if rows is None else array[rows],
                                           dtype=np.float32))  # a copy: memmaps are read-only
    return F.normalize(picked.to(device=device, dtype=torch.float32), dim=1).half()


def to_pairs(queries: ArrayLike, gallery: ArrayLike, rows: np.ndarray | None,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if rows is None and gallery.shape[0] != queries.shape[0]:
        raise InputError("validation pairs must be row-aligned (as many p rows as q rows)")
    return _rows_on(queries, rows, device), _rows_on(gallery, rows, device)


def held_out_pseudo_pairs(mem: ConnectionMemories, rows: np.ndarray, config: TrainConfig,
                          device: torch.device, centre: dict[str, torch.Tensor]
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(q̂, p̂) of held-out overlap rows: the pseudo partners training would make of them. No
    true (p, q) pair exists, so retrieval q̂ → p̂ is the nearest thing to the target task.
    `centre` is `memory_centres`' answer, shared with `pseudo_views` so the memories are read
    for their means once per run."""
    mix = _mixer(config, device)
    return (mix(_rows_on(mem.o_y, rows, device), mem.q, centre["o_y"]),
            mix(_rows_on(mem.o_x, rows, device), mem.p, centre["o_x"]))


def pseudo_views(mem: ConnectionMemories, rows: np.ndarray, method: str, config: TrainConfig,
                 device: torch.device, centre: dict[str, torch.Tensor]) -> list[Views]:
    """Pseudo partners, computed once per run: overlap-centred always; Ex-MCR adds p- and
    q-centred views (docs/method.md), each capped at the overlap size so one epoch visits each
    about once."""
    o_x, o_y = _rows_on(mem.o_x, rows, device), _rows_on(mem.o_y, rows, device)
    if not config.semantic_consistency:
        return [Views(o_x, o_x, o_y, o_y)]
    mix = _mixer(config, device)
    views = [Views(o_x, mix(o_x, mem.p, centre["o_x"]), o_y, mix(o_y, mem.q, centre["o_y"]))]
    if method == "ex-mcr":
        generator = np.random.default_rng(config.seed + 1)
        p = _rows_on(mem.p, _subset(mem.p.shape[0], len(rows), generator), device)
        q = _rows_on(mem.q, _subset(mem.q.shape[0], len(rows), generator), device)
        x_o, y_o = _mix_pair(mix, p, centre["p"], o_x, o_y)
        views.append(Views(x_o, p, y_o, mix(y_o, mem.q, centre["o_y"])))
        y_o, x_o = _mix_pair(mix, q, centre["q"], o_y, o_x)
        views.append(Views(x_o, mix(x_o, mem.p, centre["o_x"]), y_o, q))
    return views


def _mixer(config: TrainConfig, device: torch.device) -> Callable:
    """Aggregation with the run's settings; `centre` (the query modality's mean, or 0) is taken
    off the queries before scoring (`memory_centres` says why)."""
    def mix(queries, memory, centre, values=None):
        return aggregate((queries.float() - centre).half(), memory, config.agg_temperature, values=values,
                         top_k=config.top_k, chunk_size=config.agg_chunk_size,
                         device=device).half()
    return mix


def memory_centres(mem: ConnectionMemories, config: TrainConfig,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """Each memory's mean row (all zeros with `agg_centre` off), what aggregation queries of that
    modality are centred by.

    Every row of one modality carries the same modality-gap offset, so an uncentred query scores
    memory row j with an extra `gap·m_j` that is the same for all queries: the same few memory rows
    then dominate every pseudo partner (hubs). Taking the query modality's mean off removes that
    term and leaves the softmax the part of the similarity that differs between queries.
    """
    names = ("o_x", "o_y", "p", "q")
    if not config.agg_centre:
        return {name: torch.zeros((), device=device) for name in names}
    return {name: _mean_row(getattr(mem, name), config.agg_chunk_size, device) for name in names}


def _mean_row(array: ArrayLike, chunk_size: int, device: torch.device) -> torch.Tensor:
    """Mean of the unit rows, read in chunks (a memmap is never loaded whole)."""
    total = torch.zeros(array.shape[1], device=device)
    for start in range(0, array.shape[0], chunk_size):
        total += _rows_on(array[start:start + chunk_size], None, device).float().sum(dim=0)
    return total / array.shape[0]


def _mix_pair(mix: Callable, queries: torch.Tensor, centre: torch.Tensor, keys: torch.Tensor,
              partner: torch.Tensor):
    """Aggregate over `keys` and mix the row-aligned `partner` (of any width) with the same weights."""
    both = mix(queries, keys, centre, torch.cat([keys, partner], dim=1))
    own, other = both.float().split([keys.shape[1], partner.shape[1]], dim=1)
    return F.normalize(own, dim=1).half(), F.normalize(other, dim=1).half()


def _subset(size: int, limit: int, generator: np.random.Generator) -> np.ndarray | None:
    return None if size <= limit else np.sort(generator.choice(size, limit, replace=False))

