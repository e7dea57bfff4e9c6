"""Projector heads and the import of official checkpoints.

Official state dicts are generated here key by key (not through our modules), and expected
projections are computed by hand from the raw tensors, so a wrong key, role or layer order fails.
"""

from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from cmcr.errors import CheckpointError
from cmcr.models.heads import (
    CMCRProjector,
    ExMCRHead,
    OneLayerProjector,
    build_head,
    load_official,
)
from tests.fixtures.official import (
    clapclip_state_dict,
    exmcr_state_dict,
    reference_file,
)

BN_EPS = 1e-5


# --- hand-made official layouts and hand-computed forward passes ------------------------------


def _apply_linear_bn(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    y = x @ sd[f"{prefix}.0.weight"].T + sd[f"{prefix}.0.bias"]
    y = (y - sd[f"{prefix}.1.running_mean"]) / torch.sqrt(sd[f"{prefix}.1.running_var"] + BN_EPS)
    return y * sd[f"{prefix}.1.weight"] + sd[f"{prefix}.1.bias"]


def _apply_block(x: torch.Tensor, sd: dict, prefix: str) -> torch.Tensor:
    return _apply_linear_bn(torch.relu(_apply_linear_bn(x, sd, f"{prefix}.net1")), sd, f"{prefix}.net2")


def _unit(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def _saved(folder, name: str, sd: dict):
    """`sd` written with torch.save as `folder/name` (the name tells load_official the layout or leaf)."""
    path = folder / name
    torch.save(sd, path)
    return path


def exmcr_by_hand(x: torch.Tensor, sd: dict) -> torch.Tensor:
    y = x @ sd["Head1.weight"].T + sd["Head1.bias"]
    return F.normalize(_apply_block(_apply_block(y, sd, "Head2.mlp1"), sd, "Head2.mlp2"), dim=1)


# --- module layouts ---------------------------------------------------------------------------


def _keys(prefix: str, *, tracked: bool = True) -> set[str]:
    keys = {f"{prefix}.0.weight", f"{prefix}.0.bias", f"{prefix}.1.weight", f"{prefix}.1.bias",
            f"{prefix}.1.running_mean", f"{prefix}.1.running_var"}
    return keys | {f"{prefix}.1.num_batches_tracked"} if tracked else keys


def test_head_key_layouts_match_the_official_modules():
    assert set(CMCRProjector(8, 16, 6).state_dict()) == _keys("net1") | _keys("net2")
    assert set(OneLayerProjector(8, 6).state_dict()) == _keys("net")
    expected_ex = {"Head1.weight", "Head1.bias"} | {
        key for mlp in ("mlp1", "mlp2") for net in ("net1", "net2") for key in _keys(f"Head2.{mlp}.{net}")
    }
    assert set(ExMCRHead(8, 16, 6).state_dict()) == expected_ex


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "c-mcr", "dim_in": 8, "hidden": 16, "dim_out": 6},
        {"kind": "c-mcr-one-layer", "dim_in": 8, "dim_out": 6},
        {"kind": "ex-mcr", "dim_in": 8, "hidden": 16, "dim_out": 6},
    ],
)
def test_build_head_round_trips_its_spec_and_outputs_unit_rows(spec):
    # Seeded: a head that ends in ReLU (the official one-layer ULIP head) maps a row to zero when
    # all its outputs are negative, which unseeded weights on 5 rows x 6 outputs did in ~7% of runs.
    torch.manual_seed(0)
    head = build_head(spec)
    assert head.spec == spec
    out = head.train()(_unit(5, 8))
    assert out.shape == (5, 6)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    assert type(build_head(head.spec)) is type(head)


def test_exmcr_head1_starts_as_identity():
    head = ExMCRHead(8, 16, 6)
    x = torch.randn(4, 8)
    torch.testing.assert_close(head.Head1(x), x)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "mlp", "dim_in": 8, "dim_out": 6},
        {"kind": "c-mcr", "dim_in": 8, "dim_out": 6},
        {"kind": "c-mcr-one-layer", "dim_in": 8, "dim_out": 6, "extra": 1},
        {"kind": "ex-mcr", "dim_in": 8, "hidden": 0, "dim_out": 6},
        {"kind": "ex-mcr", "dim_in": "8", "hidden": 16, "dim_out": 6},
        ["ex-mcr"],
    ],
)
def test_build_head_rejects_bad_specs(spec):
    with pytest.raises(CheckpointError, match="spec"):
        build_head(spec)


