"""What the app calls: the served spaces with their default galleries, and every answer.

The Gradio layer (`studio.ui`) only lays out widgets; every decision a test should be able to
reach lives here and in the modules beside it: which served space answers a pair of modalities
(the first that places both; a pair that none connects is refused with the reason), how a request
is validated, embedded and searched, and how the answer is shaped for display.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmcr.data.media.points import FILE_SUFFIXES
from cmcr.data.media.preview import points_to_preview
from cmcr.errors import InputError
from cmcr.data.media.text import bound_text
from cmcr.models.registry import CMCR_PAPER, CMCR_REPO, DEFAULT_SPACE, EXMCR_PAPER, EXMCR_REPO
from cmcr.data.media.kinds import EXTENSIONS
from cmcr.retrieval.gallery import Gallery, SourceFile, caption_from_name, ingest, scan_folder, sha256_bytes
from cmcr.retrieval.search import query as search
from cmcr.data.vocabulary import DEFAULT_LABELS, TEMPLATES
from cmcr.retrieval.zeroshot import ZeroShotClassifier
from studio.answers import DEFAULT_K, EMPTY_GALLERY, MODALITY_NAMES, Query, Results, ShownHit
from studio.examples import ExampleRows, manifest_examples
from studio.cpu import compute_lane
from studio.gpu import GpuEmbedder
from studio.limits import WorkLimit, model_work
from studio.loading import TINY_SPACE_LABEL, ModelSet, load_models
from studio.session import RecentShapes, SessionGallery, ShapeThumbnails, display_image
from studio.settings import ASSETS_DIR, ProgressFn, StudioSettings, each, log, log_progress, scaled
from studio.workdir import claim as claim_workdir, keep_newest

MAX_UPLOAD_SIZE = "50mb"
POINT_FILE_TYPES = FILE_SUFFIXES  # every 3D suffix the parser reads, .txt clouds included
MAX_LABELS = 100
KEPT_PREVIEWS = 64  # 3D views of uploaded shapes kept for reuse; older ones are deleted


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

    def placed_names(self) -> list[str]:
        """The modalities this space places, as the page names them."""
        return [MODALITY_NAMES[m].lower() for m in MODALITY_NAMES if self.places(m)]

    def describe(self) -> str:
        provenance = self.space.provenance
        if provenance:
            return (f"{provenance['title']} ({provenance['license'].replace('-', ' ')}, "
                    f"credit: {provenance['credit']})")
        return f"`{self.label}`" if self.label != TINY_SPACE_LABEL else self.label

    def weights_links(self) -> list[str]:
        """Markdown links to the weights this space serves: the release files, or its Hub repo."""
        provenance = self.space.provenance
        if provenance:
            return [f"[{Path(file['path']).name}]({file['url']})" for file in provenance.get("files", [])]
        if self.label == TINY_SPACE_LABEL:
            return ["toy weights made at start (tiny profile)"]
        if _looks_like_repo_id(self.label):
            return [f"[{self.label}](https://huggingface.co/{self.label})"]
        return [f"`{self.label}` (a local folder)"]


class Studio:
    """Everything one app process serves: models, the default gallery, and request handling."""

    default_k = DEFAULT_K
    session_ttl_s = 3600  # a visitor's gallery is deleted this long after their last addition at the latest

    def __init__(self, models: ModelSet, served: list[ServedSpace], settings: StudioSettings, workdir: Path,
                 assets: Path = ASSETS_DIR):
        self.models = models
        self.served = served
        self.settings = settings
        self.workdir = workdir
        self.assets = assets
        self.shapes = ShapeThumbnails(workdir / "shapes")
        self.shapes.folder.mkdir(parents=True, exist_ok=True)
        self._default_classifiers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._recent_shapes = RecentShapes()
        self._examples = manifest_examples(assets)
        self._example_rows = ExampleRows(self._examples)
        self.work = WorkLimit()  # the app sets it to its --concurrency (studio.ui.studio_page)
        self._sessions: dict[str, SessionGallery] = {}

    @classmethod
    def load(cls, settings: StudioSettings | None = None, progress: ProgressFn = log_progress,
             assets: Path = ASSETS_DIR, *, on_space: bool | None = None) -> Studio:
        """Load models once (falling back to the tiny profile where allowed) and embed the default
        gallery in every served space."""
        settings = settings or StudioSettings.from_env()
        models = load_models(settings, scaled(progress, 0.0, 0.7), on_space=on_space)
        workdir = claim_workdir()
        served, lane = [], compute_lane(settings.device)
        for index, (label, space) in enumerate(models.spaces.items()):
            embedder = GpuEmbedder(space, {name: models.encoders[name] for name in space.encoders
                                           if name in models.encoders}, lane)
            share = scaled(progress, 0.7 + 0.3 * index / len(models.spaces),
                           0.7 + 0.3 * (index + 1) / len(models.spaces))
            gallery = build_default_gallery(assets, workdir / f"gallery-{index}", embedder, share)
            served.append(ServedSpace(label, embedder, gallery))
        studio = cls(models, served, settings, workdir, assets)
        atexit.register(studio.close)  # also on SIGTERM: studio.ui turns it into a clean exit
        if models.notice:  # the banner shows a visitor one line; the owner's details go to the log as well
            log.warning("banner details: %s", models.notice)
        progress(1.0, f"Ready: {len(studio.default_items)} gallery items, {models.profile} profile")
        return studio

    def close(self) -> None:
        """Remove the working folder (default gallery, previews, session galleries)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- what the page shows ----------------------------------------------------------------

    @property
    def notice(self) -> str | None:
        """The owner-facing details behind the banner (why random weights are served), or None."""
        return self.models.notice

    @property
    def headline(self) -> str | None:
        """The banner's one line for visitors (None: real weights, no banner)."""
        return self.models.headline

    @property
    def profile(self) -> str:
        return self.models.profile

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
        """One plain line: what is searched and with which weights."""
        counts = {m: sum(item.modality == m for item in self.default_items) for m in MODALITY_NAMES}
        held = _count_phrase(counts)
        if self.profile == "tiny":
            weights = "toy models with random weights (the tiny profile)"
        else:
            weights = " and ".join(served.describe() for served in self.served)
        return f"Searches {held or 'an empty gallery'} with {weights}."

    @property
    def links(self) -> str:
        """Markdown links to the papers, the authors' code and the weights in use."""
        weights = [link for served in self.served for link in served.weights_links()]
        return (f"Papers: [C-MCR]({CMCR_PAPER}) · [Ex-MCR]({EXMCR_PAPER}) · Code: "
                f"[C-MCR](https://github.com/{CMCR_REPO}) · [Ex-MCR](https://github.com/{EXMCR_REPO}) · "
                f"Weights in use: {', '.join(dict.fromkeys(weights))}")

    @property
    def allowed_paths(self) -> list[str]:
        return [str(self.assets), str(self.workdir)]

    def examples(self, modality: str) -> list[str]:
        """Example inputs of `modality` from assets/ (`studio.examples.manifest_examples`)."""
        return self._examples[modality]

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
        held = "; ".join(f"{served.label} places {', '.join(served.placed_names())}" for served in self.served)
        hint = (" Connecting audio with 3D needs a unified (Ex-MCR) space: start the app with "
                f"--space {DEFAULT_SPACE}.") if {source, target} == {"audio", "points"} else ""
        raise InputError(f"No space served here connects {wanted} ({held}).{hint}")

    def embed(self, query: Query, target: str | None = None) -> np.ndarray:
        """A (1, D) unit row, in the space that answers `query` → `target`, for a validated query."""
        query = query.validated()
        return self._row(self.route(query.modality, target), query, self._example_rows.key(query.modality, query.value),
                         lambda: self._decoded(query))

    def _row(self, served: ServedSpace, query: Query, example: str | None, decoded: Callable[[], Any]) -> np.ndarray:
        """The query's row in `served`'s space; an example's is kept after its first use."""
        return self._example_rows.row(served.label, example, lambda: served.embedder.embed(query.modality, [decoded()]))

    def _decoded(self, query: Query) -> Any:
        decoder = self.served[0].embedder
        if query.modality == "points":
            return self._recent_shapes.get(query.value, lambda: decoder.decode("points", query.value))
        return decoder.decode(query.modality, query.value)

    @model_work
    def answer(self, query: Query, target: str | None, *, k: int = DEFAULT_K, labels: str | Sequence[str] | None = None,
               gallery: SessionGallery | None = None, progress: ProgressFn = log_progress) -> Results:
        """Search `target` items (None: any) of a gallery, or name the input when `target` is text."""
        if target is not None and target not in MODALITY_NAMES:
            raise InputError(f"Unknown target {target!r}; choose one of {', '.join(MODALITY_NAMES)}.")
        if not 1 <= int(k) <= 64:
            raise InputError(f"Ask for between 1 and 64 results, not {k}.")
        query = query.validated()
        routes = self._routes(query.modality, target)
        progress(0.1, f"Embedding your {MODALITY_NAMES[query.modality].lower()}")
        example = self._example_rows.key(query.modality, query.value)
        decoded = functools.cache(lambda: self._decoded(query))  # once, whichever spaces need it
        note = bound_text(query.value).note if query.modality == "text" else None
        if target == "text":
            served = routes[0][0]
            progress(0.7, "Naming it")
            embedding = self._row(served, query, example, decoded)
            return Results(labels=self._classify(served, query.modality, embedding, labels), note=note)
        shapes = self.shapes if gallery is None else gallery.shapes
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
            embedding = self._row(served, query, example, decoded)
            held = {item.modality for item in searched.items}  # "any": skip what this gallery lacks
            for modality in targets if target is not None else [m for m in targets if m is None or m in held]:
                found = search(served.embedder, searched, query.modality, embeddings=embedding, k=int(k),
                               target=modality)[0]
                hits += [(hit, searched) for hit in found]
        best = sorted(hits, key=lambda pair: -pair[0].score)[: int(k)]
        return Results(hits=[self._hit(searched, hit, rank, shapes)
                             for rank, (hit, searched) in enumerate(best, start=1)], note=note)

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
                   progress: ProgressFn = log_progress) -> Results:
        """Search a visitor's own gallery only (None: they have not added anything yet)."""
        if gallery is None or gallery.closed or len(gallery) == 0:
            raise InputError(EMPTY_GALLERY)
        return self.answer(query, None, k=k, gallery=gallery, progress=progress)

    @model_work
    def preview(self, query: Query) -> str:
        """A light 3D file of an uploaded shape that gr.Model3D displays."""
        query = query.validated()
        points = self._decoded(query)
        target = self.workdir / "uploads" / f"{_digest(points.tobytes())}.glb"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.touch()  # used again: newest, so the sweep below keeps it
        else:
            points_to_preview(points, target)
            keep_newest(target.parent, KEPT_PREVIEWS)
        return str(target)

    def new_session_gallery(self, session: str | None = None) -> SessionGallery:
        """An empty gallery for a visitor; `session` (Gradio's session hash) lets `end_session` find it."""
        root = Path(tempfile.mkdtemp(prefix="session-", dir=self.workdir))
        galleries = {served.label: Gallery.create(root / str(index), served.embedder.space_id, served.space.dim)
                     for index, served in enumerate(self.served)}
        gallery = SessionGallery(root, galleries, ShapeThumbnails(root / "shapes"))
        if session is not None:
            with self._lock:  # galleries deleted by their time to live leave the register here
                self._sessions = {key: kept for key, kept in self._sessions.items() if not kept.closed}
                self._sessions[session] = gallery
        return gallery

    def session_gallery(self, session: str) -> SessionGallery | None:
        with self._lock:
            return self._sessions.get(session)

    def end_session(self, session: str) -> SessionGallery | None:
        """Forget a visitor's gallery when their session ends; the caller closes it (None: they had none)."""
        with self._lock:
            return self._sessions.pop(session, None)

    @model_work
    def add_to_session_gallery(self, gallery: SessionGallery, paths: Sequence[str],
                               progress: ProgressFn = log_progress) -> str:
        """Embed uploaded images, sounds and shapes into a visitor's gallery; a summary to show them.

        What fits under `SessionGallery.MAX_ITEMS` is added and the rest is named in the summary
        (a partial refusal is an answer, not an error: what was added stays shown)."""
        if not paths:
            raise InputError("Choose some images, sounds or 3D files to add first.")
        room = max(SessionGallery.MAX_ITEMS - len(gallery), 0)
        sources, refused = [], []
        for path in map(Path, paths):
            modality = upload_modality(path)
            if modality is None:
                refused.append((path.name, "only images, sounds and 3D files can be added"))
            elif len(sources) >= room:
                refused.append((path.name, f"the gallery is full ({SessionGallery.MAX_ITEMS} items at most)"))
            else:
                sources.append(SourceFile(path, modality, caption_from_name(path)))
        before = len(gallery)
        duplicates, failed = 0, {}
        for index, served in enumerate(self.served):
            placed = [source for source in sources if served.places(source.modality)]
            share = scaled(progress, 0.2 + 0.8 * index / len(self.served), 0.2 + 0.8 * (index + 1) / len(self.served))
            share(0.0, f"Embedding {len(placed)} files")
            report = ingest(gallery.galleries[served.label], placed, served.embedder,
                            progress=each(share, len(placed), "Embedding"))
            duplicates = max(duplicates, report.duplicates)
            failed.update({Path(name).name: reason for name, reason in report.failed})
        refused += list(failed.items())
        return _summary(len(gallery) - before, duplicates, refused, len(gallery), _count_phrase(gallery.counts()))

    def _classify(self, served: ServedSpace, modality: str, embedding: np.ndarray,
                  labels: str | Sequence[str] | None) -> dict[str, float]:
        """Label probabilities; the default label set's prompt embeddings are computed once."""
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

    def _hit(self, gallery: Any, hit: Any, rank: int, shapes: ShapeThumbnails) -> ShownHit:
        item = hit.item
        preview = gallery.preview_path(item)
        return ShownHit(
            rank=rank, score=hit.score, modality=item.modality, caption=item.caption,
            file=preview if item.modality == "audio" else Path(item.source),
            preview=display_image(gallery, item, shapes),
            view3d=preview if item.modality == "points" else None,
        )


