"""CLIP (text, image) through open_clip, with the weights fetched by `cmcr.hub`.

open_clip can download weights by itself, but then it bypasses our Hub handling (offline
errors, revisions, the test Hub). So we read the Hub repo and file name from open_clip's own
pretrained registry (for `ViT-B-32`/`openai`: `timm/vit_base_patch32_clip_224.openai`), fetch the
safetensors copy open_clip itself prefers (`open_clip_model.safetensors`; the pickled
`open_clip_pytorch_model.bin` only where a repo has no safetensors, or only it is cached) with
`cmcr.hub.download_file`, build the model from open_clip's config-driven classes and load the
file with open_clip's checkpoint loader. The tokenizer is open_clip's `SimpleTokenizer`, whose BPE
vocabulary ships inside the package.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import open_clip
import torch
from open_clip.constants import HF_WEIGHTS_NAME
from torchvision.transforms import Compose, Normalize, ToTensor

from cmcr.data.media.text import BoundedCache
from cmcr.models.encoders.base import BaseEncoder, download
from cmcr.models.encoders.pixels import PixelPreparer
from cmcr.models.encoders.profiles import CLIP_PROFILES, ClipConfig
from cmcr.errors import CheckpointError, FileNotOnHubError, HubUnavailableError, InputError


def clip_model_cfg(config: ClipConfig) -> dict[str, Any]:
    """The open_clip architecture dict, with QuickGELU when the pretrained tag was trained so."""
    if config.model_cfg is not None:
        return copy.deepcopy(config.model_cfg)
    model_cfg = open_clip.get_model_config(config.model_name)
    if model_cfg is None:
        raise InputError(f"open_clip has no model called {config.model_name!r}.")
    if config.pretrained and open_clip.get_pretrained_cfg(config.model_name, config.pretrained).get(
        "quick_gelu"
    ):
        model_cfg["quick_gelu"] = True
    return model_cfg


def pretrained_hub_file(model_name: str, tag: str) -> tuple[str, str]:
    """(repo_id, filename) of open_clip's Hub copy of a pretrained tag: the safetensors file."""
    repo_id, filename = _registry_hub_file(model_name, tag)
    return repo_id, _SAFE_ALTERNATIVES.get(filename, filename)


def _registry_hub_file(model_name: str, tag: str) -> tuple[str, str]:
    """(repo_id, filename) as open_clip's pretrained registry lists them (often the pickled .bin)."""
    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub")
    if not hf_hub:
        raise InputError(f"open_clip lists no Hugging Face Hub weights for {model_name!r} / {tag!r}.")
    repo_id, filename = _split_hub_path(hf_hub)
    return repo_id, filename or HF_WEIGHTS_NAME


# open_clip's own rule for the safetensors sibling of its pickled weights file
_SAFE_ALTERNATIVES = {"open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


def _split_hub_path(hf_hub: str) -> tuple[str, str]:
    """open_clip writes `org/repo/filename`, or `org/repo/` for the default weights file."""
    org, repo, *rest = hf_hub.split("/")
    return f"{org}/{repo}", "/".join(rest)


def checkpoint_path(config: ClipConfig) -> Path | None:
    """Where the weights live on disk (downloading them if needed); None means random weights."""
    if config.checkpoint is not None:
        return Path(config.checkpoint)
    if config.pretrained is None:
        return None
    repo_id, listed = _registry_hub_file(config.model_name, config.pretrained)
    safe = _SAFE_ALTERNATIVES.get(listed, listed)
    try:
        return download(config, repo_id, safe, config.revision)
    except (FileNotOnHubError, HubUnavailableError) as missing:
        if safe == listed:
            raise
        try:  # a repo without the safetensors copy, or an offline cache holding only the .bin
            return download(config, repo_id, listed, config.revision)
        except (FileNotOnHubError, HubUnavailableError):
            raise missing from None


def build_clip_model(config: ClipConfig) -> torch.nn.Module:
    """An open_clip CLIP with the configured weights (or seeded random ones), in eval mode."""
    model_cfg = clip_model_cfg(config)
    if "hf_model_name" in model_cfg.get("text_cfg", {}):
        raise InputError(
            "CLIP models with a Hugging Face text tower are not supported; use a CLIP text tower."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = open_clip.CLIP(**model_cfg)
    path = checkpoint_path(config)
    if path is not None:
        try:
            open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
        except Exception as error:  # noqa: BLE001 - open_clip raises RuntimeError/KeyError/pickle errors
            raise CheckpointError(f"Cannot load CLIP weights from {path}: {error}") from error
    return model.eval()


def clip_pixel_preparer(config: ClipConfig) -> PixelPreparer:
    """open_clip's eval transform for this config, split before its `ToTensor`: the PIL steps
    (resize, crop, RGB) run as open_clip writes them, and its `Normalize` statistics move to the
    batched on-device step, so the pixels stay exactly open_clip's."""
    size = open_clip.utils.to_2tuple(clip_model_cfg(config)["vision_cfg"]["image_size"])  # as CLIP's
    transform = open_clip.image_transform(size, is_train=False, **_preprocess_cfg(config))
    *pil_steps, to_tensor, normalize = transform.transforms
    if not isinstance(to_tensor, ToTensor) or not isinstance(normalize, Normalize):
        raise CheckpointError(f"Unexpected open_clip eval transform for {config.model_name}: {transform}")
    return PixelPreparer("CLIP", Compose(pil_steps), size, tuple(normalize.mean), tuple(normalize.std))


def _preprocess_cfg(config: ClipConfig) -> dict[str, Any]:
    """The preprocessing a pretrained tag was trained with (mean/std, interpolation, resize mode)."""
    pretrained_cfg = {}
    if config.pretrained:
        pretrained_cfg = open_clip.get_pretrained_cfg(config.model_name, config.pretrained)
    keys = ("mean", "std", "interpolation", "resize_mode")
    return {key: pretrained_cfg[key] for key in keys if key in pretrained_cfg}


WORD_CACHE_SIZE = 20_000  # open_clip keeps every word it has seen; a server sees unboundedly many


class ClipEncoder(BaseEncoder):
    """CLIP image and text towers; images go through open_clip's eval preprocessing."""

    name: ClassVar[str] = "clip"
    profiles: ClassVar[dict[str, ClipConfig]] = CLIP_PROFILES

    def _load(self) -> None:
        self.model = build_clip_model(self.config).to(self.device)
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.model.context_length)
        self.tokenizer.cache = BoundedCache(self.tokenizer.cache, WORD_CACHE_SIZE)

    @functools.cached_property
    def pixel_preparer(self) -> PixelPreparer:
        return clip_pixel_preparer(self.config)

    def preparer(self, modality: str) -> PixelPreparer | None:
        return self.pixel_preparer if modality == "image" else None

    def _forward(self, modality: str, items: Sequence) -> torch.Tensor:
        if modality == "text":
            return self.model.encode_text(self.tokenizer(list(items)).to(self.device))
        return self.model.encode_image(self.pixel_preparer.normalised(items, self.device))
