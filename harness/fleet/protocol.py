"""The worker protocol: every message between the controller and a worker, typed.

A worker is a process that runs a client the way a Lambda handler would. The
controller and the worker exchange JSON lines (one object per line, UTF-8),
so a worker can be written in any language: a Python worker gets them over a
multiprocessing pipe, any other over its stdin/stdout. Each message is a
frozen dataclass here; :func:`encode` and :func:`decode` derive the JSON from
the fields (:mod:`harness.history.codec`), with ``kind`` saying what it is.

Controller to worker:

- ``init``     (subprocess transport only, the first line) the :class:`WorkerSpec` and the SQL
- ``invoke``   run one operation ``f`` (``args``), recording ``value`` in the history
- ``continue`` a paused operation may go on
- ``skew``     the worker's lease clock becomes ``time.time() + seconds``
- ``stop``     close the client and exit 0

Worker to controller, each stamped with the worker's name, its
``time.monotonic()`` (CLOCK_MONOTONIC is shared by every process on Linux)
and its ``time.time()``:

- ``ready``         the init phase is over (the client is built; nothing is connected)
- ``invoke``        the operation began (with whether the lease was valid, by true time)
- ``backend``       the client is on a backend now (connected, or renewed its lease)
- ``backend_lost``  the client found its connection dead and dropped it
- ``query_start``   a statement is about to be sent (the "query started" sync point)
- ``query_error``   a statement failed
- ``reap``          the reaper's progress: ``locked``, ``scanned``, one ``kill``, ``pass_end``...
- ``paused``        the operation is blocked at ``at`` until ``continue``
- ``complete``      the operation ended ``ok`` / ``fail`` / ``info``
- ``note``          any other client event, kept for a person to read, never judged
- ``crash``         an unhandled exception, just before the worker dies of it
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, TypeAlias

from harness.errors import HistoryFormatError, ProtocolError
from harness.history import CompletionType, ErrorInfo, OpF, ReapResult, dumps, from_json
from harness.history.codec import registry

DEFAULT_CLIENT = "harness.lease:LeaseClient"

DriverApi = Literal["lease", "driver"]
"""How a Python worker builds its client: ``lease`` = ``cls(conninfo, LeaseConfig, hooks=)``
(the bundled client and the bug zoo); ``driver`` = ``cls(conninfo, options, hooks)`` (see
``harness/drivers/README.md``)."""

PausePoint = Literal["tx", "locked", "scanned", "commit"]
"""Where an operation may pause: inside ``long_tx``'s transaction, a ``reap`` at a step,
or a ``write_once`` just before its client sends COMMIT (seen by ``on_query_start``)."""
ReapStep = Literal["locked", "scanned", "kill", "busy", "pass_end", "error", "denied_once"]

OP_FS: frozenset[str] = frozenset(
    {"write", "write_once", "read", "slow_read", "long_tx", "burst", "reap", "rejected"}
)


# ----------------------------------------------------------------- cold start


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a cold-started worker needs."""

    name: str
    """History name, e.g. ``w3``."""
    slot: int
    """This worker's row in ``hot`` (1-based)."""
    conninfo: str
    """libpq conninfo pointing at the worker's OWN proxy."""
    lease: Mapping[str, Any] = field(default_factory=dict)
    """``LeaseConfig`` keyword arguments, except ``clock`` (the worker supplies its own)."""
    client_class: str = DEFAULT_CLIENT
    """``module:Class`` of the client to build (the bug zoo substitutes subclasses)."""
    client_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for the client class."""
    seed: int | None = None
    """Seeds the client's randomness (reap jitter, backoff) when its class takes ``rng``."""
    nice: int = 0
    """Added to the worker's nice value before anything else runs (see ``FleetConfig``)."""
    # -- drivers (harness/drivers/PROTOCOL.md) -------------------------------------------
    driver: str = "lease"
    """The driver's name, for the record."""
    api: DriverApi = "lease"
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    """The driver's own options (``api='driver'`` and subprocess drivers)."""
    application_name: str = ""
    """What a driver without leases sets as ``application_name`` (one name for the whole
    service, as serverless-postgres wants)."""


# ----------------------------------------------------------------- controller -> worker


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoke:
    op: str
    f: OpF
    args: Mapping[str, Any]
    value: Mapping[str, Any]
    kind: Literal["invoke"] = "invoke"


@dataclass(frozen=True, slots=True, kw_only=True)
class Init:
    """The first line a subprocess worker reads: its spec (the fields of :class:`WorkerSpec`,
    plus ``dsn``: host, port, user, password, dbname), and the workload's SQL with ``$n``
    placeholders, so no other language spells the workload a second time."""

    spec: Mapping[str, Any]
    sql: Mapping[str, str]
    kind: Literal["init"] = "init"


@dataclass(frozen=True, slots=True, kw_only=True)
class Continue:
    kind: Literal["continue"] = "continue"


@dataclass(frozen=True, slots=True, kw_only=True)
class Skew:
    seconds: float
    kind: Literal["skew"] = "skew"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    kind: Literal["stop"] = "stop"


Command: TypeAlias = Init | Invoke | Continue | Skew | Stop


# ----------------------------------------------------------------- worker -> controller


