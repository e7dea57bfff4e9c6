"""Previews: thumbnails, trimmed audio and light 3D models that decode as media again."""

from __future__ import annotations

from cmcr.data.media import load_audio, load_image, load_points


def test_previews_are_light_and_decode(saved):
    by_modality = {item.modality: saved.preview_path(item) for item in saved.items}
    thumbnail = load_image(by_modality["image"])
    assert max(thumbnail.size) == 256 and thumbnail.size == (256, 128)
    assert len(load_audio(by_modality["audio"])) == 10 * 48000
    assert by_modality["points"].suffix == ".glb"
    assert load_points(by_modality["points"], num_points=256).shape == (256, 3)
    assert by_modality["text"] is None
