"""Which weights the app serves and what it does when they cannot be had.

With nothing named the app serves `official-ex-mcr`, the official Ex-MCR projectors
(`cmcr.models.registry`). A name may stand for several spaces (`official-c-mcr`: one C-MCR space per
connection). When the weights cannot be had: on a local run, an unreachable Hub (or, with nothing
named, any failure to get the default weights) falls back to the `tiny` profile and says so in
`ModelSet.notice` (the details, for the owner: logged and behind the page's "details") with a
one-line `ModelSet.headline` for visitors, which the app shows as a banner; an explicitly named
space that does not exist or is damaged is an error (the app exits with one line). On a Hugging
Face Space every failure is an error, because random weights must never be served silently there
(the UI shows an error page instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.models.encoders import build_encoder
from cmcr.models.registry import ENCODERS as REGISTERED_ENCODERS
from cmcr.models.space import load_spaces, tiny_space
from studio.cpu import serving_overrides
from studio.settings import ProgressFn, StudioSettings, log, log_progress, on_hugging_face_space

ENCODERS = tuple(REGISTERED_ENCODERS)
TINY_SPACE_LABEL = "an untrained tiny space"


@dataclass
class ModelSet:
    """The models one studio serves with, and why: `headline` tells a visitor in one line that the
    results are random, `notice` holds the owner's details (the reason, the error quoted)."""

    spaces: dict[str, Any]
    encoders: dict[str, Any]
    profile: str
    notice: str | None = None
    headline: str | None = None


def load_models(settings: StudioSettings, progress: ProgressFn = log_progress, *,
                on_space: bool | None = None) -> ModelSet:
    """The served spaces and their encoders; the tiny profile when asked for, or locally when the
    weights cannot be had (see the module docstring for which failures are errors instead)."""
    if settings.profile not in ("full", "tiny"):
        raise InputError(f"Unknown profile {settings.profile!r}; use 'full' or 'tiny'.")
    if settings.profile == "tiny":
        return _load_tiny(settings, progress, TINY_CHOSEN, TINY_HEADLINE, named=settings.space)
    try:
        return _load_full(settings, progress)
    except (HubUnavailableError, CheckpointError) as error:
        strict = on_hugging_face_space() if on_space is None else on_space
        if strict or (isinstance(error, CheckpointError) and settings.space is not None):
            raise
        log.warning("falling back to the tiny profile: %s", error)
        reason = TINY_OFFLINE.format(name=settings.space_name, reason=error)
        return _load_tiny(settings, progress, reason, OFFLINE_HEADLINE, named=None)


TINY_CHOSEN = (
    "**Tiny profile** (chosen at start): toy-sized encoders with random weights and an untrained "
    "space. Everything works end to end, but **the results carry no meaning**."
)
TINY_HEADLINE = "**Demo mode:** toy models with random weights, so the matches shown are random."
OFFLINE_HEADLINE = ("**Demo mode:** the trained weights could not be loaded, so toy models with random weights "
                    "answer and the matches shown are random.")
TINY_OFFLINE = (
    "**Offline demo mode.** The weights `{name}` could not be loaded: {reason} "
    "The app is running the tiny profile instead (toy-sized encoders with random weights), so "
    "**the results carry no meaning**."
)


def _load_full(settings: StudioSettings, progress: ProgressFn) -> ModelSet:
    progress(0.0, f"Getting the trained weights {settings.space_name}")
    spaces = load_spaces(settings.space_name, settings.revision)
    needed = [name for name in ENCODERS if any(name in space.encoders for space in spaces.values())]
    encoders = {}
    for index, name in enumerate(needed):
        progress((index + 1) / (len(needed) + 1), f"Loading the {name.upper()} encoder")
        encoders[name] = build_encoder(name, "full", device=settings.device,
                                       **serving_overrides(name, settings.device)).load()
    return ModelSet(spaces=spaces, encoders=encoders, profile="full")


def _load_tiny(settings: StudioSettings, progress: ProgressFn, notice: str, headline: str,
               named: str | None) -> ModelSet:
    """Toy encoders with either named tiny-profile spaces (the offline train → Hub → app loop:
    `scripts/train.py --profile tiny` makes one) or, by default, an untrained seeded one."""
    encoders = {}
    for index, name in enumerate(ENCODERS):
        progress(index / (len(ENCODERS) + 1), f"Building the tiny {name.upper()} encoder")
        encoders[name] = build_encoder(name, "tiny", device=settings.device,
                                       **serving_overrides(name, settings.device)).load()
    if named is None:
        progress(len(ENCODERS) / (len(ENCODERS) + 1), "Building an untrained tiny space")
        return ModelSet(spaces={TINY_SPACE_LABEL: tiny_space(encoders)}, encoders=encoders, profile="tiny",
                        notice=notice, headline=headline)
    progress(len(ENCODERS) / (len(ENCODERS) + 1), f"Loading the tiny-profile space {named}")
    return ModelSet(spaces=load_tiny_profile_spaces(named, settings.revision), encoders=encoders, profile="tiny",
                    notice=notice, headline=headline)


def load_tiny_profile_spaces(name: str, revision: str | None = None) -> dict[str, Any]:
    """Trained spaces for the tiny encoders. A space trained on full-size encoder features has the
    same widths (512) and would load silently while meaning nothing, so it is refused."""
    spaces = load_spaces(name, revision)
    for label, space in spaces.items():
        full = sorted(encoder for encoder, facts in space.config.get("encoders", {}).items()
                      if facts.get("profile") == "full")
        if full:
            raise InputError(
                f"The space {label} was trained on full-size {', '.join(full)} features; the tiny "
                "profile's toy encoders cannot use it. Start without --profile tiny to serve it."
            )
    return spaces
