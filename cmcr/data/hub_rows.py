"""The rows of a dataset's data files: parquet tables and webdataset tars, read a piece at a time.

Parquet is read with pyarrow by row group and one column (a shard of images is never loaded
whole, and a caption column is read without the image column beside it). A webdataset tar is a
plain uncompressed tar whose members `KEY.EXT` form one sample per KEY; its listing gives each
member's offset, so a sample is read with one seek. Columns are what the Hub's dataset viewer
shows: a parquet column (bytes, the {bytes, path} struct of the Image and Audio features, strings,
lists of strings, nested lists of coordinates) or a tar member extension (`jpg`, `flac`, `txt`).

`RowReader` turns an extraction item into what the media loaders take; it is what DataLoader
workers hold, so it is picklable and opens its files lazily, once per worker.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cmcr.errors import InputError
from cmcr.hub import download_file

PARQUET, WEBDATASET, FILES = "parquet", "webdataset", "files"
# Column names tried, in order, when a source names none (the usual names on the Hub).
CANDIDATES = {
    "text": ("text", "caption", "captions", "txt", "sentence"),
    "image": ("image", "img", "jpg", "jpeg", "png", "webp"),
    "audio": ("audio", "flac", "wav", "mp3", "ogg"),
    "points": ("points", "xyz", "point_cloud", "pc", "npy", "ply"),
}
FLAGS = {"text": "--text-column", "image": "--image-column", "audio": "--audio-column", "points": "--points-column"}


def data_format(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return PARQUET if suffix == ".parquet" else WEBDATASET if suffix == ".tar" else FILES


def choose_column(modality: str, column: str | None, available: list[str], where: str) -> str:
    """`column` when `where` has it, else the first usual name for `modality`; an InputError
    listing what there is otherwise."""
    if column is not None:
        if column in available:
            return column
        problem = f"has no column '{column}'"
    else:
        found = next((name for name in CANDIDATES[modality] if name in available), None)
        if found:
            return found
        problem = f"has none of the usual {modality} columns ({', '.join(CANDIDATES[modality])})"
    raise InputError(f"{where} {problem}; its columns are {sorted(available)}. Choose one with "
                     f"{FLAGS[modality]} (sources.{modality}_column in a config file).")


# --- parquet -------------------------------------------------------------------------------------


def parquet_column(path: Path, modality: str, column: str | None, where: str) -> tuple[str, int]:
    """The column to read (checked against what `modality` can decode) and the file's row count,
    both from the footer."""
    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InputError(f"{where} is not a readable parquet file ({error})") from None
    schema = table.schema_arrow
    name = choose_column(modality, column, schema.names, where)
    kind = schema.field(name).type
    if not _decodable(modality, kind):
        raise InputError(f"column '{name}' of {where} holds {kind}, which is not {modality} data: "
                         + ("text columns hold strings (or lists of strings)" if modality == "text" else
                            f"{modality} columns hold bytes or the Hub's {{bytes, path}} struct"
                            + (", or lists of x y z coordinates" if modality == "points" else "")))
    return name, table.metadata.num_rows


def _decodable(modality: str, kind: pa.DataType) -> bool:
    if modality == "text":
        return _is_string(kind) or (_is_list(kind) and _is_string(kind.value_type))
    binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or (
        pa.types.is_struct(kind) and kind.get_field_index("bytes") >= 0)
    return binary or (modality == "points" and _is_list(kind))


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def parquet_values(path: Path, column: str) -> Iterator[tuple[int, Any]]:
    """(row, value) of one column, row group by row group."""
    table = pq.ParquetFile(path)
    row = 0
    for group in range(table.metadata.num_row_groups):
        for value in table.read_row_group(group, columns=[column]).column(0).to_pylist():
            yield row, value
            row += 1


# --- webdataset tars -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One webdataset sample: its key and where each of its members lies in the tar."""

    key: str
    members: dict[str, tuple[int, int]]  # extension -> (offset, size)


