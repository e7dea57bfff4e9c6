"""What the app calls: load the spaces, the encoders and the default gallery once, answer requests.

The Gradio layer (app.py) only lays out widgets; every decision a test should be able to reach
lives here: which weights to load and what to do when they cannot be had, which served space
answers a pair of modalities, how a request is validated, embedded and searched, and how the
answer is shaped for display (captions with rank and score, 3D views, a score table).

Weights: with nothing named the app serves `official-ex-mcr`, the official Ex-MCR projectors
(`cmcr.models.registry`). A name may stand for several spaces (`official-c-mcr`: one C-MCR space per
connection); each request goes to the first served space that can place both of its modalities,
and a pair that no served space connects is refused with the reason.

When the weights cannot be had: on a local run, an unreachable Hub (or, with nothing named, any
failure to get the default weights) falls back to the `tiny` profile and says so in `notice`,
which the app shows as a banner; an explicitly named space that does not exist or is damaged is an
error (the app exits with one line). On a Hugging Face Space every failure is an error, because
random weights must never be served silently there (app.py shows an error page instead).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.data.media.points import FILE_SUFFIXES
from cmcr.models.registry import DEFAULT_SPACE
from cmcr.models.space import tiny_space
from cmcr.models.registry import ENCODERS as REGISTERED_ENCODERS
from cmcr.retrieval.search import query as search

log = logging.getLogger(__name__)

ENV_SPACE_REPO = "CMCR_SPACE_REPO"
ENV_SPACE_REVISION = "CMCR_SPACE_REVISION"
ENV_PROFILE = "CMCR_PROFILE"
ENV_DEVICE = "CMCR_DEVICE"
ENV_ON_SPACE = "SPACE_ID"  # set by Hugging Face on every Space
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"

MAX_UPLOAD_SIZE = "50mb"
DEFAULT_K = 8
MODALITY_NAMES = {"audio": "Audio", "image": "Image", "text": "Text", "points": "3D"}
ENCODERS = tuple(REGISTERED_ENCODERS)
POINT_FILE_TYPES = FILE_SUFFIXES  # every 3D suffix the parser reads, .txt clouds included
TINY_SPACE_LABEL = "an untrained tiny space"
MAX_LABELS = 100

ProgressFn = Callable[[float, str], None]


def _log_progress(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", 100 * fraction, message)


def on_hugging_face_space() -> bool:
    return bool(os.environ.get(ENV_ON_SPACE))


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


@dataclass(frozen=True)
class Query:
    """One request: a modality and its raw value (a file path, or the text itself)."""

    modality: str
    value: Any

    def validated(self) -> Query:
        """Refuse an unknown modality or a missing value with a message a visitor can act on."""
        if self.modality not in MODALITY_NAMES:
            raise InputError(f"Unknown input kind {self.modality!r}; choose one of {', '.join(MODALITY_NAMES)}.")
        if self.modality == "text":
            text = (self.value or "").strip() if isinstance(self.value, str) or self.value is None else None
            if text is None:
                raise InputError("Text queries must be strings.")
            if not text:
                raise InputError("Type some text to search with.")
            return Query("text", text)
        if not self.value:
            raise InputError(f"{_MISSING[self.modality]} first.")
        return self


EMPTY_GALLERY = "Your gallery is empty: add images or 3D files to it first."
_MISSING = {
    "audio": "Upload or record an audio clip",
    "image": "Upload an image",
    "points": "Upload a point cloud or mesh",
}


@dataclass(frozen=True)
class Hit:
    """One ranked result, with what the app needs to show it."""

    rank: int
    score: float
    modality: str
    caption: str
    file: Path | None = None      # the item itself (image, audio or shape file)
    preview: Path | None = None   # an image to show in a gallery
    view3d: Path | None = None    # a light mesh that gr.Model3D displays

    @property
    def title(self) -> str:
        return f"#{self.rank} · {self.score:.3f} · {self.caption}"


@dataclass
class Results:
    """A ranked answer: hits from a gallery, or label probabilities (zero-shot)."""

    hits: list[Hit] = field(default_factory=list)
    labels: dict[str, float] | None = None

    def gallery_items(self) -> list[tuple[str, str]]:
        return [(str(hit.preview), hit.title) for hit in self.hits if hit.preview is not None]

    def shape_views(self, count: int) -> list[tuple[str, str]]:
        return [(str(hit.view3d), hit.title) for hit in self.hits if hit.view3d is not None][:count]

    def sound_views(self, count: int) -> list[tuple[str, str]]:
        sounds = [hit for hit in self.hits if hit.modality == "audio" and hit.file is not None]
        return [(str(hit.file), hit.title) for hit in sounds][:count]

    def score_table(self):
        """Scores as a DataFrame for a bar chart: hits by rank, or the top labels."""
        import pandas as pd

        if self.labels is not None:
            top = sorted(self.labels.items(), key=lambda item: -item[1])[:10]
            return pd.DataFrame({"result": [name for name, _ in top], "score": [p for _, p in top]})
        return pd.DataFrame(
            {"result": [f"#{hit.rank} {hit.caption}"[:40] for hit in self.hits], "score": [hit.score for hit in self.hits]}
        )


@dataclass
class Loaded:
    """The models one studio serves with, and why (the notice explains a fallback)."""

    spaces: dict[str, Any]
    encoders: dict[str, Any]
    profile: str
    notice: str | None = None


def load_models(settings: StudioSettings, progress: ProgressFn = _log_progress, *,
                on_space: bool | None = None) -> Loaded:
    """The served spaces and their encoders; the tiny profile when asked for, or locally when the
    weights cannot be had (see the module docstring for which failures are errors instead)."""
    if settings.profile not in ("full", "tiny"):
        raise InputError(f"Unknown profile {settings.profile!r}; use 'full' or 'tiny'.")
    if settings.profile == "tiny":
        return _load_tiny(settings, progress, TINY_CHOSEN, named=settings.space)
    try:
        return _load_full(settings, progress)
    except (HubUnavailableError, CheckpointError) as error:
        strict = on_hugging_face_space() if on_space is None else on_space
        if strict or (isinstance(error, CheckpointError) and settings.space is not None):
            raise
        log.warning("falling back to the tiny profile: %s", error)
        reason = TINY_OFFLINE.format(name=settings.space_name, reason=error)
        return _load_tiny(settings, progress, reason, named=None)


TINY_CHOSEN = (
    "**Tiny profile** (chosen at start): toy-sized encoders with random weights and an untrained "
    "space. Everything works end to end, but **the results carry no meaning**."
)
TINY_OFFLINE = (
    "**Offline demo mode.** The weights `{name}` could not be loaded: {reason} "
    "The app is running the tiny profile instead (toy-sized encoders with random weights), so "
    "**the results carry no meaning**."
)


def _load_full(settings: StudioSettings, progress: ProgressFn) -> Loaded:
    from cmcr.models.encoders import build_encoder
    from cmcr.models.space import load_spaces

    progress(0.0, f"Getting the trained weights {settings.space_name}")
    spaces = load_spaces(settings.space_name, settings.revision)
    needed = [name for name in ENCODERS if any(name in space.encoders for space in spaces.values())]
    encoders = {}
    for index, name in enumerate(needed):
        progress((index + 1) / (len(needed) + 1), f"Loading the {name.upper()} encoder")
        encoders[name] = build_encoder(name, "full", device=settings.device).load()
    return Loaded(spaces=spaces, encoders=encoders, profile="full")


def _load_tiny(settings: StudioSettings, progress: ProgressFn, notice: str, named: str | None) -> Loaded:
    """Toy encoders with either named tiny-profile spaces (the offline train → Hub → app loop:
    `scripts/train.py --profile tiny` makes one) or, by default, an untrained seeded one."""
    from cmcr.models.encoders import build_encoder

    encoders = {}
    for index, name in enumerate(ENCODERS):
        progress(index / (len(ENCODERS) + 1), f"Building the tiny {name.upper()} encoder")
        encoders[name] = build_encoder(name, "tiny", device=settings.device).load()
    if named is None:
        progress(len(ENCODERS) / (len(ENCODERS) + 1), "Building an untrained tiny space")
        return Loaded(spaces={TINY_SPACE_LABEL: tiny_space(encoders)}, encoders=encoders, profile="tiny",
                      notice=notice)
    progress(len(ENCODERS) / (len(ENCODERS) + 1), f"Loading the tiny-profile space {named}")
    return Loaded(spaces=load_tiny_profile_spaces(named, settings.revision), encoders=encoders, profile="tiny",
                  notice=notice)


def load_tiny_profile_spaces(name: str, revision: str | None = None) -> dict[str, Any]:
    """Trained spaces for the tiny encoders. A space trained on full-size encoder features has the
    same widths (512) and would load silently while meaning nothing, so it is refused."""
    from cmcr.models.space import load_spaces

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


@dataclass
class ServedSpace:
    """One space the app answers with: its embedder and the default gallery embedded in it."""

    label: str
    embedder: Any
    gallery: Any

    @property
    def space(self) -> Any:
        return self.embedder.space

    def places(self, modality: str) -> bool:
        return _places(self.embedder, modality)

    def describe(self) -> str:
        provenance = self.space.provenance
        if provenance:
            return (f"{provenance['title']} ({provenance['license'].replace('-', ' ')}, "
                    f"credit: {provenance['credit']})")
        return f"`{self.label}`" if self.label != TINY_SPACE_LABEL else self.label


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
        return [(str(_display_image(self.holding(item), item, self.shapes)), item.caption) for item in self.items]

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


class ShapeThumbnails:
    """Small rendered images of shapes, so 3D results can sit in an image gallery."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()

    def image_for(self, gallery: Any, item: Any) -> Path:
        """Rendered from the gallery's own light 3D preview: an upload's source file may be gone."""
        from cmcr.data.media.points import load_points

        target = self.folder / f"{item.sha256}.png"
        with self._lock:
            if not target.exists():
                _render_points(load_points(gallery.preview_path(item), num_points=2048), target)
        return target


