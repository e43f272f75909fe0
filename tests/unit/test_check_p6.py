"""P6 — the reaper keeps its own rules: a recorded pass that keeps them, and one
recorded history per way to break each clause."""

from __future__ import annotations

from typing import Any

import pytest

from harness.check import Verdict, check_p5, check_p6, render_verdict
from harness.history import ActivityRow, LockProbeEvent, Sample, TerminationEvent
from tests.unit.builders import H, lease, recorded, row, sample, wall

REAPER_PID = 900


def zombies(h: H | None = None) -> H:
    """w1 (backend 101, lease until t=5) and w3 (backend 103, lease until t=5.5) each
    run one read and freeze at t=2."""
    h = h or H()
    h.spawn("w1", 0.0).backend("w1", 101, 0.5, until=5.0, instance="w1a")
    h.ok(h.invoke("w1", 1.0, pid=101), 1.1)
    h.spawn("w3", 0.0).backend("w3", 103, 0.6, until=5.5, instance="w3a")
    h.ok(h.invoke("w3", 1.2, pid=103), 1.3)
    h.fault("freeze", 2.0, "w1").fault("freeze", 2.0, "w3")
    return h


def kill(h: H, pid: int, t: float, **kw: Any) -> H:
    """reaper w2's ledger entry for ``pid`` at ``t``: by default a good kill of a zombie."""
    instance, until, changed = {101: ("w1a", 5.0, 1.1), 103: ("w3a", 5.5, 1.3)}.get(
        pid, (f"p{pid}", 5.0, 1.1)
    )
    kw.setdefault("app", lease(instance, until))
    kw.setdefault("state_change", changed)
    kw.setdefault("idle_for", t - changed - 0.01)
    kw.setdefault("at", t)
    kw.setdefault("reaper_pid", REAPER_PID)
    return h.reap(pid, t, reaper="w2", **kw)


def a_pass(
    h: H,
    t: float = 10.0,
    pids: tuple[int, ...] = (101, 103),
    *,
    candidates: tuple[int, ...] | None = None,
    end: bool = True,
    reaper: str = "w2",
    reaper_pid: int = REAPER_PID,
    **kill_kw: Any,
) -> H:
    """One pass of ``reaper`` locked at ``t``: the lock, the decision, a kill every
    10 ms, the release."""
    h.reap_step("locked", t, reaper=reaper, reaper_pid=reaper_pid)
    cands = pids if candidates is None else candidates
    h.reap_step("scanned", t + 0.005, reaper=reaper, reaper_pid=reaper_pid, candidates=cands)
    for i, pid in enumerate(pids):
        kill(h, pid, t + 0.01 * (i + 1), **kill_kw)
    if end:
        h.reap_step("pass_end", t + 0.01 * (len(pids) + 1), reaper=reaper, reaper_pid=reaper_pid)
    return h


def before(t: float = 9.9, *changed: ActivityRow) -> Sample:
    """A sample of the two zombies and the reaper's own backend, as the scan saw them
    (``changed`` rows replace those of their pid, or add to them)."""
    rows = {
        101: row(101, lease("w1a", 5.0), "idle", 1.1, usename="app"),
        103: row(103, lease("w3a", 5.5), "idle", 1.3, usename="app"),
        REAPER_PID: row(REAPER_PID, lease("w2a", 11.0), "active", 9.99, usename="app"),
    }
    rows.update({r.pid: r for r in changed})
    return sample(t, *rows.values())


def holds(v: Verdict) -> None:
    assert v.ok, render_verdict(v)


def violated(v: Verdict, *expected: str) -> dict[str, Any]:
    assert v.failed, render_verdict(v)
    found = [e["clause"] for e in v.evidence]
    for c in expected:
        assert c in found, render_verdict(v)
    return v.evidence[found.index(expected[0])]


# ------------------------------------------------------------------ a pass that keeps them


def test_p6_holds_for_a_pass_that_keeps_every_rule() -> None:
    v = check_p6(recorded(a_pass(zombies()), [before(), sample(10.2)]))
    holds(v)
    assert v.measured["kills"] == 2
    assert v.measured["passes"] == 1
    assert v.measured["unfinished_passes"] == 0
    assert v.measured["entries_outside_passes"] == 0