def tar_samples(path: Path, where: str) -> list[Sample]:
    """The samples of an uncompressed tar in the order they appear (members grouped by the part
    of their name before the first dot of the file name)."""
    samples: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                folder, _, name = member.name.rpartition("/")
                stem, dot, extension = name.partition(".")
                if dot:
                    key = f"{folder}/{stem}" if folder else stem
                    samples.setdefault(key, {})[extension.lower()] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError) as error:
        raise InputError(f"{where} is not an uncompressed webdataset tar ({error})") from None
    return [Sample(key, members) for key, members in samples.items()]


def read_member(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


# --- values -> what the loaders take -----------------------------------------------------------------


def texts_of(value: Any) -> list[str]:
    """The texts of one cell: a string, or each string of a list (several captions per row)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for text in value if isinstance(text, str)]
    return []


def media_of(value: Any, hint: str | None, label: str) -> tuple[bytes | np.ndarray, str | None]:
    """Bytes (with the format hint the Hub's struct or the member name gives) or, for points
    stored as coordinates, an array; an InputError for an empty cell."""
    if isinstance(value, dict):  # the Image / Audio feature: {"bytes": ..., "path": "x.jpg"}
        path = value.get("path")
        hint = Path(path).suffix.lower().lstrip(".") or hint if isinstance(path, str) else hint
        value = value.get("bytes")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value), hint
    if isinstance(value, list) and value:
        try:
            return np.asarray(value, dtype=np.float64).reshape(-1, 3) if not isinstance(value[0], list) \
                else np.asarray(value, dtype=np.float64), None
        except ValueError as error:
            raise InputError(f"{label} holds coordinates of uneven length ({error})") from None
    raise InputError(f"{label} is empty")


class RowReader:
    """Reads the item of a Hub source that extraction asks for; local items pass through.

    `local_files` maps "<repo>@<commit>/<path>" to the downloaded copy of each data file; plain
    files are downloaded on first use (in the worker that decodes them), pinned to their commit.
    """

    def __init__(self, local_files: dict[str, str]) -> None:
        self.local_files = local_files
        self._group: tuple[str, int, str, list] | None = None  # the row group read last
        self._tables: dict[str, pq.ParquetFile] = {}

    def __getstate__(self) -> dict:
        return {"local_files": self.local_files}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["local_files"])

    def source(self, item: dict) -> tuple[Any, str | None]:
        """What a media loader reads for `item`: a path, bytes or (points) an array, and a format hint."""
        if "hub" not in item:
            return item["path"], None
        label = f"{item['hub']}/{item['file']}" + (f" row {item['row']}" if "row" in item else "")
        if "row" in item:
            return media_of(self._cell(self._local(item), item["row"], item["column"]), None, label)
        if "offset" in item:
            data = read_member(Path(self._local(item)), item["offset"], item["size"])
            return media_of(data, item["member"].rpartition(".")[2], label)
        return self._local(item), None

    def _local(self, item: dict) -> str:
        key = f"{item['hub']}/{item['file']}"
        if key not in self.local_files:
            repo_id, _, commit = item["hub"].rpartition("@")
            self.local_files[key] = str(download_file(repo_id, item["file"], revision=commit, repo_type="dataset"))
        return self.local_files[key]

    def _cell(self, path: str, row: int, column: str) -> Any:
        table = self._tables.get(path)
        if table is None:
            table = self._tables[path] = pq.ParquetFile(path)
        metadata, start = table.metadata, 0
        for group in range(metadata.num_row_groups):
            count = metadata.row_group(group).num_rows
            if row < start + count:
                if self._group is None or self._group[:3] != (path, group, column):
                    values = table.read_row_group(group, columns=[column]).column(0).to_pylist()
                    self._group = (path, group, column, values)
                return self._group[3][row - start]
            start += count
        raise InputError(f"{path} has no row {row}")