def _label_list(labels: str | Sequence[str] | None) -> list[str]:
    """Comma-separated text or a list → distinct non-empty labels (empty: use the defaults)."""
    if labels is None:
        return []
    parts = labels.split(",") if isinstance(labels, str) else labels
    return list(dict.fromkeys(part.strip() for part in parts if part.strip()))


def upload_modality(path: Path) -> str | None:
    """Images, sounds and shapes can join a session gallery; the suffix says which."""
    suffix = path.suffix.lower()
    if suffix in POINT_FILE_TYPES:
        return "points"
    return next((modality for modality in ("image", "audio") if suffix in EXTENSIONS[modality]), None)


SHOWN_SKIPS = 10  # a summary names this many skipped files, then counts the rest


def _summary(added: int, duplicates: int, refused: list[tuple[str, str]], total: int, held: str) -> str:
    lines = [f"Added **{added}** item(s); your gallery now holds **{total}**" + (f": {held}." if held else ".")]
    if duplicates:
        lines.append(f"{duplicates} file(s) were already in it.")
    lines += [f"- Skipped `{name}`: {reason}" for name, reason in refused[:SHOWN_SKIPS]]
    if len(refused) > SHOWN_SKIPS:
        lines.append(f"- and {len(refused) - SHOWN_SKIPS} more file(s) skipped.")
    if any(reason.startswith("the gallery is full") for _, reason in refused):
        lines.append(f"Your gallery is full ({SessionGallery.MAX_ITEMS} items); reload the page to start a new one.")
    return "\n".join(lines)


