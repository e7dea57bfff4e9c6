"""The Gradio UI of C-MCR Studio: layout and wiring only; every decision lives in `studio.service`.

The forward passes run through `studio.gpu` (ZeroGPU's `spaces.GPU`); the handlers here stay in
the server process, so the Gradio state they hold (a visitor's own gallery) never crosses into a
GPU worker. An example click reuses its example's embedding once any visitor has clicked it
(`Studio` keeps them), so only its first click runs an encoder.
"""

from __future__ import annotations

import argparse
import functools
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from cmcr.errors import CMCRError, InputError
from cmcr.models.registry import DEFAULT_SPACE, list_pretrained
from cmcr.data.media.kinds import EXTENSIONS
from studio.answers import MODALITY_NAMES, Query
from studio import serving
from studio.service import MAX_UPLOAD_SIZE, POINT_FILE_TYPES, Studio
from studio.session import SessionGallery
from studio.settings import StudioSettings, on_hugging_face_space, port_number, served_address
from studio.views import ResultView, camera_for, shape_viewer

log = logging.getLogger("studio.ui")

GALLERY_FILE_TYPES = [*EXTENSIONS["image"], *EXTENSIONS["audio"], *POINT_FILE_TYPES]
FIND = {"image": "Find images", "audio": "Find sounds", "points": "Find 3D shapes", "text": "Name it"}
QUEUE_LIMIT = 64  # waiting requests; beyond it new ones are refused with "queue full"

# Layout fixes Gradio's defaults need: a banner of one line; gallery tiles and 3D labels that fit a
# phone; a tab bar that wraps instead of hiding five of seven tabs behind "…" (Gradio measures the
# hidden copy of the tab buttons to decide what fits, so that copy is made zero-width).
CSS = """
#banner {border-left: 6px solid #d97706; background: #fffbeb; padding: 0.4em 0.8em; color: #78350f}
#banner p {margin: 0}
.gradio-container {max-width: 1200px !important}
#main-tabs .tab-container.visually-hidden button {width: 0 !important; min-width: 0 !important;
  padding: 0 !important; margin: 0 !important; border: 0 !important; overflow: hidden !important}
#main-tabs [role=tablist] {flex-wrap: wrap; height: auto !important; overflow: visible !important; row-gap: 2px;
  margin-bottom: 6px}
#main-tabs .overflow-menu {display: none}
.result-listing ol {margin: 0.3em 0 0 0; padding-left: 0; list-style: none}
.result-listing li {margin: 0.15em 0; overflow-wrap: anywhere}
.result-listing .rank {font-weight: 600}
.result-listing audio {display: block; width: 100%; max-width: 420px; height: 36px; margin: 0.1em 0 0.4em 0}
.result-listing .result-note {color: #92400e; margin: 0.2em 0}
.shape-view label[data-testid=block-label] {position: static; white-space: normal; max-width: 100%;
  overflow-wrap: anywhere}
.result-gallery .grid-wrap {min-height: 0 !important; max-height: none !important; overflow-y: visible !important}
.shape-row {flex-wrap: wrap}
.shape-row > * {min-width: min(200px, 100%) !important}
@media (max-width: 640px) {
  .result-gallery .grid-container {--grid-cols: 2 !important}
  #add_to_gallery-contents .grid-container {--grid-cols: 3 !important}
  .result-gallery .grid-container, #add_to_gallery-contents .grid-container {
    grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important}
}
"""

INTRO = """# C-MCR Studio
Find pictures, sounds and 3D shapes with a sound, a picture, a text or a 3D shape."""

HOW_IT_WORKS = """CLIP (image–text), CLAP (audio–text) and ULIP (3D–image) are frozen models that were **never
trained together**; small projectors connect them through the modality each pair shares (C-MCR,
Ex-MCR), so a sound can find a picture or a 3D shape without a single audio–image or audio–3D
training pair. Scores are cosine similarities: higher is closer."""


