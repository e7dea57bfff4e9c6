"""Generated inputs: decoded items as the encoders take them, photo-like images, point clouds and
random unit rows, each a function of the run's seed."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from benchmarks.bench import EMBED_DIM, Bench

INPUT_SALTS = {"text": 1, "image": 2, "audio": 3, "points": 4}


def sample_inputs(modality: str, count: int, bench: Bench) -> list[Any]:
    """Decoded inputs of a modality at the sizes the encoders take: 320x240 images, 10 s of
    48 kHz audio, clouds of the plan's size."""
    rng = bench.rng(INPUT_SALTS[modality])
    if modality == "text":
        words = ("dog", "bell", "rain", "chair", "guitar", "train", "bird", "car")
        return [f"a photo of a {words[i % len(words)]} number {i}" for i in range(count)]
    if modality == "image":
        return [smooth_image(rng, (320, 240)) for _ in range(count)]
    if modality == "audio":
        return [(0.1 * rng.standard_normal(480_000)).astype(np.float32) for _ in range(count)]
    return list(sample_clouds(rng, count, bench.plan.points_per_cloud))


def sample_clouds(rng: np.random.Generator, count: int, num_points: int) -> np.ndarray:
    """(count, num_points, 3) float32 clouds on noisy ellipsoids, inside the unit sphere."""
    directions = rng.standard_normal((count, num_points, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    axes = rng.uniform(0.3, 1.0, (count, 1, 3))
    clouds = directions * axes + 0.01 * rng.standard_normal((count, num_points, 3))
    return (clouds / np.abs(clouds).max()).astype(np.float32)


def smooth_image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A photo-like RGB image (smooth colour fields plus grain), so JPEGs have realistic sizes."""
    width, height = size
    coarse = rng.uniform(0, 255, (height // 16 + 1, width // 16 + 1, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.BICUBIC)
    grain = rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def unit_rows(rng: np.random.Generator, count: int, dim: int = EMBED_DIM) -> np.ndarray:
    """Random unit rows, generated in blocks so a 1M-row gallery needs no float64 copy."""
    rows = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 65536):
        block = rng.standard_normal((min(65536, count - start), dim), dtype=np.float32)
        rows[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return rows
