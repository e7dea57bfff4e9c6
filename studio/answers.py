"""What a request is and what an answer holds: a query (a modality and its raw value), the ranked
hits as the page shows them, and zero-shot label probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmcr.errors import InputError

DEFAULT_K = 8
MODALITY_NAMES = {"audio": "Audio", "image": "Image", "text": "Text", "points": "3D"}


@dataclass(frozen=True)
class Query:
    """One request: a modality and its raw value (a file path, or the text itself)."""

    modality: str
    value: Any

    def validated(self) -> Query:
        """Refuse an unknown modality or a missing value with a message a visitor can act on."""
        if self.modality not in MODALITY_NAMES:
            raise InputError(f"Unknown input kind {self.modality!r}; choose one of {', '.join(MODALITY_NAMES)}.")
        if self.modality == "text":
            text = (self.value or "").strip() if isinstance(self.value, str) or self.value is None else None
            if text is None:
                raise InputError("Text queries must be strings.")
            if not text:
                raise InputError("Type some text to search with.")
            return Query("text", text)
        if not self.value:
            raise InputError(f"{_MISSING[self.modality]} first.")
        return self


EMPTY_GALLERY = "Your gallery is empty: add images, sounds or 3D files to it first."
_MISSING = {
    "audio": "Upload or record an audio clip",
    "image": "Upload an image",
    "points": "Upload a point cloud or mesh",
}


@dataclass(frozen=True)
class ShownHit:
    """One ranked result as the page shows it (a gallery `Hit` plus the files its views need)."""

    rank: int
    score: float
    modality: str
    caption: str
    file: Path | None = None      # the item itself (image, audio or shape file)
    preview: Path | None = None   # an image to show in a gallery
    view3d: Path | None = None    # a light mesh that gr.Model3D displays

    @property
    def title(self) -> str:
        return f"#{self.rank} · {self.score:.3f} · {self.caption}"


@dataclass
class Results:
    """A ranked answer: hits from a gallery, or label probabilities (zero-shot)."""

    hits: list[ShownHit] = field(default_factory=list)
    labels: dict[str, float] | None = None
    note: str | None = None  # something the visitor should know about their input (a long text was cut)

    def gallery_items(self) -> list[tuple[str, str]]:
        return [(str(hit.preview), hit.title) for hit in self.hits if hit.preview is not None]

    def shape_views(self, count: int) -> list[tuple[str, str]]:
        return [(str(hit.view3d), hit.title) for hit in self.hits if hit.view3d is not None][:count]
