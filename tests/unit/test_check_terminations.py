"""P1 and P5 judge every termination the server performed, whoever performed it.

Recorded histories built with ``tests/unit/builders.py``: server terminations
(``TerminationEvent``, as the environment writes them from the server log) with
and without a reaper ledger, the harness's own kills, kills of foreign backends.
"""

from __future__ import annotations

from harness.check import Run, RunConfig, check_p1, check_p5
from harness.check.terminations import cross_check
from harness.history import BackendEvent, TerminationCause, TerminationEvent
from tests.unit.builders import PREFIX, SERVICE, H, final, lease, row, sample, wall

SVC = "thawproof-svc"


def config(prefix: str = SVC) -> RunConfig:
    return RunConfig(
        service=SERVICE,
        connection_limit=3,
        lease_ttl=1.0,
        min_idle=0.2,
        max_cooldown=0.1,
        grace=0.1,
        slack=0.5,
        retry_budget_s=4.0,
        own_app_prefix=prefix,
    )


def killed(
    h: H,
    pid: int,
    t: float,
    cause: TerminationCause = "terminate_backend",
    *,
    app: str | None = SVC,
    killer: int | None = 900,
    killer_app: str | None = SVC,
) -> None:
    h.events.append(
        TerminationEvent(
            pid=pid,
            cause=cause,
            application_name=app,
            user="app",
            time=t,
            wall=wall(t),
            killer_pid=killer if cause == "terminate_backend" else None,
            killer_application_name=killer_app if cause == "terminate_backend" else None,
        )
    )


def test_a_driver_that_kills_a_connection_in_the_middle_of_an_invocation_fails_p1() -> None:
    """serverless-postgres style: another sandbox's clean() ends a busy backend."""
    h = H()
    h.spawn("w1", 0.0)
    h.events.append(BackendEvent("w1", 501, SVC, 0.0, 0.1, wall(0.1)))
    op = h.invoke("w1", 1.0, "slow_read", pid=501, lease_valid=True)
    killed(h, 501, 1.2)
    h.fail(op, 1.3, sqlstate="57P01")
    run = Run(h.events, [sample(1.15, row(501, SVC, "active", 1.0))], final(), config())
    v = check_p1(run)
    assert v.failed
    clauses = {e["clause"] for e in v.evidence}
    assert {"P1a", "P1b"} <= clauses
    assert "backend 900" in v.evidence[0]["explain"]


def test_the_servers_idle_timeout_of_a_frozen_sandbox_is_no_p1_violation() -> None:
    h = H()
    h.spawn("w1", 0.0)
    op = h.invoke("w1", 0.5, "read", pid=501)
    h.ok(op, 0.6)
    h.fault("freeze", 0.6, "w1", cause="idle")
    killed(h, 501, 2.5, "idle_session_timeout")
    run = Run(h.events, [sample(2.4, row(501, SVC, "idle", 0.6))], final(), config())
    v = check_p1(run)
    assert v.ok
    assert v.measured["kills"] == 1
    assert run.terminations[0].by == "the server (idle_session_timeout)"


def test_the_harness_own_terminate_is_not_judged() -> None:
    h = H()
    h.spawn("w1", 0.0)
    op = h.invoke("w1", 1.0, "slow_read", pid=501)
    h.fault("terminate_backend", 1.1, "w1", backend_pid=501)
    killed(h, 501, 1.15, killer=None, killer_app=None)
    h.fail(op, 1.3, sqlstate="57P01")
    run = Run(h.events, [sample(1.1, row(501, SVC, "active", 1.0))], final(), config())
    assert run.terminations[0].by_harness
    assert run.judged_kills == []
    assert check_p1(run).ok


def test_a_server_record_and_a_ledger_entry_are_one_termination() -> None:
    h = H()
    h.spawn("r", 0.0)
    h.reap(501, 2.0, reaper="r", until=0.5, state_change=0.6)
    killed(h, 501, 2.001, app=lease("p501", 0.5), killer=777, killer_app=lease("rr", 9.0))
    run = Run(h.events, [], final(), config(PREFIX))
    (t,) = run.terminations
    assert t.source == "server_log+ledger"
    assert t.ledger is not None
    assert t.by == "reaper of r"
    assert cross_check(run.terminations, has_server_log=True) == []


def test_a_ledger_kill_the_server_never_logged_is_a_disagreement() -> None:
    h = H()
    h.spawn("r", 0.0)
    h.reap(501, 2.0, reaper="r", until=0.5)
    run = Run(h.events, [], final(), config(PREFIX))
    assert [t.source for t in run.terminations] == ["ledger"]
    assert cross_check(run.terminations, has_server_log=True)
    assert cross_check(run.terminations, has_server_log=False) == []


def test_p5_fails_when_the_servers_timeout_ends_another_applications_session() -> None:
    """server_timeout's role setting reaches every session of the role, not only the service's."""
    h = H()
    h.spawn("w1", 0.0)
    h.foreign(610, 0.1, "other_app")
    killed(h, 610, 2.0, "idle_session_timeout", app="psql")
    run = Run(h.events, [sample(1.9, row(610, "psql"))], final(), config())
    v = check_p5(run)
    assert v.failed
    assert {e["clause"] for e in v.evidence} >= {"P5-foreign", "P5-prefix"}
    assert "the server (idle_session_timeout)" in v.evidence[0]["explain"]


def test_terminations_before_the_run_are_an_earlier_examples_clean_up() -> None:
    h = H()
    killed(h, 400, -5.0, killer=None)
    h.spawn("w1", 0.0)
    h.invoke("w1", 0.1)
    run = Run(sorted(h.events, key=lambda e: e.time), [], final(), config())
    assert run.terminations == []


def test_a_sessions_own_idle_timeout_breaks_no_lease_promise() -> None:
    """A reaper frozen holding its lock is ended by the idle_in_transaction timeout it
    set itself (LEASE_SPEC): its lease may still be valid; that is no P1 violation."""
    h = H()
    h.spawn("r", 0.0)
    h.backend("r", 501, 0.1, until=5.0)
    op = h.invoke("r", 0.2, "reap", pid=501)
    h.fault("freeze_mid_reap", 0.3, "r")
    killed(h, 501, 0.8, "idle_in_transaction_timeout", app=lease("r", 5.0))
    h.fault("thaw", 2.0, "r")
    h.fail(op, 2.1, sqlstate="25P03")
    run = Run(
        h.events,
        [sample(0.7, row(501, lease("r", 5.0), "idle in transaction"))],
        final(),
        config(PREFIX),
    )
    assert check_p1(run).ok
    # the same kill chosen by someone else, with the lease valid, is P1c
    h2 = H(list(h.events[:-3]))
    killed(h2, 501, 0.8, app=lease("r", 5.0))
    run2 = Run(h2.events, [], final(), config(PREFIX))
    assert {e["clause"] for e in check_p1(run2).evidence} == {"P1c"}
