"""The fleet's message log: every message workers sent, in order, and waiting on it.

Sync points are messages ("query started", "paused inside the transaction"):
:meth:`MessageLog.wait_for` waits, with a deadline that fails loudly and names
what it waited for, for the first message after a :meth:`MessageLog.mark`
that matches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from harness.errors import FleetTimeout
from harness.fleet.protocol import Completed, Message, Paused, PausePoint, QueryStarted
from harness.wait import Deadline

M = TypeVar("M", bound=Message)


class MessageLog:
    """Append-only, thread-safe; waiters wake on every append."""

    def __init__(self, default_timeout: float) -> None:
        self.default_timeout = default_timeout
        self._cond = threading.Condition()
        self._messages: list[Message] = []

    def append(self, msg: Message) -> None:
        with self._cond:
            self._messages.append(msg)
            self._cond.notify_all()

    def mark(self) -> int:
        """The current position (pass it as ``after`` to :meth:`wait_for`)."""
        with self._cond:
            return len(self._messages)

    def since(self, after: int = 0) -> list[Message]:
        with self._cond:
            return list(self._messages[after:])

    def wait_for(
        self,
        kind: type[M] | tuple[type[M], ...],
        predicate: Callable[[M], bool] = lambda _: True,
        timeout: float | None = None,
        *,
        after: int = 0,
        what: str = "a message",
    ) -> M:
        """The first ``kind`` message at or after position ``after`` matching ``predicate``."""
        limit = self.default_timeout if timeout is None else timeout
        deadline = Deadline(limit, what, error=FleetTimeout)
        with self._cond:
            i = after
            while True:
                while i < len(self._messages):
                    msg = self._messages[i]
                    i += 1
                    if isinstance(msg, kind) and predicate(msg):
                        return msg
                if deadline.expired():
                    raise deadline.fail()
                self._cond.wait(deadline.remaining())

    def wait_query_started(
        self, worker: str, *, after: int = 0, timeout: float | None = None
    ) -> QueryStarted:
        """The worker's next "query started" (the sync point before cutting its socket)."""
        return self.wait_for(
            QueryStarted,
            lambda m: m.worker == worker,
            timeout,
            after=after,
            what=f"query start on worker {worker}",
        )

    def wait_paused(
        self,
        worker: str,
        at: PausePoint,
        *,
        after: int = 0,
        timeout: float | None = None,
        op: str | None = None,
    ) -> Paused | None:
        """The worker's next report that its op is paused at ``at`` (tx, locked, scanned).

        With ``op``: None if that op completes first (it never reached the pause point:
        a reaper that found the lock busy, a transaction that could not begin)."""
        found = self.wait_for(
            (Paused, Completed),
            lambda m: (
                (isinstance(m, Paused) and m.worker == worker and m.at == at)
                or (op is not None and isinstance(m, Completed) and m.op == op)
            ),
            timeout,
            after=after,
            what=f"worker {worker} paused at {at!r}",
        )
        return found if isinstance(found, Paused) else None