def test_p6_cannot_be_judged_when_the_sampler_fell_behind() -> None:
    v = check_p6(recorded(a_pass(zombies()), [], sample_interval=0.05))
    assert v.unknown
    assert "no pg_stat_activity sample" in v.summary


# ------------------------------------------------------------------ the rules of choice


@pytest.mark.parametrize(
    "app",
    [lease("w1a", 5.0, sig="BADsig00000"), lease("w1a", 5.0, service="billing"), "psql"],
    ids=["bad-signature", "other-service", "no-lease"],
)
def test_p6_fails_on_a_kill_of_a_backend_without_a_valid_lease_of_the_service(app: str) -> None:
    h = zombies()
    a_pass(h, pids=(101,), app=app)
    ev = violated(check_p6(recorded(h, [before()])), "P6-lease")
    assert "backend 101" in ev["explain"]
    assert "t=+10.010s" in ev["explain"]


def test_p6_fails_on_a_kill_inside_the_grace_by_the_reapers_own_clock() -> None:
    # the lease ran until t=5; by the reaper's clock it is t=5.05, inside the 0.1 s grace
    # (and past the lease by true time, so P1c sees nothing wrong)
    h = zombies()
    h.reap_step("locked", 5.0, reaper="w2")
    kill(h, 101, 5.05)
    ev = violated(check_p6(recorded(h, [before(4.9)])), "P6-expired")
    assert "expired only 0.050s before" in ev["explain"]


def test_p6_judges_expiry_by_the_reapers_clock_not_the_true_time() -> None:
    # true time t=5.05 (inside the grace) but the reaper's clock, skewed +0.2 s, says
    # t=5.25: past the grace by its own clock, which is what the spec asks of it
    h = zombies()
    a_pass(h, t=5.04, pids=(101,), at=5.25, idle_for=3.9)
    holds(check_p6(recorded(h, [before(4.9)])))


def test_p6_fails_on_a_backend_the_server_measured_idle_less_than_min_idle() -> None:
    h = zombies()
    a_pass(h, pids=(101,), idle_for=0.5)
    ev = violated(check_p6(recorded(h, [before()])), "P6-idle")
    assert "0.500s" in ev["explain"]


def test_p6_fails_on_a_state_change_younger_than_min_idle_at_the_kill() -> None:
    # no idle_for recorded; the row's state changed at t=9.5, half a second before the kill
    h = zombies()
    a_pass(h, pids=(101,), idle_for=None, state_change=9.5)
    violated(check_p6(recorded(h, [])), "P6-idle")


@pytest.mark.parametrize(
    ("kw", "clause"),
    [
        ({"state": None}, "P6-unreadable"),
        ({"state_change": None, "idle_for": 8.9}, "P6-unreadable"),
        ({"state": "active"}, "P6-state"),
    ],
    ids=["null-state", "null-state-change", "active"],
)
def test_p6_fails_on_a_row_that_was_not_known_idle(kw: dict[str, Any], clause: str) -> None:
    h = zombies()
    a_pass(h, pids=(101,), **kw)
    violated(check_p6(recorded(h, [])), clause)


def test_p6_fails_when_the_reaper_kills_its_own_backend() -> None:
    h = zombies()
    a_pass(h, pids=(REAPER_PID,), app=lease("w2a", 5.0), state_change=1.1)
    ev = violated(check_p6(recorded(h, [])), "P6-own")
    assert "own backend" in ev["explain"]


def test_p6_and_p5_fail_on_a_denied_attempt_on_a_superuser_session() -> None:
    # a superuser session carrying a (valid, expired) lease: the server refuses the kill,
    # and the attempt is the reaper's violation all the same
    h = zombies().foreign(777, 0.2, "superuser")
    a_pass(h, pids=(777,), result="denied", app=lease("5uperU5r", 5.0))
    su = row(777, lease("5uperU5r", 5.0), "idle", 1.1, usename="postgres", superuser=True)
    r = recorded(h, [before(9.9, su)])
    ev = violated(check_p6(r), "P6-protected")
    assert "tried to kill (denied)" in ev["explain"]
    assert "'postgres'" in ev["explain"]
    violated(check_p5(r), "P5-foreign")


