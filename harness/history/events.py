"""The events of a run's history: one frozen dataclass per kind, each field spelled once.

Jepsen's model. Every operation is an ``invoke`` followed by exactly one of
``ok``, ``fail`` (it definitely did not happen) or ``info`` (unknown: it may or
may not have taken effect). A worker whose operation ended ``info`` continues
under a new history process id. Faults, worker lifecycle, backend mappings,
reaper ledger entries (with the steps of each pass), statements about to be sent
and foreign-backend registrations are events too.

The field types are the schema: :mod:`harness.history.codec` derives the JSON
form and its validation from them (``Literal`` fields accept exactly their
values), so nothing here is spelled a second time.

Times: ``time`` is ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every
process on Linux), ``wall`` is the true ``time.time()`` of whoever stamped it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, get_args

OpType = Literal["invoke", "ok", "fail", "info"]
CompletionType = Literal["ok", "fail", "info"]
OpF = Literal["write", "write_once", "read", "slow_read", "long_tx", "burst", "reap", "rejected"]
FaultF = Literal[
    "freeze",
    "thaw",
    "reclaim",
    "freeze_mid_query",
    "freeze_mid_tx",
    "freeze_mid_reap",
    "socket_reset",
    "ack_lost",
    "latency",
    "bandwidth",
    "proxy_down",
    "proxy_up",
    "pg_restart",
    "terminate_backend",
    "clock_skew",
    "overload",
    "heal",
]
"""``overload``: more sandboxes cold-started at once than the server admits, recorded when
that wave is over (its ``value`` says how many were refused)."""
WorkerF = Literal["spawn", "exit", "crash"]
ReapResult = Literal["killed", "skipped", "denied"]
ForeignKind = Literal["other_app", "forged", "other_secret", "superuser", "peer", "neighbour"]
"""``peer``: a pg-aequor-style peer of the service, registered while the harness drives it;
``neighbour``: a generated one (its ``shape`` says how its application_name was made)."""
NeighbourShape = Literal[
    "plain",
    "wrong_signature",
    "truncated",
    "empty_signature",
    "padded_signature",
    "non_base64url",
    "other_service",
    "other_secret",
    "genuine",
]
"""How a generated neighbour's application_name relates to the service's lease (see
:mod:`harness.chaos.neighbours`)."""
ForeignF = Literal["register", "release"]
ReapPassF = Literal["locked", "scanned", "pass_end", "busy", "error"]
"""The steps of a reaper pass recorded beside its kills: the advisory lock taken, the
scan's decision, the lock about to be released; ``busy``: a pass that found the lock
held by another reaper and ended at once."""
TerminationCause = Literal[
    "terminate_backend", "idle_session_timeout", "idle_in_transaction_timeout"
]
"""Why the server ended a backend, by its log's FATAL line (PostgreSQL 15, measured):
``terminating connection due to administrator command`` (57P01, a
``pg_terminate_backend``), ``... due to idle-session timeout`` (57P05),
``... due to idle-in-transaction timeout`` (25P03)."""

COMPLETIONS: frozenset[str] = frozenset(get_args(CompletionType))
WRITE_FS: frozenset[str] = frozenset({"write", "write_once"})
FREEZE_FAULTS: frozenset[str] = frozenset(
    {"freeze", "freeze_mid_query", "freeze_mid_tx", "freeze_mid_reap"}
)
"""Faults that start a frozen interval of their worker."""
UNFREEZE_FAULTS: frozenset[str] = frozenset({"thaw", "reclaim"})
"""Faults that end a frozen interval (reclaim also ends the worker)."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The error an operation ended with, as the caller saw it."""

    sqlstate: str | None
    cls: str = field(metadata={"json": "class"})
    """The exception class name (JSON key ``class``)."""
    message: str