def _render_points(points: np.ndarray, target: Path) -> None:
    """A 3/4 view of a cloud, coloured by height; written atomically (threads share the cache)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

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
    partial = target.with_suffix(".tmp.png")
    figure.savefig(partial, facecolor="white")
    os.replace(partial, target)


def _display_image(gallery: Any, item: Any, shapes: ShapeThumbnails) -> Path | None:
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


class Studio:
    """Everything one app process serves: models, the default gallery, and request handling."""

    default_k = DEFAULT_K

    def __init__(self, loaded: Loaded, served: list[ServedSpace], settings: StudioSettings, workdir: Path,
                 assets: Path = ASSETS_DIR):
        self.loaded = loaded
        self.served = served
        self.settings = settings
        self.workdir = workdir
        self.assets = assets
        self.shapes = ShapeThumbnails(workdir / "shapes")
        self.shapes.folder.mkdir(parents=True, exist_ok=True)
        self._default_classifiers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._recent_shapes = RecentShapes()

    @classmethod
    def load(cls, settings: StudioSettings | None = None, progress: ProgressFn = _log_progress,
             assets: Path = ASSETS_DIR, *, on_space: bool | None = None) -> Studio:
        """Load models once (falling back to the tiny profile where allowed) and embed the default
        gallery in every served space."""
        from cmcr.retrieval.search import SpaceEmbedder

        settings = settings or StudioSettings.from_env()
        loaded = load_models(settings, _scaled(progress, 0.0, 0.7), on_space=on_space)
        workdir = Path(tempfile.mkdtemp(prefix="cmcr-studio-"))
        served = []
        for index, (label, space) in enumerate(loaded.spaces.items()):
            embedder = SpaceEmbedder(space, {name: loaded.encoders[name] for name in space.encoders
                                             if name in loaded.encoders})
            share = _scaled(progress, 0.7 + 0.3 * index / len(loaded.spaces), 0.7 + 0.3 * (index + 1) / len(loaded.spaces))
            gallery = build_default_gallery(assets, workdir / f"gallery-{index}", embedder, share)
            served.append(ServedSpace(label, embedder, gallery))
        studio = cls(loaded, served, settings, workdir, assets)
        progress(1.0, f"Ready: {len(studio.default_items)} gallery items, {loaded.profile} profile")
        return studio

    def close(self) -> None:
        """Remove the working folder (default gallery, previews, session galleries)."""
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- what the page shows ----------------------------------------------------------------

    @property
    def notice(self) -> str | None:
        return self.loaded.notice

    @property
    def profile(self) -> str:
        return self.loaded.profile

    @property
    def default_items(self) -> list[Any]:
        """The default gallery's distinct items, whichever served spaces hold them."""
        seen: dict[str, Any] = {}
        for served in self.served:
            for item in served.gallery.items:
                seen.setdefault(item.sha256, item)
        return list(seen.values())

    @property
    def description(self) -> str:
        weights = " and ".join(served.describe() for served in self.served)
        counts = {m: sum(item.modality == m for item in self.default_items) for m in MODALITY_NAMES}
        held = ", ".join(f"{n} {MODALITY_NAMES[m].lower()}" for m, n in counts.items() if n)
        return f"Weights: {weights} · profile: {self.profile} · default gallery: {held or 'empty'}"

    @property
    def allowed_paths(self) -> list[str]:
        return [str(self.assets), str(self.workdir)]

    def examples(self, modality: str) -> list[str]:
        """Example inputs from assets/: the official samples first, then the generated gallery's
        files; for text, the official sample texts and the captions of the shapes."""
        items = _manifest_items(self.assets)
        if modality == "text":
            texts = [item["text"] for item in items if "text" in item and item["modality"] == "points"]
            return list(dict.fromkeys(texts + [item["caption"] for item in items if item["modality"] == "points"
                                               and "text" not in item]))[:8]
        return [str(item["path"]) for item in items if item["modality"] == modality][:8]

    def unavailable(self, source: str, target: str | None) -> str | None:
        """Why no served space can answer `source` → `target` (None when one can)."""
        try:
            self.route(source, target)
        except InputError as error:
            return str(error)
        return None

    # ---- requests ---------------------------------------------------------------------------

    def route(self, source: str, target: str | None) -> ServedSpace:
        """The first served space that places both modalities (`target` None: the source alone)."""
        for served in self.served:
            if served.places(source) and (target is None or served.places(target)):
                return served
        wanted = MODALITY_NAMES.get(source, source).lower() + ("" if target is None else
                                                              f" and {MODALITY_NAMES.get(target, target).lower()}")
        held = "; ".join(f"{served.label} places {', '.join(MODALITY_NAMES[m].lower() for m in MODALITY_NAMES if served.places(m))}"
                         for served in self.served)
        hint = (" Connecting audio with 3D needs a unified (Ex-MCR) space: start the app with "
                f"--space {DEFAULT_SPACE}.") if {source, target} == {"audio", "points"} else ""
        raise InputError(f"No space served here connects {wanted} ({held}).{hint}")

    def embed(self, query: Query, target: str | None = None) -> np.ndarray:
        """A (1, D) unit row, in the space that answers `query` → `target`, for a validated query."""
        query = query.validated()
        return self.route(query.modality, target).embedder.embed(query.modality, [self._decoded(query)])

    def _decoded(self, query: Query) -> Any:
        decoder = self.served[0].embedder
        if query.modality == "points":
            return self._recent_shapes.get(query.value, lambda: decoder.decode("points", query.value))
        return decoder.decode(query.modality, query.value)

    def answer(self, query: Query, target: str | None, *, k: int = DEFAULT_K, labels: str | Sequence[str] | None = None,
               gallery: SessionGallery | None = None, progress: ProgressFn = _log_progress) -> Results:
        """Search `target` items (None: any) of a gallery, or name the input when `target` is text."""
        if target is not None and target not in MODALITY_NAMES:
            raise InputError(f"Unknown target {target!r}; choose one of {', '.join(MODALITY_NAMES)}.")
        if not 1 <= int(k) <= 64:
            raise InputError(f"Ask for between 1 and 64 results, not {k}.")
        query = query.validated()
        routes = self._routes(query.modality, target)
        progress(0.1, f"Embedding your {MODALITY_NAMES[query.modality].lower()}")
        decoded = self._decoded(query)
        if target == "text":
            served = routes[0][0]
            progress(0.7, "Naming it")
            embedding = served.embedder.embed(query.modality, [decoded])
            return Results(labels=self._classify(served, query.modality, embedding, labels))
        progress(0.7, "Searching")
        searched_in = [(served, targets, served.gallery if gallery is None else gallery.galleries[served.label])
                       for served, targets in routes]
        if not any(len(searched) for _, _, searched in searched_in):
            raise InputError(EMPTY_GALLERY if gallery is not None else "The default gallery is empty "
                             "(assets/ holds nothing); upload your own items in the 'Your gallery' tab.")
        hits = []
        for served, targets, searched in searched_in:
            if not len(searched):
                continue
            embedding = served.embedder.embed(query.modality, [decoded])
            held = {item.modality for item in searched.items}  # "any": skip what this gallery lacks
            for modality in targets if target is not None else [m for m in targets if m is None or m in held]:
                found = search(served.embedder, searched, query.modality, embeddings=embedding, k=int(k), target=modality)[0]
                hits += [(hit, searched) for hit in found]
        best = sorted(hits, key=lambda pair: -pair[0].score)[: int(k)]
        return Results(hits=[self._hit(searched, hit, rank) for rank, (hit, searched) in enumerate(best, start=1)])

    def _routes(self, source: str, target: str | None) -> list[tuple[ServedSpace, list[str | None]]]:
        """Which served space searches which target modalities. One target: the space that connects
        the pair. Any target: each modality from the first space that connects it (with one served
        space, as for Ex-MCR, that is one search over everything)."""
        if target is not None:
            return [(self.route(source, target), [target])]
        if len(self.served) == 1:
            return [(self.route(source, None), [None])]
        plan: dict[str, list[str | None]] = {}
        for modality in ("image", "audio", "points"):
            for served in self.served:
                if served.places(source) and served.places(modality):
                    plan.setdefault(served.label, []).append(modality)
                    break
        if not plan:
            self.route(source, None)  # raises with the reason
        by_label = {served.label: served for served in self.served}
        return [(by_label[label], targets) for label, targets in plan.items()]

    def answer_own(self, query: Query, gallery: SessionGallery | None, *, k: int = DEFAULT_K,
                   progress: ProgressFn = _log_progress) -> Results:
        """Search a visitor's own gallery only (None: they have not added anything yet)."""
        if gallery is None or len(gallery) == 0:
            raise InputError(EMPTY_GALLERY)
        return self.answer(query, None, k=k, gallery=gallery, progress=progress)

    def preview(self, query: Query) -> str:
        """A light 3D file of an uploaded shape that gr.Model3D displays."""
        from cmcr.data.media.preview import points_to_preview

        query = query.validated()
        points = self._decoded(query)
        target = self.workdir / "uploads" / f"{_digest(points.tobytes())}.glb"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            points_to_preview(points, target)
        return str(target)

    def new_session_gallery(self) -> SessionGallery:
        from cmcr.retrieval.gallery import Gallery

        root = Path(tempfile.mkdtemp(prefix="session-", dir=self.workdir))
        galleries = {served.label: Gallery.create(root / str(index), served.embedder.space_id, served.space.dim)
                     for index, served in enumerate(self.served)}
        return SessionGallery(root, galleries, self.shapes)

    def add_to_session_gallery(self, gallery: SessionGallery, paths: Sequence[str],
                               progress: ProgressFn = _log_progress) -> str:
        """Embed uploaded images and shapes into a visitor's gallery; a summary to show them."""
        from cmcr.retrieval.gallery import SourceFile, caption_from_name, ingest

        if not paths:
            raise InputError("Choose some images or 3D files to add first.")
        if len(gallery) + len(paths) > SessionGallery.MAX_ITEMS:
            raise InputError(f"A session gallery holds at most {SessionGallery.MAX_ITEMS} items; "
                             f"it has {len(gallery)} and you added {len(paths)}.")
        sources, refused = [], []
        for path in map(Path, paths):
            modality = upload_modality(path)
            if modality is None:
                refused.append((path.name, "only images and 3D files can be added"))
            else:
                sources.append(SourceFile(path, modality, caption_from_name(path)))
        before = len(gallery)
        duplicates, failed = 0, {}
        for index, served in enumerate(self.served):
            placed = [source for source in sources if served.places(source.modality)]
            share = _scaled(progress, 0.2 + 0.8 * index / len(self.served), 0.2 + 0.8 * (index + 1) / len(self.served))
            share(0.0, f"Embedding {len(placed)} files")
            report = ingest(gallery.galleries[served.label], placed, served.embedder,
                            progress=_each(share, len(placed), "Embedding"))
            duplicates = max(duplicates, report.duplicates)
            failed.update({Path(name).name: reason for name, reason in report.failed})
        refused += list(failed.items())
        return _summary(len(gallery) - before, duplicates, refused, len(gallery))

    def _classify(self, served: ServedSpace, modality: str, embedding: np.ndarray,
                  labels: str | Sequence[str] | None) -> dict[str, float]:
        """Label probabilities; the default label set's prompt embeddings are computed once."""
        from cmcr.retrieval.zeroshot import DEFAULT_LABELS, TEMPLATES, ZeroShotClassifier

        if modality not in DEFAULT_LABELS:
            raise InputError(f"Naming works for audio, images and 3D shapes, not {MODALITY_NAMES[modality].lower()}.")
        candidates = _label_list(labels)
        if len(candidates) > MAX_LABELS:
            raise InputError(f"Give at most {MAX_LABELS} labels (you gave {len(candidates)}).")
        if candidates:
            classifier = ZeroShotClassifier(served.embedder, candidates, TEMPLATES[modality])
        else:
            key = (served.label, modality)
            with self._lock:
                if key not in self._default_classifiers:
                    self._default_classifiers[key] = ZeroShotClassifier(
                        served.embedder, DEFAULT_LABELS[modality], TEMPLATES[modality])
            classifier = self._default_classifiers[key]
        return dict(classifier.classify(embedding)[0])

    def _hit(self, gallery: Any, hit: Any, rank: int) -> Hit:
        item = hit.item
        preview = gallery.preview_path(item)
        return Hit(
            rank=rank, score=hit.score, modality=item.modality, caption=item.caption,
            file=preview if item.modality == "audio" else Path(item.source),
            preview=_display_image(gallery, item, self.shapes),
            view3d=preview if item.modality == "points" else None,
        )


