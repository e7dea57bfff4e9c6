"""The `app` section: what a visitor of a CPU Space waits for, tab by tab.

Each request is the app's own path from an uploaded file: decode it (`cmcr.data.media`), embed it
with the full-size encoder (random weights: speed does not depend on them), project it into the
space and take the top-10 of a 1,000-item gallery (3D → Text: zero-shot over the 40 ModelNet
labels, their prompts embedded once, as the app keeps them). Two versions of the same request
run interleaved, call by call, so a busy machine slows both alike:

- baseline: the CPU path as it was: every encoder in float32, torch's default math threads;
- app: the CPU path the app serves with (`studio.cpu`): bf16 autocast on CPUs with native bf16,
  else ULIP's point tower in int8; every forward pass in the app's one compute thread
  (`ComputeLane`, through `studio.gpu.GpuEmbedder` as the app calls it) with a math thread per
  CPU, where two requests at once queue.

"two at once" repeats a tab with two requests in flight, as two visitors of one Space make them.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from benchmarks.bench import K, Bench
from benchmarks.figures import TARGETS, Figure, Timing
from benchmarks.inputs import sample_clouds, sample_inputs, smooth_image, unit_rows
from cmcr.models.registry import ENCODERS
from cmcr.models.space import tiny_space
from cmcr.retrieval.gallery import Gallery, IndexSettings, NewItem
from cmcr.retrieval.search import SpaceEmbedder, query
from cmcr.retrieval.zeroshot import DEFAULT_LABELS, TEMPLATES, ZeroShotClassifier
from studio.cpu import ComputeLane, serving_overrides
from studio.gpu import GpuEmbedder

GALLERY_ROWS = 1000
CONCURRENCY = 2  # the app's default: requests computed at once
TABS: dict[str, tuple[str, str, str]] = {  # name: (source, target, target key)
    "audio→image": ("audio", "image", "cpu_audio_image_ms"),
    "text→3D": ("text", "points", "cpu_text_3d_ms"),
    "audio→3D": ("audio", "points", ""),
    "image→audio": ("image", "audio", ""),
    "3D→image": ("points", "image", "cpu_3d_ms"),
    "3D→text": ("points", "text", "cpu_3d_ms"),
}
TWO_AT_ONCE = ("audio→image", "3D→image")


class Variant:
    """One version of the request path: its embedder, classifier, math threads and what it is."""

    def __init__(self, embedder: SpaceEmbedder, threads: int, label: str) -> None:
        self.embedder = embedder
        self.threads = threads
        self.label = f"{label}, {threads} thread(s)"
        self.classifier = ZeroShotClassifier(embedder, DEFAULT_LABELS["points"], TEMPLATES["points"])

    def request(self, gallery: Any, source: str, target: str, upload: Any) -> Callable[[], Any]:
        def answer() -> Any:
            row = self.embedder.embed(source, [self.embedder.decode(source, upload)])
            if target == "text":
                return self.classifier.classify(row)
            return query(self.embedder, gallery, source, embeddings=row, k=K, target=target)

        return answer


def bench_app(bench: Bench) -> list[Figure]:
    default_threads = torch.get_num_threads()
    overrides = {name: serving_overrides(name, str(bench.device)) for name in ENCODERS}
    baseline = Variant(_embedder(bench, {}), default_threads, "float32")
    lane = ComputeLane()
    app = Variant(_embedder(bench, overrides, lane), lane.threads, _describe(overrides))
    repeats = bench.plan.repeats if bench.plan.profile == "tiny" else max(12, bench.plan.repeats)
    figures = []
    try:
        with tempfile.TemporaryDirectory(prefix="cmcr-bench-app-") as scratch:
            uploads = _upload_files(Path(scratch), bench)
            gallery = _mixed_gallery(Path(scratch) / "gallery", baseline.embedder, bench)
            calls = {tab: [variant.request(gallery, source, target, uploads[source]) for variant in (baseline, app)]
                     for tab, (source, target, _) in TABS.items()}
            for tab, (_, _, target_key) in TABS.items():
                bench.progress(f"app: {tab}")
                timings = _interleaved(bench, [baseline, app], calls[tab], repeats)
                figures.append(_figure(tab, "", timings, baseline, app, target_key))
            for tab in TWO_AT_ONCE:  # after every one-request figure: threads in flight change the process
                bench.progress(f"app: {tab}, two at once")
                timings = [_two_at_once(variant, call, repeats) for variant, call in zip((baseline, app), calls[tab])]
                figures.append(_figure(tab, ", two at once", timings, baseline, app, ""))
            figures += [_agreement(bench, baseline, app, modality, uploads)
                        for modality in ("audio", "image", "text", "points")
                        if overrides[baseline.embedder.encoder_for(modality)]]
    finally:
        torch.set_num_threads(default_threads)
    return figures


def _embedder(bench: Bench, overrides: dict[str, dict[str, Any]], lane: ComputeLane | None = None) -> SpaceEmbedder:
    """The baseline's plain embedder, or (with a lane) the app's."""
    encoders = {name: bench.encoder(name, **overrides.get(name, {})) for name in ENCODERS}
    space = tiny_space(encoders).to(bench.device)
    return SpaceEmbedder(space, encoders) if lane is None else GpuEmbedder(space, encoders, lane)


def _describe(overrides: dict[str, dict[str, Any]]) -> str:
    if all(setting.get("dtype") == "bfloat16" for setting in overrides.values()):
        return "bf16 autocast"
    return "int8 point tower" if overrides.get("ulip") else "float32"


def _mixed_gallery(root: Path, embedder: SpaceEmbedder, bench: Bench) -> Gallery:
    """GALLERY_ROWS random unit rows of each target modality, exact search (as the app's gallery)."""
    modalities = ("image", "audio", "points")
    gallery = Gallery.create(root, embedder.space_id, embedder.space.dim,
                             IndexSettings(exact_limit=GALLERY_ROWS * len(modalities)))
    items = [NewItem(modality, f"{modality}-{row}", f"{modality} {row}", f"{index * GALLERY_ROWS + row:064x}")
             for index, modality in enumerate(modalities) for row in range(GALLERY_ROWS)]
    gallery.add(items, unit_rows(bench.rng(7), len(items), embedder.space.dim))
    return gallery


def _upload_files(folder: Path, bench: Bench) -> dict[str, Any]:
    """Files as visitors upload them: 10 s of 48 kHz WAV, a 640x480 JPEG, a 10,000-point .npy
    cloud (the official samples' layout), and a sentence."""
    rng = bench.rng(11)
    audio, image, cloud = folder / "sound.wav", folder / "photo.jpg", folder / "shape.npy"
    soundfile.write(audio, sample_inputs("audio", 1, bench)[0], 48_000)
    smooth_image(rng, bench.plan.image_pixels).save(image, quality=90)
    np.save(cloud, sample_clouds(rng, 1, 10_000)[0])
    return {"audio": str(audio), "image": str(image), "points": str(cloud), "text": "a wooden chair by the window"}


def _interleaved(bench: Bench, variants: list[Variant], calls: list[Callable[[], Any]], repeats: int) -> list[Timing]:
    """Each variant's call, alternating, after one warm-up each; (baseline, app) timings."""
    samples: list[list[float]] = [[] for _ in variants]
    for round_index in range(repeats + 1):
        for index, (variant, call) in enumerate(zip(variants, calls)):
            torch.set_num_threads(variant.threads)
            timing = bench.stopwatch.time(call, repeats=1, warmup=0)
            if round_index:  # the first round warms up
                samples[index] += timing.samples_ms
    return [Timing(tuple(values)) for values in samples]


def _two_at_once(variant: Variant, call: Callable[[], Any], repeats: int) -> Timing:
    """Latency of each of two requests started together from two threads, as Gradio's workers
    start them: the baseline's compute there (each with OpenMP's default threads, as the app's
    did), the app's queue in its compute thread."""
    torch.set_num_threads(variant.threads)
    samples: list[float] = []
    lock = threading.Lock()

    def timed() -> None:
        started = _now_ms()
        call()
        with lock:
            samples.append(_now_ms() - started)

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda _: call(), range(CONCURRENCY)))  # warm-up
        for _ in range(max(1, repeats // CONCURRENCY)):
            list(pool.map(lambda _: timed(), range(CONCURRENCY)))
    return Timing(tuple(samples))


def _now_ms() -> float:
    return time.perf_counter() * 1000.0


def _figure(tab: str, suffix: str, timings: list[Timing], baseline: Variant, app: Variant, target_key: str) -> Figure:
    old, new = timings
    return Figure(
        "app", f"{tab} request{suffix}, {GALLERY_ROWS:,} items per modality ({app.label})",
        "ms", new.median_ms, baseline.label, old.median_ms, False, p95=new.p95_ms,
        baseline_p95=old.p95_ms, target=TARGETS[target_key] if target_key else None)


def _agreement(bench: Bench, baseline: Variant, app: Variant, modality: str, uploads: dict[str, Any]) -> Figure:
    """How far the app's settings move one modality's embeddings: the lowest cosine to float32
    over the uploaded file and generated inputs."""
    inputs = [baseline.embedder.decode(modality, uploads[modality])]
    inputs += [baseline.embedder.decode(modality, item) for item in
               (sample_clouds(bench.rng(13), 3, 10_000) if modality == "points" else sample_inputs(modality, 3, bench))]
    cosines = np.sum(baseline.embedder.embed(modality, inputs) * app.embedder.embed(modality, inputs), axis=1)
    return Figure("app", f"{modality} embeddings ({app.label.split(',')[0]}): lowest cosine to float32, "
                  f"{len(inputs)} inputs", "cos", float(cosines.min()), "float32 (itself)", 1.0, True,
                  note=f"lowest {float(cosines.min()):.5f}, mean {float(cosines.mean()):.5f}; the app's rule: ≥ 0.999")
