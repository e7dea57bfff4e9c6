"""UnifiedSpace: projection contract, save/load round trips, refusal of bad input and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cmcr
import cmcr.models.space as space_module
from cmcr.errors import CheckpointError, InputError
from cmcr.models.heads import build_head
from cmcr.models.space import UnifiedSpace
from tests.models.test_heads import exmcr_by_hand
from tests.fixtures.official import exmcr_state_dict, reference_file

DIM_IN, HIDDEN, DIM = 12, 24, 8


def _trained_like(head: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give BatchNorm layers non-trivial statistics, as training would, so eval mode matters."""
    gen = torch.Generator().manual_seed(seed)
    for module in head.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.copy_(0.3 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(0.5 + torch.rand(module.num_features, generator=gen))
    return head


def _head(kind: str, dim_in: int = DIM_IN, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    spec = {"kind": kind, "dim_in": dim_in, "hidden": HIDDEN, "dim_out": DIM}
    if kind == "c-mcr-one-layer":
        spec.pop("hidden")
    return _trained_like(build_head(spec), seed)


@pytest.fixture
def exmcr_space() -> UnifiedSpace:
    heads = {"clap": _head("ex-mcr", seed=1), "ulip": _head("ex-mcr", dim_in=10, seed=2)}
    return UnifiedSpace.build("ex-mcr", heads, base="clip",
                              encoders={"clap": {"checkpoint": "tiny-clap", "revision": "r1"}},
                              hyperparameters={"tau": 0.05}, metrics={"R@1": 0.5})


@pytest.fixture
def cmcr_space() -> UnifiedSpace:
    return UnifiedSpace.build("c-mcr", {"clip": _head("c-mcr", DIM_IN, 3), "ulip": _head("c-mcr", 10, 4)})


def _rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _by_hand(space: UnifiedSpace, encoder: str, rows: np.ndarray) -> np.ndarray:
    head = space.heads[encoder]
    with torch.no_grad():
        return head.eval()(F.normalize(torch.from_numpy(rows), dim=1)).numpy()


# --- project ----------------------------------------------------------------------------------


def test_project_numpy_gives_float32_unit_rows_from_the_eval_mode_head(exmcr_space):
    rows = _rows(7, DIM_IN)
    out = exmcr_space.project("clap", "audio", rows)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (7, DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(out, _by_hand(exmcr_space, "clap", rows), atol=1e-5)
    # eval mode: one row alone gives the same answer as in a batch (BatchNorm uses running stats)
    np.testing.assert_allclose(exmcr_space.project("clap", "text", rows[:1]), out[:1], atol=1e-5)


def test_project_tensor_in_gives_tensor_out_with_its_dtype(exmcr_space):
    rows = torch.from_numpy(_rows(4, 10)).double()
    out = exmcr_space.project("ulip", "points", rows)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == (4, DIM)
    assert not out.requires_grad
    np.testing.assert_allclose(out.numpy(), _by_hand(exmcr_space, "ulip", rows.float().numpy()), atol=1e-5)


def test_single_vector_and_float16_and_empty_inputs(exmcr_space):
    rows = _rows(3, DIM_IN)
    single = exmcr_space.project("clap", "audio", rows[0])
    assert single.shape == (DIM,)
    half = exmcr_space.project("clap", "audio", rows.astype(np.float16))
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, exmcr_space.project("clap", "audio", rows), atol=5e-3)
    assert exmcr_space.project("clap", "audio", rows[:0]).shape == (0, DIM)
    assert exmcr_space.project("clap", "audio", torch.from_numpy(rows[:0])).shape == (0, DIM)


def test_base_encoder_passes_through_renormalised(exmcr_space):
    rows = _rows(5, DIM, seed=3) * 7
    out = exmcr_space.project("clip", "image", rows)
    np.testing.assert_allclose(out, rows / np.linalg.norm(rows, axis=1, keepdims=True), atol=1e-6)


def test_projection_in_chunks_matches_one_pass(exmcr_space, monkeypatch):
    rows = _rows(11, DIM_IN, seed=4)
    whole = exmcr_space.project("clap", "audio", rows)
    monkeypatch.setattr(space_module, "CHUNK_ROWS", 3)
    np.testing.assert_allclose(exmcr_space.project("clap", "audio", rows), whole, atol=1e-6)
    tensor_out = exmcr_space.project("clap", "audio", torch.from_numpy(rows))
    np.testing.assert_allclose(tensor_out.numpy(), whole, atol=1e-6)
    rows[9] = np.nan
    with pytest.raises(InputError, match="row 9"):
        exmcr_space.project("clap", "audio", rows)


@pytest.mark.parametrize(
    ("encoder", "modality", "features", "message"),
    [
        ("imagebind", "audio", _rows(2, DIM_IN), "no encoder 'imagebind'"),
        ("clap", "image", _rows(2, DIM_IN), "embeds \\['text', 'audio'\\]"),
        ("clap", "audio", _rows(2, DIM_IN + 1), "shape \\(N, 12\\)"),
        ("clap", "audio", _rows(2, DIM_IN)[None], "shape \\(N, 12\\)"),
        ("clap", "audio", np.ones((2, DIM_IN), dtype=np.int64), "floating point"),
        ("clap", "audio", [[0.0] * DIM_IN], "numpy array or a torch tensor"),
        ("clap", "audio", np.vstack([_rows(1, DIM_IN), np.full((1, DIM_IN), np.inf)]), "row 1"),
        ("clap", "audio", np.zeros((1, DIM_IN), dtype=np.float32), "row 0"),
    ],
    ids=["unknown-encoder", "wrong-modality", "wrong-dim", "3-d", "integers", "list", "inf", "zeros"],
)
def test_bad_projection_input_is_an_input_error(exmcr_space, encoder, modality, features, message):
    with pytest.raises(InputError, match=message):
        exmcr_space.project(encoder, modality, features)


def test_cmcr_space_projects_both_members(cmcr_space):
    assert cmcr_space.encoders == ["clip", "ulip"] and cmcr_space.base is None
    for encoder, width in (("clip", DIM_IN), ("ulip", 10)):
        rows = _rows(3, width)
        np.testing.assert_allclose(cmcr_space.project(encoder, "image", rows),
                                   _by_hand(cmcr_space, encoder, rows), atol=1e-5)


def test_encoders_dim_config_and_repr(exmcr_space):
    assert exmcr_space.encoders == ["clip", "clap", "ulip"]
    assert exmcr_space.dim == DIM
    config = exmcr_space.config
    assert config["method"] == "ex-mcr" and config["base"] == "clip" and config["leaves"] == ["clap", "ulip"]
    assert config["encoders"]["clap"] == {"dim": DIM_IN, "modalities": ["text", "audio"],
                                          "checkpoint": "tiny-clap", "revision": "r1"}
    assert config["heads"]["ulip"]["dim_in"] == 10
    json.dumps(config)  # plain data, as config.json needs
    assert "ex-mcr" in repr(exmcr_space) and "clap" in repr(exmcr_space)


def test_constructor_refuses_a_config_that_does_not_describe_the_heads(exmcr_space):
    config = dict(exmcr_space.config, dim=DIM + 1, method="x-mcr")
    with pytest.raises(CheckpointError) as caught:
        UnifiedSpace(config, dict(exmcr_space.heads))
    assert "method" in str(caught.value) and "config says" in str(caught.value)
    with pytest.raises(CheckpointError, match="exactly two heads"):
        UnifiedSpace.build("c-mcr", {"clip": _head("c-mcr")})


# --- save / load ------------------------------------------------------------------------------


def test_save_and_load_round_trip(exmcr_space, tmp_path):
    target = tmp_path / "space"
    assert exmcr_space.save_pretrained(target) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space"]  # no staging left behind
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = cmcr.UnifiedSpace.from_pretrained(target)
    assert loaded.config == exmcr_space.config
    for encoder, modality, width in (("clap", "audio", DIM_IN), ("ulip", "points", 10), ("clip", "text", DIM)):
        rows = _rows(6, width, seed=5)
        np.testing.assert_array_equal(loaded.project(encoder, modality, rows),
                                      exmcr_space.project(encoder, modality, rows))


def test_save_into_an_existing_folder_keeps_other_files(exmcr_space, cmcr_space, tmp_path):
    target = tmp_path / "space"
    cmcr_space.save_pretrained(target)
    (target / "README.md").write_text("model card")
    exmcr_space.save_pretrained(target)
    assert (target / "README.md").read_text() == "model card"
    assert UnifiedSpace.from_pretrained(target).method == "ex-mcr"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space"]


def test_the_logit_scale_is_saved_and_a_space_saved_without_one_gets_the_default(cmcr_space, tmp_path):
    assert cmcr_space.logit_scale == space_module.DEFAULT_LOGIT_SCALE == 10.0
    sharp = UnifiedSpace.build("c-mcr", dict(cmcr_space.heads), logit_scale=20.0)
    folder = sharp.save_pretrained(tmp_path / "sharp")
    assert json.loads((folder / "config.json").read_text())["logit_scale"] == 20.0
    assert UnifiedSpace.from_pretrained(folder).logit_scale == 20.0
    _edit_config(folder, lambda config: config.pop("logit_scale"))  # as spaces were saved before
    older = UnifiedSpace.from_pretrained(folder)
    assert "logit_scale" not in older.config and older.logit_scale == 10.0


def _saved(space: UnifiedSpace, tmp_path: Path) -> Path:
    return space.save_pretrained(tmp_path / "space")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "model.safetensors").unlink(), "no weights"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "JSON object"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 5), "not a readable safetensors"),
        (lambda d: _edit_config(d, lambda c: c["heads"]["clap"].update(kind="mystery")), "unknown head spec"),
        (lambda d: _edit_config(d, lambda c: c["heads"]["clap"].update(hidden=HIDDEN + 2)), "does not fit head 'clap'"),
        (lambda d: _edit_config(d, lambda c: c.pop("heads")), "lacks the 'heads' table"),
        (lambda d: _edit_config(d, lambda c: c.update(format_version=99)), "format_version"),
        (lambda d: _edit_config(d, lambda c: c.update(logit_scale=-1)), "logit_scale"),
        (lambda d: _edit_config(d, lambda c: c.update(logit_scale="10")), "logit_scale"),
        (lambda d: _edit_weights(d, lambda t: t.pop("clap.Head1.bias")), "does not fit head 'clap'"),
        (lambda d: _edit_weights(d, lambda t: t.update({"audio.x": torch.zeros(1)})), "no head"),
    ],
    ids=["no-config", "no-weights", "bad-json", "json-list", "bad-safetensors", "bad-kind",
         "spec-weight-mismatch", "no-heads", "format-version", "negative-scale", "text-scale",
         "missing-tensor", "stray-tensor"],
)
def test_damaged_space_folders_raise_checkpoint_errors(exmcr_space, tmp_path, damage, message):
    folder = _saved(exmcr_space, tmp_path)
    damage(folder)
    with pytest.raises(CheckpointError, match=message):
        UnifiedSpace.from_pretrained(folder)


