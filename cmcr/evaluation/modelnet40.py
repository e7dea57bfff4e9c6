"""The ModelNet40 zero-shot protocol (Ex-MCR's Table 2, C-MCR's 3D–language result): every test shape
is named among the 40 classes by the label whose prompt ensemble (`cmcr.data.vocabulary`) lies
nearest to it in the space, and Acc@k is the percent of shapes whose class is among the k nearest.

Any space that places points and text can be scored. The test split is read from a local folder in
either of the two layouts it is commonly shipped in:
- the Princeton release: `<class>/test/<class>_0001.off` (class folders spelled with underscores,
  `night_stand`);
- PointNet++'s resampled clouds (`modelnet40_normal_resampled`): `modelnet40_test.txt` lists shape
  ids (`airplane_0627`), each stored as `<class>/<id>.txt` rows of `x,y,z,nx,ny,nz`.
`read_test_split` is the one place that reads a folder, so other sources (a Hub dataset fetched to a
folder) plug in there.

A training corpus that holds the prompts themselves would let the evaluation find its own answers
in the text memory; `prompt_leaks` finds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.data.media import load_points
from cmcr.data.media.points import FILE_SUFFIXES
from cmcr.data.vocabulary import MODELNET40, TEMPLATES
from cmcr.errors import InputError
from cmcr.retrieval.zeroshot import ZeroShotClassifier

TEST_LIST = "modelnet40_test.txt"
CLASS_FOLDERS = {name.replace(" ", "_"): name for name in MODELNET40}
KS = (1, 3, 5)
BATCH = 32


@dataclass(frozen=True)
class Shape:
    path: Path
    label: str  # as MODELNET40 spells it ("night stand")


def read_test_split(folder: str | Path) -> list[Shape]:
    """Every test shape of a ModelNet40 folder, in either layout, with its class."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder; pass the ModelNet40 folder (its class folders inside)")
    listing = folder / TEST_LIST
    shapes = _listed(folder, listing) if listing.is_file() else _class_folders(folder)
    if not shapes:
        raise InputError(f"{folder} holds no ModelNet40 test shapes: expected <class>/test/*.off (the "
                         f"Princeton layout) or {TEST_LIST} beside <class>/<id>.txt (modelnet40_normal_resampled)")
    return shapes


def _listed(folder: Path, listing: Path) -> list[Shape]:
    shapes = []
    for shape_id in listing.read_text().split():
        class_folder = shape_id.rsplit("_", 1)[0]
        if class_folder not in CLASS_FOLDERS:
            raise InputError(f"{listing} lists {shape_id!r}, which names no ModelNet40 class")
        path = folder / class_folder / f"{shape_id}.txt"
        if not path.is_file():
            raise InputError(f"{listing} lists {shape_id}, but {path} is missing")
        shapes.append(Shape(path, CLASS_FOLDERS[class_folder]))
    return shapes


def _class_folders(folder: Path) -> list[Shape]:
    split_folders = [child for child in sorted(folder.iterdir()) if (child / "test").is_dir()]
    unknown = [child.name for child in split_folders if child.name not in CLASS_FOLDERS]
    if unknown:
        raise InputError(f"{folder} has class folders that are not ModelNet40 classes: {', '.join(unknown[:5])}")
    return [Shape(path, CLASS_FOLDERS[child.name]) for child in split_folders
            for path in sorted((child / "test").iterdir()) if path.suffix.lower() in FILE_SUFFIXES]


def accuracy_at_k(scores: np.ndarray, truth: Sequence[int], ks: Sequence[int] = KS) -> dict[str, float]:
    """Acc@k (percent) from (shapes, classes) scores and each shape's class index. A class scoring
    exactly as high as the true one is ranked before it, as in `cmcr.evaluation.metrics`."""
    scores = np.asarray(scores, dtype=np.float64)
    own = scores[np.arange(len(scores)), np.asarray(truth)]
    ranks = (scores >= own[:, None]).sum(axis=1)
    return {f"Acc@{k}": float(np.mean(ranks <= k) * 100) for k in ks}


def chance_accuracy(classes: int = len(MODELNET40), ks: Sequence[int] = KS) -> dict[str, float]:
    return {f"Acc@{k}": min(k, classes) / classes * 100 for k in ks}


def evaluate_modelnet40(embedder: Any, shapes: Sequence[Shape], *, up_axis: str = "y",
                        templates: Sequence[str] = TEMPLATES["points"],
                        progress: Callable[[Iterable], Iterable] = iter) -> dict[str, float]:
    """Acc@1/3/5 of zero-shot classification of test shapes (`read_test_split`) among the 40
    classes, through a `cmcr.retrieval.search.SpaceEmbedder` whose space places points and text.
    `up_axis="z"` turns Z-up files upright first (`cmcr.data.media.load_points`)."""
    embedder.encoder_for("points"), embedder.encoder_for("text")  # a clear message if either is missing
    classifier = ZeroShotClassifier(embedder, MODELNET40, templates)
    batches = [shapes[start:start + BATCH] for start in range(0, len(shapes), BATCH)]
    rows = [embedder.embed("points", [load_points(shape.path, up_axis=up_axis) for shape in batch])
            for batch in progress(batches)]
    truth = [MODELNET40.index(shape.label) for shape in shapes]
    return accuracy_at_k(np.concatenate(rows) @ classifier.matrix.T, truth)


def prompt_leaks(corpus: Iterable[str], labels: Sequence[str] = MODELNET40,
                 templates: Sequence[str] = TEMPLATES["points"]) -> list[str]:
    """The evaluation's prompts that occur in a training corpus (inside any sentence; case,
    spacing, the final full stop and "a"/"an" aside), sorted."""
    prompts = {_canonical(template.format(label)): template.format(label)
               for label in labels for template in templates}
    alternatives = "|".join(re.escape(prompt) for prompt in sorted(prompts, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
    found = {match for line in corpus for match in pattern.findall(_canonical(line))}
    return sorted(prompts[key] for key in found)


def _canonical(text: str) -> str:
    text = re.sub(r"\s+", " ", text.lower()).strip().rstrip(".")
    return re.sub(r"\ban\b", "a", text)
