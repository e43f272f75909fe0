"""The reaper's decision over synthetic snapshots (pure: rows, now, config -> candidates)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.lease import LeaseConfig, token
from harness.lease.decide import ActivityRow, Rules, decide

SECRET = "reaper-test-secret-0123"
NOW = 1_800_000_000.0
CFG = LeaseConfig(service="orders", secret=SECRET, lease_ttl=9.0, min_idle=5.0, max_kills=3)
# grace = ttl/9 = 1 s
SC = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def lease(
    expiry: float, *, service: str = "orders", secret: str = SECRET, instance: str = "AbCdEf12"
) -> str:
    return token.encode(service, instance, int(expiry * 1000), secret)


def row(
    pid: int,
    app: str | None,
    *,
    state: str | None = "idle",
    idle_for: float | None = 60.0,
    state_change: dt.datetime | None = SC,
    superuser: bool = False,
    same_role: bool = True,
) -> ActivityRow:
    return ActivityRow(pid, app, state, state_change, idle_for, superuser, same_role)


EXPIRED = NOW - 100


def pids(rows: list[ActivityRow], now: float = NOW, cfg: LeaseConfig = CFG) -> list[int]:
    return [c.row.pid for c in decide(rows, now, cfg)]


def test_expired_idle_signed_lease_is_a_candidate() -> None:
    assert pids([row(1, lease(EXPIRED))]) == [1]
    assert pids([row(1, lease(EXPIRED), state="idle in transaction")]) == [1]
    assert pids([row(1, lease(EXPIRED), state="idle in transaction (aborted)")]) == [1]


@pytest.mark.parametrize("state", [None, "active", "fastpath function call", "disabled", ""])
def test_unknown_or_active_state_never(state: str | None) -> None:
    assert pids([row(1, lease(EXPIRED), state=state)]) == []


def test_null_state_change_or_idle_time_never() -> None:
    assert pids([row(1, lease(EXPIRED), state_change=None)]) == []
    assert pids([row(1, lease(EXPIRED), idle_for=None)]) == []


def test_grace_boundary() -> None:
    # grace is 1 s: expired 0.9 s ago is still protected, 1.1 s ago is not
    assert pids([row(1, lease(NOW - 0.9))]) == []
    assert pids([row(1, lease(NOW - 1.1))]) == [1]
    assert pids([row(1, lease(NOW + 30))]) == []  # valid lease


def test_min_idle_boundary() -> None:
    assert pids([row(1, lease(EXPIRED), idle_for=4.99)]) == []
    assert pids([row(1, lease(EXPIRED), idle_for=5.0)]) == [1]


@pytest.mark.parametrize(
    "app",
    [
        lease(EXPIRED, secret="a-different-secret-xx"),  # another service's secret
        lease(EXPIRED, service="billing"),  # another service
        lease(EXPIRED)[:-1] + ("A" if lease(EXPIRED)[-1] != "A" else "B"),  # forged
        lease(EXPIRED).replace(";e=", ";e=1"),  # tampered expiry
        "psql",
        None,
        "",
        "s=orders;i=x;e=1;g=y",
    ],
)
def test_foreign_or_forged_never(app: str | None) -> None:
    assert pids([row(1, app)]) == []


def test_superuser_of_another_role_never_but_own_role_yes() -> None:
    assert pids([row(1, lease(EXPIRED), superuser=True, same_role=False)]) == []
    assert pids([row(1, lease(EXPIRED), superuser=True, same_role=True)]) == [1]
    assert pids([row(1, lease(EXPIRED), superuser=False, same_role=False)]) == [1]


def test_oldest_expiry_first_and_at_most_max_kills() -> None:
    rows = [row(p, lease(EXPIRED - age)) for p, age in [(10, 5), (11, 50), (12, 1), (13, 20)]]
    assert pids(rows) == [11, 13, 10]  # max_kills = 3


def test_ties_broken_by_pid() -> None:
    rows = [row(p, lease(EXPIRED, instance=f"inst{p:04d}")) for p in (7, 3, 5)]
    assert pids(rows) == [3, 5, 7]


def test_reaper_clock_decides() -> None:
    r = row(1, lease(NOW))
    assert pids([r], now=NOW) == []
    assert pids([r], now=NOW + 1.5) == [1]


@given(
    states=st.lists(
        st.sampled_from([None, "idle", "active", "idle in transaction"]), min_size=1, max_size=30
    ),
    ages=st.lists(st.floats(-50, 500), min_size=30, max_size=30),
    idles=st.lists(st.one_of(st.none(), st.floats(0, 100)), min_size=30, max_size=30),
)
def test_properties_over_random_snapshots(
    states: list[str | None], ages: list[float], idles: list[float | None]
) -> None:
    rows = [
        row(i, lease(NOW - ages[i], instance=f"inst{i:04d}"), state=s, idle_for=idles[i])
        for i, s in enumerate(states)
    ]
    chosen = decide(rows, NOW, CFG)
    assert len(chosen) <= CFG.max_kills
    expiries = [c.lease.expiry_ms for c in chosen]
    assert expiries == sorted(expiries)
    for c in chosen:
        assert c.row.state in ("idle", "idle in transaction")
        assert c.lease.expiry + CFG.reaper_grace < NOW
        assert c.row.idle_for is not None
        assert c.row.idle_for >= CFG.min_idle


def test_rules_are_overridable_one_at_a_time() -> None:
    class NoExpiryCheck(Rules):
        def lease_expired(self, lease: token.Lease, now: float) -> bool:
            return True

    valid = row(1, lease(NOW + 60))
    assert Rules(CFG).decide([valid], NOW) == []
    assert [c.row.pid for c in NoExpiryCheck(CFG).decide([valid], NOW)] == [1]
