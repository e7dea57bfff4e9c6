"""Image preparation split from the forward pass: same pixels and embeddings as the one-piece
transforms it replaced (open_clip's own for CLIP, SLIP's for ULIP), and safe to ship to workers."""

from __future__ import annotations

import pickle

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from cmcr.errors import InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.encoders.ulip import IMAGENET_MEAN, IMAGENET_STD


def fresh_images(seed: int) -> list[Image.Image]:
    """Random images of several sizes (smaller and larger than the encoders' input) and modes."""
    rng = np.random.default_rng(seed)

    def noise(height: int, width: int, channels: int) -> np.ndarray:
        return rng.integers(0, 256, (height, width, channels), dtype=np.uint8).squeeze()

    palette = Image.fromarray(noise(33, 47, 3)).convert("P", palette=Image.ADAPTIVE, colors=16)
    return [
        Image.fromarray(noise(480, 640, 3)),
        Image.fromarray(noise(19, 23, 3)),
        Image.fromarray(noise(300, 41, 3)),
        Image.fromarray(noise(50, 70, 1), mode="L"),
        Image.fromarray(noise(64, 64, 4), mode="RGBA"),
        palette,
    ]


@pytest.fixture(scope="module")
def tiny_clip():
    return build_encoder("clip", "tiny", device="cpu").load()


@pytest.fixture(scope="module")
def tiny_ulip():
    return build_encoder("ulip", "tiny", device="cpu").load()


def slip_pixels(image: Image.Image, size: int) -> torch.Tensor:
    """SLIP's eval transform in one piece, written out independently: shorter side to `size`
    (bilinear), centre crop, ImageNet mean/std in float32."""
    rgb = image.convert("RGB")
    scale = size / min(rgb.size)
    resized = rgb.resize((max(size, round(rgb.width * scale)), max(size, round(rgb.height * scale))),
                         Image.BILINEAR)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    array = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    normalised = (array - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return torch.from_numpy(normalised).permute(2, 0, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_clip_prepared_pixels_are_open_clips_own_transform(tiny_clip, seed):
    images = fresh_images(seed)
    transform = open_clip.image_transform(tiny_clip.model.visual.image_size, is_train=False)
    expected = torch.stack([transform(image.convert("RGB")) for image in images])  # RGB first, as before
    prepared = tiny_clip.prepare("image", images)
    assert prepared.dtype == torch.uint8 and prepared.shape == (len(images), 3, *tiny_clip.model.visual.image_size)
    assert torch.equal(tiny_clip.pixel_preparer.normalised(prepared, torch.device("cpu")), expected)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(tiny_clip.model.encode_image(expected), dim=-1).numpy()
    np.testing.assert_allclose(tiny_clip.embed("image", prepared), reference, atol=1e-6)
    np.testing.assert_allclose(tiny_clip.embed("image", images), reference, atol=1e-6)


@pytest.mark.parametrize("seed", [2, 3])
def test_ulip_prepared_pixels_match_slips_transform(tiny_ulip, seed):
    images = fresh_images(seed)
    size = tiny_ulip.config.vision.image_size
    expected = torch.stack([slip_pixels(image, size) for image in images])
    prepared = tiny_ulip.prepare("image", images)
    assert prepared.dtype == torch.uint8 and prepared.shape == (len(images), 3, size, size)
    torch.testing.assert_close(tiny_ulip.pixel_preparer.normalised(prepared, torch.device("cpu")), expected,
                               atol=1e-6, rtol=0)
    with torch.no_grad():
        reference = torch.nn.functional.normalize(tiny_ulip.model.encode_images(expected), dim=-1).numpy()
    np.testing.assert_allclose(tiny_ulip.embed("image", prepared), reference, atol=1e-5)
    np.testing.assert_allclose(tiny_ulip.embed("image", list(prepared)), reference, atol=1e-5)


@pytest.mark.parametrize("name", ["clip", "ulip"])
def test_preparers_need_no_weights_and_survive_pickling(name):
    encoder = build_encoder(name, "tiny", device="cpu")
    preparer = pickle.loads(pickle.dumps(encoder.preparer("image")))
    images = fresh_images(seed=5)
    assert torch.equal(preparer(images), encoder.prepare("image", images))
    assert not encoder.loaded


def test_modalities_without_preparation_pass_through(tiny_clip):
    captions = ["a dog", "a cat"]
    assert tiny_clip.preparer("text") is None
    assert tiny_clip.prepare("text", captions) == captions


@pytest.mark.parametrize(
    "bad",
    [torch.zeros((1, 3, 5, 5), dtype=torch.uint8), torch.zeros((1, 3, 32, 32), dtype=torch.float32),
     [torch.zeros((4, 32, 32), dtype=torch.uint8)], [np.zeros((32, 32, 3), np.uint8)]],
    ids=["wrong-size", "float", "four-channels", "numpy"],
)
def test_wrong_prepared_pixels_are_refused_clearly(tiny_clip, bad):
    with pytest.raises(InputError, match="uint8|PIL images"):
        tiny_clip.embed("image", bad)
