"""The worker's ok/fail/info rule for a failed operation (decides P3's verdicts)."""

from __future__ import annotations

import psycopg
import pytest

from harness.fleet.classify import classify, definite_sqlstate, error_info, sqlstate_in_chain
from harness.history import ErrorInfo, to_json
from harness.lease.errors import (
    ConnectFailed,
    ConnectionDead,
    LeaseError,
    LeaseExpired,
    OutcomeUnknown,
    RetriesExhausted,
)


def _with_state(state: str) -> psycopg.Error:
    cls = psycopg.errors.lookup(state)
    return cls(f"server said {state}")


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize("f", ["write", "write_once", "long_tx"])
def test_writes(f: str) -> None:
    assert classify(f, OutcomeUnknown("x")) == "info"
    assert classify(f, ConnectionDead("x")) == "fail"
    assert classify(f, LeaseExpired("x")) == "fail"
    assert classify(f, RetriesExhausted("x", attempts=3, elapsed=1.0)) == "fail"
    assert classify(f, ConnectFailed("x")) == "fail"
    # Definite server answers: nothing applied.
    assert classify(f, _with_state("23505")) == "fail"
    assert classify(f, _with_state("42601")) == "fail"
    assert classify(f, _with_state("57014")) == "fail"
    assert classify(f, psycopg.OperationalError("FATAL: sorry, too many clients already")) == (
        "fail"
    )
    # Anything that may follow a commit, or that escaped the client: unknown.
    assert classify(f, _with_state("57P01")) == "info"
    assert classify(f, _with_state("08006")) == "info"
    assert classify(f, psycopg.OperationalError("server closed the connection")) == "info"
    assert classify(f, OSError("broken pipe")) == "info"
    assert classify(f, LeaseError("an unknown subclass")) == "info"
    assert classify(f, _chained(LeaseError("wrapped"), _with_state("23505"))) == "info"


@pytest.mark.parametrize("f", ["read", "slow_read", "burst", "reap"])
def test_reads_never_end_info_unless_the_client_says_unknown(f: str) -> None:
    assert classify(f, psycopg.OperationalError("server closed the connection")) == "fail"
    assert classify(f, _with_state("57P01")) == "fail"
    assert classify(f, OSError("x")) == "fail"
    assert classify(f, OutcomeUnknown("x")) == "info"


def test_error_info_takes_the_sqlstate_from_the_cause() -> None:
    exc = _chained(OutcomeUnknown("lost"), _with_state("57P01"))
    assert sqlstate_in_chain(exc) == "57P01"
    info = error_info(exc)
    cause = exc.__cause__
    assert cause is not None
    message = f"lost | root cause: {type(cause).__name__}: {cause}"
    assert info == ErrorInfo(sqlstate="57P01", cls="OutcomeUnknown", message=message)
    assert to_json(info) == {"sqlstate": "57P01", "class": "OutcomeUnknown", "message": message}
    assert error_info(ValueError("x" * 2000)).message == "x" * 500
    assert error_info(ValueError("plain")).message == "plain"  # no cause, nothing added


def test_definite_sqlstates() -> None:
    assert definite_sqlstate("53300")
    assert definite_sqlstate("57P03")
    assert definite_sqlstate("40001")
    for state in (None, "", "08000", "57P01", "57P02", "25P03", "XX000", "58030"):
        assert not definite_sqlstate(state)
