"""A space folder as the Hub shows it (weights, config, model card), written whole and pushed.

Released weights (`cmcr.models.registry`) take the same road as trained ones: `export_space` converts
them into an ordinary space folder whose model card carries their licence, credit and pinned source
files, so `python scripts/export_space.py official-ex-mcr --push-to-hub OWNER/NAME` puts the official
projectors on the Hub as a normal model that the app (and `preload_from_hub`) can use.
"""

from __future__ import annotations

from pathlib import Path

from cmcr.atomic import replace_folder
from cmcr.publishing.card import render_model_card


def export_space(space, folder: str | Path, *, repo_id: str | None = None, notes: tuple[str, ...] = ()) -> Path:
    """config.json + model.safetensors + README.md, swapped in whole."""

    def build(staging: Path) -> None:
        space.save_pretrained(staging)
        (staging / "README.md").write_text(render_model_card(space.config, evaluation=None, notes=notes,
                                                             repo_id=repo_id))

    return replace_folder(folder, build)