@dataclass(frozen=True, slots=True, kw_only=True)
class Stamped:
    """What every worker message carries: who sent it and when."""

    worker: str
    time: float
    """The worker's ``time.monotonic()``."""
    wall: float
    """The worker's true ``time.time()``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready(Stamped):
    os_pid: int
    driver: str = ""
    """The driver's name as it says it (a subprocess driver's runtime reports it)."""
    kind: Literal["ready"] = "ready"


@dataclass(frozen=True, slots=True, kw_only=True)
class Invoked(Stamped):
    op: str
    f: OpF
    value: Mapping[str, Any]
    lease_valid: bool | None
    """By true time; None for a driver without leases (nothing to be valid)."""
    backend_pid: int | None = None
    kind: Literal["invoke"] = "invoke"


@dataclass(frozen=True, slots=True, kw_only=True)
class OnBackend(Stamped):
    """The client is on ``backend_pid`` with this lease (a connect, or a confirmed renewal)."""

    backend_pid: int
    application_name: str
    lease_expiry: float | None = None
    """Wall seconds; None for a client without leases."""
    renewed: bool = False
    reconnect: bool | None = None
    """A connect: what the client's ``on_connect`` said of it (a connect after its first
    one); None: the client did not say."""
    kind: Literal["backend"] = "backend"


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendLost(Stamped):
    backend_pid: int | None = None
    kind: Literal["backend_lost"] = "backend_lost"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStarted(Stamped):
    backend_pid: int | None = None
    lease_expiry: float | None = None
    kind: Literal["query_start"] = "query_start"


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryFailed(Stamped):
    backend_pid: int | None = None
    sqlstate: str | None = None
    error: str | None = None
    lost: bool | None = None
    """What the client's ``on_query_error`` said: the error took the connection."""
    kind: Literal["query_error"] = "query_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReapReport(Stamped):
    """One step of a reaper pass; a ``kill`` is one ledger entry."""

    step: ReapStep
    pid: int | None = None
    result: ReapResult | None = None
    application_name: str | None = None
    state: str | None = None
    state_change: float | None = None
    """Wall seconds, of the scanned row."""
    lease_expiry_ms: int | None = None
    idle_for: float | None = None
    """Seconds the victim had been in its state, by the server at scan time."""
    at: float | None = None
    """The reaper's own clock (Unix s, skew included) just before the kill was sent."""
    sent: float | None = None
    """``time.monotonic()`` just before the kill was sent."""
    reaper_pid: int | None = None
    """The reaper's own backend."""
    server_at: float | None = None
    """``locked``: server clock when the lock was taken; ``pass_end``: just before release."""
    candidates: tuple[int, ...] = ()
    """``scanned``: the pids the pass decided to kill, in order."""
    scanned: int | None = None
    """``scanned``: how many rows the scan returned."""
    killed: int | None = None
    """``pass_end``: how many the pass killed."""
    error: str | None = None
    """``error``: the class name of what the pass raised."""
    kind: Literal["reap"] = "reap"


@dataclass(frozen=True, slots=True, kw_only=True)
class Paused(Stamped):
    op: str
    at: PausePoint
    kind: Literal["paused"] = "paused"


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed(Stamped):
    op: str
    type: CompletionType
    result: Any = None
    error: ErrorInfo | None = None
    backend_pid: int | None = None
    kind: Literal["complete"] = "complete"


@dataclass(frozen=True, slots=True, kw_only=True)
class Note(Stamped):
    """A client event the controller keeps for a person to read and never judges."""

    event: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    kind: Literal["note"] = "note"


@dataclass(frozen=True, slots=True, kw_only=True)
class Crashed(Stamped):
    traceback: str
    kind: Literal["crash"] = "crash"


Message: TypeAlias = (
    Ready
    | Invoked
    | OnBackend
    | BackendLost
    | QueryStarted
    | QueryFailed
    | ReapReport
    | Paused
    | Completed
    | Note
    | Crashed
)
MESSAGE_TYPES: tuple[type[Message], ...] = (
    Ready,
    Invoked,
    OnBackend,
    BackendLost,
    QueryStarted,
    QueryFailed,
    ReapReport,
    Paused,
    Completed,
    Note,
    Crashed,
)
COMMAND_TYPES: tuple[type[Command], ...] = (Init, Invoke, Continue, Skew, Stop)


# ----------------------------------------------------------------- the wire


def encode(msg: Message | Command) -> bytes:
    """One JSON line, newline included."""
    return dumps(msg).encode()


@cache
def _messages() -> dict[str, type[Message]]:
    return registry(MESSAGE_TYPES, "kind")


@cache
def _commands() -> dict[str, type[Command]]:
    return registry(COMMAND_TYPES, "kind")


_JSON_DECODE = json.JSONDecoder().decode


def _decode(line: bytes | str, known: Mapping[str, type[Any]]) -> Any:
    try:
        raw = _JSON_DECODE(line.decode() if isinstance(line, bytes) else line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            f"not a JSON line: {bytes(line[:200]) if isinstance(line, bytes) else line[:200]!r}"
        ) from exc
    kind = raw.get("kind") if isinstance(raw, dict) else None
    cls = known.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r} in {str(raw)[:200]}")
    try:
        return from_json(cls, raw, where=f"{kind} message")
    except HistoryFormatError as exc:
        raise ProtocolError(str(exc)) from exc


def decode_message(line: bytes | str) -> Message:
    """A worker's line as its message; :class:`ProtocolError` if it is none."""
    msg: Message = _decode(line, _messages())
    return msg


def decode_command(line: bytes | str) -> Command:
    """A controller's line as its command; :class:`ProtocolError` if it is none."""
    cmd: Command = _decode(line, _commands())
    return cmd