def test_p6_lets_a_superuser_service_reap_its_own_roles_sessions() -> None:
    # the service runs as a superuser role itself: its own role's sessions are its to reap
    h = zombies()
    a_pass(h, pids=(101,))
    su_app = row(101, lease("w1a", 5.0), "idle", 1.1, usename="app", superuser=True)
    holds(check_p6(recorded(h, [before(9.9, su_app)])))


# ------------------------------------------------------------------ the guarded kill


def test_p6_fails_when_a_sample_before_the_kill_shows_a_newer_state_change() -> None:
    # the backend went active and idle again at t=9.0; the reaper killed the row it had
    # scanned (state_change t=1.1) anyway
    h = zombies()
    a_pass(h, pids=(101,))
    newer = row(101, lease("w1a", 5.0), "idle", 9.0, usename="app")
    ev = violated(check_p6(recorded(h, [before(9.9, newer)])), "P6-recheck")
    assert "t=+9.900s" in ev["explain"]


def test_p6_fails_when_a_sample_after_the_scan_shows_another_application_name() -> None:
    h = zombies()
    h.reap_step("locked", 10.0, reaper="w2")
    h.reap_step("scanned", 10.005, reaper="w2", candidates=(101,))
    kill(h, 101, 10.2)  # a slow pass: the kill is sent 0.2 s after the scan
    h.reap_step("pass_end", 10.21, reaper="w2")
    renewed = row(101, lease("w1a", 12.0), "idle", 1.1, usename="app")
    violated(check_p6(recorded(h, [before(), before(10.1, renewed)])), "P6-recheck")


def test_p6_does_not_read_a_sample_taken_within_the_tolerance_of_the_kill() -> None:
    # the sample's snapshot may have come after the kill's re-check: not evidence
    h = zombies()
    a_pass(h, pids=(101,))
    newer = row(101, lease("w1a", 5.0), "active", 10.005, usename="app")
    holds(check_p6(recorded(h, [before(), before(9.99, newer)])))


def test_p6_does_not_ask_a_skipped_kill_to_have_rechecked() -> None:
    h = zombies()
    a_pass(h, pids=(101,), result="skipped")
    newer = row(101, lease("w1a", 5.0), "idle", 9.0, usename="app")
    holds(check_p6(recorded(h, [before(9.9, newer)])))


# ------------------------------------------------------------------ per pass


def test_p6_fails_on_a_pass_that_chose_more_than_its_maximum() -> None:
    h = zombies().backend("w4", 104, 0.7, until=5.2, instance="w4a")
    a_pass(h, pids=(101, 104, 103), app=None)
    ev = violated(check_p6(recorded(h, [])), "P6-max")
    assert "3 backends" in ev["explain"]
    assert "maximum 2" in ev["explain"]


def test_p6_fails_on_a_pass_that_killed_the_newer_lease_first() -> None:
    h = zombies()
    a_pass(h, pids=(103, 101))  # 103's lease (t=5.5) is newer than 101's (t=5)
    ev = violated(check_p6(recorded(h, [before()])), "P6-order")
    assert "backend 101" in ev["explain"]
    assert "after backend 103" in ev["explain"]


def test_p6_fails_on_a_pass_that_killed_what_it_had_not_decided() -> None:
    h = zombies()
    a_pass(h, pids=(103,), candidates=(101,))
    violated(check_p6(recorded(h, [before()])), "P6-decision")


def test_p6_fails_when_two_passes_hold_the_lock_at_once() -> None:
    h = zombies()
    a_pass(h, 10.0, pids=(101,))  # w2 holds the lock over [10.0, 10.02]
    a_pass(h, 10.01, pids=(), reaper="w5", reaper_pid=905)  # w5 takes it at 10.01
    ev = violated(check_p6(recorded(h, [before()])), "P6-leader")
    assert "reaper w5" in ev["explain"]
    assert "while reaper w2" in ev["explain"]


def test_p6_fails_when_a_pass_takes_the_lock_inside_another_that_never_ended() -> None:
    # w5's pass never ended (frozen, its session dropped): how long it held the lock is
    # unknown, but w2 taking the lock inside w5's own closed interval is still caught
    h = zombies()
    a_pass(h, 10.0, pids=(101,))
    a_pass(h, 10.005, pids=(), reaper="w5", reaper_pid=905, end=False)
    violated(check_p6(recorded(h, [before()])), "P6-leader")


