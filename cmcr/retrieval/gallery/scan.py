"""Finding the files a gallery takes: which suffixes hold which modality, and the caption each
file's item carries (from a manifest, a sidecar text file, or the file name)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cmcr.data.media.kinds import modality_of
from cmcr.errors import InputError
from cmcr.retrieval.gallery.items import SourceFile

def caption_from_name(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip()


def scan_folder(folder: str | os.PathLike) -> list[SourceFile]:
    """Every image, audio and 3D file under `folder`, sorted, with a caption for each.

    Captions come from a `manifest.json` in the file's folder or above (the layout `assets/` uses)
    when it names the file, else from a sidecar `<stem>.txt`, else from the file name.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"'{folder}' is not a folder.")
    captions = _manifest_captions(root)
    sources = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        modality = modality_of(path)
        if modality is None:
            continue
        sidecar = path.with_suffix(".txt")
        caption = captions.get(path.resolve()) or (
            sidecar.read_text(errors="replace").strip() if sidecar.is_file() else caption_from_name(path))
        sources.append(SourceFile(path, modality, caption))
    return sources


def _manifest_captions(root: Path) -> dict[Path, str]:
    """Captions from every `manifest.json` under `root`; each names files relative to its folder."""
    captions = {}
    for manifest in sorted(root.rglob("manifest.json")):
        try:
            entries = json.loads(manifest.read_text())["items"]
            captions.update({(manifest.parent / entry["file"]).resolve(): str(entry["caption"]) for entry in entries})
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(f"'{manifest}' is not a valid manifest: {error}") from None
    return captions
