"""Load: concurrent gradio_client visitors against the real app (tiny profile) on loopback.

Bounded by construction: a fixed number of users and requests, a deadline on every request, and
the module stops by itself. Figures (p50/p95 latency, accepted/rejected counts) are printed and
recorded for docs/reliability.md; CMCR_LOAD_USERS / CMCR_LOAD_REQUESTS / CMCR_LOAD_BURST scale it
(scripts/stress.py). Latency here is a measurement, never an assertion: only outcomes are asserted.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file

from studio.ui import QUEUE_LIMIT

USERS = int(os.environ.get("CMCR_LOAD_USERS") or 6)
REQUESTS_PER_USER = int(os.environ.get("CMCR_LOAD_REQUESTS") or 3)
REQUEST_TIMEOUT_S = 120.0
CLIENT_HTTP_TIMEOUT_S = 60.0  # gradio_client's own 5 s default times out on a saturated 2-core host


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p95": float(np.percentile(values, 95)),
            "max": float(np.max(values))}


def new_client(url: str) -> Client:
    return Client(url, verbose=False, download_files=False, max_workers=64,
                  httpx_kwargs={"timeout": CLIENT_HTTP_TIMEOUT_S})


def uploaded(url: str, path) -> dict:
    """Upload a file once; the returned FileData is reused by every request of a burst."""
    answer = httpx.post(url + "gradio_api/upload", files={"files": (path.name, path.read_bytes())}, timeout=60)
    answer.raise_for_status()
    return {"path": answer.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


def visitor_requests(studio) -> list[tuple[str, tuple]]:
    """What one visitor does, in order: a mix of every kind of search the app offers."""
    sound = handle_file(str(studio.assets / "sounds" / "rain.wav"))
    image = handle_file(str(studio.assets / "images" / "dog.png"))
    shape = handle_file(str(studio.assets / "shapes" / "chair.glb"))
    return [("/text_to_3d", ("a wooden chair",)), ("/audio_to_image", (sound,)),
            ("/image_to_audio", (image,)), ("/classify_3d", (shape, "chair, table, lamp"))]


@pytest.mark.slow
def test_concurrent_users_below_the_queue_limit_all_succeed(launched, studio, record):
    _, url = launched
    assert USERS * 1 < QUEUE_LIMIT  # every user has at most one request in flight
    plan = visitor_requests(studio)
    latencies: dict[str, list[float]] = {endpoint: [] for endpoint, _ in plan}
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(USERS)

    def visit(user: int) -> None:
        client = new_client(url)
        barrier.wait(timeout=60)
        for step in range(REQUESTS_PER_USER):
            endpoint, arguments = plan[(user + step) % len(plan)]
            started = time.perf_counter()
            try:
                outputs = client.submit(*arguments, api_name=endpoint).result(timeout=REQUEST_TIMEOUT_S)
                assert outputs, f"{endpoint} answered nothing"
                with lock:
                    latencies[endpoint].append(time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001 - every failure is collected and reported
                with lock:
                    failures.append(f"user {user} {endpoint}: {type(error).__name__}: {error}")

    studio.work.reset_counts()
    started = time.perf_counter()
    with ThreadPoolExecutor(USERS) as pool:
        list(pool.map(visit, range(USERS)))
    wall = time.perf_counter() - started
    assert failures == []
    # One limit over all four endpoints, held by the queue itself: the service's gate never waited.
    assert studio.work.peak <= studio.work.limit and studio.work.waited == 0
    every = [value for values in latencies.values() for value in values]
    assert len(every) == USERS * REQUESTS_PER_USER
    summary = {"users": USERS, "requests": len(every), "failed": 0, "wall_s": round(wall, 1),
               "throughput_per_s": round(len(every) / wall, 2), "most_computed_at_once": studio.work.peak,
               "concurrency_limit": studio.work.limit,
               "latency_s": {k: round(v, 3) for k, v in percentiles(every).items()},
               "per_endpoint_p50_s": {e: round(float(np.median(v)), 3) for e, v in latencies.items() if v}}
    record.figure("load: concurrent users", summary)
    print("\nload:", summary)


@pytest.mark.slow
def test_a_burst_beyond_the_queue_limit_is_refused_cleanly_and_the_app_recovers(launched, studio, record):
    _, url = launched
    limit = QUEUE_LIMIT
    burst = int(os.environ.get("CMCR_LOAD_BURST") or limit * 2)
    clients = [new_client(url) for _ in range(3)]
    sound = uploaded(url, studio.assets / "sounds" / "rain.wav")  # once: the burst then arrives at once
    started = time.perf_counter()
    jobs = [clients[i % len(clients)].submit(sound, api_name="/audio_to_image") for i in range(burst)]
    accepted, refused, other = 0, [], []
    for job in jobs:
        try:
            job.result(timeout=REQUEST_TIMEOUT_S + 120)
            accepted += 1
        except Exception as error:  # noqa: BLE001
            (refused if "Queue is full" in str(error) else other).append(f"{type(error).__name__}: {error}")
    wall = time.perf_counter() - started
    assert other == [], other[:5]
    assert refused, f"a burst of {burst} never filled the queue of {limit}: raise CMCR_LOAD_BURST"
    assert accepted >= limit  # nothing was refused before the queue was really full
    recovered_started = time.perf_counter()
    assert clients[0].predict("a wooden chair", api_name="/text_to_3d")
    summary = {"burst": burst, "queue_limit": limit, "accepted": accepted, "refused_queue_full": len(refused),
               "other_failures": 0, "wall_s": round(wall, 1),
               "first_request_after_burst_s": round(time.perf_counter() - recovered_started, 3),
               "message": refused[0].split(": ", 1)[1]}
    record.figure("load: burst above the queue limit", summary)
    print("\nburst:", summary)