def user_facing(fn: Callable) -> Callable:
    """Turn our errors into messages a visitor can act on; never show a traceback.

    Messages are HTML-escaped: Gradio renders them as HTML and they may quote uploaded file names.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as error:  # the visitor's to fix: no server-side traceback
            raise titled_error("Cannot use this input", str(error), print_exception=False) from error
        except CMCRError as error:
            log.exception("request failed")
            raise titled_error("The models could not answer", str(error)) from error
        except gr.Error:
            raise
        except Exception as error:
            log.exception("request failed")
            raise titled_error("Something went wrong", "Something went wrong on our side; please try another "
                               "input.") from error

    return wrapper


def titled_error(title: str, message: str, **kwargs: Any) -> gr.Error:
    """A gr.Error whose title the visitor sees: Gradio 6.31's page heads every error toast "Error"
    (it drops `title`), so the title also leads the (HTML-escaped) message."""
    return gr.Error(f"<strong>{html.escape(title)}.</strong> {html.escape(message)}", title=title, **kwargs)


class QueryInput:
    """A source-modality picker with one input per modality; only the chosen one is shown."""

    def __init__(self, default: str, name: str):
        self.source = gr.Radio(
            [(MODALITY_NAMES[m], m) for m in MODALITY_NAMES], value=default, label="Search with",
            elem_id=f"{name}-source",
        )
        makers = {"audio": audio_input, "image": image_input, "text": text_input, "points": points_input}
        self.widgets = {
            modality: make(visible=modality == default, elem_id=f"{name}-{modality}")
            for modality, make in makers.items()
        }
        self.source.change(
            lambda source: [gr.update(visible=m == source) for m in self.widgets],
            self.source, list(self.widgets.values()), api_visibility="private", queue=False,
        )

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.source, *self.widgets.values()]


def query_from(source: str, audio: str | None, image: str | None, text: str | None, points: str | None) -> Query:
    return Query(source, {"audio": audio, "image": image, "text": text, "points": points}.get(source))


def audio_input(visible: bool = True, elem_id: str | None = None) -> gr.Audio:
    return gr.Audio(
        sources=["upload", "microphone"], type="filepath", label="Audio (upload or record)",
        visible=visible, elem_id=elem_id,
    )


class CheckedImage(gr.Image):
    """gr.Image that hands the handler the uploaded file itself, undecoded.

    gr.Image's own preprocessing decodes every upload in full (all frames of a GIF, a 13000x13000
    PNG) and re-encodes it before the handler runs, which bypasses our size and format checks and
    flattens 16-bit images. Here the file goes to `cmcr.data.media.image.load_image` unchanged: it
    refuses what is too large from the header, accepts only its formats by content, and keeps bit
    depths. The browser still previews the upload (the frontend shows the uploaded file)."""

    is_template = True  # rendered by the frontend's Image component

    def preprocess(self, payload: Any) -> str | None:
        return None if payload is None else payload.path


def image_input(visible: bool = True, elem_id: str | None = None) -> gr.Image:
    return CheckedImage(type="filepath", label="Image", sources=["upload", "clipboard"], visible=visible, height=260,
                    elem_id=elem_id)


def text_input(visible: bool = True, elem_id: str | None = None) -> gr.Textbox:
    return gr.Textbox(label="Text", placeholder="a wooden chair", lines=1, visible=visible, elem_id=elem_id)


def points_input(visible: bool = True, elem_id: str | None = None) -> gr.File:
    # The formats go to the file picker and docs/app.md: listed in the label, they were cut off.
    return gr.File(label="3D shape (point cloud or mesh)", file_types=list(POINT_FILE_TYPES), type="filepath",
                   visible=visible, height=170, elem_id=elem_id)


def build_app(studio: Studio) -> gr.Blocks:
    """The whole UI over one loaded `Studio`."""
    with gr.Blocks(title="C-MCR Studio", fill_width=False) as demo:
        gr.Markdown(INTRO)
        gr.Markdown(studio.headline or "", elem_id="banner", visible=bool(studio.headline))
        gr.Markdown(f"<small>{html.escape(studio.description)}</small>", elem_id="subtitle")
        with gr.Tabs(elem_id="main-tabs"):
            with gr.Tab("Audio → Image", id="audio-image"):
                fixed_pair_tab(studio, "audio", "image", audio_input, "audio_to_image")
            with gr.Tab("Text → 3D", id="text-3d"):
                fixed_pair_tab(studio, "text", "points", text_input, "text_to_3d")
            with gr.Tab("Audio → 3D", id="audio-3d"):
                fixed_pair_tab(studio, "audio", "points", audio_input, "audio_to_3d")
            with gr.Tab("Image → Audio", id="image-audio"):
                fixed_pair_tab(studio, "image", "audio", image_input, "image_to_audio")
            with gr.Tab("3D → Text", id="3d-text"):
                points_to_text_tab(studio)
            with gr.Tab("Any → Any", id="any-any"):
                any_to_any_tab(studio)
            with gr.Tab("Your gallery", id="own-gallery"):
                own_gallery_tab(studio)
        default_gallery_list(studio)
        with gr.Accordion("How it works", open=False, elem_id="how-it-works"):
            gr.Markdown(HOW_IT_WORKS)
        if studio.notice:
            with gr.Accordion("Details (for the owner of this app)", open=False, elem_id="banner-details"):
                gr.Markdown(studio.notice)
        gr.Markdown(f"<small>{studio.links}</small>", elem_id="links")
    return demo


def default_gallery_list(studio: Studio) -> None:
    """What a search can find: the default gallery's captions by kind, behind a closed accordion."""
    items = studio.default_items
    with gr.Accordion(f"What the default gallery holds ({len(items)} items)", open=False,
                      elem_id="default-gallery"):
        kinds = {"image": "Images", "audio": "Sounds", "points": "3D shapes"}
        gr.Markdown("\n\n".join(
            f"**{title}:** " + ", ".join(html.escape(item.caption) for item in items if item.modality == kind)
            for kind, title in kinds.items() if any(item.modality == kind for item in items)) or "Nothing yet.")


