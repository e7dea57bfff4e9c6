"""Raw sources → the items to extract: text files and folders of image, audio and 3D files, or Hub
datasets (`hf://datasets/...`, cmcr.data.hub_sources) in their place, collected per modality
with where each came from.

Only the listing happens here; decoding waits for extraction (`cmcr.data.extract`), so collecting a
million files costs one folder walk, and a file's size and modification time go into each item
for the plan's fingerprint. Each source may be limited to a number of rows and subsampled with a
seed (cmcr.data.selection).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmcr.data.hub_sources import read_hub_source
from cmcr.data.hub_uri import is_hub_uri
from cmcr.data.media.kinds import EXTENSIONS
from cmcr.data.selection import Selection, SourceOptions, subsample
from cmcr.data.text_files import TEXT_SUFFIXES, read_text_file
from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES

__all__ = ["Sources", "SourceOptions", "TEXT_SUFFIXES", "collect_sources", "read_text_file", "scan_media"]


def scan_media(folder: str | Path, modality: str) -> list[dict]:
    """Every file of `modality` under `folder` (recursive, by extension), sorted; each item holds
    its path and, for the plan's fingerprint, its size and modification time."""

    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{modality} source {root} is not a folder")
    suffixes = EXTENSIONS[modality]
    items = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes):
        stat = path.stat()
        items.append({"id": path.relative_to(root).as_posix(), "path": str(path.resolve()),
                      "size": stat.st_size, "mtime_ns": stat.st_mtime_ns})
    if not items:
        raise InputError(f"{modality} source {root} holds no {modality} files "
                         f"({', '.join(suffixes)})")
    return items


@dataclass
class Sources:
    """The items to extract per modality, a one-line description of where each came from, and
    for Hub datasets their records, downloaded data files and unreadable rows."""

    items: dict[str, list[dict]] = field(default_factory=dict)
    described: dict[str, str] = field(default_factory=dict)
    datasets: list[dict] = field(default_factory=list)
    local_files: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)

    def add(self, modality: str, items: list[dict], described: str) -> None:
        if modality in self.items:
            raise InputError(f"{modality} is given twice ({self.described[modality]}, {described})")
        self.items[modality], self.described[modality] = items, described

    def add_selections(self, modality: str, selections: Sequence[Selection]) -> None:
        self.add(modality, [item for s in selections for item in s.items], ", ".join(s.described for s in selections))
        for selection in selections:
            self.datasets += [selection.record] if selection.record else []
            self.local_files.update(selection.local_files)
            self.skipped += selection.skipped

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.items]


def read_source(source: str | Path, modality: str, options: SourceOptions = SourceOptions(), *,
                progress: bool = True) -> Selection:
    """The items of one source of `modality`: a Hub dataset, a text file or a media folder."""
    options.check(modality)
    if is_hub_uri(source):
        return read_hub_source(str(source), modality, options, progress=progress)
    found = read_text_file(source, options.column) if modality == "text" else scan_media(source, modality)
    chosen = subsample(found, options)
    described = str(source) + (f" ({options.describe(len(chosen), len(found))})" if len(chosen) < len(found) else "")
    return Selection(chosen, described)


def collect_sources(*, text: Sequence[str | Path] = (), texts: Sequence[str] | None = None,
                    images: str | Path | None = None, audio: str | Path | None = None,
                    points: str | Path | None = None, options: Mapping[str, SourceOptions] | None = None,
                    progress: bool = True) -> Sources:
    """Gather items from text files (or ready `texts`, e.g. the default corpus), folders and Hub
    datasets; `options` (per modality) choose columns, row limits and subsampling."""
    options = options or {}
    sources = Sources()
    local = [Path(path).name for path in text if not is_hub_uri(path)]
    if len(set(local)) < len(local):
        raise InputError(f"text files need distinct names (their items are named file:line): {local}")
    selections = [read_source(path, "text", options.get("text", SourceOptions()), progress=progress)
                  for path in text]
    if texts is not None:
        selections.append(Selection([{"id": f"corpus:{i}", "text": t} for i, t in enumerate(texts)],
                                    "the default corpus (cmcr.data.corpus)"))
    if selections:
        sources.add_selections("text", selections)
    for modality, source in (("image", images), ("audio", audio), ("points", points)):
        if source is not None:
            sources.add_selections(modality, [read_source(source, modality, options.get(modality, SourceOptions()),
                                                          progress=progress)])
    if not sources.items:
        raise InputError("nothing to extract: give --text, --images, --audio or --points")
    return sources
