"""Hypothesis strategies for fault schedules (lists of :mod:`harness.chaos.steps` steps).

Schedules are short (a handful of steps) because every example runs real
processes for seconds; shrinking then removes steps and simplifies their
parameters, so a failure ends as the smallest schedule that still fails.

- :func:`steps` draws one step of the given kinds (the state machine's rule).
- :data:`DETECTORS` gives, for each bug-zoo entry, the schedules that can
  expose it: ordinary steps around the fault pattern that matters, so the
  search finds it fast and shrinking strips the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from hypothesis import strategies as st

from harness.chaos.steps import (
    AckLost,
    Age,
    Burst,
    ClockSkew,
    ForeignBackend,
    FreezeMid,
    Invoke,
    Linger,
    NetworkFault,
    PeerRace,
    PgRestart,
    QueryOutlivesLease,
    Reap,
    Reclaim,
    SocketReset,
    Step,
    TerminateBackend,
    Thaw,
    ThawIntoTx,
)
from harness.errors import UsageError

WORKER = st.integers(min_value=0, max_value=3)

_BY_KIND: dict[str, Callable[[], st.SearchStrategy[Step]]] = {
    "invoke": lambda: st.builds(Invoke, st.sampled_from(["write", "write_once", "read", "burst"])),
    "burst": lambda: st.builds(Burst, st.integers(min_value=2, max_value=3)),
    "age": lambda: st.just(Age()),
    "linger": lambda: st.just(Linger()),
    "reclaim": lambda: st.builds(Reclaim, WORKER, st.booleans()),
    "reap": lambda: st.builds(Reap, WORKER),
    "freeze_mid": lambda: st.builds(FreezeMid, st.sampled_from(["query", "tx", "reap"])),
    "thaw": lambda: st.builds(Thaw, WORKER),
    "ack_lost": lambda: st.builds(AckLost, st.sampled_from(["write", "write_once"])),
    "socket_reset": lambda: st.builds(SocketReset, st.sampled_from(["reset_peer", "disable"])),
    "pg_restart": lambda: st.just(PgRestart()),
    "terminate": lambda: st.builds(TerminateBackend, WORKER),
    "network": lambda: st.builds(
        NetworkFault, WORKER, st.sampled_from(["latency", "proxy_down", "bandwidth"])
    ),
    "skew": lambda: st.builds(
        ClockSkew, WORKER, st.floats(min_value=-0.5, max_value=0.5, allow_nan=False)
    ),
    "foreign": lambda: st.builds(
        ForeignBackend, st.sampled_from(["other_app", "forged", "other_secret", "superuser"])
    ),
    "outlive": lambda: st.just(QueryOutlivesLease()),
    "peer_race": lambda: st.just(PeerRace()),
    "thaw_into_tx": lambda: st.builds(ThawIntoTx, WORKER),
}

KINDS: frozenset[str] = frozenset(_BY_KIND)
ORDINARY: frozenset[str] = frozenset({"invoke", "burst", "linger"})


def steps(kinds: Collection[str] = KINDS) -> st.SearchStrategy[Step]:
    unknown = set(kinds) - KINDS
    if unknown:
        raise UsageError(f"unknown step kinds: {sorted(unknown)}")
    return st.one_of([_BY_KIND[k]() for k in sorted(kinds)])


def around(
    *core: st.SearchStrategy[Step], noise: Collection[str] = ORDINARY, max_noise: int = 2
) -> st.SearchStrategy[list[Step]]:
    """``core`` steps in order, with up to ``max_noise`` ordinary steps before and after."""
    before = st.lists(steps(noise), max_size=max_noise)
    after = st.lists(steps(noise), max_size=max_noise)
    return st.tuples(before, st.tuples(*core), after).map(
        lambda parts: [*parts[0], *parts[1], *parts[2]]
    )


def _just(step: Step) -> st.SearchStrategy[Step]:
    return st.just(step)


DETECTORS: dict[str, Callable[[], st.SearchStrategy[list[Step]]]] = {
    # an active query past its lease, and a reaper pass meanwhile
    "no_idle_filter": lambda: around(_just(QueryOutlivesLease())),
    # warm idle workers with valid leases, and a reaper pass from another worker
    "ignores_expiry": lambda: around(
        st.builds(Burst, st.integers(2, 3)), _just(Linger()), st.builds(Reap, WORKER)
    ),
    # forged or wrongly signed leases of this service, idle and expired
    "skips_signature": lambda: around(
        st.builds(ForeignBackend, st.sampled_from(["forged", "other_secret"])),
        _just(Linger()),
        st.builds(Reap, WORKER),
    ),
    # a row that changes between the scan and the kill
    "no_recheck": lambda: around(_just(PeerRace())),
    # a thaw after the lease expired, then a transaction held open
    "no_fencing": lambda: around(
        st.builds(Invoke, st.sampled_from(["write", "read"])), st.builds(ThawIntoTx, WORKER)
    ),
    # an answer lost after the server committed
    "reruns_writes": lambda: around(st.builds(AckLost, st.just("write"))),
    # a socket that dies while its worker is frozen, then the next invocation
    "escaping_socket_error": lambda: around(
        st.builds(Invoke, st.just("read")),
        st.one_of(st.builds(TerminateBackend, WORKER), st.just(PgRestart())),
        st.builds(Invoke, st.just("read")),
    ),
    # zombies left by reclaimed workers, at full concurrency
    "reaper_disabled": lambda: around(
        st.builds(Burst, st.just(3)), st.builds(Reclaim, WORKER, st.just(True))
    ),
    # a zombie, and a reaper frozen holding the leader lock
    "session_lock": lambda: around(
        st.builds(Burst, st.just(3)),
        st.builds(Reclaim, WORKER, st.just(True)),
        _just(FreezeMid("reap")),
    ),
}
