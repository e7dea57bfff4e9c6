"""Run one call in a forked child under hard caps, and measure what it used.

A parser that allocates a header's claim (100 million points, a one-hour clip, a 10-gigapixel
image) would take the whole server down, and a test running it in-process would take pytest with
it. So every fuzz case runs in a child forked from a warm worker process (the libraries are
imported once, so a case costs a fork, not an interpreter start), with:

- RLIMIT_AS: the worker's address space plus `memory_mb` (an allocation beyond it fails);
- RLIMIT_CPU and an alarm: `seconds` of CPU (SIGXCPU), or a hang of max(30, 4 x seconds) of wall
  time (SIGALRM; generous, since a shared CI host can be 4x oversubscribed), then the child dies;
- the peak resident memory of the call itself: /proc/self/clear_refs resets the high-water mark
  at the start, /proc/self/status VmHWM reads it at the end (minus the RSS the child started with).

`Sandbox` is the test-side handle: it starts `python -m tests.reliability.sandbox` once and sends
one JSON line per case; the worker answers one JSON line (`Outcome`). JSON, not pickle, crosses
the pipe: the worker never unpickles anything either.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from tests.paths import REPO

DEFAULT_MEMORY_MB = 768
DEFAULT_SECONDS = 20.0
SINGLE_THREADED = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass(frozen=True)
class Outcome:
    """How one call ended: `kind` is ok, input_error, checkpoint_error, error (any other
    exception: a bug), or killed (a cap or a signal ended it)."""

    kind: str
    detail: str
    seconds: float
    peak_mb: float

    @property
    def contained(self) -> bool:
        """Ended by itself, with a result or one of our own clear errors."""
        return self.kind in ("ok", "input_error", "checkpoint_error")


def encode_arg(value: Any) -> Any:
    """bytes travel as {"b64": ...}; everything else must already be JSON."""
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode_arg(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value


class Sandbox:
    """The test side: one warm worker process, one case per `run` call."""

    def __init__(self, warm: tuple[str, ...] = ()) -> None:
        # Hostile inputs make numpy and trimesh warn by the thousand; outcomes are what count here.
        env = {**os.environ, **SINGLE_THREADED, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.sandbox", *warm], cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"sandbox worker did not start: {ready!r}")

    def run(self, target: str, *args: Any, memory_mb: int = DEFAULT_MEMORY_MB,
            seconds: float = DEFAULT_SECONDS, **kwargs: Any) -> Outcome:
        """Call `module:function(*args, **kwargs)` in a capped child; bytes args are fine."""
        request = {"target": target, "args": [encode_arg(a) for a in args], "kwargs": kwargs,
                   "memory_mb": memory_mb, "seconds": seconds}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError("sandbox worker died")
        return Outcome(**json.loads(answer))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=10)


# ---- the worker side ------------------------------------------------------------------------


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _classify(error: BaseException) -> str:
    from cmcr.errors import CheckpointError, InputError

    if isinstance(error, InputError):
        return "input_error"
    if isinstance(error, CheckpointError):
        return "checkpoint_error"
    return "error"


def _child(request: dict, answer_fd: int) -> None:
    """Runs in the forked child: cap, call, report, exit without cleanup."""
    seconds = float(request["seconds"])
    limit = int((_status_mb("VmSize") + request["memory_mb"]) * 1024 * 1024)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = max(1, int(seconds))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    signal.alarm(max(30, int(4 * seconds)))  # wall time: only a net for hangs, CPU is the real cap
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak-RSS mark: measure this call only
    except OSError:
        pass  # a locked-down /proc: the mark then includes the worker's own peak (an overestimate)
    start_rss = _status_mb("VmRSS")
    function = _resolve(request["target"])
    args = [_decode_arg(a) for a in request["args"]]
    started = time.perf_counter()
    try:
        function(*args, **request["kwargs"])
        kind, detail = "ok", ""
    except BaseException as error:  # noqa: BLE001 - the point is to see every way it can end
        kind = _classify(error)
        detail = f"{type(error).__name__}: {error}"[:600]
        if kind == "error":
            detail += "\n" + "".join(traceback.format_exception(error)[-6:])[-1500:]
    seconds_used = time.perf_counter() - started
    peak = max(0.0, _status_mb("VmHWM") - start_rss)
    os.write(answer_fd, json.dumps({"kind": kind, "detail": detail, "seconds": seconds_used,
                                    "peak_mb": peak}).encode())
    os._exit(0)


def _run_one(request: dict) -> dict:
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(request, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as answer:
        data = answer.read()
    _, status, usage = os.wait4(pid, 0)
    if data:
        return json.loads(data)
    reason = (f"killed by {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
              else f"exited with status {os.WEXITSTATUS(status)} without an answer")
    return {"kind": "killed", "detail": reason, "seconds": time.perf_counter() - started,
            "peak_mb": usage.ru_maxrss / 1024}


def _warm(targets: list[str]) -> None:
    """Import (and call, for `module:function` targets) what the cases will use, so that no
    child pays for, or is capped during, a lazy import."""
    for target in ("numpy", "cmcr.data.media", "PIL.Image", "soundfile", "trimesh", "scipy.signal", "yaml",
                   "tomllib", *targets):
        if ":" in target:
            _resolve(target)()
        else:
            importlib.import_module(target)


def main(warm: list[str]) -> None:
    _warm(warm)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_run_one(json.loads(line))), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
