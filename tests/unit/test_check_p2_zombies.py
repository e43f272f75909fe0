"""P2 to zero: every zombie gone within the bound of when it became one, while
invocations arrive. Bound 4 s (TTL, minimum idle, cooldown, slack of 1 s each);
invocations 2 s apart or less keep the clock running."""

from __future__ import annotations

from collections.abc import Callable

from harness.check import Verdict, check_p2, check_p4, render_verdict
from harness.history import ActivityRow, Sample
from tests.unit.builders import H, lease, recorded, row, sample


def arrivals(h: H, start: float, stop: float, step: float = 1.0) -> H:
    """w2 (backend 202) is invoked every ``step`` s over [start, stop)."""
    h.spawn("w2", 0.0).backend("w2", 202, 0.1, until=100.0, instance="w2a")
    t = start
    while t < stop - 1e-9:
        h.ok(h.invoke("w2", t, pid=202), t + 0.05)
        t += step
    return h


def w1(h: H | None = None, *, until: float = 3.0) -> H:
    """w1 on backend 101 (lease until ``until``), one op at t=0.5."""
    h = h or H()
    h.spawn("w1", 0.0).backend("w1", 101, 0.2, until=until, instance="w1a")
    return h.ok(h.invoke("w1", 0.5, pid=101), 0.6)


def samples(
    stop: float, there_until: float, shape: Callable[[float], ActivityRow] | None = None
) -> list[Sample]:
    """Every 0.5 s up to ``stop``: backend 101 while t < ``there_until``, and w2's."""
    out, t = [], 0.0
    w2 = row(202, lease("w2a", 100.0), "idle", 0.0)
    while t <= stop + 1e-9:
        shown = shape(t) if shape else row(101, lease("w1a", 3.0), "idle", 0.6)
        out.append(sample(t, w2, shown) if t < there_until else sample(t, w2))
        t = round(t + 0.5, 6)
    return out


def holds(v: Verdict) -> None:
    assert v.ok, render_verdict(v)


def zombie_evidence(v: Verdict) -> dict[str, object]:
    assert v.failed, render_verdict(v)
    found = [e for e in v.evidence if e["clause"] == "P2-zombie"]
    assert found, render_verdict(v)
    return found[0]


def test_p2_holds_when_a_reclaimed_workers_backend_goes_within_the_bound() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0)
    v = check_p2(recorded(h, samples(12.0, there_until=5.6)))
    holds(v)
    assert v.measured["zombies"] == 1
    assert v.measured["longest_zombie_s"] == 4.0 - 0.0


def test_p2_fails_on_a_zombie_of_a_reclaimed_worker_still_there_past_the_bound() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0)
    ev = zombie_evidence(check_p2(recorded(h, samples(12.0, there_until=7.1))))
    assert "backend 101 of worker w1" in str(ev["explain"])
    assert "(reclaimed) since t=+2.000s" in str(ev["explain"])
    assert "deadline t=+6.000s" in str(ev["explain"])


def test_p2_fails_on_a_zombie_of_a_crashed_worker() -> None:
    h = arrivals(w1().crash("w1", 2.0), 0.0, 12.0)
    ev = zombie_evidence(check_p2(recorded(h, samples(12.0, there_until=7.1))))
    assert "(crashed)" in str(ev["explain"])


def test_p2_counts_a_frozen_worker_from_when_its_lease_ran_out() -> None:
    # frozen at t=2 with its lease until t=3: a zombie from t=3, deadline t=7
    h = arrivals(w1().fault("freeze", 2.0, "w1"), 0.0, 12.0)
    holds(check_p2(recorded(h, samples(12.0, there_until=6.6))))
    ev = zombie_evidence(check_p2(recorded(h, samples(12.0, there_until=7.6))))
    assert "(frozen past its lease) since t=+3.000s" in str(ev["explain"])


def test_p2_counts_an_idle_in_transaction_zombie_too() -> None:
    h = arrivals(w1().fault("freeze_mid_tx", 2.0, "w1"), 0.0, 12.0)
    in_tx = row(101, lease("w1a", 3.0), "idle in transaction", 0.6)
    zombie_evidence(check_p2(recorded(h, samples(12.0, 7.6, lambda t: in_tx))))


def test_p2_no_zombie_while_the_frozen_workers_lease_still_runs() -> None:
    h = arrivals(w1(until=20.0).fault("freeze", 2.0, "w1"), 0.0, 12.0)
    leased = row(101, lease("w1a", 20.0), "idle", 0.6)
    v = check_p2(recorded(h, samples(12.0, 13.0, lambda t: leased)))
    holds(v)
    assert v.measured["zombies"] == 0


def test_p2_a_thaw_ends_the_zombie() -> None:
    h = arrivals(w1().fault("freeze", 2.0, "w1").fault("thaw", 5.0, "w1"), 0.0, 12.0)
    holds(check_p2(recorded(h, samples(12.0, there_until=8.0))))


def test_p2_a_thaw_after_the_deadline_comes_too_late() -> None:
    h = arrivals(w1().fault("freeze", 2.0, "w1").fault("thaw", 8.0, "w1"), 0.0, 12.0)
    zombie_evidence(check_p2(recorded(h, samples(12.0, there_until=9.0))))


