"""The `Encoder` protocol, the machinery every frozen encoder shares, and the registry.

Every encoder (CLIP, CLAP, ULIP) differs only in how it loads its weights and how it turns one
batch of decoded inputs into embeddings. Everything else -- splitting work into batches,
`torch.inference_mode`, picking a device, mixed precision on GPU, L2-normalised float32 output,
rejecting unusable requests, loading weights lazily and only once -- lives in `BaseEncoder`, so
the encoders cannot drift apart on it.

Writing an encoder (the contract `cmcr.models.encoders.ulip` follows too):

    @dataclass(frozen=True)
    class FooConfig(EncoderConfig):          # every setting a profile may fix or a caller override
        width: int = 512

    class FooEncoder(BaseEncoder):
        name = "foo"                          # registers the class under this name
        modalities = ("text", "image")        # or leave it to cmcr.models.registry.ENCODERS
        profiles = {"full": FooConfig(dim=512), "tiny": FooConfig(dim=512, width=8)}

        def _load(self) -> None: ...          # build the model on self.device (called once)
        def _forward(self, modality, items) -> torch.Tensor: ...   # (len(items), dim)
        def preparer(self, modality): ...     # optional: model-free work for DataLoader workers

and add it to `cmcr.models.registry.ENCODERS`. `_forward` runs under `torch.inference_mode()` and the
configured autocast; it may return any float dtype and need not normalise.

Constructing an encoder is cheap (no weights, no downloads): the app can build every encoder at
start-up and pay for a model only when a request needs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from cmcr.errors import CheckpointError, InputError
from cmcr.data.media.text import bound_text
from cmcr.hub import download_file
from cmcr.models.registry import ENCODERS

ENCODER_MODULES: dict[str, str] = {name: info.module for name, info in ENCODERS.items()}
PROFILES: tuple[str, ...] = ("full", "tiny")
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

_ENCODER_CLASSES: dict[str, type[BaseEncoder]] = {}


@runtime_checkable
class Encoder(Protocol):
    """What the rest of cmcr relies on (docs/architecture.md)."""

    name: str
    dim: int
    modalities: tuple[str, ...]

    def embed(self, modality: str, batch: Sequence) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderConfig:
    """Settings shared by every encoder; encoders subclass it with their architecture fields.

    dtype "auto" means bfloat16 autocast on CUDA and plain float32 on CPU, where reduced
    precision is slower, not faster. `cache_dir` and `endpoint` go to `cmcr.hub.download_file`
    for checkpoints fetched from the Hub (None: the standard HF cache and HF_ENDPOINT).
    """

    dim: int = 512
    batch_size: int = 32
    dtype: str = "auto"
    cache_dir: str | None = None
    endpoint: str | None = None


def _text_item(item: Any) -> str:
    if not isinstance(item, str):
        raise InputError(f"Text items must be strings, not {type(item).__name__}.")
    return item


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`None` picks the GPU when there is one, so the same call works on laptops and servers."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_autocast_dtype(dtype: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a config's `dtype` on a device; None means run in float32."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if dtype not in DTYPES:
        raise InputError(f"Unknown dtype {dtype!r}; use 'auto' or one of {sorted(DTYPES)}.")
    return None if DTYPES[dtype] == torch.float32 else DTYPES[dtype]


class BaseEncoder(ABC):
    """Batching, precision, normalisation and lazy loading around an encoder's `_forward`."""

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]]
    profiles: ClassVar[Mapping[str, EncoderConfig]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if "modalities" not in cls.__dict__:  # ours are written once, in the registry
                cls.modalities = ENCODERS[cls.name].modalities
            _ENCODER_CLASSES[cls.name] = cls

    def __init__(self, config: EncoderConfig, device: str | torch.device | None = None) -> None:
        self.config = config
        self.dim = config.dim
        self.device = resolve_device(device)
        self.autocast_dtype = resolve_autocast_dtype(config.dtype, self.device)
        self._load_lock = threading.Lock()
        self._loaded = False

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> BaseEncoder:
        """Load the weights now (otherwise the first `embed` does); safe to call from threads."""
        with self._load_lock:
            if not self._loaded:
                self._load()
                self._loaded = True
        return self

    def embed(self, modality: str, batch: Sequence, batch_size: int | None = None) -> np.ndarray:
        """Embed `batch` in slices of `batch_size`; float32 (len(batch), dim) unit rows."""
        self._check_request(modality, batch)
        if modality == "text":  # bounded before any tokenizer: linear time whatever a caller sends
            batch = [bound_text(_text_item(item)).text for item in batch]
        size = self.config.batch_size if batch_size is None else batch_size
        if not isinstance(size, int) or size < 1:
            raise InputError(f"batch_size must be a positive integer, got {size!r}.")
        self.load()
        chunks = [self._embed_chunk(modality, batch[i : i + size]) for i in range(0, len(batch), size)]
        return np.concatenate(chunks, axis=0)

    def preparer(self, modality: str) -> Callable[[Sequence], Any] | None:
        """The model-free, picklable step that turns decoded items into `embed`'s input (images:
        resize and crop to uint8), so it can run where items are decoded -- DataLoader workers,
        thread pools -- instead of in the process that holds the model. None: nothing to do."""
        return None

    def prepare(self, modality: str, batch: Sequence) -> Any:
        """`preparer(modality)` applied to `batch`; `embed` takes the result like the raw items
        (and gives the same embeddings)."""
        self._check_request(modality, batch)
        prepare = self.preparer(modality)
        return list(batch) if prepare is None else prepare(batch)

    def _check_request(self, modality: str, batch: Sequence) -> None:
        if modality not in self.modalities:
            raise InputError(
                f"The {self.name} encoder embeds {', '.join(self.modalities)}, not {modality!r}."
            )
        if isinstance(batch, (str, bytes)):
            raise InputError("Pass a list of items to embed, not a single string.")
        if not hasattr(batch, "__len__") or not hasattr(batch, "__getitem__"):
            raise InputError(f"Pass a list or array of items to embed, not {type(batch).__name__}.")
        if len(batch) == 0:
            raise InputError(f"Nothing to embed: the {modality} batch is empty.")

    def _embed_chunk(self, modality: str, items: Sequence) -> np.ndarray:
        with torch.inference_mode(), self._autocast():
            output = self._forward(modality, items)
        if output.ndim != 2 or output.shape != (len(items), self.dim):
            raise CheckpointError(
                f"The {self.name} encoder produced {tuple(output.shape)} for {len(items)} "
                f"{modality} items; expected ({len(items)}, {self.dim}). Check its config."
            )
        return F.normalize(output.float(), dim=-1).cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @abstractmethod
    def _load(self) -> None:
        """Build the model with its weights on `self.device`, in eval mode."""

    @abstractmethod
    def _forward(self, modality: str, items: Sequence) -> torch.Tensor:
        """Embed one batch (at most `batch_size` items) of an accepted modality: (N, dim)."""


def encoder_class(name: str) -> type[BaseEncoder]:
    """Import the encoder's module on first use: CLAP and ULIP pull in heavy libraries."""
    if name not in ENCODER_MODULES:
        raise InputError(f"Unknown encoder {name!r}; choose one of {sorted(ENCODER_MODULES)}.")
    importlib.import_module(ENCODER_MODULES[name])
    return _ENCODER_CLASSES[name]


def encoder_config(name: str, profile: str = "full", **overrides: Any) -> EncoderConfig:
    """The profile's config with `overrides` applied to its fields (like open_clip's factory)."""
    cls = encoder_class(name)
    if profile not in cls.profiles:
        raise InputError(f"Unknown profile {profile!r} for {name}; choose one of {sorted(cls.profiles)}.")
    config = cls.profiles[profile]
    fields = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InputError(f"Unknown {name} settings {unknown}; valid settings are {sorted(fields)}.")
    return dataclasses.replace(config, **overrides)


def build_encoder(
    name: str, profile: str = "full", device: str | torch.device | None = None, **overrides: Any
) -> BaseEncoder:
    """Build a lazily-loaded encoder; `overrides` replace fields of the profile's config."""
    return encoder_class(name)(encoder_config(name, profile, **overrides), device=device)


_NUMPY_SAFE_GLOBALS = [np.dtype, np.core.multiarray.scalar, *{type(np.dtype(c)) for c in "fdilqb?"}]


def download(
    config: EncoderConfig,
    repo_id: str,
    filename: str,
    revision: str | None = None,
    repo_type: str = "model",
) -> Path:
    """Fetch one checkpoint file through cmcr.hub (cache fallback, clear offline errors), honouring
    the encoder's `cache_dir` / `endpoint` overrides."""
    return download_file(
        repo_id,
        filename,
        revision=revision,
        repo_type=repo_type,
        cache_dir=config.cache_dir,
        endpoint=config.endpoint,
    )


def load_torch_file(path: str | Path) -> Any:
    """`torch.load` with `weights_only=True` (plus numpy scalars, which training scripts store
    next to weights), turning every failure into a CheckpointError that names the file."""
    try:
        with torch.serialization.safe_globals(_NUMPY_SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"Checkpoint file not found: {path}") from error
    except Exception as error:  # noqa: BLE001 - pickle/zip errors have no common base class
        raise CheckpointError(f"Cannot read checkpoint {path}: {error}") from error
