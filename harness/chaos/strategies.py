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

import string
from collections.abc import Callable, Collection
from typing import get_args

from hypothesis import strategies as st

from harness.chaos.neighbours import SIGNATURE_SHAPES
from harness.chaos.steps import (
    AckLost,
    Age,
    Burst,
    ClockSkew,
    FreezeMid,
    Invoke,
    Linger,
    Neighbour,
    NeighbourRole,
    NeighbourShape,
    NetworkFault,
    PeerRace,
    PgRestart,
    QueryOutlivesLease,
    Reap,
    Reclaim,
    Rejected,
    SocketReset,
    Step,
    TerminateBackend,
    TerminateInTx,
    Thaw,
    ThawIntoTx,
)
from harness.chaos.timings import SERVICE_TAG
from harness.errors import UsageError

WORKER = st.integers(min_value=0, max_value=3)

SHAPES: tuple[NeighbourShape, ...] = get_args(NeighbourShape)
ROLES: tuple[NeighbourRole, ...] = get_args(NeighbourRole)
_B64URL = string.ascii_letters + string.digits + "-_"
_TAG = SERVICE_TAG
_NEAR_SERVICES = (
    # our name's neighbours: one character more or less, case, LIKE metacharacters
    f"{_TAG}2",
    _TAG[:-1],
    _TAG.upper(),
    f"{_TAG}%",
    f"{_TAG[:4]}_{_TAG[5:]}",
    f"%{_TAG[1:]}",
    "%",
    "_",
)
_SERVICE_CHARS = string.ascii_letters + string.digits + ":_-%\\="


def _texts(shape: NeighbourShape) -> st.SearchStrategy[str]:
    """What a neighbour of ``shape`` needs as its ``text`` (see harness.chaos.neighbours)."""
    if shape == "plain":
        anything = st.text(
            st.characters(codec="utf-8", blacklist_characters="\x00"),
            max_size=70,
        )
        # names the reaper's LIKE scan matches (our prefix) that are no token at all
        return st.one_of(anything, anything.map(lambda t: f"s={_TAG};{t}"))
    if shape == "wrong_signature":
        return st.text(st.sampled_from(_B64URL), min_size=1, max_size=16)
    if shape == "non_base64url":
        return st.text(st.sampled_from(_B64URL + "+/=!.~*% "), min_size=1, max_size=14).filter(
            lambda t: any(c not in _B64URL for c in t)
        )
    if shape == "padded_signature":
        return st.text(st.sampled_from("= ._~"), min_size=1, max_size=4)
    if shape == "other_service":
        return st.one_of(
            st.sampled_from(_NEAR_SERVICES),
            st.text(st.sampled_from(_SERVICE_CHARS), min_size=1, max_size=20),
        ).filter(lambda name: name != _TAG)
    return st.just("")


def neighbours(
    shapes: Collection[NeighbourShape] = SHAPES,
    *,
    roles: Collection[NeighbourRole] = ROLES,
    expired: bool | None = None,
) -> st.SearchStrategy[Neighbour]:
    """Generated neighbours (foreign and forged backends) of the given shapes and roles;
    ``expired``: force the lease's expiry one way. A genuine lease is drawn only where
    it is not the service's own (unexpired, or on a superuser)."""

    def one(shape: NeighbourShape) -> st.SearchStrategy[Neighbour]:
        drawn = st.builds(
            Neighbour,
            st.just(shape),
            st.sampled_from(sorted(roles)),
            st.booleans() if expired is None else st.just(expired),
            _texts(shape),
            st.integers(min_value=0, max_value=62) if shape == "truncated" else st.just(0),
        )
        if shape == "genuine":
            drawn = drawn.filter(lambda n: not n.expired or n.role == "superuser")
        return drawn

    return st.one_of([one(shape) for shape in sorted(shapes)])


_BY_KIND: dict[str, Callable[[], st.SearchStrategy[Step]]] = {
    "invoke": lambda: st.builds(Invoke, st.sampled_from(["write", "write_once", "read", "burst"])),
    "burst": lambda: st.builds(Burst, st.integers(min_value=2, max_value=3)),
    "rejected": lambda: st.builds(Rejected, st.sampled_from(["server", "client"])),
    "age": lambda: st.just(Age()),
    "linger": lambda: st.just(Linger()),
    "reclaim": lambda: st.builds(Reclaim, WORKER, st.booleans()),
    "reap": lambda: st.builds(Reap, WORKER),
    "reap_standalone": lambda: st.builds(Reap, WORKER, st.just(True)),
    "freeze_mid": lambda: st.builds(FreezeMid, st.sampled_from(["query", "tx", "reap"])),
    "thaw": lambda: st.builds(Thaw, WORKER),
    "ack_lost": lambda: st.builds(
        AckLost, st.sampled_from(["write", "write_once"]), st.sampled_from(["at_error", "at_end"])
    ),
    "socket_reset": lambda: st.builds(SocketReset, st.sampled_from(["reset_peer", "disable"])),
    "pg_restart": lambda: st.just(PgRestart()),
    "terminate": lambda: st.builds(TerminateBackend, WORKER),
    "network": lambda: st.builds(
        NetworkFault, WORKER, st.sampled_from(["latency", "proxy_down", "bandwidth"])
    ),
    "skew": lambda: st.builds(
        ClockSkew, WORKER, st.floats(min_value=-0.5, max_value=0.5, allow_nan=False)
    ),
    "foreign": neighbours,
    "outlive": lambda: st.just(QueryOutlivesLease()),
    "peer_race": lambda: st.just(PeerRace()),
    "thaw_into_tx": lambda: st.builds(ThawIntoTx, WORKER),
    "terminate_in_tx": lambda: st.builds(TerminateInTx, st.booleans()),
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
        neighbours(
            sorted(SIGNATURE_SHAPES), roles=("app", "plain_role", "signal_role"), expired=True
        ),
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
