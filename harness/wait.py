"""Waiting for an event: one helper, so every wait has a deadline that names what it awaited.

The harness never synchronises by sleeping a fixed time. It waits for an
event — a backend seen active, a process stopped, a sample with no zombie —
and fails loudly when the event does not come:

- :class:`Deadline` is the clock of one wait: what is awaited, how long is
  left, and the :class:`~harness.errors.WaitTimeout` to raise (with the last
  thing seen) when it runs out. Waits on a condition variable use it.
- :func:`poll` asks ``probe`` until it returns something other than ``None``,
  starting ``interval`` apart and backing off to ``max_interval``: the poll
  interval is how often to look, never a synchronisation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import WaitTimeout

T = TypeVar("T")


class Deadline:
    """One wait's deadline: ``what`` is awaited for at most ``timeout`` seconds."""

    def __init__(
        self,
        timeout: float,
        what: str,
        *,
        error: type[WaitTimeout] = WaitTimeout,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.what = what
        self.error = error
        self._clock = clock
        self.until = clock() + timeout

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.until - self._clock())

    def expired(self) -> bool:
        return self._clock() >= self.until

    def fail(self, last: object = None) -> WaitTimeout:
        """The error to raise: what was awaited, for how long, and the last thing seen."""
        seen = "" if last is None else f" (last seen: {last})"
        return self.error(f"{self.what}: not within {self.timeout:g}s{seen}")


def poll(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.002,
    max_interval: float = 0.05,
    error: type[WaitTimeout] = WaitTimeout,
    describe: Callable[[], object] | None = None,
    stop: threading.Event | None = None,
) -> T:
    """``probe()``'s first non-None answer; :class:`WaitTimeout` (or ``error``) at the deadline.

    ``describe`` says what was last seen when the wait fails; ``stop``, when
    set, ends the wait early with the same error (a run being torn down).
    """
    deadline = Deadline(timeout, what, error=error)
    pause = stop or threading.Event()
    delay = interval
    while True:
        found = probe()
        if found is not None:
            return found
        if deadline.expired() or (stop is not None and stop.is_set()):
            raise deadline.fail(describe() if describe else None)
        pause.wait(min(delay, deadline.remaining()))
        delay = min(delay * 2, max_interval)
