"""How the app starts when its weights cannot be had, and what it serves with C-MCR spaces.

`python app.py` is started as a person starts it (a subprocess on a loopback port), against a
loopback Hub and raw-file host that answer 404 to everything, or against closed ports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from cmcr.errors import CheckpointError, HubUnavailableError, InputError
from cmcr.models.heads import CMCRProjector, OneLayerProjector
from cmcr.models.space import UnifiedSpace
from studio.answers import Query
from studio.loading import load_models
from studio.service import Studio
from studio.settings import StudioSettings
from tests.paths import REPO
from tests.ports import free_loopback_port
from tests.studio.processes import start_app, stop, wait_served

pytestmark = pytest.mark.slow


class _NotFound(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass

    def _answer(self) -> None:
        body = b'{"error": "Repository Not Found"}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _answer


@pytest.fixture(scope="module")
def not_found_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _app_env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "CMCR_RAW_ENDPOINT": endpoint, "OMP_NUM_THREADS": "1",
           "CMCR_DEVICE": "cpu", **extra}
    env.pop("SPACE_ID", None)
    env.update(extra)
    return env


def _start_app(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    port = free_loopback_port()
    return start_app(env, "--host", "127.0.0.1", "--port", str(port), *args), f"http://127.0.0.1:{port}/"


def test_a_hub_that_answers_404_to_everything_still_gets_a_serving_app(not_found_server):
    process, url = _start_app(_app_env(not_found_server))
    try:
        config = wait_served(process, url).text
        assert "Offline demo mode" in config and "official-ex-mcr" in config and "carry no meaning" in config
    finally:
        stop(process)


def test_a_named_space_that_does_not_exist_ends_in_one_line_and_exit_2(not_found_server):
    done = subprocess.run([sys.executable, "app.py", "--space", "NOSUCH/REPO"], cwd=REPO, capture_output=True,
                          text=True, env=_app_env(not_found_server), timeout=120)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "NOSUCH/REPO" in errors[0] and "does not exist" in errors[0]
    assert "Traceback" not in done.stderr


def test_on_a_space_missing_weights_show_an_error_page_not_random_results(offline_hub):
    process, url = _start_app(_app_env(offline_hub, SPACE_ID="someone/cmcr-studio"))
    try:
        config = wait_served(process, url).text
        assert "not available right now" in config and "never serves" in config
        assert "Offline demo mode" not in config and "Top matches" not in config
    finally:
        stop(process)


# ---- the same decisions in process ------------------------------------------------------------


def test_default_weights_that_fail_fall_back_but_named_ones_are_errors(not_found_server, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", not_found_server)
    monkeypatch.setenv("CMCR_RAW_ENDPOINT", not_found_server)
    loaded = load_models(StudioSettings(device="cpu"), on_space=False)
    assert loaded.profile == "tiny" and "official-ex-mcr" in loaded.notice
    with pytest.raises(CheckpointError, match="does not exist"):
        load_models(StudioSettings(space="nosuch/repo", device="cpu"), on_space=False)
    with pytest.raises(CheckpointError):
        load_models(StudioSettings(device="cpu"), on_space=True)


def test_on_a_space_an_unreachable_hub_is_an_error_too(offline_hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", offline_hub)
    with pytest.raises(HubUnavailableError):
        load_models(StudioSettings(space="someone/space", device="cpu"), on_space=True)


# ---- C-MCR: two pairwise spaces served side by side -------------------------------------------


def _tiny_cmcr_folder(root: Path) -> Path:
    """What C-MCR training writes: one space folder per connection, for the tiny encoders."""
    torch.manual_seed(0)
    tiny = {"profile": "tiny"}
    clap_clip = {"clap": CMCRProjector(512, 64, 512).eval(), "clip": CMCRProjector(512, 64, 512).eval()}
    ulip_clip = {"clip": OneLayerProjector(512, 512).eval(), "ulip": OneLayerProjector(512, 512).eval()}
    UnifiedSpace.build("c-mcr", clap_clip, encoders={"clap": tiny, "clip": tiny}).save_pretrained(root / "clap-clip")
    UnifiedSpace.build("c-mcr", ulip_clip, encoders={"clip": tiny, "ulip": tiny}).save_pretrained(root / "ulip-clip")
    return root


@pytest.fixture(scope="module")
def cmcr_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    folder = _tiny_cmcr_folder(tmp_path_factory.mktemp("cmcr-spaces"))
    studio = Studio.load(StudioSettings(space=str(folder), profile="tiny", device="cpu"))
    yield studio
    studio.close()


def test_each_pair_is_answered_by_the_space_that_connects_it(cmcr_studio, uploads):
    assert [served.label.rsplit("/", 1)[-1] for served in cmcr_studio.served] == ["clap-clip", "ulip-clip"]
    images = cmcr_studio.answer(Query("audio", str(uploads["audio"])), "image", k=3)
    assert [hit.modality for hit in images.hits] == ["image"] * 3
    shapes = cmcr_studio.answer(Query("text", "a chair"), "points", k=3)
    assert [hit.modality for hit in shapes.hits] == ["points"] * 3
    assert cmcr_studio.route("audio", "image").label.endswith("clap-clip")
    assert cmcr_studio.route("text", "points").label.endswith("ulip-clip")
    labels = cmcr_studio.answer(Query("points", str(uploads["points"])), "text", labels="chair, lamp")
    assert sorted(labels.labels) == ["chair", "lamp"]
    # each default gallery holds only what its space can place
    clap_clip, ulip_clip = cmcr_studio.served
    assert {item.modality for item in clap_clip.gallery.items} == {"image", "audio"}
    assert {item.modality for item in ulip_clip.gallery.items} == {"image", "points"}


def test_audio_to_3d_is_refused_with_the_reason_and_the_fix(cmcr_studio, uploads):
    reason = cmcr_studio.unavailable("audio", "points")
    assert "No space served here connects audio and 3d" in reason and "--space official-ex-mcr" in reason
    with pytest.raises(InputError, match="No space served here connects audio and 3d"):
        cmcr_studio.answer(Query("audio", str(uploads["audio"])), "points")
    assert cmcr_studio.unavailable("image", "audio") is None


def test_the_app_says_why_a_tab_cannot_answer(cmcr_studio):
    from studio import ui

    components = {block["props"].get("elem_id"): block["props"]
                  for block in ui.build_app(cmcr_studio).config["components"]}
    assert "audio_to_3d-unavailable" in components and "audio_to_image-unavailable" not in components
    assert "--space official-ex-mcr" in components["audio_to_3d-unavailable"]["value"]
    assert components["audio_to_3d-go"]["interactive"] is False
    assert components["audio_to_image-go"].get("interactive") is not False


def test_an_own_gallery_is_searched_in_every_space_that_places_its_items(cmcr_studio, uploads):
    gallery = cmcr_studio.new_session_gallery()
    try:
        summary = cmcr_studio.add_to_session_gallery(gallery, [str(uploads["image"]), str(uploads["mesh"])])
        assert "Added **2**" in summary and len(gallery) == 2 and len(gallery.thumbnails()) == 2
        found = cmcr_studio.answer_own(Query("text", "a box"), gallery, k=5)
        assert sorted(hit.modality for hit in found.hits) == ["image", "points"]
        assert [hit.rank for hit in found.hits] == [1, 2]
    finally:
        gallery.close()
