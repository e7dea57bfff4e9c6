"""The ULIP encoder: 3D point clouds and images into ULIP-2's 512-d (SLIP) space.

ULIP aligns a PointBERT point tower with SLIP's frozen image and text towers. C-MCR connects it to
CLIP through images, so we need both its 3D side (`points`) and its image side (`image`); its
text tower is never used and is skipped when loading.

The official weights are `pointbert_ULIP-2.pt`, a training checkpoint: a dict whose
`state_dict` holds `module.`-prefixed keys (DDP) and whose `args` is a pickled argparse Namespace.
We read it with `torch.load(weights_only=True)` plus `argparse.Namespace` as the one extra allowed
global. Only if that fails, and only for the file at the pinned Hub repo/file/revision below, do we
fall back to full unpickling (`weights_only=False`), which runs code from the file: acceptable for
one pinned, widely used release, never for a path a user supplies (no code path passes one).
"""

from __future__ import annotations

import argparse
import functools
import logging
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from torch import nn
from torch.ao.quantization import quantize_dynamic

from cmcr.models.encoders.base import BaseEncoder, EncoderConfig, download, load_torch_file
from cmcr.models.encoders.pixels import PixelPreparer
from cmcr.models.encoders.pointbert import PointBERT, PointBERTConfig, PointwiseConv
from cmcr.errors import CheckpointError, InputError

logger = logging.getLogger(__name__)

# HF dataset SFXX/ulip mirrors the ULIP release bucket, where the file C-MCR uses is
# pretrained_models/ckpt_zero-sho_classification/pointbert_ULIP-2.pt. Projects that fetch it
# from SFXX/ulip name it with that path flattened, as below (not verifiable offline here).
ULIP_REPO_ID = "SFXX/ulip"
ULIP_REPO_TYPE = "dataset"
ULIP_CHECKPOINT_FILE = "pretrained_models_ckpt_zero-sho_classification_pointbert_ULIP-2.pt"
# A branch, not a commit: no Hub access here to look the commit up. Replace with the commit hash.
ULIP_CHECKPOINT_REVISION = "main"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The SLIP text tower and training scalars stored beside the towers we use.
TEXT_TOWER_PREFIXES = ("transformer.", "token_embedding.", "ln_final.")
TEXT_TOWER_KEYS = frozenset({"positional_embedding", "text_projection", "logit_scale"})


@dataclass(frozen=True)
class VisionConfig:
    """The SLIP image tower, a timm ViT; the defaults are `vit_base_patch16_224`."""

    image_size: int = 224
    patch_size: int = 16
    width: int = 768
    depth: int = 12
    num_heads: int = 12


def vision_tower(vision: VisionConfig) -> VisionTransformer:
    """The SLIP image tower as timm builds it; its state-dict keys are the checkpoint's `visual.*`."""
    return VisionTransformer(
        img_size=vision.image_size,
        patch_size=vision.patch_size,
        embed_dim=vision.width,
        depth=vision.depth,
        num_heads=vision.num_heads,
        num_classes=0,
    )


@dataclass(frozen=True)
class ULIPConfig(EncoderConfig):
    """`checkpoint_repo=None` means random weights seeded with `seed` (the tiny profile).

    `point_int8`: on a CPU, the point tower's linear layers and per-point convolutions run with
    dynamically quantised int8 weights (torch's `quantize_dynamic`, `int8_point_tower`). A serving
    speed-up only where embeddings stay within cos 0.999 of float32 (docs/benchmarks.md has the
    measurement); ignored on GPUs, and not part of a gallery's space identity, like `dtype`.
    """

    point: PointBERTConfig = field(default_factory=PointBERTConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    checkpoint_repo: str | None = ULIP_REPO_ID
    checkpoint_file: str = ULIP_CHECKPOINT_FILE
    checkpoint_revision: str = ULIP_CHECKPOINT_REVISION
    seed: int = 0
    point_int8: bool = False


TINY_POINT = PointBERTConfig(
    trans_dim=64,
    depth=2,
    num_heads=2,
    num_groups=64,
    group_size=16,
    encoder_dims=64,
    first_conv_dims=(16, 32),
    second_conv_hidden=64,
    pos_hidden=16,
)
TINY_VISION = VisionConfig(image_size=32, patch_size=8, width=64, depth=2, num_heads=2)

ULIP_PROFILES: dict[str, ULIPConfig] = {
    "full": ULIPConfig(),
    "tiny": ULIPConfig(point=TINY_POINT, vision=TINY_VISION, checkpoint_repo=None),
}


class ULIPModel(nn.Module):
    """The two ULIP towers we use, named as in the official `ULIP_WITH_IMAGE` for strict loading."""

    def __init__(self, config: ULIPConfig) -> None:
        super().__init__()
        vision = config.vision
        self.point_encoder = PointBERT(config.point)
        self.pc_projection = nn.Parameter(
            torch.randn(config.point.feature_dim, config.dim) * config.dim**-0.5
        )
        self.visual = vision_tower(vision)
        self.image_projection = nn.Parameter(torch.randn(vision.width, config.dim) * vision.width**-0.5)

    def encode_points(self, points: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) float → (B, dim), not normalised."""
        return self.point_encoder(points) @ self.pc_projection

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) ImageNet-normalised → (B, dim), not normalised."""
        return self.visual(pixels) @ self.image_projection


def int8_point_tower(tower: PointBERT) -> PointBERT:
    """The tower with int8 dynamically quantised weights in its linear layers and in its
    per-point convolutions (as linear layers), except the first, which reads raw xyz."""
    for module in list(tower.modules()):
        for name, child in module.named_children():
            if isinstance(child, PointwiseConv) and child.in_channels > 3:
                setattr(module, name, child.as_linear())
    return quantize_dynamic(tower, {nn.Linear}, dtype=torch.qint8)


def official_state_dict(checkpoint: Any) -> dict[str, torch.Tensor]:
    """The towers' weights from an official ULIP checkpoint: `module.` stripped, text tower dropped."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError("Not a ULIP checkpoint: expected a dict with a 'state_dict' entry.")
    state = {}
    for key, value in checkpoint["state_dict"].items():
        name = key.removeprefix("module.")
        if name in TEXT_TOWER_KEYS or name.startswith(TEXT_TOWER_PREFIXES):
            continue
        state[name] = value
    return state


def load_official_weights(model: ULIPModel, state: Mapping[str, torch.Tensor]) -> None:
    """Strict load that says which keys or shapes differ, instead of torch's wall of text."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(
        f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if tuple(state[key].shape) != tuple(expected[key].shape)
    )
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        if keys
    ]
    if problems:
        raise CheckpointError("ULIP checkpoint does not match the model: " + "; ".join(problems))
    model.load_state_dict(state, strict=True, assign=True)


