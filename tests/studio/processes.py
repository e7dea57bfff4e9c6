"""`python app.py` as a person (or a Space) starts it: a subprocess on a loopback port."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.paths import REPO

START_TIMEOUT_S = 240


def start_app(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "app.py", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_served(process: subprocess.Popen, url: str) -> httpx.Response:
    """The app's /config once it answers; the test fails with the app's output if it exits or
    does not answer within START_TIMEOUT_S."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{process.stdout.read()}")
        try:
            answer = httpx.get(url + "config", timeout=5)
            if answer.status_code == 200:
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"the app did not answer within {START_TIMEOUT_S} s:\n{process.stdout.read()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
