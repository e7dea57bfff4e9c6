"""How one answer is shown: a ranked gallery, 3D viewers framed on their shapes, and a list that
names every result in full (rank, score, caption), with a player for every sound.

The list carries what the gallery's tiles cannot: captions cut to one line on a tile, and sounds,
which have no picture. Gradio's `gr.Audio` players were tried for sounds, three per tab, so five of
eight audio results could not be played and their titles ran under the players' icons.
"""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from cmcr.data.media.preview import preview_bounds
from studio.answers import Results

TOP_SHAPES = 3
# Babylon's default camera (what gr.Model3D draws with): a vertical field of view of 0.8 rad; a
# result viewer is at most this much narrower than it is tall, on a laptop or a phone.
_FIELD_OF_VIEW = 0.8
_NARROWEST_ASPECT = 0.7
_MARGIN = 1.1


def camera_for(glb: str | Path) -> tuple[None, None, float]:
    """gr.Model3D's camera_position that shows the whole shape: Babylon's own framing fits the
    model's extent to the canvas height and cuts tall shapes in narrow viewers.

    The camera looks at the centre of the bounding box; every point lies within half its diagonal
    of it, so a camera that fits that sphere in the narrower of the two fields of view sees it all.
    """
    return None, None, _fitting_radius(str(glb), Path(glb).stat().st_mtime_ns)


@functools.lru_cache(maxsize=512)
def _fitting_radius(path: str, _mtime: int) -> float:
    low, high = preview_bounds(path)
    sphere = max(float(((high - low) ** 2).sum() ** 0.5) / 2, 1e-3)
    half_vertical = _FIELD_OF_VIEW / 2
    half_narrowest = math.atan(math.tan(half_vertical) * min(1.0, _NARROWEST_ASPECT))
    return round(_MARGIN * sphere / math.sin(half_narrowest), 3)


def shape_viewer(label: str, elem_id: str, height: int = 300, **kwargs: Any) -> gr.Model3D:
    return gr.Model3D(label=label, height=height, clear_color=(0.96, 0.96, 0.98, 1.0), elem_id=elem_id,
                      elem_classes=["shape-view"], **kwargs)


def framed(path: str | None, **kwargs: Any) -> gr.Model3D:
    """An update showing `path` with the camera backed off to fit it."""
    camera = camera_for(path) if path is not None else (None, None, None)
    return gr.Model3D(value=path, camera_position=camera, **kwargs)


def file_url(path: str | Path) -> str:
    """Where the page fetches a served file (relative, so the app also works under a root path)."""
    return "gradio_api/file=" + quote(str(path))


def results_list(results: Results) -> str:
    """Every result in full as HTML: rank, score, caption, and a player for each sound."""
    parts = [f'<p class="result-note">{html.escape(results.note)}</p>'] if results.note else []
    if results.hits:
        rows = []
        for hit in results.hits:
            row = (f'<span class="rank">#{hit.rank}</span> · <span class="score">{hit.score:.3f}</span> · '
                   f'<span class="caption">{html.escape(hit.caption)}</span>')
            if hit.modality == "audio" and hit.file is not None:
                row += (f'<audio controls preload="none" src="{html.escape(file_url(hit.file))}" '
                        f'aria-label="{html.escape(hit.title)}"></audio>')
            rows.append(f'<li class="result" data-modality="{hit.modality}">{row}</li>')
        parts.append('<ol class="results-list">' + "".join(rows) + "</ol>")
    return "".join(parts)


class ResultView:
    """The output block of one tab: ranked gallery, 3D viewers, the full list, zero-shot labels."""

    def __init__(self, targets: Sequence[str], name: str):
        self.gallery = gr.Gallery(
            label="Top matches", columns=4, height="auto", object_fit="contain", preview=False,
            visible=bool(set(targets) & {"image", "points"}), elem_id=f"{name}-results",
            elem_classes=["result-gallery"],
        )
        self.listing = gr.HTML("", elem_id=f"{name}-list", elem_classes=["result-listing"])
        with gr.Row(elem_classes=["shape-row"]):
            self.shapes = [shape_viewer(f"#{rank}", f"{name}-shape-{rank}", visible="hidden")
                           for rank in range(1, TOP_SHAPES + 1)]
        self.labels = gr.Label(label="Zero-shot labels", num_top_classes=5, visible="text" in targets,
                               elem_id=f"{name}-labels")

    @property
    def outputs(self) -> list[gr.components.Component]:
        return [self.gallery, *self.shapes, self.labels, self.listing]

    def render(self, results: Results) -> list[Any]:
        """Values for `outputs`, showing only the parts this result has."""
        shapes = results.shape_views(TOP_SHAPES)
        gallery = results.gallery_items()
        if results.note:
            gr.Warning(results.note)
        return [
            gr.Gallery(value=gallery, visible=bool(gallery)),
            *[framed(path, label=caption, visible=_shown(path)) for path, caption in _pad(shapes, TOP_SHAPES)],
            gr.Label(value=results.labels, visible=results.labels is not None),
            gr.HTML(results_list(results)),
        ]


def _shown(path: str | None) -> bool | str:
    # "hidden" keeps the component mounted: a Model3D mounted while invisible never draws its canvas.
    return True if path is not None else "hidden"


def _pad(views: list[tuple[str, str]], count: int) -> list[tuple[str | None, str]]:
    return views + [(None, f"#{rank}") for rank in range(len(views) + 1, count + 1)]