# --- official imports -------------------------------------------------------------------------


def test_real_official_ulip_clip_file_projects_as_computed_by_hand():
    path = reference_file("ulip_clip.pt")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    imported = load_official(path)
    assert imported.layout == "ULIPCLIP_Head"
    assert set(imported.heads) == {"clip", "ulip"}
    x = _unit(6, 512)
    for encoder, prefix in (("clip", "Head_A"), ("ulip", "Head_B")):
        head = imported.heads[encoder]
        assert not head.training
        expected = F.normalize(torch.relu(_apply_linear_bn(x, raw, f"{prefix}.net")), dim=1)
        torch.testing.assert_close(head(x), expected, atol=1e-5, rtol=1e-5)


def test_clapclip_layout_imports_head_a_as_clap_and_head_b_as_clip(tmp_path):
    sd = clapclip_state_dict()
    imported = load_official(_saved(tmp_path, "clap_clip.pt", sd))
    assert imported.layout == "CLAPCLIP_Head"
    x = _unit(5, 512)
    for encoder, prefix in (("clap", "Head_A"), ("clip", "Head_B")):
        expected = F.normalize(_apply_block(x, sd, prefix), dim=1)
        torch.testing.assert_close(imported.heads[encoder](x), expected, atol=1e-5, rtol=1e-5)


def test_exmcr_layout_imports_one_leaf_named_by_the_file(tmp_path):
    sd = exmcr_state_dict()
    imported = load_official(_saved(tmp_path, "ex_clap.pt", sd))
    assert imported.layout == "Ex_MCR_Head"
    assert list(imported.heads) == ["clap"]
    x = _unit(5, 512)
    torch.testing.assert_close(imported.heads["clap"](x), exmcr_by_hand(x, sd), atol=1e-5, rtol=1e-5)


def test_exmcr_file_without_leaf_in_its_name_needs_leaf(tmp_path):
    path = _saved(tmp_path, "head.pt", exmcr_state_dict(16, 32))
    with pytest.raises(CheckpointError, match="leaf="):
        load_official(path)
    assert list(load_official(path, leaf="ulip").heads) == ["ulip"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda sd: sd.pop("Head_B.net2.1.running_var"), "missing"),
        (lambda sd: sd.__setitem__("Head_A.net3.0.weight", torch.zeros(2, 2)), "unexpected"),
        (lambda sd: sd.__setitem__("Head_C.net1.0.weight", torch.zeros(2, 2)), "outside"),
        (lambda sd: sd.__setitem__("Head_B.net1.1.bias", torch.zeros(3)), "wrong shape"),
    ],
    ids=["missing", "unexpected", "stray-prefix", "wrong-shape"],
)
def test_layout_mismatch_is_a_checkpoint_error(tmp_path, change, message):
    sd = clapclip_state_dict(16, 32)
    change(sd)
    with pytest.raises(CheckpointError, match=message):
        load_official(_saved(tmp_path, "clap_clip.pt", sd))


class _Payload:
    """Stands in for anything a pickle could smuggle in."""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file at all", "weights-only"),
        (pickle.dumps(_Payload()), "weights-only"),
    ],
    ids=["garbage", "plain-pickle"],
)
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_unreadable_or_unsafe_files_are_refused(tmp_path, content, message):
    path = tmp_path / "ulip_clip.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_official(path)


def test_files_that_are_not_official_heads_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an official"):
        load_official(tmp_path / "other.pt")
    torch.save({"nested": {"a": torch.zeros(1)}}, tmp_path / "nested.pt")
    with pytest.raises(CheckpointError, match="plain state dict"):
        load_official(tmp_path / "nested.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_official(tmp_path / "absent.pt")


def test_torch_saved_custom_object_is_refused(tmp_path):
    path = tmp_path / "ulip_clip.pt"
    torch.save({"Head_A.net.0.weight": torch.zeros(2, 2), "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_official(path)
