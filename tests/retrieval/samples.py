"""Inputs shared by the retrieval tests: one query per modality from the default assets, and
one decoded item of every modality (the `saved` fixture in conftest.py saves them as a gallery)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from cmcr.retrieval.gallery import NewItem, sha256_bytes
from tests.paths import ASSETS

SPACE = "space-sha256:store-test"
DIM = 8
QUERIES = {
    "text": "a dog barking",
    "image": ASSETS / "images" / "dog.png",
    "audio": ASSETS / "sounds" / "dog_bark.wav",
    "points": ASSETS / "shapes" / "chair.glb",
}


def unit_rows(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, DIM))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def media_items() -> list[NewItem]:
    """One decoded item per modality with previews, plus a text item (no preview)."""
    rng = np.random.default_rng(0)
    image = Image.new("RGB", (640, 320), (200, 40, 40))
    audio = (0.3 * np.sin(np.arange(48000 * 12) / 20)).astype(np.float32)  # 12 s: trimmed to 10
    points = rng.standard_normal((3000, 3)).astype(np.float32)
    contents = {"image": image, "audio": audio, "points": points, "text": "a red square"}
    return [NewItem(modality, f"/data/{modality}.bin", f"a {modality}", sha256_bytes(modality.encode()), content)
            for modality, content in contents.items()]
