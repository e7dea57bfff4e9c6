"""The connection table: which memory files each connection trains on, by role.

A connection joins a leaf encoder Y to a base encoder X through a modality both embed (the
overlap `o`); `p` is what only X embeds, `q` what only Y embeds (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError


@dataclass(frozen=True)
class Connection:
    """Which memory files one connection trains on (roles as in docs/architecture.md).

    X holds the overlap `o` and `p`, Y holds `o` and `q`; each role is (modality, encoder).
    `cmcr_projector` is the architecture of the official C-MCR release's projectors for it.
    """

    name: str
    x: str
    y: str
    o_x: tuple[str, str]
    o_y: tuple[str, str]
    p: tuple[str, str]
    q: tuple[str, str]
    cmcr_projector: str = "two-layer"

    def files(self) -> dict[str, tuple[str, str]]:
        return {"o_x": self.o_x, "o_y": self.o_y, "p": self.p, "q": self.q}


CONNECTIONS: dict[str, Connection] = {
    c.name: c
    for c in (
        Connection("clap→clip", x="clip", y="clap", o_x=("text", "clip"), o_y=("text", "clap"),
                   p=("image", "clip"), q=("audio", "clap")),
        Connection("ulip→clip", x="clip", y="ulip", o_x=("image", "clip"), o_y=("image", "ulip"),
                   p=("text", "clip"), q=("points", "ulip"), cmcr_projector="one-layer"),
    )
}


def get_connection(name: str) -> Connection:
    """Look a connection up by name; "clap->clip" is accepted for "clap→clip" (easier to type)."""
    connection = CONNECTIONS.get(name.replace("->", "→"))
    if connection is None:
        raise InputError(f"unknown connection {name!r}; known: {sorted(CONNECTIONS)}")
    return connection


def available_connections(memory: FeatureMemory) -> list[str]:
    """Connections whose four memory files all exist in `memory`."""
    return [
        name
        for name, connection in CONNECTIONS.items()
        if all(memory.has(modality, encoder) for modality, encoder in connection.files().values())
    ]


def load_connection(memory: FeatureMemory, name: str, mmap: bool = True) -> dict[str, Any]:
    """The arrays of one connection by role, plus encoder names and the official C-MCR projector
    architecture: keys o_x, o_y, p, q, x, y, cmcr_projector (the fields of
    `cmcr.training.memories.ConnectionMemories`)."""
    connection = get_connection(name)
    arrays = {role: memory.load(*where, mmap=mmap) for role, where in connection.files().items()}
    return {**arrays, "x": connection.x, "y": connection.y, "cmcr_projector": connection.cmcr_projector}
