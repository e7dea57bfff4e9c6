"""One limit on the model work the whole process does at once, whichever endpoint asked for it.

Gradio's queue already admits at most `--concurrency` requests at once across every event
listener (they share one concurrency group, `studio.serving.MODEL_WORK`); this gate is the same limit
inside the service, so work that reaches it some other way (a listener outside the group, a
caller of `Studio` from Python) still waits its turn. It counts how often it had to make a
request wait: with the queue working, never.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

Method = TypeVar("Method", bound=Callable[..., Any])


class WorkLimit:
    """A counting gate: at most `limit` holders at once; re-entrant within one thread (a request
    that calls another request-level method does not wait for itself)."""

    def __init__(self, limit: int = 2) -> None:
        self._limit = _checked(limit)
        self._changed = threading.Condition()
        self._depth = threading.local()
        self.in_flight = 0
        self.peak = 0  # the most holders at once since the last reset
        self.waited = 0  # how many entries found the gate full and had to wait

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        with self._changed:
            self._limit = _checked(limit)
            self._changed.notify_all()

    def reset_counts(self) -> None:
        with self._changed:
            self.peak, self.waited = self.in_flight, 0

    @contextmanager
    def held(self) -> Iterator[None]:
        depth = getattr(self._depth, "value", 0)
        if depth:
            self._depth.value = depth + 1
            try:
                yield
            finally:
                self._depth.value = depth
            return
        with self._changed:
            if self.in_flight >= self._limit:
                self.waited += 1
                self._changed.wait_for(lambda: self.in_flight < self._limit)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        self._depth.value = 1
        try:
            yield
        finally:
            self._depth.value = 0
            with self._changed:
                self.in_flight -= 1
                self._changed.notify()


def _checked(limit: int) -> int:
    if limit < 1:
        raise ValueError(f"the limit must be at least 1, not {limit}")
    return limit


def model_work(method: Method) -> Method:
    """Run a `Studio` method under its `work` gate."""

    @functools.wraps(method)
    def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self.work.held():
            return method(self, *args, **kwargs)

    return gated  # type: ignore[return-value]