@dataclass(frozen=True, slots=True)
class OpEvent:
    """An operation's invoke or completion. ``op`` pairs them."""

    type: OpType
    op: str
    process: int
    worker: str | None
    f: OpF
    value: Mapping[str, Any]
    time: float
    wall: float
    lease_valid: bool | None = None
    """Invoke only: the worker's lease was valid by true wall time at the start."""
    backend_pid: int | None = None
    error: ErrorInfo | None = None
    """Completions only."""

    @property
    def sqlstate(self) -> str | None:
        return self.error.sqlstate if self.error else None


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """A fault the nemesis applied (or healed)."""

    f: FaultF
    worker: str | None
    value: Mapping[str, Any]
    time: float
    wall: float
    type: Literal["fault"] = "fault"


@dataclass(frozen=True, slots=True)
class WorkerEvent:
    """A worker process was spawned, exited, or crashed (not a reclaim)."""

    f: WorkerF
    worker: str
    os_pid: int
    exitcode: int | None
    detail: str | None
    time: float
    wall: float
    type: Literal["worker"] = "worker"


@dataclass(frozen=True, slots=True)
class BackendEvent:
    """A worker's client (re)connected to, or renewed its lease on, a backend."""

    worker: str
    backend_pid: int
    application_name: str
    lease_expiry: float
    """Wall seconds."""
    time: float
    wall: float
    renewed: bool = False
    """A confirmed renewal of the lease on this backend (False: the client connected)."""
    reconnect: bool | None = None
    """A connect: the client's ``on_connect`` called it a reconnect (None: not said)."""
    type: Literal["backend"] = "backend"


@dataclass(frozen=True, slots=True)
class ReapEvent:
    """One reaper ledger entry: what a reaper did to one victim backend."""

    worker: str | None
    pid: int
    result: ReapResult
    application_name: str | None
    state: str | None
    state_change: float | None
    """Wall seconds, from the scanned ``pg_stat_activity`` row."""
    lease_expiry_ms: int | None
    time: float
    """When the kill was sent (the reaper's monotonic clock)."""
    wall: float
    idle_for: float | None = None
    """Seconds the victim had been in its state, measured by the server at scan time."""
    at: float | None = None
    """The reaper's own clock (Unix s, its worker's clock skew included) as it sent the kill."""
    reaper_pid: int | None = None
    """The reaper's own backend."""
    type: Literal["reap"] = "reap"


@dataclass(frozen=True, slots=True)
class ReapPassEvent:
    """A step of one reaper pass: ``locked`` (the advisory lock taken), ``scanned`` (the
    decision: ``candidates`` in kill order, out of ``scanned`` rows), ``pass_end`` (the
    lock about to be released, ``killed`` kills), ``error`` (the pass raised ``error``,
    an exception class name, and the client carried on). ``server_at`` is the server's clock
    when the lock was taken (``locked``) and just before it was released (``pass_end``):
    with them two passes' leaderships can be compared on one clock."""

    f: ReapPassF
    worker: str | None
    reaper_pid: int | None
    time: float
    wall: float
    server_at: float | None = None
    candidates: tuple[int, ...] = ()
    scanned: int | None = None
    killed: int | None = None
    error: str | None = None
    type: Literal["reap_pass"] = "reap_pass"


@dataclass(frozen=True, slots=True)
class QueryStartEvent:
    """A worker's client is about to send a statement on ``backend_pid``, holding a lease
    it believes expires at ``lease_expiry`` (wall seconds; None without a lease)."""

    worker: str
    backend_pid: int | None
    lease_expiry: float | None
    time: float
    wall: float
    type: Literal["query_start"] = "query_start"


@dataclass(frozen=True, slots=True)
class ForeignEvent:
    """A backend that is not the service's own was registered (or released by the harness)."""

    backend_pid: int
    kind: ForeignKind
    time: float
    wall: float
    f: ForeignF = "register"
    worker: str | None = None
    shape: NeighbourShape | None = None
    """A generated neighbour's shape."""
    application_name: str | None = None
    """A generated neighbour's, as it connected."""
    type: Literal["foreign"] = "foreign"


