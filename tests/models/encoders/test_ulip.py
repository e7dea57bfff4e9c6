"""The ULIP encoder: tiny-profile embedding, the SLIP image tower, official checkpoint loading."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cmcr.errors import CheckpointError, InputError
from cmcr.models.encoders.base import build_encoder
from cmcr.models.encoders.ulip import (
    IMAGENET_MEAN,
    TINY_POINT,
    TINY_VISION,
    ULIP_CHECKPOINT_FILE,
    ULIP_PROFILES,
    ULIPEncoder,
    ULIPModel,
    load_official_weights,
    official_state_dict,
    preprocess_images,
    read_official_checkpoint,
)
from tests.fixtures.ulip import (
    is_text_tower_key,
    official_ulip_shapes,
    official_ulip_state,
    write_official_ulip_checkpoint,
)
from tests.paths import REPO

OFFICIAL_SAMPLES = REPO / "assets" / "official"
TINY_ARCHITECTURE = {"point": TINY_POINT, "vision": TINY_VISION}


@pytest.fixture(scope="module")
def tiny() -> ULIPEncoder:
    return build_encoder("ulip", "tiny", device="cpu").load()


def clouds(batch: int, num_points: int = 200, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, num_points, 3)).astype(np.float32)


def unit_rows(embeddings: np.ndarray) -> bool:
    return embeddings.dtype == np.float32 and np.allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)


def test_tiny_profile_embeds_points_as_unit_rows(tiny: ULIPEncoder) -> None:
    embeddings = tiny.embed("points", clouds(3))
    assert embeddings.shape == (3, 512) and unit_rows(embeddings)
    assert np.abs(embeddings[0] - embeddings[1]).max() > 1e-3


def test_a_list_of_clouds_equals_one_array_and_single_calls(tiny: ULIPEncoder) -> None:
    batch = clouds(4, seed=1)
    as_array = tiny.embed("points", batch)
    np.testing.assert_allclose(tiny.embed("points", list(batch)), as_array, atol=1e-6)
    singles = np.concatenate([tiny.embed("points", [cloud]) for cloud in batch])
    np.testing.assert_allclose(singles, as_array, atol=1e-5)


def test_clouds_of_different_sizes_share_a_batch(tiny: ULIPEncoder) -> None:
    small, large = clouds(1, 150, seed=2)[0], clouds(1, 400, seed=3)[0]
    mixed = tiny.embed("points", [large, small, large])
    np.testing.assert_allclose(mixed[1], tiny.embed("points", [small])[0], atol=1e-5)
    np.testing.assert_allclose(mixed[0], mixed[2], atol=1e-6)


def test_tiny_weights_are_seeded_and_leave_the_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    first = build_encoder("ulip", "tiny", device="cpu").embed("points", clouds(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    np.testing.assert_array_equal(
        build_encoder("ulip", "tiny", device="cpu").embed("points", clouds(2)), first
    )
    other_seed = build_encoder("ulip", "tiny", device="cpu", seed=1).embed("points", clouds(2))
    assert np.abs(other_seed - first).max() > 1e-3


def test_image_tower_embeds_pil_images(tiny: ULIPEncoder) -> None:
    rng = np.random.default_rng(4)
    colour = Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8))
    grey = Image.fromarray((rng.random((90, 30)) * 255).astype(np.uint8), mode="L")
    embeddings = tiny.embed("image", [colour, grey])
    assert embeddings.shape == (2, 512) and unit_rows(embeddings)
    assert np.abs(embeddings[0] - embeddings[1]).max() > 1e-3


def test_preprocessing_crops_the_centre_and_uses_imagenet_statistics() -> None:
    mean_colour = tuple(round(255 * channel) for channel in IMAGENET_MEAN)
    image = Image.new("RGB", (64, 32), mean_colour)
    image.paste((255, 0, 0), (0, 0, 8, 32))  # a red band the centre crop must cut away
    pixels = preprocess_images([image], 16)
    assert pixels.shape == (1, 3, 16, 16)
    assert pixels.abs().max() < 0.02


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([np.zeros((200, 2), np.float32)], "shape"),
        ([np.zeros(600, np.float32)], "shape"),
        ([np.zeros((TINY_POINT.num_groups - 1, 3), np.float32)], "at least"),
        ([np.full((200, 3), np.nan, np.float32)], "NaN"),
    ],
)
def test_unusable_clouds_raise_input_errors(tiny: ULIPEncoder, batch: list, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tiny.embed("points", batch)


def test_non_images_and_other_modalities_are_refused(tiny: ULIPEncoder) -> None:
    with pytest.raises(InputError, match="PIL"):
        tiny.embed("image", [np.zeros((32, 32, 3), np.uint8)])
    with pytest.raises(InputError, match="audio"):
        tiny.embed("audio", [np.zeros(10, np.float32)])


def load_tiny_model(path: Path, *, pinned_release: bool = False) -> ULIPModel:
    model = ULIPModel(ULIP_PROFILES["tiny"])
    load_official_weights(
        model, official_state_dict(read_official_checkpoint(path, pinned_release=pinned_release))
    )
    return model


def test_full_architecture_has_the_official_names_and_shapes() -> None:
    full = ULIP_PROFILES["full"]
    official = official_ulip_shapes(full.point, full.vision, full.dim)
    assert official["pc_projection"] == (768, 512) and official["image_projection"] == (768, 512)
    with torch.device("meta"):
        model = ULIPModel(full)
    ours = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    assert ours == {name: shape for name, shape in official.items() if not is_text_tower_key(name)}


def test_official_layout_loads_strictly_without_the_text_tower(ulip_official_checkpoint) -> None:
    model = load_tiny_model(ulip_official_checkpoint.path)
    loaded = model.state_dict()
    assert set(loaded) == set(ulip_official_checkpoint.towers)
    assert not any(name.startswith("transformer.") for name in loaded)
    for name, value in ulip_official_checkpoint.towers.items():
        assert torch.equal(loaded[name], value), name


def test_a_renamed_key_is_a_checkpoint_error_naming_both_sides(tmp_path: Path) -> None:
    state = official_ulip_state()
    state["point_encoder.blocks.blocks.0.attn.qkv_weight"] = state.pop(
        "point_encoder.blocks.blocks.0.attn.qkv.weight"
    )
    path = write_official_ulip_checkpoint(tmp_path / "renamed.pt", state)
    with pytest.raises(CheckpointError, match=r"missing.*attn\.qkv\.weight.*unexpected.*attn\.qkv_weight"):
        load_tiny_model(path)


def test_a_wrong_shape_is_a_checkpoint_error(tmp_path: Path) -> None:
    state = official_ulip_state()
    state["pc_projection"] = torch.zeros(TINY_POINT.feature_dim, 256)
    path = write_official_ulip_checkpoint(tmp_path / "narrow.pt", state)
    with pytest.raises(CheckpointError, match="wrong shape.*pc_projection"):
        load_tiny_model(path)


def test_a_file_without_state_dict_is_a_checkpoint_error(tmp_path: Path) -> None:
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="state_dict"):
        load_tiny_model(tmp_path / "other.pt")


def test_full_unpickling_is_only_a_fallback_for_the_pinned_release(tmp_path: Path) -> None:
    state = official_ulip_state()
    path = write_official_ulip_checkpoint(
        tmp_path / "dated.pt", state, saved_at=datetime.datetime(2023, 6, 9)
    )
    with pytest.raises(CheckpointError, match="datetime"):
        read_official_checkpoint(path, pinned_release=False)
    assert read_official_checkpoint(path, pinned_release=True)["saved_at"].year == 2023


@pytest.mark.parametrize("pinned_release", [False, True])
def test_missing_or_corrupt_files_are_checkpoint_errors(tmp_path: Path, pinned_release: bool) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_official_checkpoint(tmp_path / "absent.pt", pinned_release=pinned_release)
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cut.pt"):
        read_official_checkpoint(tmp_path / "cut.pt", pinned_release=pinned_release)


def test_full_profile_downloads_and_loads_the_pinned_file_end_to_end(ulip_hub_checkpoint, hub_cache) -> None:
    encoder = build_encoder("ulip", "full", device="cpu", cache_dir=str(hub_cache), **TINY_ARCHITECTURE)
    embeddings = encoder.embed("points", clouds(2, seed=5))
    assert list(hub_cache.rglob(Path(ULIP_CHECKPOINT_FILE).name))
    assert embeddings.shape == (2, 512) and unit_rows(embeddings)
    loaded = encoder.model.state_dict()
    for name, value in ulip_hub_checkpoint.towers.items():
        assert torch.equal(loaded[name], value), name
    expected = load_tiny_model(ulip_hub_checkpoint.path).eval()
    with torch.inference_mode():
        reference = expected.encode_points(torch.from_numpy(clouds(2, seed=5)))
    np.testing.assert_allclose(
        embeddings, torch.nn.functional.normalize(reference, dim=-1).numpy(), atol=1e-5
    )


@pytest.mark.parametrize("name", ["BBQ", "toilet", "train"])
def test_reference_clouds_embed_to_finite_unit_vectors(tiny: ULIPEncoder, name: str) -> None:
    xyz = np.load(OFFICIAL_SAMPLES / f"{name}.npy").astype(np.float32)  # the official sample, a plain array
    xyz = xyz - xyz.mean(axis=0)
    xyz /= np.linalg.norm(xyz, axis=1).max()
    embedding = tiny.embed("points", [xyz])
    assert embedding.shape == (1, 512) and np.isfinite(embedding).all() and unit_rows(embedding)


def test_an_int8_point_tower_keeps_the_embeddings_within_cos_0999() -> None:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    from cmcr.models.space import tiny_space
    from cmcr.retrieval.gallery import space_identity

    exact = build_encoder("ulip", "tiny", device="cpu").load()
    fast = build_encoder("ulip", "tiny", device="cpu", point_int8=True).load()
    point_net = fast.model.point_encoder.encoder
    assert isinstance(point_net.second_conv[0], DynamicInt8Linear)
    assert isinstance(point_net.first_conv[3], DynamicInt8Linear)
    assert not isinstance(point_net.first_conv[0], DynamicInt8Linear)  # raw xyz stays float32
    assert isinstance(fast.model.point_encoder.blocks.blocks[0].mlp.fc1, DynamicInt8Linear)
    assert not any(isinstance(module, DynamicInt8Linear) for module in fast.model.visual.modules())
    rng = np.random.default_rng(3)
    clouds = [rng.normal(size=(2048, 3)).astype(np.float32) * rng.uniform(0.2, 1.0, 3) for _ in range(6)]
    cosines = np.sum(exact.embed("points", clouds) * fast.embed("points", clouds), axis=1)
    assert cosines.min() >= 0.999 and cosines.min() < 1.0  # quantised, and close
    others = {name: build_encoder(name, "tiny", device="cpu") for name in ("clip", "clap")}
    space = tiny_space({**others, "ulip": exact})
    assert (space_identity(space, {**others, "ulip": exact})
            == space_identity(space, {**others, "ulip": fast}))  # galleries embedded either way stay usable
