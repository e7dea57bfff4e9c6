"""CLIP (text, image) through open_clip, with the weights fetched by `cmcr.hub`.

open_clip can download weights by itself, but then it bypasses our Hub handling (offline
errors, revisions, the test Hub). So we read the Hub repo and file name from open_clip's own
pretrained registry (for `ViT-B-32`/`openai`: `timm/vit_base_patch32_clip_224.openai`,
`open_clip_pytorch_model.bin`), fetch that file with `cmcr.hub.download_file`, build the model
from open_clip's config-driven classes and load the file with open_clip's checkpoint loader.
The tokenizer is open_clip's `SimpleTokenizer`, whose BPE vocabulary ships inside the package.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from cmcr.encoders.base import BaseEncoder, download
from cmcr.encoders.profiles import CLIP_PROFILES, ClipConfig
from cmcr.errors import CheckpointError, InputError


def clip_model_cfg(config: ClipConfig) -> dict[str, Any]:
    """The open_clip architecture dict, with QuickGELU when the pretrained tag was trained so."""
    import open_clip

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
    """(repo_id, filename) of open_clip's Hub copy of a pretrained tag."""
    import open_clip
    from open_clip.constants import HF_WEIGHTS_NAME

    hf_hub = open_clip.get_pretrained_cfg(model_name, tag).get("hf_hub")
    if not hf_hub:
        raise InputError(f"open_clip lists no Hugging Face Hub weights for {model_name!r} / {tag!r}.")
    repo_id, filename = _split_hub_path(hf_hub)
    return repo_id, filename or HF_WEIGHTS_NAME


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
    repo_id, filename = pretrained_hub_file(config.model_name, config.pretrained)
    return download(config, repo_id, filename, config.revision)


def build_clip_model(config: ClipConfig) -> torch.nn.Module:
    """An open_clip CLIP with the configured weights (or seeded random ones), in eval mode."""
    import open_clip

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


class ClipEncoder(BaseEncoder):
    """CLIP image and text towers; images go through open_clip's eval preprocessing."""

    name: ClassVar[str] = "clip"
    modalities: ClassVar[tuple[str, ...]] = ("text", "image")
    profiles: ClassVar[dict[str, ClipConfig]] = CLIP_PROFILES

    def _load(self) -> None:
        import open_clip

        self.model = build_clip_model(self.config).to(self.device)
        preprocess = self._preprocess_cfg()
        self.preprocess = open_clip.image_transform(
            self.model.visual.image_size, is_train=False, **preprocess
        )
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.model.context_length)

    def _preprocess_cfg(self) -> dict[str, Any]:
        import open_clip

        pretrained_cfg = {}
        if self.config.pretrained:
            pretrained_cfg = open_clip.get_pretrained_cfg(self.config.model_name, self.config.pretrained)
        keys = ("mean", "std", "interpolation", "resize_mode")
        return {key: pretrained_cfg[key] for key in keys if key in pretrained_cfg}

    def _forward(self, modality: str, items: Sequence) -> torch.Tensor:
        if modality == "text":
            return self.model.encode_text(self.tokenizer(list(items)).to(self.device))
        pixels = torch.stack([self.preprocess(_rgb(image)) for image in items]).to(self.device)
        return self.model.encode_image(pixels)


def _rgb(image: Any) -> Any:
    """PIL images only: cmcr.media has already decoded and validated the file."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise InputError(f"CLIP embeds PIL images; got {type(image).__name__}. Load files with cmcr.media.")
    return image if image.mode == "RGB" else image.convert("RGB")
