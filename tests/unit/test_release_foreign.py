"""A foreign backend's release is recorded before its connection closes.

Closed first, a sample taken between the close and the record showed the backend
gone with nothing to explain it, and P5 failed the correct client (P5-vanished,
seen in ``make test N=2``): the harness's own ordering, blamed on the client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from harness.chaos.interpreter import Foreign, Interpreter
from harness.chaos.timings import Timings
from harness.history import ForeignEvent, HistoryWriter, load_history


class _Conn:
    """Stands in for the neighbour's psycopg connection: what the history held when
    it was closed."""

    def __init__(self, history: Path) -> None:
        self.history = history
        self.seen_at_close: list[Any] = []

    def close(self) -> None:
        self.seen_at_close = load_history(self.history)


def test_the_release_is_in_the_history_before_the_connection_closes(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as history:
        conn = _Conn(path)
        it = Interpreter(
            fleet=cast(Any, None), history=history, pg=cast(Any, None), timings=Timings(), cap=3
        )
        it.foreign.append(Foreign("neighbour", cast(Any, conn), 4242))
        it.release_foreign()
    released = [e for e in conn.seen_at_close if isinstance(e, ForeignEvent) and e.f == "release"]
    assert [e.backend_pid for e in released] == [4242]
    assert it.foreign == []
