"""How the app is configured and reports progress: the settings it reads from flags and the
environment (so a Space is configured without code), and the progress callbacks every long step takes."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmcr.models.registry import DEFAULT_SPACE

log = logging.getLogger("studio")

ENV_SPACE_REPO = "CMCR_SPACE_REPO"
ENV_SPACE_REVISION = "CMCR_SPACE_REVISION"
ENV_PROFILE = "CMCR_PROFILE"
ENV_DEVICE = "CMCR_DEVICE"
ENV_ON_SPACE = "SPACE_ID"  # set by Hugging Face on every Space
ENV_SERVER_NAME = "GRADIO_SERVER_NAME"  # Gradio's own variables; a Space sets both
ENV_SERVER_PORT = "GRADIO_SERVER_PORT"
DEFAULT_HOST, DEFAULT_PORT = "0.0.0.0", 7860
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"

ProgressFn = Callable[[float, str], None]


def log_progress(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", 100 * fraction, message)


def on_hugging_face_space() -> bool:
    return bool(os.environ.get(ENV_ON_SPACE))


def served_address() -> tuple[str, str]:
    """(host, port) to listen on when no flag names them, as text: Gradio's environment
    variables, else every interface on 7860 (`port_number` checks the port)."""
    return os.environ.get(ENV_SERVER_NAME) or DEFAULT_HOST, os.environ.get(ENV_SERVER_PORT) or str(DEFAULT_PORT)


def port_number(text: str) -> int:
    """A TCP port from a flag or GRADIO_SERVER_PORT; ValueError says what is wrong."""
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{text!r} is not a port number (1-65535; from --port or {ENV_SERVER_PORT})")
    return int(text)


@dataclass(frozen=True)
class StudioSettings:
    """Where the weights come from; environment first so a Space is configured without code.

    `space` None means the default (`official-ex-mcr`); a named space is held to stricter rules
    (a missing or damaged one is an error, not a fallback).
    """

    space: str | None = None
    revision: str | None = None
    profile: str = "full"
    device: str | None = None

    @classmethod
    def from_env(cls) -> StudioSettings:
        return cls(
            space=os.environ.get(ENV_SPACE_REPO) or None,
            revision=os.environ.get(ENV_SPACE_REVISION) or None,
            profile=os.environ.get(ENV_PROFILE) or "full",
            device=os.environ.get(ENV_DEVICE) or None,
        )

    @property
    def space_name(self) -> str:
        return self.space or DEFAULT_SPACE


def each(progress: ProgressFn, total: int, message: str) -> Callable[[Sequence], Any]:
    """An iterable wrapper (the shape `ingest` takes, like tqdm) that reports about ten times."""
    every = max(1, total // 10)

    def wrap(items: Sequence):
        for index, item in enumerate(items):
            if index % every == 0:
                progress(index / max(total, 1), f"{message} ({index + 1}/{total})")
            yield item

    return wrap


def scaled(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """Report a sub-task's 0..1 progress as the start..stop slice of the whole."""
    return lambda fraction, message: progress(start + (stop - start) * fraction, message)