def examples_label(studio: Studio) -> str:
    """The examples' heading; with toy weights it says what a visitor will see."""
    if studio.profile == "tiny":
        return "Examples (toy weights: they show how the app works; the matches are random)"
    return "Examples"


def unavailable_note(studio: Studio, source: str, target: str, api_name: str) -> bool:
    """Say why the served spaces cannot answer this tab (C-MCR spaces connect one pair each)."""
    reason = studio.unavailable(source, target)
    if reason:
        gr.Markdown(f"**This tab is not available with the weights served here.** {html.escape(reason)}",
                    elem_id=f"{api_name}-unavailable")
    return reason is None


def fixed_pair_tab(studio: Studio, source: str, target: str, make_input: Callable, api_name: str) -> None:
    k = studio.default_k
    available = unavailable_note(studio, source, target, api_name)
    with gr.Row():
        with gr.Column(scale=2):
            value = make_input(elem_id=f"{api_name}-input")
            search = gr.Button(FIND[target], variant="primary", elem_id=f"{api_name}-go", interactive=available)
        with gr.Column(scale=3):
            view = ResultView([target], api_name)

    @user_facing
    def run(value: Any, progress: gr.Progress = gr.Progress()) -> list[Any]:
        results = studio.answer(Query(source, value), target, k=k, progress=_reporter(progress))
        return view.render(results)

    search.click(run, value, view.outputs, api_name=api_name)
    if source == "text":
        value.submit(run, value, view.outputs, api_visibility="private")
    examples = studio.examples(source)
    if examples and available:
        gr.Examples(
            [[example] for example in examples], inputs=value, outputs=view.outputs, fn=run,
            run_on_click=True, cache_examples=False, api_visibility="private", label=examples_label(studio),
            elem_id=f"{api_name}-examples",
        )


def points_to_text_tab(studio: Studio) -> None:
    available = unavailable_note(studio, "points", "text", "classify_3d")
    with gr.Row():
        with gr.Column(scale=2):
            shape = points_input(elem_id="classify_3d-input")
            labels = gr.Textbox(
                label="Candidate labels (comma separated; empty: the 40 ModelNet classes)",
                placeholder="chair, table, airplane, guitar",
            )
            classify = gr.Button("Name this shape", variant="primary", elem_id="classify_3d-go", interactive=available)
        with gr.Column(scale=3):
            preview = shape_viewer("Your shape", "classify_3d-preview", interactive=False)
            label = gr.Label(label="Zero-shot labels", num_top_classes=5, elem_id="classify_3d-labels")

    @user_facing
    def run(path: str | None, candidates: str, progress: gr.Progress = gr.Progress()):
        query = Query("points", path)
        results = studio.answer(query, "text", labels=candidates, progress=_reporter(progress))
        shown = studio.preview(query)
        return gr.Model3D(value=shown, camera_position=camera_for(shown)), results.labels

    classify.click(run, [shape, labels], [preview, label], api_name="classify_3d")
    examples = studio.examples("points")
    if examples and available:
        gr.Examples(
            [[example] for example in examples], inputs=shape, outputs=[preview, label],
            fn=functools.partial(run, candidates=""), run_on_click=True,
            cache_examples=False, api_visibility="private", label=examples_label(studio),
            elem_id="classify_3d-examples",
        )


