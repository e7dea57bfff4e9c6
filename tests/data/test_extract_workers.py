"""Decoding and image preparation in DataLoader workers: the same features as in-process."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from cmcr.data.extract import extract
from cmcr.data.features import FeatureMemory
from cmcr.data.plan import ExtractOptions
from cmcr.data.sources import collect_sources

OPTIONS = ExtractOptions(profile="tiny", shard_size=3, num_workers=0, device="cpu", num_points=512)


def test_two_workers_give_the_same_features_as_none(sources, tmp_path):
    images_and_points = collect_sources(images=sources["images"], points=sources["points"])
    memories = {}
    for workers in (0, 2):
        output = tmp_path / f"workers-{workers}"
        report = extract(images_and_points, output, dataclasses.replace(OPTIONS, num_workers=workers),
                         progress=False)
        assert report.finalised and report.counts == {"image": 4, "points": 4}
        memories[workers] = FeatureMemory(output)
    for modality, encoder in (("image", "clip"), ("image", "ulip"), ("points", "ulip")):
        in_process = np.asarray(memories[0].load(modality, encoder))
        in_workers = np.asarray(memories[2].load(modality, encoder))
        np.testing.assert_allclose(in_workers, in_process, rtol=0, atol=1e-6)  # other processes decode
        assert np.abs(in_process[0] - in_process[1]).max() > 1e-3  # distinct files, distinct rows
    assert memories[2].items("image") == memories[0].items("image")


def test_workers_hand_over_stacked_uint8_pixels_not_decoded_images(sources):
    from cmcr.data.extract import _collate, _Decoded
    from cmcr.models.encoders import build_encoder

    images = collect_sources(images=sources["images"]).items["image"]  # one of them is unreadable
    encoders = {name: build_encoder(name, "tiny", device="cpu") for name in ("clip", "ulip")}
    dataset = _Decoded("image", images, 512, {name: e.preparer("image") for name, e in encoders.items()})
    decoded, inputs = _collate([dataset[i] for i in range(len(dataset))])
    readable = [index for index, reason in decoded if reason is None]
    assert [index for index, _ in decoded] == list(range(len(images))) and len(readable) == len(images) - 1
    for name, encoder in encoders.items():
        size = encoder.preparer("image").size
        assert inputs[name].dtype == torch.uint8 and inputs[name].shape == (len(readable), 3, *size)
    assert not any(encoder.loaded for encoder in encoders.values())  # no model in the workers
