"""Example inputs are embedded once: Gradio's copy of an example file, or an example text, is
recognised and its kept row reused; anything else is embedded every time."""

from __future__ import annotations

import shutil

import numpy as np

from studio.answers import Query


def test_an_example_click_reuses_its_row_and_an_upload_does_not(studio, uploads, tmp_path, monkeypatch):
    from studio import gpu

    calls = []
    embed = gpu.embed_on_gpu
    monkeypatch.setattr(gpu, "embed_on_gpu", lambda *args: calls.append(args[1]) or embed(*args))
    example = studio.examples("audio")[0]
    gradio_copy = tmp_path / "copy-of-the-example.wav"  # Gradio hands examples over as its own copy
    shutil.copy(example, gradio_copy)
    first = studio.answer(Query("audio", example), "image", k=3)
    again = studio.answer(Query("audio", str(gradio_copy)), "image", k=3)
    assert [hit.caption for hit in again.hits] == [hit.caption for hit in first.hits]
    assert len(calls) <= 1  # none if an earlier test clicked it already

    altered = tmp_path / "same-size-other-sound.wav"
    data = bytearray(gradio_copy.read_bytes())
    data[-1] ^= 0xFF
    altered.write_bytes(bytes(data))
    before = len(calls)
    studio.answer(Query("audio", str(altered)), "image", k=3)
    studio.answer(Query("audio", str(uploads["audio"])), "image", k=3)
    assert len(calls) == before + 2


def test_example_texts_are_kept_other_texts_are_not(studio, monkeypatch):
    from studio import gpu

    calls = []
    embed = gpu.embed_on_gpu
    monkeypatch.setattr(gpu, "embed_on_gpu", lambda *args: calls.append(args[1]) or embed(*args))
    text = studio.examples("text")[0]
    rows = [studio.embed(Query("text", text), "points") for _ in range(3)]
    assert len(calls) <= 1 and all(np.array_equal(row, rows[0]) for row in rows)
    studio.embed(Query("text", text + " in the rain"), "points")
    studio.embed(Query("text", text + " in the rain"), "points")
    assert calls[-2:] == ["text", "text"]