def any_to_any_tab(studio: Studio) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            query_input = QueryInput(default="image", name="any_to_any")
            offered = [value for _, value in target_choices(studio, "image")]
            target = gr.Radio(target_choices(studio, "image"), label="Find", elem_id="any_to_any-target",
                              value="points" if "points" in offered else (offered or [None])[0])
            k = gr.Slider(1, 16, value=studio.default_k, step=1, label="How many", elem_id="any_to_any-k")
            search = gr.Button("Search", variant="primary", elem_id="any_to_any-go")
        with gr.Column(scale=3):
            view = ResultView(list(MODALITY_NAMES), "any_to_any")

    def offer_targets(source: str, current: str) -> gr.Radio:
        choices = target_choices(studio, source)
        values = [value for _, value in choices]
        return gr.Radio(choices=choices, value=current if current in values else (values or [None])[0])

    query_input.source.change(offer_targets, [query_input.source, target], target, api_visibility="private",
                              queue=False)
    # Naming returns label probabilities, not a ranked list: "How many" does not apply.
    target.change(lambda chosen: gr.Slider(interactive=chosen != "text"), target, k, api_visibility="private",
                  queue=False)

    @user_facing
    def run(source, audio, image, text, points, target_modality, top_k, progress: gr.Progress = gr.Progress()):
        query = query_from(source, audio, image, text, points)
        results = studio.answer(query, target_modality, k=int(top_k), progress=_reporter(progress))
        return view.render(results)

    search.click(run, [*query_input.inputs, target, k], view.outputs, api_name="any_to_any")


def target_choices(studio: Studio, source: str) -> list[tuple[str, str]]:
    """What a `source` query can look for here: no text → text (naming a text means nothing), and
    no pair the served spaces cannot connect."""
    return [(MODALITY_NAMES[m], m) for m in MODALITY_NAMES
            if not (source == m == "text") and studio.unavailable(source, m) is None]


def own_gallery_tab(studio: Studio) -> None:
    close = functools.partial(serving.close_session_soon, keep=serving.shared_copies(studio.assets))
    gallery_state = gr.State(None, time_to_live=studio.session_ttl_s, delete_callback=close)
    gr.Markdown(
        f"Upload your own images, sounds and 3D shapes (up to {SessionGallery.MAX_ITEMS}); they are embedded "
        "into the same space and only this browser session can search them."
    )
    with gr.Row():
        with gr.Column(scale=2):
            uploads = gr.File(
                label="Images, sounds and 3D shapes", file_count="multiple", type="filepath",
                file_types=GALLERY_FILE_TYPES, elem_id="add_to_gallery-files",
            )
            add = gr.Button("Add to my gallery", elem_id="add_to_gallery-go")
            status = gr.Markdown("Your gallery is empty.", elem_id="own-gallery-status")
            query_input = QueryInput(default="text", name="search_gallery")
            k = gr.Slider(1, 16, value=studio.default_k, step=1, label="How many")
            search = gr.Button("Search my gallery", variant="primary", elem_id="search_gallery-go")
        with gr.Column(scale=3):
            contents = gr.Gallery(label="In your gallery", columns=6, height=180, elem_id="add_to_gallery-contents")
            view = ResultView(["image", "audio", "points"], "search_gallery")

    @user_facing
    def add_files(paths: list[str] | None, gallery: SessionGallery | None, request: gr.Request,
                  progress: gr.Progress = gr.Progress()):
        """A refusal is a status message, never a raised error: an error would draw the thumbnails,
        the box and the status as red "Error" pills, so the gallery would look wiped. The box is
        emptied either way, so the next pick is not added to refused files."""
        if gallery is None or gallery.closed:
            gallery = studio.new_session_gallery(request.session_hash)
        try:
            summary = studio.add_to_session_gallery(gallery, paths or [], progress=_reporter(progress))
        except InputError as error:
            summary = f"**Nothing was added.** {html.escape(str(error))}"
        return gallery, summary, gallery.thumbnails(), None

    @user_facing
    def run(gallery, source, audio, image, text, points, top_k, progress: gr.Progress = gr.Progress()):
        query = query_from(source, audio, image, text, points)
        results = studio.answer_own(query, gallery, k=int(top_k), progress=_reporter(progress))
        return view.render(results)

    add.click(add_files, [uploads, gallery_state], [gallery_state, status, contents, uploads],
              api_name="add_to_gallery")
    search.click(run, [gallery_state, *query_input.inputs, k], view.outputs, api_name="search_gallery")


