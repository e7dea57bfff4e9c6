"""Which rows of a source to take: a row limit, and a seeded subsample, the same for folders,
text files and Hub datasets; and what one source contributed (its items and its record).

Without a limit every row is taken in order. With one, `seed` None takes the first rows; an
integer seed takes a uniform random subset (kept in source order). A Hub dataset is cut into
data files that must be downloaded to be counted, so there the seed also shuffles the order in
which files are read, and reading stops once enough rows are in hand (`visit_order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from cmcr.errors import InputError
from cmcr.models.registry import MODALITIES

T = TypeVar("T")


@dataclass(frozen=True)
class SourceOptions:
    """How to read one modality's source."""

    column: str | None = None  # csv / parquet column or webdataset member extension (None: the usual names)
    rows: int | None = None  # at most this many rows (None: all)
    seed: int | None = 0  # with `rows`: a seeded random subset (None: the first rows)

    def check(self, modality: str) -> None:
        if self.rows is not None and (not isinstance(self.rows, int) or self.rows < 1):
            raise InputError(f"the {modality} row limit must be a positive integer, got {self.rows!r}")

    def describe(self, kept: int, seen: int) -> str:
        if kept == seen:
            return f"{kept} rows"
        how = f"seed {self.seed}" if self.seed is not None else "the first ones"
        return f"{kept} of {seen} rows ({how})"


@dataclass
class Selection:
    """What one source gave: items to extract, a description, and for a Hub dataset its record
    (repo, commit, rows), the data files it downloaded and the rows it could not read."""

    items: list[dict]
    described: str
    record: dict | None = None
    local_files: dict[str, str] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)


def subsample(items: Sequence[T], options: SourceOptions) -> list[T]:
    """`options.rows` of `items`: the first ones, or a seeded uniform subset in source order."""
    if options.rows is None or len(items) <= options.rows:
        return list(items)
    if options.seed is None:
        return list(items[:options.rows])
    chosen = np.random.default_rng(options.seed).choice(len(items), size=options.rows, replace=False)
    return [items[i] for i in np.sort(chosen)]


def visit_order(names: Sequence[T], options: SourceOptions) -> list[T]:
    """The order to read data files in: sorted, or (a seeded subsample of a limited count)
    shuffled with the seed, so the rows come from anywhere in the dataset."""
    if options.rows is None or options.seed is None:
        return list(names)
    return [names[i] for i in np.random.default_rng(options.seed).permutation(len(names))]


def modality_pairs(values: Sequence[str], flag: str, *, count: bool = False) -> dict[str, str | int]:
    """`MODALITY=VALUE` command-line pairs → {modality: value} (a positive int with `count`)."""
    pairs: dict[str, str | int] = {}
    for value in values:
        modality, _, given = value.partition("=")
        valid = given.isdigit() and int(given) > 0 if count else bool(given)
        if modality not in MODALITIES or not valid:
            example = "image=50000" if count else "image=jpg"
            raise InputError(f"{flag} {value!r} must look like MODALITY={'N' if count else 'NAME'} with MODALITY one "
                             f"of {list(MODALITIES)}, e.g. {example}")
        pairs[modality] = int(given) if count else given
    return pairs
