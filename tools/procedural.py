"""The default gallery, generated: 3D shapes from primitives, drawn images, synthesised sounds.

The app needs examples and a gallery that work offline and that we are free to ship, so we make
them from code. Every asset is a pure function of its name: generating twice gives the same
bytes (seeded randomness, no timestamps), so `assets/` can be checked against a fresh build.
This module lists the assets and writes them with their manifest; `tools.shapes`,
`tools.drawings` and `tools.sounds` make them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tools.drawings import IMAGES, image_bytes
from tools.shapes import SHAPES, shape_bytes
from tools.sounds import SAMPLE_RATE, SOUNDS, sound_bytes


@dataclass(frozen=True)
class AssetSpec:
    """One generated asset: `build()` returns the file's bytes."""

    id: str
    modality: str
    suffix: str
    caption: str
    build: Callable[[], bytes]

    @property
    def file(self) -> str:
        folder = {"points": "shapes", "image": "images", "audio": "sounds"}[self.modality]
        return f"{folder}/{self.id}{self.suffix}"


def asset_specs() -> list[AssetSpec]:
    """Every default asset, shapes first, in a fixed order."""
    specs = [AssetSpec(name, "points", ".glb", caption, lambda n=name: shape_bytes(n))
             for name, (caption, _) in SHAPES.items()]
    specs += [AssetSpec(name, "image", ".png", caption, lambda n=name: image_bytes(n))
              for name, (caption, *_) in IMAGES.items()]
    specs += [AssetSpec(name, "audio", ".wav", caption, lambda n=name: sound_bytes(n))
              for name, (caption, _) in SOUNDS.items()]
    return specs


def make_assets(folder: str | Path, progress: Callable = iter) -> dict:
    """Generate every asset into `folder` with its `manifest.json`; returns the manifest."""
    root = Path(folder)
    entries = []
    for spec in progress(asset_specs()):
        target = root / spec.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(spec.build())
        entries.append({"id": f"{spec.modality}-{spec.id}", "modality": spec.modality,
                        "file": spec.file, "caption": spec.caption})
    manifest = {"generator": "tools.procedural", "sample_rate": SAMPLE_RATE, "items": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