def _edit_config(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(folder / "model.safetensors"))
    change(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_paths_that_are_neither_folders_nor_repo_ids(exmcr_space, tmp_path):
    folder = _saved(exmcr_space, tmp_path)
    with pytest.raises(CheckpointError, match="is a file"):
        UnifiedSpace.from_pretrained(folder / "config.json")
    with pytest.raises(CheckpointError, match="neither an existing folder nor a Hub repo id"):
        UnifiedSpace.from_pretrained(tmp_path / "absent" / "deeper" / "space")
    with pytest.raises(InputError, match="revision"):
        UnifiedSpace.from_pretrained(folder, revision="main")


def test_from_pretrained_downloads_a_hub_repo_at_a_pinned_revision(exmcr_space, cmcr_space, fake_hub, tmp_path):
    first = fake_hub.add_repo("core-io/space-revisions", exmcr_space.save_pretrained(tmp_path / "first"))
    fake_hub.add_repo("core-io/space-revisions", cmcr_space.save_pretrained(tmp_path / "second"))
    assert UnifiedSpace.from_pretrained("core-io/space-revisions").method == "c-mcr"
    pinned = UnifiedSpace.from_pretrained("core-io/space-revisions", revision=first)
    assert pinned.config == exmcr_space.config
    rows = _rows(3, DIM_IN)
    np.testing.assert_array_equal(pinned.project("clap", "audio", rows), exmcr_space.project("clap", "audio", rows))


def test_config_must_stay_strict_json():
    with pytest.raises(CheckpointError, match="strict JSON"):
        UnifiedSpace.build("c-mcr", {"clip": _head("c-mcr"), "ulip": _head("c-mcr")}, metrics={"R@1": float("nan")})
    with pytest.raises(CheckpointError, match="strict JSON"):
        UnifiedSpace.build("c-mcr", {"clip": _head("c-mcr"), "ulip": _head("c-mcr")},
                           hyperparameters={"out": Path("x")})


# --- official files as spaces -----------------------------------------------------------------


def test_real_official_ulip_clip_becomes_a_cmcr_space(tmp_path):
    path = reference_file("ulip_clip.pt")
    space = UnifiedSpace.from_official(path)
    assert space.method == "c-mcr" and space.encoders == ["clip", "ulip"] and space.dim == 512
    assert space.logit_scale == 10.0  # the official demos' softmax(10 · cos)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    rows = _rows(4, 512, seed=6)
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    for encoder, modality, prefix in (("ulip", "points", "Head_B"), ("clip", "text", "Head_A")):
        hidden = unit @ raw[f"{prefix}.net.0.weight"].numpy().T + raw[f"{prefix}.net.0.bias"].numpy()
        hidden = (hidden - raw[f"{prefix}.net.1.running_mean"].numpy()) / np.sqrt(
            raw[f"{prefix}.net.1.running_var"].numpy() + 1e-5)
        hidden = np.maximum(hidden * raw[f"{prefix}.net.1.weight"].numpy() + raw[f"{prefix}.net.1.bias"].numpy(), 0)
        expected = hidden / np.linalg.norm(hidden, axis=1, keepdims=True)
        np.testing.assert_allclose(space.project(encoder, modality, rows), expected, atol=1e-5)
    reloaded = UnifiedSpace.from_pretrained(space.save_pretrained(tmp_path / "ulip_clip"))
    np.testing.assert_array_equal(reloaded.project("ulip", "points", rows), space.project("ulip", "points", rows))


def test_official_exmcr_leaves_become_one_unified_space(tmp_path):
    clap_sd, ulip_sd = exmcr_state_dict(16, 32), exmcr_state_dict(16, 32)
    ulip_sd["Head1.bias"] += 0.5
    torch.save(clap_sd, tmp_path / "ex_clap.pt")
    torch.save(ulip_sd, tmp_path / "ex_ulip.pt")
    space = UnifiedSpace.from_official([tmp_path / "ex_clap.pt", tmp_path / "ex_ulip.pt"])
    assert space.method == "ex-mcr" and space.encoders == ["clip", "clap", "ulip"]
    rows = _rows(3, 16)
    unit = torch.from_numpy(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    np.testing.assert_allclose(space.project("clap", "audio", rows), exmcr_by_hand(unit, clap_sd).numpy(), atol=1e-5)
    np.testing.assert_allclose(space.project("ulip", "points", rows), exmcr_by_hand(unit, ulip_sd).numpy(), atol=1e-5)
    with pytest.raises(CheckpointError, match="same leaf"):
        UnifiedSpace.from_official([tmp_path / "ex_clap.pt", tmp_path / "ex_clap.pt"])
