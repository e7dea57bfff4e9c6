"""A Hub dataset as a local folder, for the commands that take a folder of files rather than
extraction items (galleries, folder evaluations, the ModelNet40 protocol): `local_folder`.

Plain files are mirrored at their paths in the repo (symlinks into the Hub cache), so a layout of
class folders or an index file survives. Parquet and webdataset rows are written as one file each
(`<data file stem>-<row or key>.<format>`, so rows of two data files never share a stem), one
subfolder per modality. The folder lives beside the Hub cache, named by repo, commit and what was
asked, and is built beside its place and swapped in whole: a second call reuses it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import numpy as np
from huggingface_hub import constants
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from cmcr.atomic import replace_folder
from cmcr.data.hub_rows import RowReader
from cmcr.data.hub_sources import read_hub_source
from cmcr.data.hub_uri import is_hub_uri, parse_hub_uri
from cmcr.data.media.audio import sniff_audio_format
from cmcr.data.media.points import detect_points_format
from cmcr.data.media.source import SourceBytes
from cmcr.data.plan import write_jsonl
from cmcr.data.selection import Selection, SourceOptions
from cmcr.errors import InputError
from cmcr.hub import download_file, list_repo_files

MEDIA = ("image", "audio", "points")
SKIPPED = "skipped.jsonl"  # rows that could not be written, beside the modality folders


def exports_dir() -> Path:
    return Path(constants.HF_HOME) / "cmcr" / "datasets"


def local_folder(source: str | Path, columns: Mapping[str, str] | None = None, *, progress: bool = True) -> Path:
    """`source` itself when it is a local path; for `hf://datasets/...` a local folder of its files
    (plain files) or of its rows (one file per row of each media modality found, or of those
    `columns` name: {modality: column})."""
    if not is_hub_uri(source):
        return Path(source)
    columns = dict(columns or {})
    uri = parse_hub_uri(str(source))
    listing = list_repo_files(uri.repo_id, revision=uri.revision, folder=uri.folder)
    asked = hashlib.sha256(json.dumps([uri.path, sorted(columns.items())]).encode()).hexdigest()[:12]
    target = exports_dir() / uri.repo_id.replace("/", "--") / listing.commit / asked
    if target.is_dir():
        return _single(target)
    files = [path for path, _ in listing.files if uri.matches(path)]
    if files and not any(path.endswith((".parquet", ".tar")) for path in files):
        base = uri.folder.rpartition("/")[0] if uri.folder in files else uri.folder  # one file: its folder
        return replace_folder(target,
                              lambda staging: _mirror(uri.repo_id, listing.commit, files, base, staging, progress))
    selections = _media_selections(str(source), columns, progress)
    return _single(replace_folder(target, lambda staging: _write_rows(selections, staging, progress)))


def _single(folder: Path) -> Path:
    """A folder of one modality's rows (written with its skipped.jsonl; a mirror has none) is
    handed out as that modality's subfolder."""
    children = [child for child in folder.iterdir() if child.is_dir()]
    rows = (folder / SKIPPED).is_file()
    return children[0] if rows and len(children) == 1 and children[0].name in MEDIA else folder


def _mirror(repo_id: str, commit: str, files: list[str], base: str, staging: Path, progress: bool) -> None:
    for path in tqdm(files, desc=f"files of {repo_id}", unit="file", disable=not progress):
        cached = download_file(repo_id, path, revision=commit, repo_type="dataset")
        link = staging / PurePosixPath(path).relative_to(base) if base else staging / path
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(cached.resolve(), link)


def _media_selections(source: str, columns: dict[str, str], progress: bool) -> dict[str, Selection]:
    """The rows of every media modality the source holds: those `columns` name (errors shown), or
    every modality whose usual column names are there."""
    found, reasons = {}, []
    for modality in MEDIA if not columns else [m for m in MEDIA if m in columns]:
        try:
            found[modality] = read_hub_source(source, modality, SourceOptions(columns.get(modality)), progress=progress)
        except InputError as error:
            if modality in columns:
                raise
            reasons.append(str(error))
    if not found:
        raise InputError(f"{source} holds no image, audio or 3D rows: " + " / ".join(reasons))
    return found


def _write_rows(selections: dict[str, Selection], staging: Path, progress: bool) -> None:
    skipped = []
    for modality, selection in selections.items():
        folder = staging / modality
        folder.mkdir()
        reader = RowReader(selection.local_files)
        for item in tqdm(selection.items, desc=f"writing {modality} rows", unit="row", disable=not progress):
            try:
                _write_row(folder, modality, item, reader)
            except InputError as error:
                skipped.append({"modality": modality, "id": item["id"], "reason": str(error)})
    write_jsonl(staging / SKIPPED, skipped)


def _write_row(folder: Path, modality: str, item: dict, reader: RowReader) -> None:
    value, hint = reader.source(item)
    name = f"{PurePosixPath(item['file']).stem}-{item.get('row', item.get('member', '').rpartition('.')[0])}"
    if isinstance(value, np.ndarray):
        np.save(folder / f"{name}.npy", value.astype(np.float32))
    else:
        (folder / f"{name}.{hint or _format(modality, value, item['id'])}").write_bytes(value)


def _format(modality: str, data: bytes, label: str) -> str:
    """The file suffix a row's bytes call for (folder scans pick files by suffix)."""
    if modality == "audio":
        found = sniff_audio_format(data)
    elif modality == "points":
        found = detect_points_format(SourceBytes(data, None, label))
    else:
        try:
            found = (Image.open(io.BytesIO(data)).format or "").lower().replace("jpeg", "jpg") or None
        except (UnidentifiedImageError, OSError):
            found = None
    if not found:
        raise InputError(f"{label} holds no recognisable {modality} data")
    return found

