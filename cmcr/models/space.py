"""UnifiedSpace: trained heads plus the config that says how to use them (public API).

A space is a folder of `config.json`, `model.safetensors` and a model card (`space_format` says what
each holds), so loading one from the Hub never unpickles anything. It is an `nn.Module` (`.to`,
`.eval`, `.state_dict` work as everywhere in PyTorch) and a `huggingface_hub.PyTorchModelHubMixin`:
`save_pretrained`, `push_to_hub` and `from_pretrained(repo, revision=, token=, cache_dir=,
local_files_only=)` behave as they do for any Hub model. Loading is ours, not the mixin's default,
because it must refuse what it cannot use with our error types (a missing repo, a damaged file, a
config that does not describe its weights), resolve the pretrained names of `cmcr.models.registry`,
and build the heads from their specs on the meta device before the weights back them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin
from safetensors.torch import save_file
from torch import nn

from cmcr.atomic import replace_folder, replacing, write_json
from cmcr.errors import CheckpointError, InputError
from cmcr.hub import download_release_file, download_space
from cmcr.models.card import PIPELINE_TAG, TAGS, space_card
from cmcr.models.heads import LAYOUT_EXMCR, ExMCRHead, build_head, load_official
from cmcr.models.registry import (ENCODER_MODALITIES, GROUPS, OFFICIAL_LOGIT_SCALE, PRETRAINED, is_pretrained_name,
                                  list_pretrained)
from cmcr.models.space_format import (CARD_NAME, CONFIG_NAME, DEFAULT_LOGIT_SCALE, FORMAT_VERSION, WEIGHTS_NAME,
                                      check_config, check_shape, config_heads, file_tensors, head_state,
                                      read_config, read_weights)

# Rows projected per step: bounds host/GPU memory when a caller hands us a 1M-row memory map.
CHUNK_ROWS = 65536
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")

Features = np.ndarray | torch.Tensor


class UnifiedSpace(nn.Module, PyTorchModelHubMixin, library_name="cmcr", pipeline_tag=PIPELINE_TAG,
                   tags=list(TAGS)):
    """Frozen heads that map encoder embeddings into one shared unit sphere.

    Ex-MCR: `config["base"]` (CLIP) passes through unprojected and every leaf has a head into
    base space. C-MCR: the two encoders of one connection each have a head.
    """

    def __init__(self, config: dict, heads: dict[str, nn.Module] | None = None) -> None:
        """`heads` None: fresh heads built from the config's specs (weights still to be loaded)."""
        super().__init__()
        self.config = copy.deepcopy(config)
        heads = heads if heads is not None else {name: build_head(spec) for name, spec in config_heads(config).items()}
        check_config(self.config, heads)
        self.heads = nn.ModuleDict(heads)
        self.eval()
        self.requires_grad_(False)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        method: str,
        heads: dict[str, nn.Module],
        *,
        base: str | None = None,
        encoders: dict[str, dict] | None = None,
        hyperparameters: dict | None = None,
        metrics: dict | None = None,
        source: str | None = None,
        logit_scale: float | None = None,
    ) -> "UnifiedSpace":
        """Assemble a space from trained heads (each carrying `.spec`, as heads.py builds them).

        `encoders` adds per-encoder facts worth keeping with the weights, e.g.
        `{"clap": {"checkpoint": "630k-fusion-best.pt", "revision": "abc123"}}`. `logit_scale`
        is the scale its zero-shot probabilities use (1/τ of training; None: the default).
        """
        extra = encoders or {}
        names = ([base] if base else []) + sorted(heads)
        dim = next(iter(heads.values())).spec["dim_out"] if heads else 0
        config = {
            "format_version": FORMAT_VERSION,
            "method": method,
            "base": base,
            "leaves": sorted(heads),
            "dim": dim,
            "encoders": {
                name: {
                    "dim": heads[name].spec["dim_in"] if name in heads else dim,
                    "modalities": list(ENCODER_MODALITIES.get(name, ())),
                    **extra.get(name, {}),
                }
                for name in names
            },
            "heads": {name: dict(head.spec) for name, head in sorted(heads.items())},
            "hyperparameters": dict(hyperparameters or {}),
            "metrics": dict(metrics or {}),
        }
        if source:
            config["source"] = source
        if logit_scale is not None:
            config["logit_scale"] = float(logit_scale)
        return cls(config, heads)

    @classmethod
    def from_official(
        cls, paths: str | Path | Sequence[str | Path], leaves: Sequence[str] | None = None
    ) -> "UnifiedSpace":
        """A space from official release files: one C-MCR pair file (`ulip_clip.pt`,
        `clap_clip.pt`) gives a C-MCR space; Ex-MCR leaf files (`ex_clap.pt`, `ex_ulip.pt`) give
        an Ex-MCR space over the CLIP base. `leaves` names the leaf of each Ex-MCR file."""
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        leaves = list(leaves) if leaves is not None else [None] * len(paths)
        if len(leaves) != len(paths):
            raise CheckpointError(f"got {len(paths)} files but {len(leaves)} leaf names")
        imported = [load_official(path, leaf) for path, leaf in zip(paths, leaves)]
        names = ", ".join(Path(p).name for p in paths)
        if all(item.layout == LAYOUT_EXMCR for item in imported):
            heads = {name: head for item in imported for name, head in item.heads.items()}
            if len(heads) != len(imported):
                raise CheckpointError(f"two Ex-MCR files map the same leaf: {names}")
            return cls.build("ex-mcr", heads, base="clip", source=f"official: {names}",
                             logit_scale=OFFICIAL_LOGIT_SCALE)
        if len(imported) != 1:
            raise CheckpointError(
                f"a C-MCR space comes from exactly one official pair file, got: {names}"
            )
        return cls.build("c-mcr", imported[0].heads, source=f"official: {names}",
                         logit_scale=OFFICIAL_LOGIT_SCALE)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, revision: str | None = None, *,
                        token: str | bool | None = None, cache_dir: str | Path | None = None,
                        local_files_only: bool = False, **_: Any) -> "UnifiedSpace":
        """Load a space by pretrained name (`official-ex-mcr`, see `cmcr.models.registry`), from a
        local folder, or from a Hub repo id (`owner/name`) at `revision`, with the Hub client's
        `token`, `cache_dir` and `local_files_only` meanings."""
        name = str(pretrained_model_name_or_path)
        if is_pretrained_name(name):
            if revision is not None:
                raise InputError(f"revision={revision!r} applies to Hub repo ids; {name} is pinned")
            return cls.from_release(name)
        path = Path(pretrained_model_name_or_path).expanduser()
        if path.is_dir():
            if revision is not None:
                raise InputError(f"revision={revision!r} applies to Hub repo ids, not the folder {path}")
            return cls._load_folder(path)
        if path.exists():
            raise CheckpointError(
                f"{path} is a file; a space is a folder holding {CONFIG_NAME} and {WEIGHTS_NAME}"
            )
        if not _REPO_ID.fullmatch(name):
            raise CheckpointError(
                f"{name!r} is neither an existing folder nor a Hub repo id (owner/name) nor a "
                f"pretrained name ({', '.join(list_pretrained())})"
            )
        folder = download_space(name, revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
        return cls._load_folder(Path(folder))

    @classmethod
    def from_release(cls, name: str) -> "UnifiedSpace":
        """A pretrained space built from its pinned release files (downloaded once, verified),
        with its provenance, licence and credit recorded in `config["provenance"]`."""
        if name in GROUPS:
            raise InputError(f"{name} stands for {len(GROUPS[name])} spaces ({', '.join(GROUPS[name])}); load "
                             f"one of them, or all with cmcr.load_spaces({name!r})")
        entry = PRETRAINED[name]
        paths = [download_release_file(file) for file in entry.files]
        imported = cls.from_official(paths, leaves=[file.leaf for file in entry.files])
        config = copy.deepcopy(imported.config)
        config["provenance"] = entry.provenance()
        config["source"] = f"{name}: {entry.title}"
        config["logit_scale"] = entry.logit_scale
        for encoder, facts in config["encoders"].items():
            facts.update(entry.encoders.get(encoder, {}))
        return cls(config, dict(imported.heads))

    @classmethod
    def _load_folder(cls, folder: Path) -> "UnifiedSpace":
        config = read_config(folder / CONFIG_NAME)
        tensors = read_weights(folder / WEIGHTS_NAME)
        try:  # on "meta": sizes a config claims cost nothing until the weights file backs them
            with torch.device("meta"):
                heads = {name: build_head(spec) for name, spec in config_heads(config).items()}
        except (RuntimeError, TypeError, OverflowError) as exc:  # torch's words for sizes past int64
            raise CheckpointError(f"{folder / CONFIG_NAME} describes heads that cannot be built: "
                                  f"{str(exc).splitlines()[0]}") from exc
        for name, head in heads.items():
            try:
                head.load_state_dict(head_state(tensors, name), strict=True, assign=True)
                head.float()  # assign keeps the file's dtype; the heads compute in float32 as built
            except RuntimeError as exc:
                raise CheckpointError(f"{folder / WEIGHTS_NAME} does not fit head {name!r}: {exc}") from exc
        strays = sorted(k for k in tensors if k.split(".", 1)[0] not in heads)
        if strays:
            raise CheckpointError(f"{folder / WEIGHTS_NAME} has tensors of no head: {strays[:10]}")
        return cls(config, heads)

    # --- saving -----------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | Path, *, config: dict | None = None, repo_id: str | None = None,
                        push_to_hub: bool = False, model_card_kwargs: dict | None = None,
                        **push_to_hub_kwargs: Any) -> Path | str:
        """Write config.json, model.safetensors and, where none is there yet, the model card
        (`model_card_kwargs` go to `cmcr.models.card.space_card`).

        A new folder appears whole or not at all (built beside it, then renamed); in an existing
        folder (which may hold a richer card) each file is replaced atomically. With `push_to_hub`,
        the folder is then pushed as the mixin does and the commit URL returned.
        """
        if config is not None and config != self.config:
            raise InputError("a space's config is its own; build a new UnifiedSpace to change it")
        directory = Path(save_directory)
        card = self.generate_model_card(**(model_card_kwargs or {}))
        if directory.is_dir():
            self._write_files(directory, card if not (directory / CARD_NAME).exists() else None)
        else:
            replace_folder(directory, lambda staging: self._write_files(staging, card))
        if push_to_hub:
            return self.push_to_hub(repo_id or directory.name, model_card_kwargs=model_card_kwargs,
                                    **push_to_hub_kwargs)
        return directory

    def _write_files(self, folder: Path, card: ModelCard | None) -> None:
        with replacing(folder / WEIGHTS_NAME) as weights:
            save_file(file_tensors(self.heads), str(weights), metadata={"format": "pt"})
        write_json(folder / CONFIG_NAME, self.config)
        if card is not None:
            card.save(folder / CARD_NAME)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The space's card (the mixin calls this for `save_pretrained` and `push_to_hub`)."""
        return space_card(self.config, **kwargs)

    # --- use --------------------------------------------------------------------------------

    @property
    def method(self) -> str:
        return self.config["method"]

    @property
    def base(self) -> str | None:
        return self.config["base"]

    @property
    def encoders(self) -> list[str]:
        """Encoders this space can project, base first."""
        return list(self.config["encoders"])

    @property
    def dim(self) -> int:
        return self.config["dim"]

    @property
    def logit_scale(self) -> float:
        """Zero-shot probabilities are softmax(logit_scale · cos): the scale config.json names
        (10 for the official spaces, 1/τ for ours), or DEFAULT_LOGIT_SCALE for spaces saved
        before the field existed."""
        return float(self.config.get("logit_scale", DEFAULT_LOGIT_SCALE))

    @property
    def provenance(self) -> dict | None:
        """Where released weights came from (source files, licence, credit); None for our own."""
        return self.config.get("provenance")

    def modalities(self, encoder: str) -> list[str]:
        return list(self.config["encoders"][encoder]["modalities"])

    def forward(self, encoder: str, modality: str, features: Features) -> Features:
        return self.project(encoder, modality, features)

    def project(self, encoder: str, modality: str, features: Features) -> Features:
        """Map embeddings of `encoder` into the space: unit rows of width `space.dim`.

        numpy in → numpy float32 out; tensor in → tensor out (its device and dtype). A single
        vector (D,) gives a single vector back.
        """
        self._check_route(encoder, modality)
        in_dim = self.config["encoders"][encoder]["dim"]
        check_shape(features, in_dim, f"{encoder}/{modality}")
        rows = features.reshape(1, -1) if features.ndim == 1 else features
        if isinstance(rows, np.ndarray):
            out = self._project_array(encoder, rows)
        else:
            out = self._project_tensor(encoder, rows).to(device=features.device, dtype=features.dtype)
        return out.reshape(-1) if features.ndim == 1 else out

    def _project_array(self, encoder: str, rows: np.ndarray) -> np.ndarray:
        """Chunk by chunk, so a memory-mapped input is never copied whole into RAM."""
        out = np.empty((rows.shape[0], self.dim), dtype=np.float32)
        for start in range(0, rows.shape[0], CHUNK_ROWS):
            chunk = torch.from_numpy(np.ascontiguousarray(rows[start:start + CHUNK_ROWS], np.float32))
            out[start:start + CHUNK_ROWS] = self._project_chunk(encoder, chunk, start).cpu().numpy()
        return out

    def _project_tensor(self, encoder: str, rows: torch.Tensor) -> torch.Tensor:
        if not rows.shape[0]:
            return rows.new_zeros((0, self.dim))
        return torch.cat([
            self._project_chunk(encoder, rows[start:start + CHUNK_ROWS], start)
            for start in range(0, rows.shape[0], CHUNK_ROWS)
        ])

    @torch.no_grad()
    def _project_chunk(self, encoder: str, chunk: torch.Tensor, first_row: int) -> torch.Tensor:
        chunk = chunk.to(device=self._device(), dtype=torch.float32)
        norms = chunk.norm(dim=1)  # NaN or inf in a row makes its norm NaN or inf
        usable = torch.isfinite(norms) & (norms > 0)
        if not bool(usable.all()):
            row = first_row + int(torch.nonzero(~usable)[0])
            raise InputError(
                f"{encoder} features row {row} is not usable (NaN, infinite or all zeros); "
                "pass embeddings straight from the encoder"
            )
        unit = chunk / norms[:, None]
        return unit if encoder not in self.heads else self.heads[encoder](unit)

    def _device(self) -> torch.device:
        first = next(self.heads.parameters(), None)
        return first.device if first is not None else torch.device("cpu")

    def _check_route(self, encoder: str, modality: str) -> None:
        if encoder not in self.config["encoders"]:
            raise InputError(f"this space has no encoder {encoder!r}; it projects {self.encoders}")
        accepted = self.modalities(encoder)
        if modality not in accepted:
            raise InputError(f"encoder {encoder!r} embeds {accepted}, not {modality!r}")

    def __repr__(self) -> str:
        return (
            f"UnifiedSpace(method={self.method!r}, base={self.base!r}, "
            f"leaves={self.config['leaves']}, dim={self.dim})"
        )


