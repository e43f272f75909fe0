"""One signal stops a run: the first SIGINT or SIGTERM interrupts, later ones wait.

:func:`handle_signals` makes the first SIGINT or SIGTERM raise
:class:`Interrupted` (a ``KeyboardInterrupt``, so every ``with`` block and
``finally`` unwinds and releases what it owns) and remembers it; a second
signal during that teardown is noted and does NOT raise, so the teardown
finishes and nothing is left behind. :func:`interrupted` says whether (and by
which signal) the process was interrupted, so a loop over scenarios starts
nothing further, and the exit status is ``128 + signal`` (130 for SIGINT, 143
for SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by ``signum``; not an error of anyone's."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    first: int | None = None
    later: list[int] = []  # noqa: RUF012 — process-wide, on purpose


def interrupted() -> int | None:
    """The first signal that interrupted this process, if any."""
    return _State.first


def exit_code() -> int | None:
    """``128 + signal`` once interrupted, else None."""
    return None if _State.first is None else 128 + _State.first


def reset() -> None:
    """Forget an earlier interruption (for tests that interrupt on purpose)."""
    _State.first, _State.later = None, []


def _handler(signum: int, frame: FrameType | None) -> None:
    if _State.first is None:
        _State.first = signum
        raise Interrupted(signum)
    _State.later.append(signum)  # tearing down already: let it finish


def install() -> None:
    """Install the handlers (main thread only; elsewhere signals cannot be handled)."""
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            signal.signal(signum, _handler)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """The handlers for the block, the previous ones restored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
