"""The one piece of work that needs an accelerator, shaped the way ZeroGPU runs it.

On ZeroGPU a `spaces.GPU` function runs in a worker process forked from the server: its arguments
and its result are pickled across, and nothing it changes in memory comes back. So only the
forward passes cross, as plain data (a space id, a modality, decoded or prepared items in; an
array out), and everything with state (galleries, sessions, caches, files) stays in the server
process. The models are loaded at import time of the app, before any worker is forked, which is
what lets ZeroGPU move them onto each GPU it lends. Off ZeroGPU `spaces.GPU` returns the function
unchanged, so the same code serves a CPU, a T4 and a laptop.

Each call asks for a GPU for as long as its batch needs (`gpu_seconds`): a single query takes a
few seconds of quota, a batch of uploads more, instead of ZeroGPU's default 60 s per call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import spaces

from cmcr.retrieval.search import SpaceEmbedder
from studio.cpu import ComputeLane

# Seconds of GPU time per call: lending a GPU and moving the weights, then each item's forward
# pass with a wide margin (a GPU embeds an item in milliseconds; 3D grouping and audio fusion
# are the slowest).
CALL_SECONDS = 5.0
ITEM_SECONDS = {"text": 0.05, "image": 0.05, "audio": 0.3, "points": 0.3}
MAX_SECONDS = 120
LANE_PIECE = 4  # items per forward pass in a CPU's compute thread

# The embedders that run inside a GPU call, by space id. Filled while the app loads, so a
# forked worker inherits them.
_ON_DEVICE: dict[str, SpaceEmbedder] = {}


def gpu_seconds(space_id: str, modality: str, batch: Sequence[Any]) -> int:
    """How long `embed_on_gpu(space_id, modality, batch)` may hold a GPU (ZeroGPU's dynamic
    duration: called with the same arguments)."""
    return min(MAX_SECONDS, math.ceil(CALL_SECONDS + ITEM_SECONDS.get(modality, 0.3) * len(batch)))


@spaces.GPU(duration=gpu_seconds)
def embed_on_gpu(space_id: str, modality: str, batch: list[Any]) -> np.ndarray:
    """Decoded or prepared items of one modality -> (N, D) unit rows of the space `space_id`."""
    return _ON_DEVICE[space_id].embed(modality, batch)


class GpuEmbedder(SpaceEmbedder):
    """A `SpaceEmbedder` whose forward passes go through `embed_on_gpu`; decoding, preparing and
    everything else stay in the calling process (on ZeroGPU, outside the GPU's time). With a
    `lane` (serving on a CPU: `studio.cpu.compute_lane`) the forward passes run in its thread."""

    def __init__(self, space: Any, encoders: dict[str, Any], lane: ComputeLane | None = None) -> None:
        super().__init__(space, encoders)
        self.lane = lane
        _ON_DEVICE[self.space_id] = SpaceEmbedder(space, self.encoders)

    def embed(self, modality: str, batch: Sequence) -> np.ndarray:
        if self.lane is None:
            return embed_on_gpu(self.space_id, modality, list(batch))
        # In pieces, so that a visitor's one query waits behind at most one piece of another's
        # 32-item upload batch in the lane's queue, not behind all of it.
        pieces = [list(batch[start:start + LANE_PIECE]) for start in range(0, len(batch), LANE_PIECE)] or [[]]
        return np.concatenate([self.lane.run(embed_on_gpu, self.space_id, modality, piece) for piece in pieces])
