"""Situation coverage counters: each counts what it names, from the recorded run only."""

from __future__ import annotations

from typing import get_args

from harness.chaos.steps import NeighbourShape
from harness.check.situations import NEIGHBOUR_SHAPES, SITUATIONS, situations, unreached
from harness.history import FaultEvent, ForeignEvent, ReapPassEvent, RefusalEvent
from tests.unit.builders import H, lease, recorded, wall


def _pass(h: H, t: float, *, worker: str = "reaper", scanned: int = 0, rpid: int = 900) -> None:
    h.events.append(ReapPassEvent("locked", worker, rpid, t, wall(t), wall(t)))
    h.events.append(
        ReapPassEvent("scanned", worker, rpid, t + 0.01, wall(t + 0.01), scanned=scanned)
    )
    h.events.append(ReapPassEvent("pass_end", worker, rpid, t + 0.5, wall(t + 0.5), wall(t + 0.5)))


def _ack(h: H, t: float, op: str, f: str) -> None:
    h.events.append(FaultEvent("ack_lost", "w1", {"op": op, "f": f}, t, wall(t)))


def _neighbour(h: H, pid: int, shape: NeighbourShape, app: str) -> None:
    h.events.append(
        ForeignEvent(pid, "neighbour", 0.1, wall(0.1), shape=shape, application_name=app)
    )


def _everything() -> H:
    """One history that reaches every situation once."""
    h = H()
    _pass(h, 1.0, scanned=5)
    for pid in (501, 502):  # max_kills=2 in the config below
        h.reap(pid, 1.1, reaper_pid=900, state="idle in transaction" if pid == 501 else "idle")
    h.reap(503, 1.2, result="denied", reaper_pid=900)
    h.backend("w1", 601, 1.2, until=9.0, renewed=True)  # while the reaper's pass holds the lock
    h.events.append(ReapPassEvent("busy", "w2", 901, 1.3, wall(1.3)))
    for f in ("freeze_mid_reap", "freeze_mid_tx", "socket_reset", "pg_restart", "clock_skew"):
        h.fault(f, 2.0, "w1")
    h.invoke("w3", 2.1, "read", lease_valid=False)
    h.invoke("w3", 2.2, "long_tx", value={"row": 0, "pause": False})
    op = h.invoke("w1", 3.0, "write", pid=601)
    _ack(h, 3.01, op, "write")
    h.info(op, 3.4)
    once = h.invoke("w1", 4.0, "write_once", pid=601)
    _ack(h, 4.01, once, "write_once")
    h.ok(once, 4.5, pid=602)
    h.events.append(RefusalEvent(time=5.0, wall=wall(5.0)))
    for i, shape in enumerate(NEIGHBOUR_SHAPES):
        _neighbour(h, 700 + i, shape, f"s=x{i};i=N3ighb0r;e=1;g=AAAAAAAAAAA")
    _neighbour(h, 799, "other_service", "s=thaw%;i=N3ighb0r;e=1;g=AAAAAAAAAAA")
    return h


def test_the_shapes_are_the_steps_shapes() -> None:
    assert get_args(NeighbourShape) == NEIGHBOUR_SHAPES


def test_names_are_unique() -> None:
    names = [s.name for s in SITUATIONS]
    assert len(names) == len(set(names))


def test_an_empty_run_reaches_nothing() -> None:
    counts = situations(recorded(H()))
    assert set(counts.values()) == {0}
    assert unreached(counts) == [s.name for s in SITUATIONS if s.required]
    assert [s.name for s in SITUATIONS if not s.required] == ["kill_denied"]


def test_each_counter_counts_what_it_names() -> None:
    counts = situations(recorded(_everything(), max_kills=2))
    assert unreached(counts) == []
    assert counts["reaper_kill"] == 2
    assert counts["kill_denied"] == 1
    assert counts["neighbour_other_service"] == 2
    assert counts["neighbour_like_wildcard"] == 1


def test_a_pass_at_its_maximum_needs_more_rows_than_it_may_kill() -> None:
    h = H()
    _pass(h, 1.0, scanned=2)
    h.reap(501, 1.1, reaper_pid=900).reap(502, 1.1, reaper_pid=900)
    assert situations(recorded(h, max_kills=2))["pass_at_max"] == 0
    h = H()
    _pass(h, 1.0, scanned=3)
    h.reap(501, 1.1, reaper_pid=900)
    assert situations(recorded(h, max_kills=2))["pass_at_max"] == 0, "killed fewer than its max"
    h.reap(502, 1.1, reaper_pid=900)
    assert situations(recorded(h, max_kills=2))["pass_at_max"] == 1


def test_a_lost_commit_counts_only_when_the_retry_reconnected_and_succeeded() -> None:
    h = H()
    once = h.invoke("w1", 4.0, "write_once", pid=601)
    _ack(h, 4.01, once, "write_once")
    h.ok(once, 4.5, pid=601)  # same backend: the answer was not lost after all
    assert situations(recorded(h))["lost_ack_commit"] == 0
    h = H()
    once = h.invoke("w1", 4.0, "write_once", pid=601)
    _ack(h, 4.01, once, "write_once")
    h.fail(once, 4.5, pid=602)
    assert situations(recorded(h))["lost_ack_commit"] == 0, (
        "a failed retry is not a retry that landed"
    )


def test_a_renewal_by_the_reapers_own_worker_is_not_a_renewal_during_its_pass() -> None:
    h = H()
    _pass(h, 1.0, worker="w1")
    h.backend("w1", 601, 1.2, until=9.0, renewed=True)
    assert situations(recorded(h))["renewal_during_pass"] == 0
    h.backend("w2", 602, 1.2, until=9.0, renewed=True)
    h.backend("w2", 602, 1.9, until=9.0, renewed=True)  # after the pass
    assert situations(recorded(h))["renewal_during_pass"] == 1


def test_a_wildcard_neighbour_is_another_services_name_with_percent_or_underscore() -> None:
    h = H()
    _neighbour(h, 700, "other_service", lease("x", 1.0, service="thawproof2"))
    assert situations(recorded(h))["neighbour_like_wildcard"] == 0
    _neighbour(h, 701, "other_service", "s=thaw_proof;i=N3ighb0r;e=1;g=AAAAAAAAAAA")
    assert situations(recorded(h))["neighbour_like_wildcard"] == 1