def _reporter(progress: gr.Progress) -> Callable[[float, str], None]:
    def report(fraction: float, message: str) -> None:
        progress(fraction, desc=message)

    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Flags over the environment: CMCR_* for the weights, GRADIO_SERVER_NAME / GRADIO_SERVER_PORT
    for the address (as every Gradio app reads them; a Space sets them)."""
    defaults = StudioSettings.from_env()
    parser = argparse.ArgumentParser(description="C-MCR Studio: cross-modal retrieval demo.")
    parser.add_argument("--space", default=defaults.space,
                        help=f"the weights to serve: a pretrained name ({', '.join(list_pretrained())}), a Hub repo "
                             f"id or a local folder; several, comma separated (default: {DEFAULT_SPACE})")
    parser.add_argument("--revision", default=defaults.revision, help="branch, tag or commit of --space")
    parser.add_argument("--profile", choices=["full", "tiny"], default=defaults.profile)
    parser.add_argument("--device", default=defaults.device, help="cpu, cuda, cuda:1 (default: best available)")
    host, port = served_address()
    parser.add_argument("--host", default=host, help=f"address to listen on (default: {host})")
    # A string default goes through `type` only when the flag is absent: a flag wins over the variable.
    parser.add_argument("--port", type=_port, default=port, help=f"port to listen on (default: {port})")
    parser.add_argument("--concurrency", type=int, default=2, help="requests computed at once")
    parser.add_argument("--max-queue", type=int, default=QUEUE_LIMIT,
                        help="waiting requests before new ones are refused")
    args = parser.parse_args(argv)
    if args.max_queue < 1 or args.concurrency < 1:
        parser.error("--max-queue and --concurrency must be at least 1")
    return args


def _port(text: str) -> int:
    try:
        return port_number(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


@dataclass
class Page:
    """What one process serves: the Blocks and the folders its answers' files come from."""

    demo: gr.Blocks
    allowed_paths: list[str]

    def launch(self, host: str, port: int, block: bool = True) -> None:
        if block:
            serving.exit_cleanly_on_sigterm()
        try:
            self.demo.launch(
                server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                allowed_paths=self.allowed_paths, max_file_size=MAX_UPLOAD_SIZE, css=CSS,
                theme=gr.themes.Soft(), show_error=True, app_kwargs=dict(serving.APP_KWARGS),
            )
        except KeyboardInterrupt:  # stopped while still starting (once serving, Gradio handles it)
            self.demo.close()


def studio_page(studio: Studio, concurrency: int = 2, max_queue: int = QUEUE_LIMIT,
                cache_sweep: tuple[int, int] = serving.CACHE_SWEEP) -> Page:
    """The app over a loaded studio, with its queue (`studio.serving` says what holds).

    At most `concurrency` requests are computed at once over all tabs together; requests beyond
    `max_queue` waiting ones are refused at once ("queue full") rather than left to time out: on a
    small Space a burst would otherwise make every visitor wait minutes."""
    demo = build_app(studio)
    demo.delete_cache = cache_sweep  # gr.Blocks(delete_cache=...): read when the server is made
    serving.end_sessions_with_their_visitors(demo, studio)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue, api_open=False)
    serving.share_one_limit(demo)
    studio.work.set_limit(concurrency)
    return Page(demo, studio.allowed_paths)


def serve(studio: Studio, host: str, port: int, concurrency: int = 2, block: bool = True,
          max_queue: int = QUEUE_LIMIT, cache_sweep: tuple[int, int] = serving.CACHE_SWEEP) -> gr.Blocks:
    """Build and launch the app over a loaded studio (the tests launch it this way, block=False)."""
    page = studio_page(studio, concurrency, max_queue, cache_sweep)
    page.launch(host, port, block)
    return page.demo


ERROR_PAGE = """# C-MCR Studio is not available right now

This Space could not load its trained weights, so it is not answering searches: it never serves
random weights in their place, because their results would look real and mean nothing.
The owner has been told in the Space's logs; the details are below."""


def build_error_page(error: BaseException) -> gr.Blocks:
    """What a Space shows when its weights cannot be loaded (docs/app.md says why not a banner)."""
    with gr.Blocks(title="C-MCR Studio: unavailable") as page:
        gr.Markdown(ERROR_PAGE, elem_id="error-page")
        with gr.Accordion("Details for the Space's owner", open=False):
            gr.Markdown(f"```\n{error}\n```\nFix the weights setting (`CMCR_SPACE_REPO`, `CMCR_SPACE_REVISION`) or "
                        "the network access, then restart the Space.", elem_id="error-details")
    return page


def load_page(args: argparse.Namespace) -> Page:
    """Load the models and build the page, once per process (app.py does it at import, so ZeroGPU
    finds the models and `gradio app.py` finds `demo`). A local start that cannot get explicitly
    named weights raises the CMCRError (app.py turns it into one `error:` line and exit code 2);
    on a Hugging Face Space the page is an error page instead."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings = StudioSettings(space=args.space, revision=args.revision, profile=args.profile, device=args.device)
    try:
        studio = Studio.load(settings)
    except CMCRError as error:
        if not on_hugging_face_space():
            raise
        log.error("this Space cannot serve its weights: %s", error)
        return Page(build_error_page(error), [])
    return studio_page(studio, args.concurrency, args.max_queue)
