"""Fixtures for the app tests: one tiny-profile studio per session, one launched app per module.

The app is the real one (`studio.ui.serve`), launched on a free loopback port inside the test process
and closed afterwards; uploads are real files written by tests/fixtures/media.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from studio.service import Studio
from studio.settings import StudioSettings
from tests.fixtures.media import (
    make_audio_file,
    make_image_file,
    make_mesh_file,
    make_points_file,
    random_cloud,
)
from tests.paths import REPO
from tests.ports import free_loopback_port

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def studio() -> Iterator[Studio]:
    """The studio every app test shares: tiny profile on the CPU, default gallery from assets/."""
    studio = Studio.load(StudioSettings(profile="tiny", device="cpu"))
    yield studio
    studio.close()


@pytest.fixture(scope="module")
def app_url(studio: Studio) -> Iterator[str]:
    from studio import ui

    port = free_loopback_port()
    demo = ui.serve(studio, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One valid file per kind of upload, plus files that must be refused."""
    folder = tmp_path_factory.mktemp("uploads")
    corrupt = folder / "broken.ply"
    corrupt.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 99\nthis is not a point cloud\n")
    not_an_image = folder / "broken.png"
    not_an_image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    noise = folder / "noise.wav"
    noise.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    return {
        "audio": make_audio_file(folder, fmt="wav", seconds=1.0),
        "image": make_image_file(folder, fmt="png"),
        "points": make_points_file(folder, fmt="xyz", points=random_cloud(600)),
        "mesh": make_mesh_file(folder, fmt="obj"),
        "corrupt_points": corrupt,
        "corrupt_audio": noise,
        "corrupt_image": not_an_image,
    }


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Save what the browser showed when a browser test fails (test-artifacts/failed-<test>.png)."""
    report = yield
    page = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and page is not None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"failed-{item.name}.png"), full_page=True)
    return report
