"""CLIP: the tiny profile end to end, and the full profile's Hub loading on a toy checkpoint."""

from __future__ import annotations

import io
import time

import numpy as np
import open_clip
import pytest
import safetensors.torch
import torch
from PIL import Image

from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.encoders import clip as clip_module
from cmcr.models.encoders.clip import pretrained_hub_file
from cmcr.models.encoders.profiles import TINY_CLIP_MODEL_CFG

OFFICIAL_REPO, OFFICIAL_FILE = "timm/vit_base_patch32_clip_224.openai", "open_clip_model.safetensors"
PICKLED_FILE = "open_clip_pytorch_model.bin"  # what open_clip's registry lists; its safetensors sibling is preferred
CAPTIONS = ["a photo of a dog", "a red car on a street", "two cats", "an empty room"]


def images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 56, 3), dtype=np.uint8)) for i in range(count)]


@pytest.fixture(scope="module")
def tiny_clip():
    return build_encoder("clip", "tiny", device="cpu").load()


def reference_model(seed: int) -> torch.nn.Module:
    """The toy architecture built straight from open_clip, with different weights than tiny's."""
    torch.manual_seed(seed)
    return open_clip.CLIP(**TINY_CLIP_MODEL_CFG).eval()


def serialized(state_dict: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getvalue()


def as_safetensors(state_dict: dict) -> bytes:
    return safetensors.torch.save({name: tensor.contiguous() for name, tensor in state_dict.items()})


@pytest.mark.parametrize(("modality", "batch"), [("text", CAPTIONS), ("image", images(4))])
def test_tiny_embeddings_are_unit_float32_rows_independent_of_batching(tiny_clip, modality, batch):
    together = tiny_clip.embed(modality, batch)
    singles = np.concatenate([tiny_clip.embed(modality, [item]) for item in batch])
    assert together.shape == (4, 512) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(together, singles, atol=1e-5)
    assert np.abs(together[0] - together[1]).max() > 1e-3  # different inputs, different rows


def test_tiny_profile_is_deterministic_across_builds(tiny_clip):
    again = build_encoder("clip", "tiny", device="cpu")
    np.testing.assert_array_equal(tiny_clip.embed("text", CAPTIONS), again.embed("text", CAPTIONS))
    other_seed = build_encoder("clip", "tiny", device="cpu", seed=1)
    assert not np.allclose(tiny_clip.embed("text", CAPTIONS), other_seed.embed("text", CAPTIONS))


def test_non_rgb_images_are_converted_and_non_images_refused(tiny_clip):
    gray = images(1)[0].convert("L")
    np.testing.assert_allclose(
        tiny_clip.embed("image", [gray]), tiny_clip.embed("image", [gray.convert("RGB")]), atol=1e-6
    )
    with pytest.raises(InputError, match="PIL images"):
        tiny_clip.embed("image", [np.zeros((8, 8, 3), dtype=np.uint8)])


def test_open_clip_registry_names_the_official_hub_file():
    assert pretrained_hub_file("ViT-B-32", "openai") == (OFFICIAL_REPO, OFFICIAL_FILE)


def test_full_profile_loads_the_official_hub_file_with_its_preprocessing(fake_hub, hub_cache):
    reference = reference_model(seed=7)
    fake_hub.add_repo(OFFICIAL_REPO, {OFFICIAL_FILE: as_safetensors(reference.state_dict())})
    encoder = build_encoder("clip", "full", device="cpu", model_cfg=TINY_CLIP_MODEL_CFG, cache_dir=str(hub_cache))
    assert not fake_hub.seen  # building is free: nothing fetched yet

    batch = images(3, seed=3)
    rows = encoder.embed("image", batch)

    assert any(OFFICIAL_FILE in seen.path and OFFICIAL_REPO in seen.path for seen in fake_hub.seen)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(encoder.model.state_dict()[name], tensor), name
    preprocess = open_clip.image_transform(32, is_train=False)
    with torch.no_grad():
        expected = reference.encode_image(torch.stack([preprocess(image) for image in batch]), normalize=True)
    np.testing.assert_allclose(rows, expected.numpy(), atol=1e-5)
    tokens = open_clip.tokenize(CAPTIONS[:2], context_length=77)
    with torch.no_grad():
        expected_text = reference.encode_text(tokens, normalize=True).numpy()
    np.testing.assert_allclose(encoder.embed("text", CAPTIONS[:2]), expected_text, atol=1e-5)


def test_a_repo_without_the_safetensors_copy_falls_back_to_the_pickled_file(fake_hub, hub_cache, monkeypatch):
    reference = reference_model(seed=9)
    fake_hub.add_repo("fallback/clip-bin-only", {PICKLED_FILE: serialized(reference.state_dict())})
    monkeypatch.setattr(clip_module, "_registry_hub_file", lambda *_: ("fallback/clip-bin-only", PICKLED_FILE))
    encoder = build_encoder("clip", "full", device="cpu", model_cfg=TINY_CLIP_MODEL_CFG,
                            cache_dir=str(hub_cache)).load()
    assert torch.equal(encoder.model.visual.conv1.weight, reference.visual.conv1.weight)
    asked = [seen.path for seen in fake_hub.seen if "fallback/clip-bin-only" in seen.path]
    assert any(OFFICIAL_FILE in path for path in asked) and any(PICKLED_FILE in path for path in asked)


def test_a_local_checkpoint_file_overrides_the_hub(tmp_path):
    reference = reference_model(seed=11)
    path = tmp_path / "clip.bin"
    torch.save(reference.state_dict(), path)
    encoder = build_encoder("clip", "tiny", device="cpu", checkpoint=str(path)).load()
    assert torch.equal(encoder.model.visual.conv1.weight, reference.visual.conv1.weight)


def test_a_checkpoint_of_another_architecture_is_a_checkpoint_error(tmp_path):
    wider = dict(TINY_CLIP_MODEL_CFG, text_cfg=dict(TINY_CLIP_MODEL_CFG["text_cfg"], width=32, heads=1))
    path = tmp_path / "other.bin"
    torch.save(open_clip.CLIP(**wider).state_dict(), path)
    with pytest.raises(CheckpointError, match="other.bin"):
        build_encoder("clip", "tiny", device="cpu", checkpoint=str(path)).load()


def test_an_unreachable_hub_fails_fast_with_hub_unavailable(offline_hub, hub_cache):
    encoder = build_encoder("clip", "full", device="cpu", endpoint=offline_hub, cache_dir=str(hub_cache))
    started = time.monotonic()
    with pytest.raises(HubUnavailableError):
        encoder.load()
    assert time.monotonic() - started < 15
    assert not encoder.loaded