def _label_list(labels: str | Sequence[str] | None) -> list[str]:
    """Comma-separated text or a list → distinct non-empty labels (empty: use the defaults)."""
    if labels is None:
        return []
    parts = labels.split(",") if isinstance(labels, str) else labels
    return list(dict.fromkeys(part.strip() for part in parts if part.strip()))


def unreadable_image_reason(path: str | Path) -> str:
    """Why an upload that Gradio's image widget could not open is unusable, in cmcr.data.media's words."""
    from cmcr.data.media.image import load_image

    try:
        load_image(path)
    except InputError as error:
        return str(error)
    return f"'{Path(path).name}' could not be opened as an image; upload a JPEG, PNG, WebP, BMP, GIF or TIFF file."


def upload_modality(path: Path) -> str | None:
    """Images and shapes can join a session gallery; the suffix says which."""
    suffix = path.suffix.lower()
    if suffix in POINT_FILE_TYPES:
        return "points"
    from cmcr.retrieval.gallery import EXTENSIONS

    return "image" if suffix in EXTENSIONS["image"] else None


def _summary(added: int, duplicates: int, refused: list[tuple[str, str]], total: int) -> str:
    lines = [f"Added **{added}** item(s); your gallery now holds **{total}**."]
    if duplicates:
        lines.append(f"{duplicates} file(s) were already in it.")
    lines += [f"- Skipped `{name}`: {reason}" for name, reason in refused]
    return "\n".join(lines)


