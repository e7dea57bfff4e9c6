"""Feature memories: writing, streaming, lazy loading, validation, and the connection table
(cmcr.data.connections) read from them."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import cmcr.data.features as features_module
from cmcr.data.connections import CONNECTIONS, available_connections, get_connection, load_connection
from cmcr.data.features import FeatureMemory
from cmcr.errors import InputError

DIM = 8


def _rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim))


def _items(n: int, prefix: str = "t") -> list[dict]:
    return [{"id": f"{prefix}{i}", "text": f"caption {i}"} for i in range(n)]


@pytest.fixture
def memory(tmp_path: Path) -> FeatureMemory:
    """A complete, valid memory with both connections available."""
    mem = FeatureMemory(tmp_path / "features")
    mem.write("text", "clip", _rows(10, seed=1), _items(10), checkpoint="ViT-B-32/openai", source="captions")
    mem.write("text", "clap", _rows(10, seed=2).astype(np.float16), checkpoint="630k-fusion-best.pt")
    mem.write("image", "clip", _rows(6, seed=3), _items(6, "img"))
    mem.write("image", "ulip", _rows(6, seed=4))
    mem.write("audio", "clap", _rows(7, seed=5))
    mem.write("points", "ulip", _rows(5, seed=6))
    return mem


# --- writing and reading ----------------------------------------------------------------------


def test_write_normalises_keeps_dtype_and_describes_itself_in_the_manifest(memory):
    raw = _rows(10, seed=1)
    text_clip = memory.load("text", "clip")
    assert isinstance(text_clip, np.memmap) and text_clip.dtype == np.float32
    np.testing.assert_allclose(text_clip, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    text_clap = memory.load("text", "clap", mmap=False)
    assert not isinstance(text_clap, np.memmap) and text_clap.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(text_clap.astype(np.float32), axis=1), 1, atol=1e-2)
    manifest = json.loads((memory.root / "manifest.json").read_text())
    assert manifest["encoders"]["clip"] == {"dim": DIM, "checkpoint": "ViT-B-32/openai"}
    assert manifest["modalities"]["text"] == {"count": 10, "encoders": ["clap", "clip"], "source": "captions"}
    assert memory.items("text") == _items(10)
    assert [item["id"] for item in memory.items("audio")] == [f"audio-{i}" for i in range(7)]
    memory.validate()


def test_streaming_writer_equals_one_write(tmp_path):
    rows, items = _rows(23, seed=7), _items(23)
    whole = FeatureMemory(tmp_path / "whole")
    whole.write("text", "clip", rows, items)
    streamed = FeatureMemory(tmp_path / "streamed")
    with streamed.writer("text", "clip", dim=DIM) as writer:
        for start in range(0, 23, 5):
            writer.append(rows[start:start + 5], items[start:start + 5])
    np.testing.assert_array_equal(streamed.load("text", "clip"), whole.load("text", "clip"))
    assert streamed.items("text") == items
    assert sorted(p.name for p in (streamed.root / "text").iterdir()) == ["clip.npy", "items.jsonl"]


def test_failed_stream_leaves_the_previous_file_untouched(memory):
    before = np.array(memory.load("audio", "clap"))
    manifest_before = (memory.root / "manifest.json").read_text()
    with pytest.raises(RuntimeError, match="extraction crashed"):
        with memory.writer("audio", "clap", dim=DIM) as writer:
            writer.append(_rows(3, seed=8))
            raise RuntimeError("extraction crashed")
    np.testing.assert_array_equal(memory.load("audio", "clap"), before)
    assert (memory.root / "manifest.json").read_text() == manifest_before
    assert sorted(p.name for p in (memory.root / "audio").iterdir()) == ["clap.npy", "items.jsonl"]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda m: m.write("text", "clip", np.vstack([_rows(9), [[np.nan] * DIM]]), _items(10)), "row 9"),
        (lambda m: m.write("text", "clip", np.vstack([_rows(9), np.zeros((1, DIM))]), _items(10)), "row 9"),
        (lambda m: m.write("text", "clip", _rows(9), _items(9)), "9 rows but text/clap.npy has 10"),
        (lambda m: m.write("text", "clip", _rows(10), _items(10, "other")), "differ from"),
        (lambda m: m.write("audio", "clap", _rows(4)), "lists 7 items"),
        (lambda m: m.write("audio", "clap", _rows(7, dim=DIM + 1)), "are 8-d, these are 9-d"),
        (lambda m: m.write("text", "clap", _rows(10), checkpoint="other.pt"), "checkpoint"),
        (lambda m: m.write("image", "clap", _rows(6)), "embeds \\['text', 'audio'\\]"),
        (lambda m: m.write("text", "bert", _rows(10)), "unknown encoder"),
        (lambda m: m.write("text", "clip", _rows(10)[0]), "2-D"),
        (lambda m: m.write("text", "clip", _rows(10), _items(9)), "10 rows came with 9 items"),
        (lambda m: m.write("text", "clip", _rows(10), [{"text": "no id"}] * 10), "'id'"),
        (lambda m: m.write("text", "clip", _rows(10), dtype=np.float64), "float16 or float32"),
    ],
    ids=["nan", "zero-row", "misaligned", "other-ids", "items-count", "dim", "checkpoint",
         "encoder-modality", "unknown-encoder", "1-d", "items-length", "items-without-id", "float64"],
)
def test_bad_writes_are_refused_and_change_nothing(memory, write, message):
    snapshot = {p.relative_to(memory.root): p.read_bytes() for p in memory.root.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=message):
        write(memory)
    after = {p.relative_to(memory.root): p.read_bytes() for p in memory.root.rglob("*") if p.is_file()}
    assert after == snapshot
    memory.validate()


def test_mixing_batches_with_and_without_items_is_refused(tmp_path):
    mem = FeatureMemory(tmp_path)
    with pytest.raises(InputError, match="every batch or with none"):
        with mem.writer("text", "clip", dim=DIM) as writer:
            writer.append(_rows(2), _items(2))
            writer.append(_rows(2))
    assert not (tmp_path / "text" / "clip.npy").exists()


def test_load_checks_the_header_against_the_manifest(memory):
    np.save(memory.root / "points" / "ulip.npy", _rows(5, DIM + 2).astype(np.float32))
    with pytest.raises(InputError, match="width 10 but manifest.json says ulip dim 8"):
        memory.load("points", "ulip")
    np.save(memory.root / "points" / "ulip.npy", np.array([{"a": 1}] * 3, dtype=object))
    with pytest.raises(InputError, match="not a readable .npy"):
        memory.load("points", "ulip")
    with pytest.raises(InputError, match="does not exist"):
        FeatureMemory(memory.root / "nowhere").load("audio", "clap")


# --- validation -------------------------------------------------------------------------------


def test_validate_lists_every_problem_at_once(memory):
    root = memory.root
    off_norm = np.array(memory.load("audio", "clap"))
    off_norm[3] *= 2
    np.save(root / "audio" / "clap.npy", off_norm)                                      # 1
    nan_rows = np.array(memory.load("image", "ulip"))
    nan_rows[1, 0] = np.nan
    np.save(root / "image" / "ulip.npy", nan_rows)                                      # 2
    np.save(root / "points" / "ulip.npy", np.array(memory.load("points", "ulip"))[:4])  # 3 (count)
    (root / "text" / "items.jsonl").write_text("\n".join(json.dumps(i) for i in _items(9)) + "\n{oops\n")  # 4
    (root / "image" / "items.jsonl").unlink()                                           # 5
    (root / "video").mkdir()                                                            # 6
    np.save(root / "audio" / "clip.npy", _rows(7).astype(np.float32))                   # 7
    with pytest.raises(InputError) as caught:
        memory.validate()
    message = str(caught.value)
    for expected in (
        "audio/clap.npy has 1 row(s) whose norm is not 1 (±0.001); first bad row 3",
        "image/ulip.npy has 1 row(s) with NaN or infinite values; first bad row 1",
        "points/ulip.npy has 4 rows but manifest.json says points count 5",
        "text/items.jsonl: line 10 is not JSON",
        "image/items.jsonl is missing",
        "video/ is not a modality folder",
        "audio/clip.npy: no known encoder 'clip' embeds audio",
    ):
        assert expected in message
    assert "points/items.jsonl lists 5 items but rows are {'ulip': 4}" in message
    assert "manifest.json lists audio encoders ['clap'] but the folder holds ['clap', 'clip']" in message
    assert message.count("\n- ") == 9


def test_validate_checks_alignment_widths_and_manifest_listing(memory):
    root = memory.root
    np.save(root / "text" / "clap.npy", np.array(memory.load("text", "clap"))[:8])
    np.save(root / "image" / "clip.npy", (_rows(6, DIM + 4) / 4).astype(np.float32))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["modalities"]["text"].pop("count")
    manifest["modalities"]["audio"]["encoders"] = []
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError) as caught:
        memory.validate()
    message = str(caught.value)
    assert "text/ files are not row-aligned: rows per encoder {'clap': 8, 'clip': 10}" in message
    assert "text/items.jsonl lists 10 items but rows are {'clap': 8}" in message
    assert "image/clip.npy has width 12 but manifest.json says clip dim 8" in message
    assert "clip files have different widths [8, 12]" in message
    assert "manifest.json lists audio encoders [] but the folder holds ['clap']" in message


def test_validate_reports_missing_or_broken_manifest_and_folder(tmp_path, memory):
    with pytest.raises(InputError, match="is not a folder"):
        FeatureMemory(tmp_path / "absent").validate()
    (memory.root / "manifest.json").write_text("{broken")
    with pytest.raises(InputError, match="manifest.json is not valid JSON"):
        memory.validate()
    (memory.root / "manifest.json").unlink()
    with pytest.raises(InputError, match="manifest.json is missing"):
        memory.validate()


def test_validation_walks_chunks_and_finds_bad_rows_in_later_ones(memory, monkeypatch):
    monkeypatch.setattr(features_module, "CHUNK_ROWS", 2)
    rows = np.array(memory.load("text", "clip"))
    rows[7] = np.inf
    np.save(memory.root / "text" / "clip.npy", rows)
    with pytest.raises(InputError, match="text/clip.npy has 1 row\\(s\\) with NaN or infinite values; first bad row 7"):
        memory.validate()


def test_validation_of_a_large_file_stays_memory_mapped(tmp_path, monkeypatch):
    """Validating 12.8 MB of rows must not pull the file into RAM: peak allocation stays near a
    chunk (0.5 MB) plus 8 bytes per item, far below the file size."""
    monkeypatch.setattr(features_module, "CHUNK_ROWS", 2048)
    mem = FeatureMemory(tmp_path)
    rows = np.random.default_rng(0).normal(size=(50_000, 64)).astype(np.float32)
    with mem.writer("audio", "clap", dim=64) as writer:
        for start in range(0, len(rows), 10_000):
            writer.append(rows[start:start + 10_000])
    del rows
    tracemalloc.start()
    try:
        mem.validate()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"validation allocated {peak / 1e6:.1f} MB for a 12.8 MB file"


def test_duplicate_item_ids_are_reported(memory):
    items = _items(7, "a")
    items[5]["id"] = "a2"
    (memory.root / "audio" / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    with pytest.raises(InputError, match="audio/items.jsonl: line 6 repeats id 'a2'"):
        memory.validate()
    with pytest.raises(InputError, match="line 6 repeats id 'a2'"):
        memory.items("audio")


# --- connections ------------------------------------------------------------------------------


def test_connection_table_matches_the_architecture():
    clap = CONNECTIONS["clap→clip"]
    assert (clap.x, clap.y) == ("clip", "clap")
    assert clap.files() == {"o_x": ("text", "clip"), "o_y": ("text", "clap"),
                            "p": ("image", "clip"), "q": ("audio", "clap")}
    ulip = CONNECTIONS["ulip→clip"]
    assert (ulip.x, ulip.y) == ("clip", "ulip")
    assert ulip.files() == {"o_x": ("image", "clip"), "o_y": ("image", "ulip"),
                            "p": ("text", "clip"), "q": ("points", "ulip")}
    assert get_connection("ulip->clip") is ulip
    with pytest.raises(InputError, match="unknown connection"):
        get_connection("clap→ulip")


def test_available_and_loaded_connections(memory, tmp_path):
    assert available_connections(memory) == ["clap→clip", "ulip→clip"]
    partial = FeatureMemory(tmp_path / "partial")
    partial.write("text", "clip", _rows(4), _items(4))
    partial.write("text", "clap", _rows(4))
    partial.write("image", "clip", _rows(3))
    assert available_connections(partial) == []
    partial.write("audio", "clap", _rows(2))
    assert available_connections(partial) == ["clap→clip"]
    loaded = load_connection(memory, "ulip→clip")
    assert loaded["x"] == "clip" and loaded["y"] == "ulip"
    assert loaded["cmcr_projector"] == "one-layer"  # the official C-MCR ULIP–CLIP projectors
    assert load_connection(memory, "clap→clip")["cmcr_projector"] == "two-layer"
    assert [loaded[role].shape for role in ("o_x", "o_y", "p", "q")] == [(6, DIM), (6, DIM), (10, DIM), (5, DIM)]
    np.testing.assert_array_equal(loaded["q"], memory.load("points", "ulip"))
