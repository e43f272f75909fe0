"""Pieces of evidence several properties quote the same way."""

from __future__ import annotations

from typing import Any

from harness.history import ReapEvent

PROGRAMMING_ERRORS: frozenset[str] = frozenset(
    {
        "AssertionError",
        "AttributeError",
        "IndexError",
        "KeyError",
        "NameError",
        "NotImplementedError",
        "RecursionError",
        "TypeError",
        "UnboundLocalError",
        "ZeroDivisionError",
    }
)
"""Exception classes that are a mistake in the client's own code, whatever the faults:
no database, network or lease condition is one of these."""


def class_in(classes: frozenset[str], cls: str) -> bool:
    """``cls`` (an exception class name, qualified or not) is one of ``classes``
    (qualified or short names)."""
    return cls in classes or cls.rsplit(".", 1)[-1] in classes


def programming_error(cls: str) -> bool:
    """``cls`` is one of :data:`PROGRAMMING_ERRORS`."""
    return class_in(PROGRAMMING_ERRORS, cls)


def reap_json(r: ReapEvent) -> dict[str, Any]:
    """A ledger entry as evidence: who killed whom, in which state, when."""
    return {
        "reaper": r.worker,
        "pid": r.pid,
        "result": r.result,
        "application_name": r.application_name,
        "state": r.state,
        "state_change": r.state_change,
        "time": r.time,
        "wall": r.wall,
    }


def killer_words(r: ReapEvent) -> str:
    """Who performed a kill, in words: ``reaper w3`` for a ledger entry, else what the
    server's record says (``the server (idle_session_timeout)``, ``backend 1234 ...``)."""
    who = r.worker or "?"
    return who if " " in who else f"reaper {who}"
