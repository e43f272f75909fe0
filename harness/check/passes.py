"""The reaper's passes, reassembled from the history: lock, decision, kills, release.

Reads only events. Each worker runs one pass at a time, so its ``reap_pass``
events and its ledger entries, by time, group into passes: a ``locked`` opens
one, ``scanned`` records its decision, each ledger entry of the same reaper
backend in between is one of its kill attempts, ``pass_end`` closes it. A pass
whose reaper died or lost its session (frozen past the lock timeout) has no
``pass_end``: it is *unfinished*, and how long it held the lock is not known.
Ledger entries outside any recorded pass (a history written before passes were
recorded) are returned apart, so no clause reads them as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.history import Event, ReapEvent, ReapPassEvent


@dataclass
class Pass:
    """One reaper pass of one worker."""

    worker: str | None
    locked: ReapPassEvent
    scanned: ReapPassEvent | None = None
    end: ReapPassEvent | None = None
    entries: list[ReapEvent] = field(default_factory=list)
    """Its ledger entries, in the order the kills were sent."""

    @property
    def reaper_pid(self) -> int | None:
        return self.locked.reaper_pid

    @property
    def held_from(self) -> float | None:
        """Server clock when the pass took the lock."""
        return self.locked.server_at

    @property
    def held_to(self) -> float | None:
        """Server clock just before the pass released the lock (None: unfinished)."""
        return None if self.end is None else self.end.server_at

    def to_json(self) -> dict[str, Any]:
        return {
            "reaper": self.worker,
            "reaper_pid": self.reaper_pid,
            "locked": self.locked.time,
            "held_from_server": self.held_from,
            "held_to_server": self.held_to,
            "candidates": None if self.scanned is None else list(self.scanned.candidates),
            "scanned_rows": None if self.scanned is None else self.scanned.scanned,
            "entries": [(e.pid, e.result) for e in self.entries],
        }


def reaper_passes(events: list[Event]) -> tuple[list[Pass], list[ReapEvent]]:
    """The passes in ``events`` (sorted by time), and the ledger entries in none of them."""
    passes: list[Pass] = []
    open_: dict[str | None, Pass] = {}
    loose: list[ReapEvent] = []
    for e in events:
        if isinstance(e, ReapPassEvent):
            current = open_.get(e.worker)
            if e.f == "locked":
                p = Pass(e.worker, e)
                passes.append(p)
                open_[e.worker] = p  # an earlier pass left open stays unfinished
            elif current is not None and current.reaper_pid == e.reaper_pid:
                if e.f == "scanned":
                    current.scanned = e
                elif e.f == "pass_end":
                    current.end = e
                    del open_[e.worker]
        elif isinstance(e, ReapEvent):
            current = open_.get(e.worker)
            if current is not None and e.reaper_pid in (None, current.reaper_pid):
                current.entries.append(e)
            else:
                loose.append(e)
    return passes, loose