def test_p6_holds_for_passes_one_after_the_other_and_an_unfinished_one() -> None:
    h = zombies()
    a_pass(h, 8.0, pids=(), reaper="w5", reaper_pid=905, end=False)  # frozen, lost its lock
    a_pass(h, 10.0, pids=(101,))
    a_pass(h, 10.03, pids=(103,), reaper="w6", reaper_pid=906)
    v = check_p6(recorded(h, [before()]))
    holds(v)
    assert v.measured["passes"] == 3
    assert v.measured["unfinished_passes"] == 1


def test_p6_judges_a_ledger_entry_outside_any_recorded_pass() -> None:
    # a history from before passes were recorded: the entry is still judged on its own
    h = zombies()
    kill(h, 101, 10.0, idle_for=0.2)
    v = check_p6(recorded(h, []))
    violated(v, "P6-idle")
    assert v.measured["entries_outside_passes"] == 1


# ------------------------------------------------------------ the ledger against the server


def _logged(h: H, pid: int, t: float, killer: int | None) -> H:
    h.events.append(
        TerminationEvent(
            pid=pid,
            cause="terminate_backend",
            application_name=None,
            user="app",
            time=t,
            wall=wall(t),
            killer_pid=killer,
        )
    )
    return h


def test_p6_holds_when_every_logged_reaper_kill_is_in_the_ledger() -> None:
    h = a_pass(zombies())
    _logged(h, 101, 10.011, REAPER_PID)
    _logged(h, 103, 10.021, REAPER_PID)
    holds(check_p6(recorded(h, [before(), sample(10.2)])))


def test_p6_fails_when_the_server_logged_a_kill_the_ledger_called_skipped() -> None:
    h = a_pass(zombies(), result="skipped")
    _logged(h, 101, 10.011, REAPER_PID)
    e = violated(check_p6(recorded(h, [before(), sample(10.2)])), "P6-ledger")
    assert e["pid"] == 101
    assert e["ledger"] == [{"result": "skipped", "time": 10.01}]
    assert "ledger said skipped" in e["explain"]


def test_p6_leaves_terminations_by_others_to_the_other_properties() -> None:
    h = a_pass(zombies())
    _logged(h, 101, 10.011, REAPER_PID)
    _logged(h, 103, 10.021, REAPER_PID)
    _logged(h, 555, 10.5, 777)  # another backend's kill statement: not a reaper's
    holds(check_p6(recorded(h, [before(), sample(10.2)])))


# ------------------------------------------------------------------ a pass that raised


def test_p6_holds_when_a_pass_failed_for_a_fault() -> None:
    """A pass whose connection died (OperationalError) failed for the fault: no rule broken."""
    h = zombies()
    h.reap_step("locked", 10.0, reaper="w2")
    h.reap_step("error", 10.01, reaper="w2", error="OperationalError")
    holds(check_p6(recorded(h, [before(), sample(10.2)])))


@pytest.mark.parametrize("cls", ["IndexError", "builtins.TypeError"])
def test_p6_fails_when_a_pass_raised_a_programming_error(cls: str) -> None:
    h = zombies()
    h.reap_step("locked", 10.0, reaper="w2")
    h.reap_step("error", 10.01, reaper="w2", error=cls)
    e = violated(check_p6(recorded(h, [before(), sample(10.2)])), "P6-bug")
    assert e["worker"] == "w2"
    assert e["error"] == cls
    assert "mistake in the reaper's own code" in e["explain"]


# ------------------------------------------------------------------ pg-aequor's key


@pytest.mark.parametrize("got", [False, True])
def test_p6_judges_the_probe_of_pg_aequors_key_during_a_frozen_pass(got: bool) -> None:
    h = zombies()
    h.reap_step("locked", 10.0, reaper="w2")
    h.events.append(LockProbeEvent("w2", 0x50474151, "thawproof", got, 10.05, wall(10.05)))
    v = check_p6(recorded(h, [before(), sample(10.2)]))
    if not got:
        holds(v)
        return
    e = violated(v, "P6-aequor")
    assert e["worker"] == "w2"
    assert "could have led a pass beside it" in e["explain"]
