"""Every binary file the repository tracks goes through Git LFS, as the Hugging Face Hub requires
of a Space; so does every binary media type the app and its galleries read, so a new asset of
any of them stays covered. Coverage is what git itself reports (`git check-attr`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cmcr.retrieval.gallery import EXTENSIONS
from tests.paths import REPO

TEXT_SHAPE_SUFFIXES = {".obj", ".off", ".gltf", ".xyz", ".pts"}  # text formats the parser reads
BINARY_SUFFIXES = (set(EXTENSIONS["image"]) | set(EXTENSIONS["audio"])
                   | set(EXTENSIONS["points"]) - TEXT_SHAPE_SUFFIXES
                   | {".pt", ".safetensors", ".faiss", ".sqlite"})


def _git(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=REPO, input=data, capture_output=True, check=True).stdout


def tracked_files() -> list[str]:
    return [name for name in _git("ls-files", "-z").decode().split("\0") if name]


def is_binary(name: str) -> bool:
    path = REPO / name
    return path.suffix.lower() in BINARY_SUFFIXES or (path.is_file() and b"\0" in path.read_bytes()[:8192])


def lfs_attributes(names: list[str]) -> dict[str, dict[str, str]]:
    """name -> {attribute: value} for filter, diff, merge and text, as git resolves them."""
    output = _git("check-attr", "-z", "--stdin", "filter", "diff", "merge", "text",
                  data=b"\0".join(name.encode() for name in names) + b"\0").decode().split("\0")
    attributes: dict[str, dict[str, str]] = {}
    for name, attribute, value in zip(output[0::3], output[1::3], output[2::3]):
        attributes.setdefault(name, {})[attribute] = value
    return attributes


def uncovered(names: list[str]) -> list[str]:
    lfs = {"filter": "lfs", "diff": "lfs", "merge": "lfs", "text": "unset"}
    return sorted(name for name, found in lfs_attributes(names).items() if found != lfs)


def test_the_repository_tracks_binary_files_and_each_goes_through_lfs():
    binaries = [name for name in tracked_files() if is_binary(name)]
    assert len(binaries) > 40 and "docs/screenshot.png" in binaries  # the assets and the screenshot
    assert uncovered(binaries) == []


def test_text_files_stay_plain_git():
    texts = [name for name in tracked_files() if Path(name).suffix in {".py", ".md", ".json", ".yaml", ".toml"}]
    assert texts and not set(texts) & {name for name, found in lfs_attributes(texts).items()
                                          if found["filter"] == "lfs"}


def test_every_binary_media_type_the_app_reads_is_covered_before_it_is_added():
    assert uncovered([f"assets/new{suffix}" for suffix in sorted(BINARY_SUFFIXES)]) == []


def test_a_binary_file_of_an_unlisted_type_is_found_by_its_content():
    stray = REPO / "test-artifacts" / "stray.weights"
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"\x00\x01binary")
    try:
        assert is_binary("test-artifacts/stray.weights")
        assert uncovered(["test-artifacts/stray.weights"]) == ["test-artifacts/stray.weights"]
    finally:
        stray.unlink()
