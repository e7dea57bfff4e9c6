"""What one visitor keeps between requests: their own gallery, rendered thumbnails of shapes, and
the last few decoded 3D uploads (so a shape's answer and its 3D view decode it once)."""

from __future__ import annotations

import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cmcr.atomic import replacing
from cmcr.data.media.points import load_points

class SessionGallery:
    """One visitor's own gallery: lives in a temporary folder, gone with the session.

    It holds one gallery per served space (an item joins every space that can place it), so each
    search is answered in the space that connects its two modalities.
    """

    MAX_ITEMS = 200

    def __init__(self, root: Path, galleries: dict[str, Any], shapes: ShapeThumbnails):
        self.root = root
        self.galleries = galleries
        self.shapes = shapes

    @property
    def items(self) -> list[Any]:
        """Every distinct item (by content), in the order it was added."""
        seen: dict[str, Any] = {}
        for gallery in self.galleries.values():
            for item in gallery.items:
                seen.setdefault(item.sha256, item)
        return list(seen.values())

    def __len__(self) -> int:
        return len(self.items)

    def holding(self, item: Any) -> Any:
        return next(gallery for gallery in self.galleries.values() if item in gallery.items)

    def thumbnails(self) -> list[tuple[str, str]]:
        """(image, caption) of every item that has a picture: images, and shapes rendered; sounds have none."""
        shown = [(display_image(self.holding(item), item, self.shapes), item.caption) for item in self.items]
        return [(str(image), caption) for image, caption in shown if image is not None]

    def counts(self) -> dict[str, int]:
        """Items by modality, in the order the page names them."""
        kinds = [item.modality for item in self.items]
        return {modality: kinds.count(modality) for modality in ("image", "audio", "points") if modality in kinds}

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class ShapeThumbnails:
    """Small rendered images of shapes, so 3D results can sit in an image gallery."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()

    def image_for(self, gallery: Any, item: Any) -> Path:
        """Rendered from the gallery's own light 3D preview: an upload's source file may be gone."""
        target = self.folder / f"{item.sha256}.png"
        with self._lock:
            if not target.exists():
                _render_points(load_points(gallery.preview_path(item), num_points=2048), target)
        return target


def _render_points(points: np.ndarray, target: Path) -> None:
    """A 3/4 view of a cloud, coloured by height, written atomically."""
    figure = Figure(figsize=(2.56, 2.56), dpi=100)
    axes = figure.add_subplot(projection="3d")
    # Our clouds are Y-up; matplotlib's vertical axis is z.
    axes.scatter(points[:, 0], points[:, 2], points[:, 1], c=points[:, 1], cmap="viridis", s=2, linewidths=0)
    axes.view_init(elev=20, azim=-60)
    axes.set_box_aspect((1, 1, 1))
    for setter in (axes.set_xlim, axes.set_ylim, axes.set_zlim):
        setter(-1, 1)
    axes.set_axis_off()
    figure.subplots_adjust(0, 0, 1, 1)
    with replacing(target, suffix=".png") as partial:  # threads share the cache: readers see whole files
        figure.savefig(partial, facecolor="white")


def display_image(gallery: Any, item: Any, shapes: ShapeThumbnails) -> Path | None:
    if item.modality == "points":
        return shapes.image_for(gallery, item)
    if item.modality == "image":
        return gallery.preview_path(item)
    return None


class RecentShapes:
    """The last few decoded 3D uploads, by file identity.

    A 3D request embeds the upload and then shows it in a 3D view; a large mesh takes ~200 ms to
    decode, so the second use reads it from here. Keys are (path, size, mtime): Gradio stores each
    upload under its own path, and a file changed in place gets a new key. Thread-safe, because
    Gradio answers requests on worker threads.
    """

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._clouds: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: Any, decode: Callable[[], np.ndarray]) -> np.ndarray:
        key = _file_identity(source)
        if key is None:
            return decode()
        with self._lock:
            if key in self._clouds:
                self._clouds.move_to_end(key)
                return self._clouds[key]
        cloud = decode()
        cloud.setflags(write=False)  # shared by every later request for this file
        with self._lock:
            self._clouds[key] = cloud
            while len(self._clouds) > self.capacity:
                self._clouds.popitem(last=False)
        return cloud


def _file_identity(source: Any) -> tuple | None:
    """(path, size, mtime) of a file path; None for anything else (bytes, arrays, missing files)."""
    if not isinstance(source, (str, os.PathLike)):
        return None
    try:
        stat = os.stat(source)
    except OSError:
        return None  # the decoder says what is wrong with it
    return os.path.abspath(source), stat.st_size, stat.st_mtime_ns