TINY_SEED = 0


def tiny_space(encoders: Mapping[str, Any]) -> UnifiedSpace:
    """An untrained Ex-MCR space over the CLIP base, with seeded random leaf heads sized to the given
    encoders: what the tiny profile serves, so every code path runs offline (results mean nothing)."""
    base_dim = encoders["clip"].dim
    with torch.random.fork_rng():  # seeded, without disturbing anyone else's random stream
        torch.manual_seed(TINY_SEED)
        heads = {leaf: ExMCRHead(dim_in=encoders[leaf].dim, hidden=2 * base_dim, dim_out=base_dim).eval()
                 for leaf in ("clap", "ulip")}
    return UnifiedSpace.build("ex-mcr", heads, base="clip", source="untrained tiny space")


def load_spaces(spec: str | Path, revision: str | None = None) -> dict[str, UnifiedSpace]:
    """Every space a name stands for, by a label to show: a pretrained name or group
    (`official-c-mcr` is two spaces), a space folder, a folder of space folders (what C-MCR training
    writes: one per connection), a Hub repo id, or several of these separated by commas."""
    parts = [part.strip() for part in str(spec).split(",") if part.strip()]
    if not parts:
        raise InputError("Name a space: a pretrained name, a folder or a Hub repo id.")
    if len(parts) > 1 and revision is not None:
        raise InputError("A revision applies to one Hub repo id, not to a list of spaces.")
    spaces: dict[str, UnifiedSpace] = {}
    for part in parts:
        for label, space in _spaces_of(part, revision).items():
            if label in spaces:
                raise InputError(f"{label} is named twice in {spec!r}")
            spaces[label] = space
    return spaces


def _spaces_of(part: str, revision: str | None) -> dict[str, UnifiedSpace]:
    if part in GROUPS:
        return {name: UnifiedSpace.from_release(name) for name in GROUPS[part]}
    folder = Path(part).expanduser()
    if folder.is_dir() and not (folder / CONFIG_NAME).exists():
        members = sorted(child for child in folder.iterdir() if (child / CONFIG_NAME).is_file())
        if members:
            return {f"{part.rstrip('/')}/{child.name}": UnifiedSpace.from_pretrained(child) for child in members}
    return {part: UnifiedSpace.from_pretrained(part, revision=revision)}
