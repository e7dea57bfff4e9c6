"""`ingest` decoding on threads ahead of the model, and JPEGs decoded at a reduced DCT scale."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from cmcr.retrieval.gallery import Gallery, ingest, scan_folder
from tests.paths import ASSETS


def _ingested(embedder, folder, root, **options) -> Gallery:
    gallery = Gallery.create(root, embedder.space_id, embedder.space.dim, device="cpu")
    report = ingest(gallery, scan_folder(folder), embedder, batch_size=3, **options)
    assert report.added == len(gallery) > 3
    return gallery


def test_threads_build_the_same_gallery_as_the_calling_thread(tiny_embedder, tmp_path):
    folder = tmp_path / "assets"
    shutil.copytree(ASSETS, folder)
    shutil.copy(folder / "images" / "car.png", folder / "images" / "car-again.png")  # a duplicate
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    galleries, reports = {}, {}
    for workers in (0, 3):
        gallery = Gallery.create(tmp_path / f"g{workers}", tiny_embedder.space_id, tiny_embedder.space.dim,
                                 device="cpu")
        reports[workers] = ingest(gallery, scan_folder(folder), tiny_embedder, batch_size=2, workers=workers)
        galleries[workers] = gallery
    assert reports[3] == reports[0] and reports[0].duplicates == 1 and len(reports[0].failed) == 1
    assert [(i.source, i.sha256) for i in galleries[3].items] == [(i.source, i.sha256) for i in galleries[0].items]
    # same batches, other threads: equal up to rounding (never compare floats exactly across threads)
    np.testing.assert_allclose(galleries[3].embeddings(), galleries[0].embeddings(), rtol=0, atol=1e-6)


def test_reduced_jpeg_decoding_keeps_embeddings_close(tiny_embedder, tmp_path):
    rng = np.random.default_rng(7)
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(4):  # smooth photo-like content, several times the encoders' input size
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((640, 480), Image.BICUBIC).save(folder / f"p{index}.jpg", quality=90)
    full = _ingested(tiny_embedder, folder, tmp_path / "full", reduced_decode=False, workers=0)
    reduced = _ingested(tiny_embedder, folder, tmp_path / "reduced", reduced_decode=True, workers=0)
    cosines = np.sum(full.embeddings() * reduced.embeddings(), axis=1)
    assert cosines.min() > 0.9999
    assert not np.array_equal(full.embeddings(), reduced.embeddings())  # the reduced decode did run


def test_a_gltf_whose_nodes_form_a_cycle_is_listed_and_the_batch_goes_on(tiny_embedder, tmp_path):
    import json

    from tests.fixtures.media import make_mesh_file

    folder = tmp_path / "shapes"
    folder.mkdir()
    good = make_mesh_file(folder, fmt="glb")
    document = json.loads(make_mesh_file(tmp_path, fmt="gltf").read_text())
    document["nodes"][0]["children"] = [1]
    document["nodes"].append({"children": [0]})
    (folder / "cyclic.gltf").write_text(json.dumps(document))
    gallery = Gallery.create(tmp_path / "g", tiny_embedder.space_id, tiny_embedder.space.dim, device="cpu")
    report = ingest(gallery, scan_folder(folder), tiny_embedder)
    assert report.added == 1 and [item.source for item in gallery.items] == [str(good)]
    assert len(report.failed) == 1 and "cycle" in report.failed[0][1]
