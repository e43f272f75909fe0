"""Backoff bounds and distribution, SQLSTATE classification, outcome rules."""

from __future__ import annotations

import random
import statistics

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.lease.retry import (
    Backoff,
    Budget,
    Outcome,
    connect_retryable,
    connection_lost,
    sqlstate_of,
    statement_outcome,
    transaction_outcome,
)


@given(seed=st.integers(), base=st.floats(0.001, 1.0), factor=st.floats(1.0, 100.0))
def test_backoff_stays_within_base_and_cap(seed: int, base: float, factor: float) -> None:
    cap = base * factor
    b = Backoff(base, cap, random.Random(seed))
    prev = base
    for _ in range(50):
        d = b.next()
        assert base <= d <= cap
        assert d <= max(base, prev * 3) + 1e-12
        prev = d


def test_backoff_decorrelated_distribution() -> None:
    rng = random.Random(42)
    firsts = []
    for _ in range(4000):
        b = Backoff(0.1, 2.0, rng)
        firsts.append(b.next())
    # first sleep is uniform(0.1, 0.3): mean 0.2
    assert statistics.mean(firsts) == pytest.approx(0.2, abs=0.01)
    assert min(firsts) >= 0.1
    assert max(firsts) <= 0.3
    b = Backoff(0.1, 2.0, rng)
    late = [b.next() for _ in range(2000)][20:]
    # it reaches the cap and stays spread below it (jitter, not a fixed ladder)
    assert max(late) == 2.0
    assert 0.8 < statistics.mean(late) < 2.0
    assert len({round(x, 6) for x in late}) > 100


def test_backoff_reset() -> None:
    b = Backoff(0.1, 2.0, random.Random(1))
    for _ in range(20):
        b.next()
    b.reset()
    assert b.next() <= 0.3


def test_budget_counts_and_time() -> None:
    now = [0.0]
    budget = Budget(retries=2, total=1.0, monotonic=lambda: now[0])
    assert budget.allows(0.5)
    budget.spend()
    now[0] = 0.6
    assert not budget.allows(0.5)  # 0.6 + 0.5 > 1.0
    assert budget.allows(0.4)
    budget.spend()
    assert not budget.allows(0.0)  # count exhausted


class FakeError(Exception):
    def __init__(self, msg: str = "", sqlstate: str | None = None) -> None:
        super().__init__(msg)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (FakeError(sqlstate="08006"), True),
        (FakeError(sqlstate="08001"), True),
        (FakeError(sqlstate="57P01"), True),
        (FakeError(sqlstate="57P02"), True),
        (FakeError(sqlstate="57P03"), True),
        (FakeError(sqlstate="53300"), True),
        (FakeError(sqlstate="28P01"), False),
        (FakeError(sqlstate="3D000"), False),
        (FakeError(sqlstate="42501"), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        # psycopg 3.3 gives no sqlstate on connect: the messages, as measured on PG 15
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "127.0.0.1", '
                "port 1 failed: Connection refused\n\tIs the server running"
            ),
            True,
        ),
        (
            psycopg.OperationalError(
                "connection failed: ... failed: FATAL:  remaining connection "
                "slots are reserved for non-replication superuser "
                "connections"
            ),
            True,
        ),
        (psycopg.OperationalError("... FATAL:  sorry, too many clients already"), True),
        (psycopg.OperationalError("... FATAL:  the database system is starting up"), True),
        (psycopg.OperationalError("... FATAL:  the database system is shutting down"), True),
        (psycopg.OperationalError("connection timeout expired"), True),
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg.OperationalError('... FATAL:  role "nosuch" does not exist'), False),
        (
            psycopg.OperationalError('... FATAL:  password authentication failed for user "x"'),
            False,
        ),
        (psycopg.OperationalError('... FATAL:  database "x" does not exist'), False),
        (psycopg.OperationalError("... FATAL:  no pg_hba.conf entry for host"), False),
        (psycopg.OperationalError("something nobody has seen before"), False),
    ],
)
def test_connect_classification(exc: BaseException, retryable: bool) -> None:
    assert connect_retryable(exc) is retryable


def test_sqlstate_from_message() -> None:
    assert (
        sqlstate_of(psycopg.OperationalError("FATAL:  sorry, too many clients already")) == "53300"
    )
    assert sqlstate_of(FakeError(sqlstate="40001")) == "40001"
    assert sqlstate_of(ValueError("x")) is None


@pytest.mark.parametrize(
    ("exc", "broken", "lost"),
    [
        (
            psycopg.OperationalError("consuming input failed: server closed the connection"),
            False,
            True,
        ),
        (psycopg.errors.AdminShutdown("terminating connection"), False, True),
        (psycopg.errors.IdleInTransactionSessionTimeout("x"), False, True),
        (psycopg.errors.QueryCanceled("statement timeout"), False, False),
        (psycopg.errors.UniqueViolation("dup"), False, False),
        (psycopg.errors.UniqueViolation("dup"), True, True),
        (BrokenPipeError(), False, True),
    ],
)
def test_connection_lost(exc: BaseException, broken: bool, lost: bool) -> None:
    assert connection_lost(exc, broken=broken) is lost


E = FakeError()


@pytest.mark.parametrize(
    ("sent", "lost", "idempotent", "outcome"),
    [
        (False, True, False, Outcome.RETRY),  # failed before it was sent
        (False, False, False, Outcome.RETRY),
        (True, True, False, Outcome.UNKNOWN),  # may have reached the server: never re-run
        (True, True, True, Outcome.RETRY),  # the caller said it may be re-run
        (True, False, False, Outcome.FAIL),  # error reply: rolled back, raised as is
        (True, False, True, Outcome.FAIL),
    ],
)
def test_statement_outcome(sent: bool, lost: bool, idempotent: bool, outcome: Outcome) -> None:
    assert statement_outcome(E, sent=sent, lost=lost, idempotent=idempotent) is outcome


@pytest.mark.parametrize(
    ("exc", "commit_sent", "lost", "retryable", "outcome"),
    [
        (E, True, True, True, Outcome.UNKNOWN),  # COMMIT may have reached it
        (E, True, True, False, Outcome.UNKNOWN),
        (E, False, True, True, Outcome.RETRY),  # before COMMIT: server rolls back
        (E, False, True, False, Outcome.DEAD),
        (FakeError(sqlstate="40001"), False, False, True, Outcome.RETRY),
        (FakeError(sqlstate="40P01"), True, False, True, Outcome.RETRY),  # failed COMMIT
        (FakeError(sqlstate="40001"), False, False, False, Outcome.FAIL),
        (FakeError(sqlstate="23505"), False, False, True, Outcome.FAIL),
    ],
)
def test_transaction_outcome(
    exc: BaseException, commit_sent: bool, lost: bool, retryable: bool, outcome: Outcome
) -> None:
    assert (
        transaction_outcome(exc, commit_sent=commit_sent, lost=lost, retryable=retryable) is outcome
    )
