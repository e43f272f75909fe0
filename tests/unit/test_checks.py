"""The five properties, over small recorded runs: one passing and one per way to fail."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.check import (
    Run,
    RunConfig,
    Verdict,
    check_all,
    check_p1,
    check_p2,
    check_p3,
    check_p4,
    check_p5,
    lease_expiry_ms,
    render_verdict,
)
from harness.history import FinalState, OpF, ReapEvent, Sample
from tests.unit.builders import (
    GOOD_SIG,
    SERVICE,
    H,
    final,
    lease,
    own_rows,
    row,
    run_config,
    sample,
    samples_by_count,
    wall,
)


def config(**overrides: Any) -> RunConfig:
    """The builders' small run config, with the kill budget and the fence not judged
    (None), as these checks were written against."""
    return run_config(**{"max_kills": None, "fence_margin": None, **overrides})


def run(
    h: H,
    samples: Iterable[Sample] = (),
    fin: FinalState | None = None,
    **cfg: Any,
) -> Run:
    return Run(list(h.events), list(samples), fin or final(), config(**cfg))


def clauses(v: Verdict) -> list[str]:
    return [e["clause"] for e in v.evidence]


def holds(v: Verdict) -> None:
    assert v.ok, render_verdict(v)
    assert v.evidence == []


def violated(v: Verdict, *expected: str) -> dict[str, Any]:
    assert v.failed, render_verdict(v)
    assert clauses(v) == list(expected), render_verdict(v)
    return v.evidence[0]


# ---------------------------------------------------------------------------- P1


def zombie(h: H | None = None) -> H:
    """w1 runs one read on backend 101 (lease until t=5), then freezes at t=2."""
    h = h or H()
    h.spawn("w1", 0.0).backend("w1", 101, 0.5, until=5.0, instance="w1a")
    op = h.invoke("w1", 1.0, pid=101)
    h.ok(op, 1.1)
    return h.fault("freeze", 2.0, "w1")


def reap_101(h: H, t: float = 10.0, **kw: Any) -> H:
    kw.setdefault("app", lease("w1a", 5.0))
    kw.setdefault("state_change", 1.1)
    return h.reap(101, t, reaper="w2", **kw)


def test_p1_holds_for_a_kill_of_an_expired_idle_frozen_backend() -> None:
    h = reap_101(zombie())
    samples = [sample(9.9, row(101, lease("w1a", 5.0), "idle", 1.1))]
    v = check_p1(run(h, samples))
    holds(v)
    assert v.measured["kills"] == 1


def test_p1a_recorded_state_active() -> None:
    e = violated(check_p1(run(reap_101(zombie(), state="active"))), "P1a")
    assert e["reap"]["pid"] == 101


def test_p1a_samples_show_a_statement_started_after_the_scan() -> None:
    h = reap_101(zombie())
    samples = [sample(9.9, row(101, lease("w1a", 5.0), "active", 9.8))]
    e = violated(check_p1(run(h, samples)), "P1a")
    assert e["sample"]["row"]["state"] == "active"


def test_p1a_not_triggered_by_the_same_statement_the_scan_saw_or_by_a_later_sample() -> None:
    h = reap_101(zombie())
    stale_active = [sample(9.9, row(101, lease("w1a", 5.0), "active", 1.1))]
    after_kill = [sample(10.1, row(101, lease("w1a", 5.0), "active", 10.05))]
    holds(check_p1(run(h, stale_active)))
    holds(check_p1(run(h, after_kill)))


def test_p1b_kill_of_a_thawed_worker_with_an_op_in_progress() -> None:
    h = zombie().fault("thaw", 9.0, "w1")
    op = h.invoke("w1", 9.5, pid=101)
    reap_101(h)
    h.ok(op, 10.5)
    e = violated(check_p1(run(h)), "P1b")
    assert e["worker"] == "w1"
    assert [o["op"] for o in e["ops"]] == [op]
    assert e["frozen_intervals"][0]["by"] == "freeze"


def test_p1b_not_triggered_when_a_thawed_client_fenced_the_expired_connection() -> None:
    """Thawed past its lease, the client lets the old connection go and reconnects;
    the reaper kills the old backend before the new one is mapped: no harm done."""
    h = zombie().fault("thaw", 9.0, "w1")
    op = h.invoke("w1", 9.5, pid=101, lease_valid=False)
    reap_101(h)
    h.backend("w1", 102, 10.2, until=20.0)
    h.ok(op, 10.5, pid=102)
    holds(check_p1(run(h)))


def test_p1b_still_fails_when_the_op_past_the_lease_used_or_lost_the_victim() -> None:
    unfenced = zombie().fault("thaw", 9.0, "w1")
    op = unfenced.invoke("w1", 9.5, pid=101, lease_valid=False)
    reap_101(unfenced)
    unfenced.ok(op, 10.5, pid=101)
    violated(check_p1(run(unfenced)), "P1b")

    lost = zombie().fault("thaw", 9.0, "w1")
    op = lost.invoke("w1", 9.5, pid=101, lease_valid=False)
    reap_101(lost)
    lost.fail(op, 10.5, sqlstate="57P01", pid=101)
    violated(check_p1(run(lost)), "P1b")


def test_p1b_not_triggered_when_frozen_dead_or_moved_to_another_backend() -> None:
    still_frozen = zombie()
    open_op = still_frozen.invoke("w1", 1.9, pid=101)  # frozen mid-op, never completed
    holds(check_p1(run(reap_101(still_frozen))))
    assert open_op

    moved = zombie().fault("thaw", 9.0, "w1").backend("w1", 102, 9.2, until=20.0)
    op = moved.invoke("w1", 9.5, pid=102)
    reap_101(moved)
    moved.ok(op, 10.5)
    holds(check_p1(run(moved)))

    reclaimed = zombie()
    reclaimed.invoke("w1", 1.95, pid=101)
    reclaimed.fault("reclaim", 3.0, "w1")
    holds(check_p1(run(reap_101(reclaimed))))


def test_p1c_recorded_lease_still_valid_at_the_kill() -> None:
    h = reap_101(zombie(), app=lease("w1a", 12.0))
    e = violated(check_p1(run(h)), "P1c")
    assert e["source"] == "ledger"
    assert e["lease_expiry_ms"] == round(wall(12.0) * 1000)


def test_p1c_lease_renewed_after_the_scan() -> None:
    h = zombie().fault("thaw", 8.0, "w1").backend("w1", 101, 8.5, until=30.0, instance="w1a")
    h.fault("freeze", 9.0, "w1")
    e = violated(check_p1(run(reap_101(h))), "P1c")
    assert e["source"] == "backend mapping"


def test_p1c_uses_the_ledger_expiry_when_the_name_has_none() -> None:
    h = zombie()
    h.events.append(
        ReapEvent(
            "w2",
            101,
            "killed",
            "not-a-lease",
            "idle",
            wall(1.1),
            round(wall(11.0) * 1000),
            10.0,
            wall(10.0),
        )
    )
    violated(check_p1(run(h)), "P1c")


def saw_57p01(h: H, *, lease_valid: bool = True, start: float = 3.0) -> str:
    op = h.invoke("w3", start, pid=301, lease_valid=lease_valid)
    h.fail(op, start + 0.5, sqlstate="57P01", cls="AdminShutdown", message="terminating")
    return op


def test_p1d_unfrozen_worker_saw_57p01_under_a_valid_lease() -> None:
    h = H().spawn("w3", 0.0).backend("w3", 301, 0.1, until=50.0)
    op = saw_57p01(h)  # no ledger entry: the kill went unrecorded, the worker still saw it
    e = violated(check_p1(run(h)), "P1d")
    assert e["op"]["op"] == op
    assert e["reaps_of_its_backend"] == []


def test_p1d_names_the_reaper_kill_that_caused_it() -> None:
    h = H().spawn("w3", 0.0).backend("w3", 301, 0.1, until=50.0)
    saw_57p01(h)
    h.reap(301, 3.2, reaper="w2", app=lease("w3", 1.0))
    v = check_p1(run(h))
    assert clauses(v) == ["P1b", "P1c", "P1d"]
    assert v.evidence[2]["reaps_of_its_backend"][0]["pid"] == 301


@pytest.mark.parametrize(
    "excuse",
    ["terminate_before_invoke", "terminate_during", "pg_restart", "frozen", "lease_invalid"],
)
def test_p1d_explained_57p01_is_not_a_violation(excuse: str) -> None:
    h = H().spawn("w3", 0.0).backend("w3", 301, 0.1, until=50.0)
    if excuse == "terminate_before_invoke":
        h.fault("terminate_backend", 2.0, backend_pid=301)
    elif excuse == "terminate_during":
        h.fault("terminate_backend", 3.2, backend_pid=301)
    elif excuse == "pg_restart":
        h.fault("pg_restart", 3.2)
    elif excuse == "frozen":
        h.fault("freeze_mid_query", 3.1, "w3").fault("thaw", 3.4, "w3")
    saw_57p01(h, lease_valid=excuse != "lease_invalid")
    holds(check_p1(run(h)))


def test_p1d_terminate_of_another_backend_does_not_excuse() -> None:
    h = H().spawn("w3", 0.0).backend("w3", 301, 0.1, until=50.0)
    h.fault("terminate_backend", 3.2, backend_pid=999)
    saw_57p01(h)
    violated(check_p1(run(h)), "P1d")


# ---------------------------------------------------------------------------- P2


def p2_run(count_at: Any, *, invoke_at: float = 8.0, **kw: Any) -> Run:
    """A freeze at t=2 (deadline t=6 with a 4 s bound); samples every 0.5 s to t=12."""
    h = H().spawn("w1", 0.0).fault("freeze", 2.0, "w1")
    op = h.invoke("w9", invoke_at)
    h.ok(op, invoke_at + 0.1)
    return run(h, samples_by_count(0.0, 12.0, 0.5, count_at), **kw)


def test_p2_holds_and_measures_convergence() -> None:
    v = check_p2(p2_run(lambda t: 5 if t < 4.0 else 2))
    holds(v)
    assert v.measured["convergence_s"] == pytest.approx(2.0)
    assert v.measured["bound_s"] == pytest.approx(4.0)
    assert v.measured["within_bound"]
    assert v.measured["reached"]
    assert "converged in 2.000s against a bound of 4.000s" in v.summary


def test_p2_count_over_the_limit_after_the_deadline() -> None:
    v = check_p2(p2_run(lambda t: 5 if t < 7.0 else 2))
    e = violated(v, "P2-count")
    assert (e["from"], e["to"], e["samples"], e["peak"]) == (6.0, 6.5, 2, 5)
    assert len(e["peak_rows"]) == 5
    assert v.measured["convergence_s"] == pytest.approx(5.0)
    assert not v.measured["within_bound"]


def test_p2_never_converges() -> None:
    v = check_p2(p2_run(lambda t: 4))
    violated(v, "P2-count")
    assert v.measured["convergence_s"] is None


def test_p2_too_many_clients_after_the_deadline() -> None:
    h = H().spawn("w1", 0.0).fault("freeze", 2.0, "w1")
    op = h.invoke("w9", 7.0)
    h.fail(op, 7.2, sqlstate="53300", cls="TooManyConnections", message="sorry")
    early = h.invoke("w8", 3.0)
    h.fail(early, 3.1, sqlstate="53300", cls="TooManyConnections", message="sorry")
    e = violated(check_p2(run(h, samples_by_count(0, 10, 0.5, lambda t: 1))), "P2-53300")
    assert e["op"]["op"] == op


def test_p2_not_reached_is_unknown_never_ok() -> None:
    v = check_p2(p2_run(lambda t: 9, invoke_at=5.0))
    assert v.unknown
    assert not v.ok
    assert not v.failed
    assert v.measured["reached"] is False
    assert v.summary.startswith("NOT JUDGED")
    assert "no invocation arrived" in v.summary


def test_p2_routine_parking_does_not_move_the_anchor() -> None:
    """Workers parked after each invocation (cause idle) are not zombie faults."""
    h = H().spawn("w1", 0.0).fault("freeze", 2.0, "w1")
    for t in (6.5, 7.5, 8.5):
        op = h.invoke("w1", t)
        h.ok(op, t + 0.1)
        h.fault("freeze", t + 0.2, "w1", cause="idle")
    v = check_p2(run(h, samples_by_count(0.0, 12.0, 0.5, lambda t: 5 if t < 7.0 else 2)))
    assert v.measured["anchor"] == pytest.approx(2.0)
    violated(v, "P2-count")


def test_p2_does_not_count_registered_foreign_backends_with_our_prefix() -> None:
    """A forged lease carries the service's prefix but is nobody's connection."""
    h = H().fault("freeze", 2.0, "w1").foreign(990, 1.0, kind="forged")
    op = h.invoke("w9", 8.0)
    h.ok(op, 8.1)
    forged = row(990, lease("F0rGeD00", 0, sig="AAAAAAAAAAA"))
    assert check_p2(run(h, [sample(7.0, *own_rows(3), forged)])).ok
    assert not check_p2(run(h, [sample(7.0, *own_rows(4), forged)])).ok


def test_p2_ignores_other_services_and_foreign_backends() -> None:
    h = H().fault("freeze", 2.0, "w1")
    op = h.invoke("w9", 8.0)
    h.ok(op, 8.1)
    crowd = [row(900 + i, lease(f"x{i}", 0, service="billing")) for i in range(6)]
    holds(check_p2(run(h, [sample(7.0, *crowd, row(990, "psql"))])))


# ---------------------------------------------------------------------------- P3


def writes(*outcomes: str) -> H:
    """One write per outcome; op_id ``<outcome><index>``; ``open`` leaves it uncompleted."""
    h = H()
    for i, outcome in enumerate(outcomes):
        op_id = f"{outcome}{i}"
        h.write(f"w{i}", float(i), op_id)
        if outcome != "open":
            h.complete(op_id, i + 0.5, outcome)
    return h


def test_p3_holds_for_every_allowed_outcome() -> None:
    h = writes("ok", "fail", "info", "info", "open", "open")
    fin = final({"ok0": 1, "info2": 0, "info3": 1, "open5": 1})
    v = check_p3(run(h, fin=fin))
    holds(v)
    assert v.measured == {"writes": 6, "ledger_rows": 3}


@pytest.mark.parametrize(
    ("outcome", "rows", "clause"),
    [
        ("ok", 0, "P3-ok"),
        ("ok", 2, "P3-dup"),
        ("fail", 1, "P3-fail"),
        ("info", 2, "P3-dup"),
        ("open", 2, "P3-dup"),
    ],
)
def test_p3_wrong_row_count(outcome: str, rows: int, clause: str) -> None:
    e = violated(check_p3(run(writes(outcome), fin=final({f"{outcome}0": rows}))), clause)
    assert e["op_id"] == f"{outcome}0"
    assert e["rows"] == rows


def test_p3_write_once_counts_too() -> None:
    h = H()
    h.invoke("w1", 1.0, "write_once", op="a", value={"op_id": "k1", "amount": 1})
    h.ok("a", 1.1)
    e = violated(check_p3(run(h, fin=final({"k1": 2}))), "P3-dup")
    assert e["ops"][0]["op"] == "a"


def test_p3_rows_no_write_invoked() -> None:
    e = violated(check_p3(run(writes("ok"), fin=final({"ok0": 1, "ghost": 1}))), "P3-phantom")
    assert e["op_id"] == "ghost"


def test_p3_counter_differs_from_the_rows() -> None:
    violated(check_p3(run(writes("ok"), fin=final({"ok0": 1}, counter=2))), "P3-counter")


def test_p3_final_state_that_does_not_add_up() -> None:
    fin = FinalState({"ok0": 1}, counter=2, ledger_rows=2)
    violated(check_p3(run(writes("ok"), fin=fin)), "P3-final-state")


# ---------------------------------------------------------------------------- P4


def healed_run(*, took: float = 0.2, outcome: str = "ok", f: OpF = "read", **err: Any) -> H:
    """w1 spawns, faults heal at t=5, w1 thaws at t=6 and runs one op (``f``)."""
    h = H().spawn("w1", 0.0).fault("socket_reset", 1.0, "w1").fault("freeze", 2.0, "w1")
    h.fault("heal", 5.0).fault("thaw", 6.0, "w1")
    op = h.invoke("w1", 6.0, f, op="first")
    h.complete(op, 6.0 + took, outcome, **err)
    return h


def test_p4_holds_when_the_first_op_after_heal_succeeds() -> None:
    v = check_p4(run(healed_run()))
    holds(v)
    assert v.measured["healed"] == 5.0


def test_p4_crash() -> None:
    e = violated(check_p4(run(healed_run().crash("w2", 3.0))), "P4-crash")
    assert e["worker"] == "w2"
    assert "TypeError" in e["explain"]


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"outcome": "fail", "sqlstate": "08006", "cls": "ConnectionDead"}, "ended fail"),
        ({"outcome": "info", "cls": "OutcomeUnknown"}, "ended info"),
        ({"took": 1.5}, "took 1.500s"),
    ],
)
def test_p4_first_op_after_heal_does_not_succeed_in_time(kw: dict[str, Any], words: str) -> None:
    e = violated(check_p4(run(healed_run(f="write", **kw))), "P4-recovery")
    assert e["op"]["op"] == "first"
    assert words in e["explain"]


@pytest.mark.parametrize("cls", ["TypeError", "AttributeError", "builtins.KeyError"])
def test_p4_fails_on_a_programming_error_whenever_it_happens(cls: str) -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, "write", op="during-the-faults")
    h.complete(op, 1.6, "info", cls=cls, message="unsupported operand")
    e = violated(check_p4(run(h)), "P4-bug")
    assert e["op"]["op"] == "during-the-faults"
    assert "mistake in the client's own code" in e["explain"]


def test_p4_does_not_call_a_database_error_during_the_faults_a_bug() -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, "write", op="during-the-faults")
    h.complete(op, 1.6, "info", cls="OutcomeUnknown")
    holds(check_p4(run(h)))


def test_p4_first_op_never_completes() -> None:
    h = H().spawn("w1", 0.0).fault("heal", 5.0).fault("thaw", 6.0, "w1")
    h.invoke("w1", 6.1)
    h.fault("latency", 9.0, "w2")  # the history goes on past the budget
    violated(check_p4(run(h)), "P4-recovery")


def test_p4_open_op_at_the_end_within_budget_is_unjudged() -> None:
    h = H().spawn("w1", 0.0).fault("heal", 5.0).fault("thaw", 6.0, "w1")
    op = h.invoke("w1", 6.1)
    v = check_p4(run(h))
    holds(v)
    assert v.measured["unjudged"] == [op]


def test_p4_op_interrupted_by_a_freeze_does_not_count() -> None:
    h = H().spawn("w1", 0.0).fault("heal", 5.0).fault("thaw", 6.0, "w1")
    cut = h.invoke("w1", 6.1)
    h.fault("freeze_mid_query", 6.2, "w1")
    h.info(cut, 6.3)
    h.fault("thaw", 8.0, "w1")
    nxt = h.invoke("w1", 8.1, "write")
    h.ok(nxt, 8.2)
    holds(check_p4(run(h)))
    h.events.pop()
    h.fail(nxt, 8.2, sqlstate="08006", cls="ConnectionDead")
    e = violated(check_p4(run(h)), "P4-recovery")
    assert e["op"]["op"] == nxt


def test_p4_escaped_error_after_heal() -> None:
    kw: dict[str, Any] = {
        "outcome": "fail",
        "cls": "psycopg.OperationalError",
        "message": "consuming input",
    }
    v = check_p4(run(healed_run(**kw)))
    assert clauses(v) == ["P4-recovery", "P4-escaped"]


def test_p4_escaped_error_before_heal_is_allowed() -> None:
    h = healed_run()
    op = h.invoke("w2", 1.0)
    h.fail(op, 1.5, cls="OperationalError", message="server closed the connection")
    holds(check_p4(run(h)))
    v = check_p4(run(h, escaped_error_classes=frozenset({"ConnectionDead"})))
    holds(v)


def test_p4_without_heal_uses_the_last_non_freeze_fault() -> None:
    h = H().spawn("w1", 0.0).fault("proxy_down", 1.0).fault("proxy_up", 2.0)
    h.fault("freeze", 3.0, "w1").fault("thaw", 4.0, "w1")
    op = h.invoke("w1", 4.1, "write")
    h.fail(op, 4.2, cls="ConnectionDead")
    v = check_p4(run(h))
    violated(v, "P4-recovery")
    assert v.measured["healed"] == 2.0


# ---------------------------------------------------------------------------- P5


def test_p5_holds_for_kills_of_own_signed_backends() -> None:
    v = check_p5(run(reap_101(zombie())))
    holds(v)
    assert v.measured["signatures_checked"]


def test_p5_kill_of_a_registered_foreign_backend() -> None:
    h = H().foreign(700, 0.5, "superuser").reap(700, 3.0, app=lease("x", 0.0))
    e = violated(check_p5(run(h)), "P5-foreign")
    assert "superuser" in e["explain"]
    h2 = H().reap(701, 3.0, app=lease("x", 0.0))
    violated(check_p5(run(h2, foreign_pids=frozenset({701}))), "P5-foreign")


def test_p5_foreign_pid_later_reused_by_the_service_is_ours() -> None:
    h = H().foreign(700, 0.5).backend("w1", 700, 2.0, until=2.5).reap(700, 3.0, until=2.5)
    holds(check_p5(run(h)))


def test_p5_kill_of_another_application() -> None:
    e = violated(check_p5(run(H().reap(702, 3.0, app="psql"))), "P5-prefix")
    assert e["reap"]["application_name"] == "psql"
    violated(check_p5(run(H().reap(703, 3.0, app=lease("x", 0, service="billing")))), "P5-prefix")


def test_p5_kill_of_a_forged_lease() -> None:
    forged = lease("x", 0.0, sig="FORGEDsig00")
    violated(check_p5(run(H().reap(704, 3.0, app=forged))), "P5-signature")
    v = check_p5(run(H().reap(704, 3.0, app=forged), verify=None))
    assert v.ok
    assert "NOT checked" in v.summary


def test_p5_foreign_backend_vanishes_unexplained() -> None:
    h = H().foreign(705, 0.5, "other_secret")
    samples = [sample(1.0, row(705, "x")), sample(2.0, row(705, "x")), sample(3.0)]
    e = violated(check_p5(run(h, samples)), "P5-vanished")
    assert (e["pid"], e["last_seen"], e["first_missing"]) == (705, 2.0, 3.0)


@pytest.mark.parametrize("how", ["terminate", "restart", "release", "still_there"])
def test_p5_foreign_backend_vanishing_with_a_reason(how: str) -> None:
    h = H().foreign(705, 0.5, "other_app")
    if how == "terminate":
        h.fault("terminate_backend", 2.5, backend_pid=705)
    elif how == "restart":
        h.fault("pg_restart", 2.5)
    elif how == "release":
        h.foreign(705, 2.5, f="release")
    last = sample(3.0, row(705, "x")) if how == "still_there" else sample(3.0)
    holds(check_p5(run(h, [sample(1.0, row(705, "x")), last])))


# ------------------------------------------------------------------- all and words


def test_check_all_on_a_clean_run() -> None:
    h = reap_101(zombie())
    h.spawn("w2", 10.5)
    h.ok(h.invoke("w2", 11.0), 11.1)  # invocations still arrive after P2's deadline
    verdicts = check_all(run(h, fin=final()))
    assert [v.prop for v in verdicts] == ["P1", "P2", "P3", "P4", "P5", "P6", "P7"]
    assert all(v.ok for v in verdicts)
    assert all(
        set(v.to_json()) >= {"property", "ok", "summary", "evidence", "measured"} for v in verdicts
    )


def test_render_names_the_op_the_pid_and_the_time() -> None:
    h = zombie().fault("thaw", 9.0, "w1")
    op = h.invoke("w1", 9.5, pid=101)
    reap_101(h)
    text = render_verdict(check_p1(run(h)))
    assert text.startswith("P1 no active connection killed: VIOLATED")
    assert "[P1b]" in text
    assert op in text
    assert "backend 101" in text
    assert "t=+10.000s" in text


def test_render_truncates_long_evidence() -> None:
    v = check_p3(run(writes(*["ok"] * 30), fin=final({})))
    text = render_verdict(v, max_evidence=5)
    assert "and 25 more" in text


def test_lease_expiry_parsing() -> None:
    assert lease_expiry_ms(f"s={SERVICE};i=a;e=1767225600000;g={GOOD_SIG}") == 1767225600000
    # the lease token's own parser decides: a fragment of a token is no lease
    assert lease_expiry_ms("e=12") is None
    assert lease_expiry_ms("s=x;i=a;e=soon;g=b") is None
    assert lease_expiry_ms(None) is None


def test_default_prefix_comes_from_the_service() -> None:
    assert config().own_app_prefix == f"s={SERVICE};"
    assert config(own_app_prefix="s=x;").own_app_prefix == "s=x;"
    assert config().convergence_bound == pytest.approx(4.0)


@given(
    cases=st.lists(
        st.tuples(st.sampled_from(["ok", "fail", "info", "open"]), st.integers(0, 3)),
        min_size=1,
        max_size=8,
    )
)
def test_p3_verdict_matches_the_outcome_rules(cases: list[tuple[str, int]]) -> None:
    h = writes(*(outcome for outcome, _ in cases))
    counts = {f"{outcome}{i}": n for i, (outcome, n) in enumerate(cases)}
    allowed = {"ok": {1}, "fail": {0}, "info": {0, 1}, "open": {0, 1}}
    expect_ok = all(n in allowed[outcome] for outcome, n in cases)
    assert check_p3(run(h, fin=final(counts))).ok == expect_ok


# ------------------------------------------------------------------ sampling health


def _sampled_run(times: list[float], count: int = 1, **cfg: Any) -> Run:
    h = zombie()
    h.spawn("w2", 0.1)
    h.ok(h.invoke("w2", 9.0), 9.1)  # after P2's deadline (freeze at 2 + bound 4)
    samples = [sample(t, *own_rows(count)) for t in times]
    return run(h, samples, sample_interval=0.05, **cfg)


def test_samples_at_the_promised_rate_can_be_trusted() -> None:
    r = _sampled_run([i / 20 for i in range(0, 200)])
    assert r.sampling_problems == []
    holds(check_p2(r))


def test_a_sampler_that_fell_behind_makes_p1_p2_p5_unknown() -> None:
    times = [i / 20 for i in range(0, 60)] + [i / 20 for i in range(120, 200)]  # 3 s gap
    r = _sampled_run(times)
    assert r.sampling_problems
    assert "no pg_stat_activity sample for 3.050s" in r.sampling_problems[0]
    for v in (check_p1(r), check_p2(r), check_p5(r)):
        assert v.unknown, render_verdict(v)
        assert "sample" in v.summary
    assert check_p3(r).ok  # P3 reads no samples


def test_a_gap_a_server_restart_explains_is_no_problem() -> None:
    times = [i / 20 for i in range(0, 60)] + [i / 20 for i in range(120, 200)]
    r = _sampled_run(times)
    h = zombie()
    h.spawn("w2", 0.1)
    h.fault("pg_restart", 3.2)
    h.ok(h.invoke("w2", 9.0), 9.1)
    r = run(h, list(r.samples), sample_interval=0.05)
    assert r.sampling_problems == []


def test_a_violation_stands_even_when_sampling_fell_behind() -> None:
    times = [i / 20 for i in range(0, 60)] + [i / 20 for i in range(120, 200)]
    r = _sampled_run(times, count=9)  # 9 service backends against a limit of 3
    v = check_p2(r)
    assert v.failed
    assert "P2-count" in clauses(v)


# -- P4-contract: the spec's endings for what the op was


@pytest.mark.parametrize(
    ("f", "value", "cls"),
    [
        ("read", None, "OutcomeUnknown"),
        ("slow_read", {"seconds": 0.1}, "ConnectionDead"),
        ("burst", {"n": 3}, "harness.lease.errors.LeaseExpired"),
        ("long_tx", {"retryable": True}, "ConnectionDead"),
        ("long_tx", {"retryable": True}, "LeaseExpired"),
        ("long_tx", {"retryable": False}, "psycopg.errors.InFailedSqlTransaction"),
        ("rejected", {"side": "server"}, "OutcomeUnknown"),
        ("rejected", {"side": "client"}, "RetriesExhausted"),
        ("rejected", {"side": "server"}, "ConnectionDead"),
    ],
)
def test_p4_fails_when_an_op_ends_as_the_spec_does_not_allow(
    f: OpF, value: dict[str, Any] | None, cls: str
) -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, f, op="during-the-faults", value=value)
    h.complete(op, 1.6, "fail", cls=cls, message="connection lost")
    e = violated(check_p4(run(h)), "P4-contract")
    assert e["op"]["op"] == "during-the-faults"
    assert "the spec gives it no such ending" in e["explain"]


@pytest.mark.parametrize(
    ("f", "value", "cls"),
    [
        ("read", None, "RetriesExhausted"),
        ("read", None, "psycopg.errors.QueryCanceled"),
        ("long_tx", {"retryable": True}, "OutcomeUnknown"),
        ("long_tx", {"retryable": True}, "RetriesExhausted"),
        ("long_tx", {"retryable": False}, "ConnectionDead"),
        ("long_tx", None, "LeaseExpired"),
        ("write", None, "OutcomeUnknown"),
        ("rejected", {"side": "server"}, "psycopg.errors.NotNullViolation"),
        ("rejected", {"side": "client"}, "psycopg.DataError"),
    ],
)
def test_p4_holds_for_the_endings_the_spec_allows(
    f: OpF, value: dict[str, Any] | None, cls: str
) -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, f, op="during-the-faults", value=value)
    h.complete(op, 1.6, "fail" if cls != "OutcomeUnknown" else "info", cls=cls)
    holds(check_p4(run(h)))


def test_p4_fails_when_a_refused_write_is_reported_a_success() -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, "rejected", op="refused", value={"side": "server"})
    h.ok(op, 1.6)
    e = violated(check_p4(run(h)), "P4-contract")
    assert "reported success for a write" in e["explain"]


@pytest.mark.parametrize(("state", "bad"), [("53300", True), ("08006", True), ("28P01", False)])
def test_p4_fails_when_the_client_gives_up_a_retryable_connect(state: str, bad: bool) -> None:
    h = healed_run()
    op = h.invoke("w1", 1.5, "write", op="refused")
    h.fail(op, 1.6, sqlstate=state, cls="harness.lease.errors.ConnectFailed")
    v = check_p4(run(h))
    if not bad:
        holds(v)
        return
    e = violated(v, "P4-contract")
    assert f"a connect refused with {state} is retried" in e["explain"]