@dataclass(frozen=True, slots=True)
class StepEvent:
    """The schedule began step ``n`` (1-based), described in words, at ``time``."""

    n: int
    text: str
    time: float
    wall: float
    worker: str | None = None
    """Always None: a step is the schedule's, not one worker's (every event has ``worker``)."""
    type: Literal["step"] = "step"


@dataclass(frozen=True, slots=True)
class TerminationEvent:
    """The server ended backend ``pid`` (read from its log when the run ends).

    ``killer_*`` name the session whose logged statement called ``pg_terminate_backend``
    just before (its pid, application_name, role, and the statement with its
    parameters), when the log shows one; None for the server's own timeouts and for
    a kill the log does not attribute (a role whose statements are not logged)."""

    pid: int
    cause: TerminationCause
    application_name: str | None
    """The victim's, as the log line's prefix gives it."""
    user: str | None
    time: float
    wall: float
    """The server log's timestamp (same machine, so the same wall clock)."""
    killer_pid: int | None = None
    killer_application_name: str | None = None
    killer_user: str | None = None
    statement: str | None = None
    worker: str | None = None
    """Always None: the server's record names backends, not workers."""
    type: Literal["termination"] = "termination"


@dataclass(frozen=True, slots=True)
class RefusalEvent:
    """The server refused a connection attempt with 53300 (too many clients), read from
    its log when the run ends: every attempt, retries included (a client sees only its
    last). ``application_name`` is the one the log line's prefix gives, if any."""

    time: float
    wall: float
    """The server log's timestamp."""
    application_name: str | None = None
    worker: str | None = None
    """Always None: the server's record names no worker."""
    type: Literal["refusal"] = "refusal"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """The server authorized a connection (its log's ``connection authorized`` line,
    read when the run ends): backend ``pid`` of ``user`` on ``database`` began with
    ``application_name`` (None: none was sent). Every client backend of the run, the
    harness's own included: whatever a client sent at connect, the server's word."""

    pid: int
    user: str | None
    database: str | None
    application_name: str | None
    time: float
    wall: float
    """The server log's timestamp."""
    worker: str | None = None
    """Always None: the server's record names no worker."""
    type: Literal["connection"] = "connection"


@dataclass(frozen=True, slots=True)
class LockProbeEvent:
    """The harness tried pg-aequor's reaper key, ``pg_try_advisory_xact_lock(namespace,
    hashtext(tag))``, from a session of its own while ``worker``'s reaper pass was frozen
    holding the leader lock; ``got``: the key was free (released at once)."""

    worker: str
    namespace: int
    tag: str
    got: bool
    time: float
    wall: float
    type: Literal["lock_probe"] = "lock_probe"


@dataclass(frozen=True, slots=True)
class QueryErrorEvent:
    """A statement of ``worker``'s client failed on ``backend_pid`` (its
    ``on_query_error``): ``error`` (a class name), ``sqlstate``, and ``lost``, whether the
    client said the error took the connection (None: not said)."""

    worker: str
    backend_pid: int | None
    sqlstate: str | None
    error: str | None
    lost: bool | None
    time: float
    wall: float
    type: Literal["query_error"] = "query_error"


Event: TypeAlias = (
    OpEvent
    | FaultEvent
    | WorkerEvent
    | BackendEvent
    | ReapEvent
    | ReapPassEvent
    | QueryStartEvent
    | ForeignEvent
    | StepEvent
    | TerminationEvent
    | RefusalEvent
    | ConnectionEvent
    | LockProbeEvent
    | QueryErrorEvent
)
EVENT_TYPES: tuple[type[Event], ...] = (
    OpEvent,
    FaultEvent,
    WorkerEvent,
    BackendEvent,
    ReapEvent,
    ReapPassEvent,
    QueryStartEvent,
    ForeignEvent,
    StepEvent,
    TerminationEvent,
    RefusalEvent,
    ConnectionEvent,
    LockProbeEvent,
    QueryErrorEvent,
)
