"""cmcr.atomic: readers see the old content or the new, and a failed writer leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from cmcr.atomic import replace_folder, replacing, write_bytes, write_json


def test_a_file_is_replaced_whole_and_a_failed_write_keeps_the_old_one(tmp_path):
    target = tmp_path / "sub" / "data.bin"
    write_bytes(target, b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(RuntimeError), replacing(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("killed mid-way")
    assert target.read_bytes() == b"first" and sorted(p.name for p in target.parent.iterdir()) == ["data.bin"]


def test_json_is_strict_and_newline_terminated(tmp_path):
    path = write_json(tmp_path / "a.json", {"x": 1})
    assert path.read_text().endswith("}\n") and json.loads(path.read_text()) == {"x": 1}
    with pytest.raises(ValueError):
        write_json(tmp_path / "b.json", {"x": float("nan")})
    assert not (tmp_path / "b.json").exists() and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_folder_is_swapped_in_whole(tmp_path):
    folder = tmp_path / "space"
    replace_folder(folder, lambda staging: (staging / "one").write_text("1"))
    replace_folder(folder, lambda staging: (staging / "two").write_text("2"))
    assert [p.name for p in folder.iterdir()] == ["two"]

    def broken(staging):
        (staging / "three").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError):
        replace_folder(folder, broken)
    assert [p.name for p in folder.iterdir()] == ["two"] and [p.name for p in tmp_path.iterdir()] == ["space"]
