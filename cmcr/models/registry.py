"""The facts every layer reads: which encoders exist and what they embed, and the named pretrained
spaces (the official C-MCR / Ex-MCR projectors, pinned file by file).

Encoders: `ENCODERS` says, once, which modalities each frozen encoder embeds, its output width,
where its class lives and which weights it loads by default; `MODALITY_ENCODERS` is the inverse,
preferred encoder first (text and images go through CLIP, the Ex-MCR base, so they need no head).

Pretrained spaces, in the spirit of open_clip's pretrained registry: a short name stands for
weights whose origin is written down once, here: the repository, the commit, the path and the git
blob id of each file, and the licence and credit that travel with them.
`UnifiedSpace.from_pretrained("official-ex-mcr")` downloads those files
(`cmcr.hub.download_release_file`: cached, verified against the blob id), imports them with the
official-layout reader and records this provenance in the space's config. The official projectors
are git files in the authors' GitHub repositories, not Hub repos, so they are fetched from the
raw-file host; `CMCR_RAW_ENDPOINT` points at a mirror of it (the tests point it at a loopback
server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

MODALITIES = ("text", "image", "audio", "points")


@dataclass(frozen=True)
class EncoderInfo:
    """One frozen encoder: what it embeds, how wide, where its class lives, what it loads."""

    name: str
    modalities: tuple[str, ...]
    dim: int
    module: str
    weights: str
    hub_model: str | None  # the model repo a card names as base_model (ULIP's weights sit in a dataset repo)


ENCODERS: dict[str, EncoderInfo] = {
    info.name: info for info in (
        EncoderInfo("clip", ("text", "image"), 512, "cmcr.models.encoders.clip",
                    "open_clip ViT-B-32, pretrained 'openai' (= openai/clip-vit-base-patch32)",
                    "openai/clip-vit-base-patch32"),
        EncoderInfo("clap", ("text", "audio"), 512, "cmcr.models.encoders.clap",
                    "laion_clap 630k-fusion-best.pt (lukewys/laion_clap), enable_fusion=True", "lukewys/laion_clap"),
        EncoderInfo("ulip", ("points", "image"), 512, "cmcr.models.encoders.ulip",
                    "ULIP-2 PointBERT pointbert_ULIP-2.pt (SFXX/ulip)", None),
    )
}
ENCODER_MODALITIES: dict[str, tuple[str, ...]] = {name: info.modalities for name, info in ENCODERS.items()}
MODALITY_ENCODERS: dict[str, tuple[str, ...]] = {
    modality: tuple(name for name, info in ENCODERS.items() if modality in info.modalities) for modality in MODALITIES
}

RAW_ENDPOINT = "https://raw.githubusercontent.com"
ENV_RAW_ENDPOINT = "CMCR_RAW_ENDPOINT"

EXMCR_REPO, EXMCR_COMMIT = "MCR-PEFT/Ex-MCR", "0f2baa5cd002b646a002ee0fe045ab05271be487"
CMCR_REPO, CMCR_COMMIT = "MCR-PEFT/C-MCR", "038dec166e6f7a1900b383040f9265c05cf8dcfd"
LICENSE = "CC-BY-4.0"
LICENSE_URL = "https://creativecommons.org/licenses/by/4.0/"
EXMCR_PAPER = "https://arxiv.org/abs/2310.08884"
CMCR_PAPER = "https://arxiv.org/abs/2305.14381"
# The official demos score softmax(10 · cos); the official spaces carry that scale.
OFFICIAL_LOGIT_SCALE = 10.0
# What the official projectors were trained on: the heads expect embeddings from exactly these,
# our default encoders.
OFFICIAL_ENCODERS = {name: {"weights": info.weights, "profile": "full"} for name, info in ENCODERS.items()}


def raw_endpoint() -> str:
    """The raw-file host, or the mirror `CMCR_RAW_ENDPOINT` names."""
    return (os.environ.get(ENV_RAW_ENDPOINT) or RAW_ENDPOINT).rstrip("/")


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a git repository at one commit, with the blob id that proves its content."""

    repo: str
    commit: str
    path: str
    blob: str
    leaf: str | None = None  # the leaf an Ex-MCR head maps (its file does not say)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def url(self, endpoint: str | None = None) -> str:
        return f"{(endpoint or raw_endpoint()).rstrip('/')}/{self.repo}/{self.commit}/{self.path}"

    def page(self) -> str:
        """Where a person can look at the file."""
        return f"https://github.com/{self.repo}/blob/{self.commit}/{self.path}"