def read_official_checkpoint(path: Path, *, pinned_release: bool) -> Any:
    """Read an official ULIP checkpoint; full unpickling only as a fallback for the pinned release,
    and only when the file is readable but holds objects the safe loader refuses."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return load_torch_file(path)
    except CheckpointError as error:
        if not (pinned_release and isinstance(error.__cause__, pickle.UnpicklingError)):
            raise
    logger.warning("Safe loading of %s failed; unpickling the pinned ULIP release in full.", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # noqa: BLE001 - pickle/zip errors have no common base class
        raise CheckpointError(f"Cannot read ULIP checkpoint {path}: {error}") from error


def ulip_pixel_preparer(size: int) -> PixelPreparer:
    """SLIP's evaluation transform: shorter side to `size` (bilinear), centre crop, ImageNet
    mean/std (applied on the device, batched)."""
    return PixelPreparer("ULIP", functools.partial(resize_and_crop, size=size), (size, size),
                         IMAGENET_MEAN, IMAGENET_STD)


def preprocess_images(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """The whole transform on the CPU: normalised float32 (N, 3, size, size)."""
    return ulip_pixel_preparer(size).normalised(images, torch.device("cpu"))


def resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def as_cloud_arrays(items: Sequence, min_points: int) -> list[np.ndarray]:
    """Validate a batch of clouds ((P, 3) arrays, or one (B, P, 3) array) as float32 arrays."""
    clouds = []
    for position, item in enumerate(items):
        cloud = np.asarray(item.detach().cpu() if isinstance(item, torch.Tensor) else item, dtype=np.float32)
        if cloud.ndim != 2 or cloud.shape[1] != 3:
            raise InputError(f"Point cloud {position} has shape {cloud.shape}; expected (P, 3) xyz points.")
        if cloud.shape[0] < min_points:
            raise InputError(
                f"Point cloud {position} has {cloud.shape[0]} points; ULIP needs at least {min_points}."
            )
        if not np.isfinite(cloud).all():
            raise InputError(f"Point cloud {position} contains NaN or infinite coordinates.")
        clouds.append(cloud)
    return clouds


class ULIPEncoder(BaseEncoder):
    """ULIP-2 PointBERT (`points`) and its SLIP image tower (`image`)."""

    name = "ulip"
    profiles = ULIP_PROFILES
    config: ULIPConfig

    def _load(self) -> None:
        if self.config.checkpoint_repo is None:
            model = self._random_model()
        else:
            model = self._pretrained_model()
        self.model = model.to(device=self.device, dtype=torch.float32).eval().requires_grad_(False)
        if self.config.point_int8 and self.device.type == "cpu":
            self.model.point_encoder = int8_point_tower(self.model.point_encoder)

    def _random_model(self) -> ULIPModel:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            return ULIPModel(self.config)

    def _pretrained_model(self) -> ULIPModel:
        config = self.config
        path = download(
            config,
            config.checkpoint_repo,
            config.checkpoint_file,
            revision=config.checkpoint_revision,
            repo_type=ULIP_REPO_TYPE,
        )
        pinned = (config.checkpoint_repo, config.checkpoint_file, config.checkpoint_revision) == (
            ULIP_REPO_ID,
            ULIP_CHECKPOINT_FILE,
            ULIP_CHECKPOINT_REVISION,
        )
        state = official_state_dict(read_official_checkpoint(Path(path), pinned_release=pinned))
        with torch.device("meta"):
            model = ULIPModel(config)
        load_official_weights(model, state)
        return model

    @functools.cached_property
    def pixel_preparer(self) -> PixelPreparer:
        return ulip_pixel_preparer(self.config.vision.image_size)

    def preparer(self, modality: str) -> PixelPreparer | None:
        return self.pixel_preparer if modality == "image" else None

    def _forward(self, modality: str, items: Sequence) -> torch.Tensor:
        if modality == "image":
            return self.model.encode_images(self.pixel_preparer.normalised(items, self.device))
        point = self.config.point
        return self._embed_clouds(as_cloud_arrays(items, max(point.num_groups, point.group_size)))

    def _embed_clouds(self, clouds: list[np.ndarray]) -> torch.Tensor:
        """Clouds of equal size run as one batch; a mixed batch runs once per size."""
        output = torch.empty(len(clouds), self.dim, device=self.device)
        sizes = sorted({cloud.shape[0] for cloud in clouds})
        for size in sizes:
            rows = [i for i, cloud in enumerate(clouds) if cloud.shape[0] == size]
            points = torch.from_numpy(np.stack([clouds[i] for i in rows])).to(self.device)
            output[rows] = self.model.encode_points(points).float()
        return output
