"""Projector heads and the import of official C-MCR / Ex-MCR checkpoints.

Module attribute names are part of the on-disk format: they reproduce the official key layouts
(docs/architecture.md, "Spaces") so an official state dict loads into our modules with strict key checking, and so our
own safetensors files stay readable by anyone who knows the official code.

Every head is built from a JSON-serialisable spec (`build_head`), and reports that spec back
(`head.spec`), which is how a trained space rebuilds its heads from config.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cmcr.errors import CheckpointError

KIND_CMCR = "c-mcr"
KIND_CMCR_ONE_LAYER = "c-mcr-one-layer"
KIND_EXMCR = "ex-mcr"


class ProjectionBlock(nn.Module):
    """Linear→BN→ReLU→Linear→BN: the official two-layer block (keys `net{1,2}.{0,1}.*`).

    Returns unnormalised rows: it is a building block, stacked inside heads.
    """

    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.net1 = nn.Sequential(nn.Linear(dim_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.net2 = nn.Sequential(nn.Linear(hidden, dim_out), nn.BatchNorm1d(dim_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net2(self.net1(x))


class CMCRProjector(ProjectionBlock):
    """One member of a C-MCR projector pair (official `CLAPCLIP_Head.Head_{A,B}`)."""

    def __init__(self, dim_in: int = 512, hidden: int = 1024, dim_out: int = 512) -> None:
        super().__init__(dim_in, hidden, dim_out)
        self.spec = {"kind": KIND_CMCR, "dim_in": dim_in, "hidden": hidden, "dim_out": dim_out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(super().forward(x), dim=-1)


class OneLayerProjector(nn.Module):
    """Linear→BN→ReLU (official `ULIPCLIP_Head.Head_{A,B}`, keys `net.{0,1}.*`)."""

    def __init__(self, dim_in: int = 512, dim_out: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim_in, dim_out), nn.BatchNorm1d(dim_out), nn.ReLU())
        self.spec = {"kind": KIND_CMCR_ONE_LAYER, "dim_in": dim_in, "dim_out": dim_out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x), dim=-1)


class TwoBlockMLP(nn.Module):
    """Two stacked blocks (official Ex-MCR `Projector`, keys `mlp{1,2}.net{1,2}.{0,1}.*`)."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.mlp1 = ProjectionBlock(dim_in, hidden, dim_out)
        self.mlp2 = ProjectionBlock(dim_out, hidden, dim_out)
        for linear in (self.mlp1.net1[0], self.mlp1.net2[0], self.mlp2.net1[0], self.mlp2.net2[0]):
            nn.init.xavier_uniform_(linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp2(self.mlp1(x))


class ExMCRHead(nn.Module):
    """Maps a leaf MCR into the frozen base space: `Head1` (linear) then `Head2` (MLP).

    The two stages are Ex-MCR's decoupled projector: the linear `Head1` (f1) aligns the leaf's
    own modalities with each other inside the leaf space, the MLP `Head2` (f_m) carries the
    result into the base space (`stages` gives both, for training). `Head1` starts as the
    identity, so training begins from the leaf space unchanged.
    """

    def __init__(self, dim_in: int = 512, hidden: int = 1024, dim_out: int = 512) -> None:
        super().__init__()
        self.Head1 = nn.Linear(dim_in, dim_in)
        nn.init.eye_(self.Head1.weight)
        nn.init.zeros_(self.Head1.bias)
        self.Head2 = TwoBlockMLP(dim_in, hidden, dim_out)
        self.spec = {"kind": KIND_EXMCR, "dim_in": dim_in, "hidden": hidden, "dim_out": dim_out}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[1]

    def stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(f1(x) inside the leaf space, unnormalised; the unit rows in the base space)."""
        inner = self.Head1(x)
        return inner, F.normalize(self.Head2(inner), dim=-1)


_BUILDERS = {
    KIND_CMCR: (CMCRProjector, ("dim_in", "hidden", "dim_out")),
    KIND_CMCR_ONE_LAYER: (OneLayerProjector, ("dim_in", "dim_out")),
    KIND_EXMCR: (ExMCRHead, ("dim_in", "hidden", "dim_out")),
}


def build_head(spec: dict) -> nn.Module:
    """Build a head from its spec, e.g. `{"kind": "ex-mcr", "dim_in": 512, "hidden": 1024,
    "dim_out": 512}`; a bad spec raises CheckpointError because specs come from saved configs."""
    if not isinstance(spec, dict) or spec.get("kind") not in _BUILDERS:
        raise CheckpointError(
            f"unknown head spec {spec!r}: 'kind' must be one of {sorted(_BUILDERS)}"
        )
    cls, fields = _BUILDERS[spec["kind"]]
    expected = {"kind", *fields}
    if set(spec) != expected:
        raise CheckpointError(
            f"head spec {spec!r} must have exactly the fields {sorted(expected)}"
        )
    sizes = {name: spec[name] for name in fields}
    bad = [n for n, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise CheckpointError(f"head spec {spec!r}: {bad} must be positive integers")
    return cls(**sizes)


# --- official checkpoints -------------------------------------------------------------------

LAYOUT_CLAPCLIP = "CLAPCLIP_Head"
LAYOUT_ULIPCLIP = "ULIPCLIP_Head"
LAYOUT_EXMCR = "Ex_MCR_Head"

# Which of our encoders each official sub-head takes (the table in docs/architecture.md).
_PAIR_ROLES = {
    LAYOUT_CLAPCLIP: {"Head_A": "clap", "Head_B": "clip"},
    LAYOUT_ULIPCLIP: {"Head_A": "clip", "Head_B": "ulip"},
}


@dataclass
class OfficialHeads:
    """Heads imported from one official file: `heads` maps encoder name → module (eval mode)."""

    layout: str
    heads: dict[str, nn.Module]


def detect_layout(state_dict: dict) -> str:
    """Name the official layout a state dict follows, from its key prefixes."""
    keys = set(state_dict)
    if "Head_A.net1.0.weight" in keys:
        return LAYOUT_CLAPCLIP
    if "Head_A.net.0.weight" in keys:
        return LAYOUT_ULIPCLIP
    if "Head1.weight" in keys:
        return LAYOUT_EXMCR
    sample = sorted(keys)[:5]
    raise CheckpointError(
        "not an official C-MCR/Ex-MCR projector: expected keys 'Head_A.net1.0.weight' "
        f"(CLAP-CLIP), 'Head_A.net.0.weight' (ULIP-CLIP) or 'Head1.weight' (Ex-MCR); found {sample}"
    )


def load_official(path: str | Path, leaf: str | None = None) -> OfficialHeads:
    """Import an official projector file (a plain state dict) into our head modules.

    An Ex-MCR file holds one leaf's head without saying which leaf: pass `leaf` ("clap"/"ulip"),
    or it is read from the official file name (`ex_clap.pt`, `ex_ulip.pt`).
    """
    state_dict = _read_state_dict(Path(path))
    layout = detect_layout(state_dict)
    if layout == LAYOUT_EXMCR:
        leaf = leaf or _leaf_from_name(Path(path))
        heads = {leaf: _load_strict(state_dict, _exmcr_spec(state_dict), "", path)}
    else:
        roles = _PAIR_ROLES[layout]
        strays = sorted(k for k in state_dict if k.split(".", 1)[0] not in roles)
        if strays:
            raise CheckpointError(f"{path} has keys outside {sorted(roles)}: {strays[:10]}")
        heads = {
            encoder: _load_strict(state_dict, _pair_spec(layout, state_dict, prefix), prefix, path)
            for prefix, encoder in roles.items()
        }
    return OfficialHeads(layout=layout, heads=heads)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"official checkpoint {path} does not exist")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/unsafe files
        raise CheckpointError(f"cannot read {path} as a weights-only torch file: {exc}") from exc
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(f"{path} is not a plain state dict (name → tensor)")
    return loaded


def _leaf_from_name(path: Path) -> str:
    found = re.findall(r"clap|ulip", path.name.lower())
    if len(set(found)) != 1:
        raise CheckpointError(
            f"{path.name} is an Ex-MCR head but its name does not say which leaf it maps; "
            "pass leaf='clap' or leaf='ulip'"
        )
    return found[0]


def _shape(state_dict: dict, key: str) -> tuple[int, ...]:
    """Shape of a 2-D weight that sizes a head; its absence means the file is not official."""
    if key not in state_dict or state_dict[key].ndim != 2:
        raise CheckpointError(f"official checkpoint lacks a 2-D weight {key!r}")
    return tuple(state_dict[key].shape)


def _pair_spec(layout: str, state_dict: dict, prefix: str) -> dict:
    if layout == LAYOUT_ULIPCLIP:
        dim_out, dim_in = _shape(state_dict, f"{prefix}.net.0.weight")
        return {"kind": KIND_CMCR_ONE_LAYER, "dim_in": dim_in, "dim_out": dim_out}
    hidden, dim_in = _shape(state_dict, f"{prefix}.net1.0.weight")
    dim_out = _shape(state_dict, f"{prefix}.net2.0.weight")[0]
    return {"kind": KIND_CMCR, "dim_in": dim_in, "hidden": hidden, "dim_out": dim_out}


def _exmcr_spec(state_dict: dict) -> dict:
    dim_in = _shape(state_dict, "Head1.weight")[1]
    hidden = _shape(state_dict, "Head2.mlp1.net1.0.weight")[0]
    dim_out = _shape(state_dict, "Head2.mlp2.net2.0.weight")[0]
    return {"kind": KIND_EXMCR, "dim_in": dim_in, "hidden": hidden, "dim_out": dim_out}


def _load_strict(state_dict: dict, spec: dict, prefix: str, path) -> nn.Module:
    """Load the keys under `prefix` into a fresh head; any key or shape mismatch is an error."""
    head = build_head(spec)
    if prefix:
        own = {k[len(prefix) + 1:]: v for k, v in state_dict.items() if k.startswith(prefix + ".")}
    else:
        own = dict(state_dict)
    expected = head.state_dict()
    missing, unexpected = sorted(set(expected) - set(own)), sorted(set(own) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(own) if own[k].shape != expected[k].shape)
    if missing or unexpected or wrong_shape:
        where = f"{path} ({prefix or 'whole file'})"
        raise CheckpointError(
            f"{where} does not match the official layout: missing {missing}, "
            f"unexpected {unexpected}, wrong shape {wrong_shape}"
        )
    head.load_state_dict(own, strict=True)
    return head.eval()
