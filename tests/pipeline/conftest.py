"""Small raw-data folders (files written by the tests) and one shared tiny pipeline run.

The run is module-scoped per test module that asks for it: loading the toy encoders is most of
its cost (tens of seconds on a shared CPU), and several tests only inspect what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures.media import make_audio_file, make_image_file, make_points_file, random_cloud

STEMS = ("anvil", "bell", "cello", "drum")
QUICK = ["extract.num_workers=0", "extract.device=cpu", "extract.shard_size=16", "extract.num_points=512",
         "sources.corpus_size=40", "train.epochs=2", "train.hidden=32", "train.batch_size=16",
         "train.device=cpu", "evaluation.holdout_fraction=0.25"]


def write_sources(root: Path) -> dict[str, Path]:
    """Image, audio and 3D folders whose files share stems (anvil.png, anvil.wav, anvil.ply),
    one unreadable image, and a text file."""
    folders = {name: root / name for name in ("images", "audio", "points")}
    for folder in folders.values():
        (folder / "nested").mkdir(parents=True)
    for i, stem in enumerate(STEMS):
        where = "nested" if i % 2 else ""
        make_image_file(folders["images"] / where, size=(40 + 8 * i, 32 + 4 * i), name=f"{stem}.png")
        make_audio_file(folders["audio"] / where, seconds=0.5, frequency=220.0 * (i + 1), name=f"{stem}.wav")
        make_points_file(folders["points"] / where, fmt="ply", points=random_cloud(600, seed=i), name=f"{stem}.ply")
    (folders["images"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    (folders["images"] / "notes.md").write_text("not an image: ignored by extension")
    text = root / "captions.txt"
    text.write_text("".join(f"the sound of a {stem}\na photo of a {stem}\n" for stem in STEMS))
    return {**folders, "text": text}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    return write_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """As in CI: OpenMP spinning on a shared 2-core machine costs more than it gains."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