def _count_phrase(counts: dict[str, int]) -> str:
    """{"image": 15, "audio": 13} → "15 images and 13 sounds"."""
    names = {"image": ("image", "images"), "audio": ("sound", "sounds"), "points": ("3D shape", "3D shapes"),
             "text": ("text", "texts")}
    parts = [f"{n} {names[m][n != 1]}" for m, n in counts.items() if n]
    return " and ".join(filter(None, [", ".join(parts[:-1]), parts[-1]])) if parts else ""


def _looks_like_repo_id(label: str) -> bool:
    """owner/name with no path tricks: a Hub repo id rather than a local folder."""
    parts = label.split("/")
    return len(parts) == 2 and all(parts) and not label.startswith((".", "~")) and not Path(label).exists()


def build_default_gallery(assets: Path, folder: Path, embedder: Any, progress: ProgressFn = log_progress):
    """Embed every item of assets/ that the embedder's space can place (the generated gallery and
    the official samples)."""
    gallery = Gallery.create(folder, embedder.space_id, embedder.space.dim)
    found = scan_folder(assets) if assets.is_dir() else []
    sources = [source for source in found if _places(embedder, source.modality)]
    if not sources:
        log.warning("no default gallery: %s holds no assets this space can place "
                    "(run python -m tools.make_assets)", assets)
        return gallery
    progress(0.0, f"Embedding the default gallery ({len(sources)} items)")
    report = ingest(gallery, sources, embedder, progress=each(progress, len(sources), "Embedding the default gallery"))
    for path, reason in report.failed:
        log.warning("default gallery: skipped %s: %s", path, reason)
    return gallery


def _places(embedder: Any, modality: str) -> bool:
    try:
        embedder.encoder_for(modality)
    except InputError:
        return False
    return True


def _digest(data: bytes) -> str:
    return sha256_bytes(data)[:24]
