"""Image preprocessing split where pixels become uint8 at the encoder's input size.

Why split: resizing and cropping are per-image PIL work that only scales with CPU cores, so it
belongs where images are decoded (DataLoader workers, thread pools); turning uint8 into floats and
applying mean/std is one batched tensor op that belongs on the encoder's device. Handing uint8
across is also 4x less to copy (between processes, and to the GPU) than float pixels.

The arithmetic after the split is the same as torchvision's `ToTensor` + `Normalize` (divide by
255, subtract the mean, divide by the std, in float32), so the embeddings do not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from cmcr.errors import InputError


@dataclass(frozen=True)
class PixelPreparer:
    """Picklable and model-free (safe to send to DataLoader workers): `resize` maps an RGB PIL
    image to one of exactly `size` (height, width); `mean`/`std` are per channel, on [0, 1]."""

    encoder: str
    resize: Callable[[Image.Image], Image.Image]
    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def min_side(self) -> int:
        """No side of a decoded image needs more pixels than this (for `load_image(min_side=)`)."""
        return max(self.size)

    def __call__(self, images: Sequence) -> torch.Tensor:
        """Decoded PIL images -> uint8 (N, 3, H, W), the prepared batch `embed` accepts."""
        return torch.stack([self.prepare_one(image) for image in images])

    def prepare_one(self, image: Any) -> torch.Tensor:
        """One PIL image -> uint8 (3, H, W); an already prepared tensor is checked and kept."""
        if isinstance(image, torch.Tensor):
            return self._checked(image)
        if not isinstance(image, Image.Image):
            raise InputError(
                f"{self.encoder} embeds images as PIL images (load files with cmcr.data.media) or as "
                f"prepared uint8 tensors; got {type(image).__name__}."
            )
        resized = self.resize(image if image.mode == "RGB" else image.convert("RGB"))
        return torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()

    def normalised(self, items: Sequence, device: torch.device) -> torch.Tensor:
        """PIL images, prepared (3, H, W) tensors or one prepared (N, 3, H, W) batch -> float32
        (N, 3, H, W) on `device`, normalised there as one batched op."""
        batch = self._uint8_batch(items, pinned=device.type == "cuda")
        pixels = batch.to(device, non_blocking=True).float().div_(255.0)
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        return pixels.sub_(mean).div_(std)

    def _uint8_batch(self, items: Sequence, pinned: bool) -> torch.Tensor:
        """Pinned host memory lets the copy to the GPU run asynchronously (non_blocking)."""
        if isinstance(items, torch.Tensor):
            batch = self._checked(items, batched=True)
            return batch.pin_memory() if pinned and not batch.is_pinned() else batch
        tensors = [self.prepare_one(image) for image in items]
        batch = torch.empty((len(tensors), 3, *self.size), dtype=torch.uint8, pin_memory=pinned)
        return torch.stack(tensors, out=batch)

    def _checked(self, pixels: torch.Tensor, batched: bool = False) -> torch.Tensor:
        expected = ((len(pixels),) if batched else ()) + (3, *self.size)
        if pixels.dtype != torch.uint8 or tuple(pixels.shape) != expected:
            shape = ("N, " if batched else "") + f"3, {self.size[0]}, {self.size[1]}"
            raise InputError(
                f"Prepared {self.encoder} pixels must be a uint8 tensor of shape ({shape}) "
                f"(from encoder.prepare); got {pixels.dtype} {tuple(pixels.shape)}."
            )
        return pixels