def build_default_gallery(assets: Path, folder: Path, embedder: Any, progress: ProgressFn = _log_progress):
    """Embed every item of assets/ that the embedder's space can place (the generated gallery and
    the official samples)."""
    from cmcr.retrieval.gallery import Gallery, ingest, scan_folder

    gallery = Gallery.create(folder, embedder.space_id, embedder.space.dim)
    sources = [source for source in (scan_folder(assets) if assets.is_dir() else []) if _places(embedder, source.modality)]
    if not sources:
        log.warning("no default gallery: %s holds no assets this space can place (run tools/make_assets.py)", assets)
        return gallery
    progress(0.0, f"Embedding the default gallery ({len(sources)} items)")
    report = ingest(gallery, sources, embedder, progress=_each(progress, len(sources), "Embedding the default gallery"))
    for path, reason in report.failed:
        log.warning("default gallery: skipped %s: %s", path, reason)
    return gallery


def _places(embedder: Any, modality: str) -> bool:
    try:
        embedder.encoder_for(modality)
    except InputError:
        return False
    return True


def _manifest_items(assets: Path) -> list[dict]:
    """Items of every manifest under assets/ (the official samples' first), each with its `path`."""
    manifests = sorted(assets.rglob("manifest.json"), key=lambda path: (path.parent == assets, str(path)))
    items = []
    for manifest in manifests:
        items += [{**item, "path": manifest.parent / item["file"]} for item in json.loads(manifest.read_text())["items"]]
    return items


def _digest(data: bytes) -> str:
    from cmcr.retrieval.gallery import sha256_bytes

    return sha256_bytes(data)[:24]


def _each(progress: ProgressFn, total: int, message: str) -> Callable[[Sequence], Any]:
    """An iterable wrapper (the shape `ingest` takes, like tqdm) that reports about ten times."""
    every = max(1, total // 10)

    def wrap(items: Sequence):
        for index, item in enumerate(items):
            if index % every == 0:
                progress(index / max(total, 1), f"{message} ({index + 1}/{total})")
            yield item

    return wrap


def _scaled(progress: ProgressFn, start: float, stop: float) -> ProgressFn:
    """Report a sub-task's 0..1 progress as the start..stop slice of the whole."""
    return lambda fraction, message: progress(start + (stop - start) * fraction, message)
