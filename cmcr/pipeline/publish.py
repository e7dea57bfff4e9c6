"""A trained space as the folder that is pushed, and the push.

One writer for every trained space (the pipeline's and `scripts/train.py --features`): weights and
config.json, a curve PNG per connection, training.json and the model card, built in a hidden
sibling and swapped in whole, so a crash mid-way never leaves a half-written space under the real
name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmcr.atomic import replace_folder
from cmcr.hub import push_folder
from cmcr.models.space import UnifiedSpace
from cmcr.pipeline.config import HubConfig
from cmcr.models.card import render_model_card
from cmcr.training.curves import save_training_curve
from cmcr.training.spaces import json_safe


@dataclass
class TrainedSpace:
    """One space to write: its heads, its evaluation tables (None: not evaluated) and the
    training history of each connection in it."""

    name: str
    space: UnifiedSpace
    evaluation: dict[str, dict] | None = field(default_factory=dict)
    histories: dict[str, dict] = field(default_factory=dict)


def write_space_folder(folder: Path, trained: TrainedSpace, record: Mapping, *, run_config: Mapping,
                       notes: Sequence[str] = (), repo_id: str | None = None) -> Path:
    """Save weights, config, curves, training.json (`record`) and the model card (with
    `run_config`, `notes` and the `repo_id` it will be loaded from), then swap the folder in."""
    def build(staging: Path) -> None:
        trained.space.save_pretrained(staging)
        curves = {}
        for name, history in trained.histories.items():
            file = f"curve-{name.replace('→', '-')}.png"
            save_training_curve(history, staging / file, title=name)
            curves[name] = file
        (staging / "training.json").write_text(json.dumps(json_safe(record), indent=2, ensure_ascii=False) + "\n")
        card = render_model_card(trained.space.config, evaluation=trained.evaluation, curves=curves,
                                 run_config=run_config, notes=notes, repo_id=repo_id)
        (staging / "README.md").write_text(card)

    return replace_folder(folder, build)


def push_space(folder: Path, hub: HubConfig) -> str:
    """One commit of the whole folder (repo and branch created when missing); the error of a
    failed push names the command that retries it without training again."""
    retry = f"python scripts/train.py --push-folder {folder} --push-to-hub {hub.repo_id}"
    retry += " --private" * hub.private + (f" --revision {hub.revision}" if hub.revision else "")
    return push_folder(folder, hub.repo_id, private=hub.private, revision=hub.revision,
                       commit_message="Upload C-MCR space (scripts/train.py)", retry_command=retry)
