"""Test-session set-up.

huggingface_hub, transformers and laion_clap read their environment when they are imported, so
the Hub is isolated here, before any test module can import them:

- HF_HOME points at a fresh temporary folder: no test sees (or pollutes) a developer's cache;
- GRADIO_TEMP_DIR is a folder of this process's own (see below);
- HF_ENDPOINT points at a loopback port chosen now; the `fake_hub` fixture serves on it. Until
  it does, every request is refused at once, so a test can never hang on a download or reach
  the network. CMCR_RAW_ENDPOINT does the same for the raw-file host of the official projectors
  (the `raw_files` fixture serves on it).
"""

from __future__ import annotations

import os
import tempfile

from tests.ports import free_loopback_port

_HF_HOME = tempfile.mkdtemp(prefix="cmcr-test-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{free_loopback_port()}"
os.environ["CMCR_RAW_ENDPOINT"] = f"http://127.0.0.1:{free_loopback_port()}"  # the raw-file host (GitHub)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ["HF_HUB_ETAG_TIMEOUT"] = "5"
os.environ["HF_HUB_DOWNLOAD_TIMEOUT"] = "10"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio names cached files by content, and an app that closes deletes every file it cached, so
# two test processes sharing one cache folder delete each other's example copies: one per process.
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="cmcr-test-gradio-")
os.environ.setdefault("MPLBACKEND", "Agg")
# pytest-xdist runs two workers on two cores: one math thread each avoids oversubscription, which
# measured about 10x slower for toy training steps than a single thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = [
    "tests.fixtures.datasets",
    "tests.fixtures.hub",
    "tests.fixtures.media",
    "tests.fixtures.official",
    "tests.fixtures.sources",
    "tests.fixtures.text_models",
    "tests.fixtures.training",
    "tests.fixtures.ulip",
]