@dataclass(frozen=True)
class PretrainedSpace:
    """A space that exists as release files: how to build it and whose work it is."""

    name: str
    method: str
    files: tuple[ReleaseFile, ...]
    title: str
    paper: str
    credit: str
    license: str = LICENSE
    encoders: dict = field(default_factory=lambda: dict(OFFICIAL_ENCODERS))
    logit_scale: float = OFFICIAL_LOGIT_SCALE

    def provenance(self) -> dict:
        """Plain data for config.json, the model card and the app's header line."""
        return {
            "name": self.name,
            "title": self.title,
            "license": self.license,
            "license_url": LICENSE_URL,
            "credit": self.credit,
            "paper": self.paper,
            "files": [{"repo": f.repo, "commit": f.commit, "path": f.path, "blob": f.blob, "url": f.page()}
                      for f in self.files],
        }


_EXMCR_CREDIT = "the Ex-MCR authors (Zehan Wang et al., MCR-PEFT)"
_CMCR_CREDIT = "the C-MCR authors (Zehan Wang et al., MCR-PEFT)"

PRETRAINED: dict[str, PretrainedSpace] = {
    space.name: space for space in (
        PretrainedSpace(
            "official-ex-mcr", "ex-mcr",
            (ReleaseFile(EXMCR_REPO, EXMCR_COMMIT, "checkpoints/ex_clap.pt", "f85c9a202324d9374c71b032fd9f42a9c818cf87",
                         leaf="clap"),
             ReleaseFile(EXMCR_REPO, EXMCR_COMMIT, "checkpoints/ex_ulip.pt", "50b8eff07c85a0cd1084de54537282deffe04567",
                         leaf="ulip")),
            "the official Ex-MCR release (CLAP and ULIP mapped into CLIP)", EXMCR_PAPER, _EXMCR_CREDIT),
        PretrainedSpace(
            "official-c-mcr-clap-clip", "c-mcr",
            (ReleaseFile(CMCR_REPO, CMCR_COMMIT, "checkpoints/clap_clip.pt",
                         "61099f73eabf34a1f8da2ab11ffdd87db95b20b3"),),
            "the official C-MCR release, CLAP–CLIP (audio ↔ image and text)", CMCR_PAPER, _CMCR_CREDIT),
        PretrainedSpace(
            "official-c-mcr-ulip-clip", "c-mcr",
            (ReleaseFile(CMCR_REPO, CMCR_COMMIT, "checkpoints/ulip_clip.pt",
                         "350a714d9eef411985e353ba0306b885196f2610"),),
            "the official C-MCR release, ULIP–CLIP (3D ↔ image and text)", CMCR_PAPER, _CMCR_CREDIT),
    )
}
# Names that stand for several spaces served side by side (C-MCR connects one pair per space).
GROUPS: dict[str, tuple[str, ...]] = {"official-c-mcr": ("official-c-mcr-clap-clip", "official-c-mcr-ulip-clip")}
DEFAULT_SPACE = "official-ex-mcr"


def list_pretrained() -> list[str]:
    """Every name `from_pretrained` and the app accept besides folders and Hub repo ids."""
    return sorted([*PRETRAINED, *GROUPS])


def is_pretrained_name(name: object) -> bool:
    return isinstance(name, str) and (name in PRETRAINED or name in GROUPS)