def test_p2_counts_only_time_while_invocations_arrive() -> None:
    # reclaimed at t=2; nothing invoked from t=2 to t=9: the clock runs for 2 s after the
    # last invoke (t=2 + gap 2 s) and again from t=9, so the deadline is t=11
    h = w1().fault("reclaim", 2.0, "w1")
    h = arrivals(h, 0.0, 3.0)
    t = 9.0
    while t < 14.0:
        h.ok(h.invoke("w2", t, pid=202), t + 0.05)
        t += 1.0
    holds(check_p2(recorded(h, samples(14.0, there_until=10.6))))
    ev = zombie_evidence(check_p2(recorded(h, samples(14.0, there_until=11.6))))
    assert "deadline t=+11.000s" in str(ev["explain"])


def test_p2_a_dead_workers_query_still_running_is_not_yet_reapable() -> None:
    # reclaimed at t=2 mid-query: the backend runs the query until t=6, then sits idle; a
    # reaper could not touch it before, so the deadline is t=10
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 14.0)

    def shape(t: float) -> ActivityRow:
        if t < 6.0:
            return row(101, lease("w1a", 3.0), "active", 0.6)
        return row(101, lease("w1a", 3.0), "idle", 6.0)

    holds(check_p2(recorded(h, samples(14.0, 9.6, shape))))
    zombie_evidence(check_p2(recorded(h, samples(14.0, 10.6, shape))))


def test_p2_is_unknown_for_a_zombie_still_there_when_invocations_stopped() -> None:
    # invocations stop at t=4, the record at t=12 with the zombie still there
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 4.0)
    v = check_p2(recorded(h, samples(12.0, there_until=13.0)))
    assert v.unknown, render_verdict(v)
    assert any("zombie backend 101 of worker w1" in u for u in v.measured["unjudged"])


def test_p2_a_pid_reused_by_another_client_is_not_the_zombie() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0)

    def shape(t: float) -> ActivityRow:
        if t < 5.0:
            return row(101, lease("w1a", 3.0), "idle", 0.6)
        return row(101, lease("n3w", 30.0), "idle", 5.0)  # someone else's backend now

    holds(check_p2(recorded(h, samples(12.0, 13.0, shape))))


def test_p2_does_not_judge_a_zombie_made_after_the_last_invocation() -> None:
    # every invocation ends at t=4; w1 parked at t=2 (lease until t=7) is a zombie only
    # from t=7, when nothing arrives any more to oblige a reaper: not judged, not unknown
    h = arrivals(w1(until=7.0).fault("freeze", 2.0, "w1"), 0.0, 4.0)
    h.ok(h.invoke("w2", 6.9, pid=202), 6.95)  # the run's final invocation
    leased = row(101, lease("w1a", 7.0), "idle", 0.6)
    v = check_p2(recorded(h, samples(12.0, 13.0, lambda t: leased)))
    assert v.ok, render_verdict(v)
    assert v.measured["zombies_after_last_invocation"] == [101]


# -- refused at capacity: the server full of live backends is not a failure to converge


def _full_of_live(h: H, zombie_until: float | None = None) -> list[Sample]:
    """Every 0.5 s to 12 s: three live service backends (the limit is 3), and w1's
    backend 101 too while t < ``zombie_until`` (a zombie once w1 is reclaimed at 2)."""
    live = [row(300 + i, lease(f"live{i}", 100.0), "idle", 0.0) for i in range(3)]
    out, t = [], 0.0
    while t <= 12.0 + 1e-9:
        extra = (
            [row(101, lease("w1a", 3.0), "idle", 0.6)] if zombie_until and t < zombie_until else []
        )
        out.append(sample(t, *live, *extra))
        t = round(t + 0.5, 6)
    return out


def _refused(h: H, worker: str, at: float) -> str:
    op = h.invoke(worker, at)
    h.fail(op, at + 0.2, sqlstate="53300", cls="TooManyConnections", message="sorry")
    return op


def test_p2_a_refusal_while_live_backends_fill_the_limit_is_capacity_not_a_violation() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0)
    op = _refused(h.spawn("w9", 6.5), "w9", 7.0)
    v = check_p2(recorded(h, _full_of_live(h)))
    holds(v)
    assert v.measured["refused_at_capacity"] == [op]


def test_p2_a_refusal_while_a_zombie_holds_a_slot_is_a_violation() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0)
    op = _refused(h.spawn("w9", 6.5), "w9", 7.0)
    v = check_p2(recorded(h, _full_of_live(h, zombie_until=9.0)))
    found = [e for e in v.evidence if e["clause"] == "P2-53300"]
    assert [e["op"]["op"] for e in found] == [op], render_verdict(v)
    assert found[0]["zombies"] == [101]
    assert v.measured["refused_at_capacity"] == []


def test_p4_judges_the_op_after_one_refused_at_capacity() -> None:
    h = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0).fault("heal", 6.0)
    _refused(h.spawn("w9", 6.5), "w9", 7.0)
    later = h.invoke("w9", 9.0)
    h.ok(later, 9.1)
    assert check_p4(recorded(h, _full_of_live(h))).ok
    h2 = arrivals(w1().fault("reclaim", 2.0, "w1"), 0.0, 12.0).fault("heal", 6.0)
    _refused(h2.spawn("w9", 6.5), "w9", 7.0)
    h2.fail(h2.invoke("w9", 9.0), 9.1, sqlstate="08006", cls="OperationalError", message="x")
    v = check_p4(recorded(h2, _full_of_live(h2)))
    assert v.failed, render_verdict(v)
    assert v.evidence[0]["op"]["op"] != _first_op_of(h2, "w9")


def _first_op_of(h: H, worker: str) -> str:
    return next(
        e.op for e in h.events if getattr(e, "worker", None) == worker and e.type == "invoke"
    )
