"""A Hub dataset (`hf://datasets/...`) as the items of one modality, pinned to one commit.

The revision is resolved to its commit and the folder listed once (cmcr.hub); every item then
names that commit, so the plan's fingerprint, the feature manifest and the model card all say
exactly which data was read, and a branch that moves later cannot mix two versions in one memory.

Three layouts are read, chosen by what the folder holds: parquet files (pyarrow), webdataset
tars, or plain files of the modality (images, sounds, 3D files, text files). Parquet and tar
files are downloaded one by one into the Hub cache (their rows must be counted), in a seeded
order, until the row limit is reached; plain files are listed only and downloaded by the
extraction workers that decode them. Rows are cut into the extraction's ordinary shards, so a
killed run resumes at a shard boundary and torchrun ranks share the work as for local files.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from cmcr.data import hub_rows
from cmcr.data.hub_rows import FILES, PARQUET, WEBDATASET, data_format
from cmcr.data.hub_uri import HubURI, parse_hub_uri
from cmcr.data.media.kinds import EXTENSIONS
from cmcr.data.selection import Selection, SourceOptions, subsample, visit_order
from cmcr.data.text_files import TEXT_SUFFIXES, read_text_file, text_items
from cmcr.errors import InputError
from cmcr.hub import RepoListing, download_file, list_repo_files

Rows = tuple[list[dict], list[dict]]  # (items, skipped rows) of one data file


def read_hub_source(text: str, modality: str, options: SourceOptions = SourceOptions(), *,
                    progress: bool = True) -> Selection:
    """The items of `modality` that `text` (hf://datasets/...) names, at the commit its revision
    resolves to, limited and subsampled as `options` say."""
    options.check(modality)
    uri = parse_hub_uri(text)
    listing = list_repo_files(uri.repo_id, revision=uri.revision, folder=uri.folder)
    files = [path for path, _ in listing.files if uri.matches(path)]
    layout, data_files = _data_files(files, modality, text)
    source = _HubFiles(uri, listing, layout)
    if layout == FILES and modality != "text":
        chosen = subsample(data_files, options)
        items = [{"id": f"{uri.repo_id}/{path}", "hub": source.hub, "file": path} for path in chosen]
        return source.selection(modality, items, options, None, len(data_files), len(data_files), len(data_files))
    items, skipped, visited = [], [], 0
    for path in tqdm(visit_order(data_files, options), desc=f"{modality}: {uri.repo_id}", unit="file",
                     disable=not progress):
        local = download_file(uri.repo_id, path, revision=listing.commit, repo_type="dataset")
        source.local_files[source.key(path)] = str(local)
        file_items, file_skipped, column = source.rows(modality, path, local, options.column)
        options = SourceOptions(column, options.rows, options.seed)  # the column the first file settled
        items += file_items
        skipped += file_skipped
        visited += 1
        if options.rows is not None and len(items) >= options.rows:
            break
    if not items:
        raise InputError(f"{text} holds no {modality} rows in {visited} data file(s) (see the skipped rows)")
    chosen = subsample(items, options)
    return source.selection(modality, chosen, options, skipped, len(data_files), len(items), visited)


def _data_files(files: list[str], modality: str, text: str) -> tuple[str, list[str]]:
    """Parquet if the folder has any, else webdataset tars, else the modality's plain files."""
    for layout in (PARQUET, WEBDATASET):
        found = [path for path in files if data_format(path) == layout]
        if found:
            return layout, found
    suffixes = TEXT_SUFFIXES if modality == "text" else EXTENSIONS[modality]
    found = [path for path in files if PurePosixPath(path).suffix.lower() in suffixes]
    if not found:
        shown = ", ".join(files[:5]) + (" ..." if len(files) > 5 else "") if files else "no files at all"
        raise InputError(f"{text} holds no parquet files, webdataset .tar files or {modality} files "
                         f"({', '.join(suffixes)}); it has {shown}")
    return FILES, found


class _HubFiles:
    """The data files of one source at one commit, and how each turns into items."""

    def __init__(self, uri: HubURI, listing: RepoListing, layout: str) -> None:
        self.uri, self.listing, self.layout = uri, listing, layout
        self.hub = f"{uri.repo_id}@{listing.commit}"
        self.local_files: dict[str, str] = {}

    def key(self, path: str) -> str:
        return f"{self.hub}/{path}"

    def rows(self, modality: str, path: str, local: Path,
             column: str | None) -> tuple[list[dict], list[dict], str | None]:
        """Items and skipped rows of one downloaded data file, and the column read."""
        where = f"{self.uri.pinned(self.listing.commit)} file {path}"
        base = f"{self.uri.repo_id}/{PurePosixPath(path).with_suffix('')}"
        if self.layout == FILES:  # a text file in the repo
            return read_text_file(local, column, name=f"{self.uri.repo_id}/{path}"), [], column
        if self.layout == PARQUET:
            column, count = hub_rows.parquet_column(local, modality, column, where)
            if modality == "text":
                return (*_texts(base, hub_rows.parquet_values(local, column), modality, column), column)
            return [{"id": f"{base}:{row}", "hub": self.hub, "file": path, "row": row, "column": column}
                    for row in range(count)], [], column
        samples = hub_rows.tar_samples(local, where)
        extensions = sorted({extension for sample in samples for extension in sample.members})
        column = hub_rows.choose_column(modality, column, extensions, where)
        with_column = [sample for sample in samples if column in sample.members]
        if modality == "text":
            values = ((sample.key, _utf8(hub_rows.read_member(local, *sample.members[column])))
                      for sample in with_column)
            items, skipped = _texts(base, values, modality, column, separator="/")
            return items, skipped, column
        return [{"id": f"{base}/{sample.key}", "hub": self.hub, "file": path, "member": f"{sample.key}.{column}",
                 "offset": sample.members[column][0], "size": sample.members[column][1]}
                for sample in with_column], [], column

    def selection(self, modality: str, items: list[dict], options: SourceOptions, skipped: list[dict] | None,
                  files: int, seen: int, visited: int) -> Selection:
        pinned = self.uri.pinned(self.listing.commit)
        column = f"column {options.column}, " if options.column else ""
        described = (f"{pinned} ({self.layout}, {column}{options.describe(len(items), seen)}"
                     f" from {visited} of {files} files)")
        record = {"modality": modality, "id": self.uri.repo_id, "revision": self.listing.revision,
                  "commit": self.listing.commit, "path": self.uri.path, "layout": self.layout,
                  "column": options.column, "rows": len(items), "rows_read": seen, "files_read": visited,
                  "files": files, "seed": options.seed if options.rows is not None else None,
                  "source": pinned}
        return Selection(items, described, record, self.local_files, skipped or [])


def _texts(base: str, values, modality: str, column: str, separator: str = ":") -> Rows:
    """Text items from (row or key, cell) pairs; cells that hold no text are listed as skipped."""
    rows, skipped = [], []
    for row, value in values:
        texts = hub_rows.texts_of(value)
        if not texts and not isinstance(value, str):
            skipped.append({"modality": modality, "id": f"{base}{separator}{row}",
                            "reason": f"column {column} holds no text ({type(value).__name__})"})
        rows += [(f"{base}{separator}{row}" + (f":{k}" if len(texts) > 1 else ""), text)
                 for k, text in enumerate(texts)]
    return text_items(rows), skipped


def _utf8(data: bytes) -> str | bytes:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # listed as skipped: not text

