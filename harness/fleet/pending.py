"""An invocation in flight (:class:`Pending`) and how it ended (:class:`OpResult`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import FleetTimeout
from harness.history import CompletionType, ErrorInfo, OpF


@dataclass(frozen=True)
class OpResult:
    """How one invocation ended, as the history records it."""

    op: str
    worker: str
    f: OpF
    type: CompletionType
    value: Mapping[str, Any]
    result: Any = None
    """What the workload returned (``ok`` only), e.g. ``{"counter": 7}``."""
    error: ErrorInfo | None = None
    process: int | None = None
    backend_pid: int | None = None

    @property
    def ok(self) -> bool:
        return self.type == "ok"


@dataclass
class Pending:
    """An invocation that was sent to a worker and has not necessarily ended."""

    op: str
    worker: str
    f: OpF
    value: Mapping[str, Any]
    default_timeout: float
    since: int = 0
    """The fleet's message-log position when the op was sent (for ``Fleet.wait_for``)."""
    on_timeout: Callable[[], bool] | None = field(default=None, repr=False)
    """Called when :meth:`wait` runs out of time; True: it ended the worker as hung (the
    op then resolves, ``info``, within ``grace``), False: the worker is legitimately held
    (frozen, paused) and the wait fails."""
    grace: float = 5.0
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _result: OpResult | None = field(default=None, repr=False)
    _callbacks: list[Callable[[OpResult], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def result(self) -> OpResult | None:
        return self._result

    def wait(self, timeout: float | None = None) -> OpResult:
        """The result; :class:`FleetTimeout` if the op has not ended within ``timeout``."""
        limit = self.default_timeout if timeout is None else timeout
        if not self._done.wait(limit):
            if self.on_timeout is not None and self.on_timeout() and self._done.wait(self.grace):
                assert self._result is not None
                return self._result
            raise FleetTimeout(
                f"{self.f} op {self.op} on worker {self.worker} did not end within {limit}s"
            )
        assert self._result is not None
        return self._result

    def on_done(self, fn: Callable[[OpResult], None]) -> None:
        """Call ``fn(result)`` when the op ends (at once if it already has)."""
        with self._lock:
            if self._result is None:
                self._callbacks.append(fn)
                return
            result = self._result
        fn(result)

    def resolve(self, result: OpResult) -> None:
        """Set the result (once; later calls are ignored) and run the callbacks."""
        with self._lock:
            if self._result is not None:
                return
            self._result = result
            callbacks, self._callbacks = self._callbacks, []
        self._done.set()
        for fn in callbacks:
            fn(result)
