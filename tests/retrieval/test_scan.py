"""Which files a folder scan takes, and with which modality and caption."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmcr.data.media import load_points
from cmcr.retrieval.gallery import scan_folder
from studio.service import upload_modality


def test_a_folder_scan_takes_every_3d_format_but_leaves_caption_files_alone(tmp_path):
    cloud = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
    np.savez(tmp_path / "rock.npz", points=cloud)
    np.save(tmp_path / "cone.npy", cloud)
    (tmp_path / "cone.txt").write_text("a traffic cone")  # the .npy file's caption, not a cloud
    (tmp_path / "labels.csv").write_text("file,label\ncone.npy,cone\n")
    scanned = {source.path.name: (source.modality, source.caption) for source in scan_folder(tmp_path)}
    assert scanned == {"cone.npy": ("points", "a traffic cone"), "rock.npz": ("points", "rock")}
    assert load_points(tmp_path / "rock.npz", num_points=64).shape == (64, 3)
    assert [upload_modality(Path(f"scan{suffix}")) for suffix in (".txt", ".csv", ".npz")] == ["points"] * 3
