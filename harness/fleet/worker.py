"""One Lambda-like worker process: init phase, then invocations served over a pipe.

Runs in a process forked by multiprocessing's forkserver (which preloads psycopg,
``harness.lease`` and this module). :func:`main` is the process's target:

- init phase: build ONE client at module scope (``CLIENT``) from the spec, with a
  lease clock ``time.time() + skew`` (skew set by the ``skew`` command);
- serve ``invoke`` commands one at a time, reporting the invoke, what the client's
  hooks say (as typed messages) and the completion (see :mod:`harness.fleet.protocol`);
- an unhandled exception is reported (``crash`` with the traceback) and then
  re-raised: the process dies with a nonzero exit status, it is never hidden.

Outcome classification is in :mod:`harness.fleet.classify`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import decimal
import importlib
import inspect
import os
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from harness.errors import ProtocolError, UsageError
from harness.fleet import schema
from harness.fleet.classify import classify, error_info
from harness.fleet.protocol import (
    BackendLost,
    Command,
    Completed,
    Continue,
    Crashed,
    Invoke,
    Invoked,
    Message,
    Note,
    OnBackend,
    Paused,
    PausePoint,
    QueryFailed,
    QueryStarted,
    Ready,
    ReapReport,
    Skew,
    Stop,
    WorkerSpec,
    decode_command,
    encode,
)

CLIENT: Any = None
"""The worker's one client, built in the init phase (module scope, as Lambda guides advise)."""

_skew = 0.0
_conn: Connection | None = None
_spec: WorkerSpec | None = None
_send_lock = threading.Lock()
_pause_at: str | None = None
_current_op: str | None = None

_PR_SET_PDEATHSIG = 1


class ControllerGone(BaseException):
    """The controller's end of the pipe closed: nobody is left to serve. Not an op error."""


def lease_clock() -> float:
    """The worker's wall clock for its lease: true time plus the injected skew."""
    return time.time() + _skew


def _stamp() -> dict[str, Any]:
    assert _spec is not None
    return {"worker": _spec.name, "time": time.monotonic(), "wall": time.time()}


def _send(msg: Message) -> None:
    assert _conn is not None
    data = encode(msg)
    with _send_lock:
        try:
            _conn.send_bytes(data)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            raise ControllerGone from exc


def _recv() -> Command:
    assert _conn is not None
    try:
        data = _conn.recv_bytes()
    except (EOFError, ConnectionResetError, OSError) as exc:
        raise ControllerGone from exc
    return decode_command(data)


def _jsonable(v: Any) -> Any:
    """Results travel to the history as JSON: keep them plain."""
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, _dt.datetime):
        return v.timestamp()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_jsonable(x) for x in v]
    return str(v)


def _handle_control(cmd: Command) -> bool:
    """Apply a control command; True if it was ``continue``."""
    global _skew
    if isinstance(cmd, Skew):
        _skew = cmd.seconds
        return False
    if isinstance(cmd, Continue):
        return True
    if isinstance(cmd, Stop):
        raise SystemExit(0)
    raise ProtocolError(f"worker got {cmd.kind!r} while busy")


def _pause(at: PausePoint) -> None:
    """Report that the op is paused at ``at`` and block until the controller says continue."""
    assert _current_op is not None
    _send(Paused(op=_current_op, at=at, **_stamp()))
    while not _handle_control(_recv()):
        pass


# ---------------------------------------------------------------- hooks -> messages


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _epoch(value: Any) -> float | None:
    """``state_change`` as the reaper reports it (a datetime or ISO text) -> Unix seconds."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    try:
        return _dt.datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _on_backend(payload: Mapping[str, Any], renewed: bool) -> None:
    if payload.get("backend_pid") is None:
        return
    _send(
        OnBackend(
            backend_pid=int(payload["backend_pid"]),
            application_name=str(payload.get("application_name") or ""),
            lease_expiry=_opt_float(payload.get("lease_expiry")),
            renewed=renewed,
            reconnect=_opt_bool(None if renewed else payload.get("reconnect")),
            **_stamp(),
        )
    )


def _on_reap(payload: dict[str, Any]) -> None:
    global _pause_at
    step = str(payload.get("event"))
    _send(
        ReapReport(
            step=step,  # type: ignore[arg-type]  # the lease client's documented events
            pid=_opt_int(payload.get("pid")),
            result=payload.get("result"),
            application_name=payload.get("application_name"),
            state=payload.get("state"),
            state_change=_epoch(payload.get("state_change")),
            lease_expiry_ms=_opt_int(payload.get("lease_expiry_ms")),
            idle_for=_opt_float(payload.get("idle_for")),
            at=_opt_float(payload.get("at")),
            sent=_opt_float(payload.get("sent_monotonic")),
            reaper_pid=_opt_int(payload.get("reaper_pid")),
            server_at=_opt_float(payload.get("server_at")),
            candidates=tuple(int(p) for p in payload.get("candidates") or ()),
            scanned=_opt_int(payload.get("scanned")),
            killed=_opt_int(payload.get("killed")),
            error=_opt_str(payload.get("error")),
            **_stamp(),
        )
    )
    if _pause_at is not None and step == _pause_at:
        _pause_at = None
        _pause(step)  # type: ignore[arg-type]  # locked | scanned, checked by the controller


def _on_query_start(payload: dict[str, Any]) -> None:
    global _pause_at
    _send(
        QueryStarted(
            backend_pid=_opt_int(payload.get("backend_pid")),
            lease_expiry=_opt_float(payload.get("lease_expiry")),
            **_stamp(),
        )
    )
    if _pause_at == "commit" and payload.get("kind") == "COMMIT":
        # the hook runs before the statement is sent: the controller may change the
        # link while the transaction waits, whole, for its COMMIT
        _pause_at = None
        _pause("commit")


def _note(name: str) -> Callable[[dict[str, Any]], None]:
    def hook(payload: dict[str, Any]) -> None:
        _send(Note(event=name, detail=_jsonable(payload), **_stamp()))

    return hook


def _hooks() -> dict[str, Callable[[dict[str, Any]], None]]:
    """The lease client's hooks, each turned into the protocol's typed message."""
    hooks = {
        name: _note(name)
        for name in ("on_reconnect", "on_heartbeat_fail", "on_query_end", "on_query_retry")
    }
    hooks["on_connect"] = lambda p: _on_backend(p, renewed=False)
    hooks["on_heartbeat"] = lambda p: _on_backend(p, renewed=True)
    hooks["on_client_dead"] = lambda p: _send(
        BackendLost(backend_pid=_opt_int(p.get("backend_pid")), **_stamp())
    )
    hooks["on_query_start"] = _on_query_start
    hooks["on_query_error"] = lambda p: _send(
        QueryFailed(
            backend_pid=_opt_int(p.get("backend_pid")),
            sqlstate=p.get("sqlstate"),
            error=_opt_str(p.get("error")),
            lost=_opt_bool(p.get("lost")),
            **_stamp(),
        )
    )
    hooks["on_reap"] = _on_reap
    return hooks


# ---------------------------------------------------------------- init phase


def load_class(path: str) -> Any:
    """``package.module:Name`` -> the object."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise UsageError(f"client_class must look like 'package.module:Class', got {path!r}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def build_client(spec: WorkerSpec) -> Any:
    """The worker's one client. ``api='lease'``: ``cls(conninfo, LeaseConfig, hooks=...)``;
    ``api='driver'``: ``cls(conninfo, options, hooks)`` (harness/drivers/README.md), the
    options carrying the service's ``application_name``."""
    if spec.api == "driver":
        options = {"application_name": spec.application_name, **dict(spec.driver_options)}
        return load_class(spec.client_class)(spec.conninfo, options, _hooks())
    from harness.lease import LeaseConfig

    config = LeaseConfig(**dict(spec.lease), clock=lease_clock)
    cls = load_class(spec.client_class)
    kwargs = dict(spec.client_kwargs)
    if spec.seed is not None:
        # one stream per worker slot: the same seed gives the same jitter and backoff
        kwargs.setdefault("rng", random.Random(spec.seed * 1_000_003 + spec.slot))
    return cls(spec.conninfo, config, hooks=_hooks(), **kwargs)


# ---------------------------------------------------------------- workloads


def _first(rows: list[tuple[Any, ...]]) -> Any:
    return rows[0][0] if rows and rows[0] else None


def _write(op: str, args: Mapping[str, Any], once: bool) -> dict[str, Any]:
    global _pause_at
    assert _spec is not None
    params = (op, _spec.name, int(args.get("amount", 1)))
    _pause_at = args.get("pause_at")
    try:
        if once and hasattr(CLIENT, "execute_once"):
            return {"counter": _first(CLIENT.execute_once(op, schema.WRITE_SQL, params))}
        return {"counter": _first(CLIENT.execute(schema.WRITE_SQL, params))}
    finally:
        _pause_at = None


def _long_tx(args: Mapping[str, Any]) -> dict[str, Any]:
    """Update a ``hot`` row (this worker's own, or ``row``) in a transaction, paused
    inside it (unless ``pause`` is false) until the controller says continue; marked
    ``retryable`` when asked and the client's ``transaction`` takes the flag. A retried
    body does not pause again: the controller waits for one pause per op."""
    row = int(args.get("row", _spec.slot if _spec else 0))
    pause = bool(args.get("pause", True))

    def body(tx: Any) -> None:
        nonlocal pause
        tx.execute(schema.HOT_SQL, (row,))
        if pause:
            pause = False
            _pause("tx")
            # a statement after the pause: what the transaction finds if its connection
            # died meanwhile (lost before COMMIT) or its lease ran out (the fence)
            tx.execute(schema.HOT_READ_SQL, (row,))

    if args.get("retryable") and _takes_retryable(CLIENT.transaction):
        CLIENT.transaction(body, retryable=True)
    else:
        CLIENT.transaction(body)
    return {"row": row}


def _takes_retryable(fn: Any) -> bool:
    try:
        return "retryable" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _reap(args: Mapping[str, Any]) -> dict[str, Any]:
    global _pause_at
    if not hasattr(CLIENT, "reap_now"):
        # No reaper of its own: the invocation is an ordinary one (whatever the driver
        # does on every invocation, cleaning included, still happens).
        CLIENT.execute(schema.BURST_SQL, idempotent=True)
        return {"decisions": [], "reaper": False}
    _pause_at = args.get("pause_at")
    try:
        if args.get("standalone") and hasattr(CLIENT, "reaper") and _spec is not None:
            # a scheduled cleanup function: it holds no connection between passes (the
            # client's is closed first: left idle past its lease, the pass would rightly
            # reap it), then one pass on a connection of its own, whose failures are the
            # op's (run_once does not swallow them as reap_now does)
            CLIENT.close()
            decisions = CLIENT.reaper.run_once(_spec.conninfo).ledger
        else:
            decisions = CLIENT.reap_now()
    finally:
        _pause_at = None
    return {"decisions": decisions}


def _burst(args: Mapping[str, Any]) -> dict[str, Any]:
    n = int(args.get("n", 10))
    for _ in range(n):
        CLIENT.execute(schema.BURST_SQL, idempotent=True)
    return {"n": n}


BAD_INPUT = "bad\x00input"
"""Text no PostgreSQL driver can send (a NUL byte): rejected before it leaves the client."""


def _rejected(args: Mapping[str, Any]) -> dict[str, Any]:
    """A write that is refused: by the server (``side="server"``, a NOT NULL violation)
    or by the driver itself before sending (``side="client"``, a NUL byte in a text
    parameter). The client must hand the refusal back as it is, never retry it."""
    assert _spec is not None
    who = BAD_INPUT if args.get("side") == "client" else _spec.name
    CLIENT.execute(schema.REJECTED_SQL, (who,))
    return {"accepted": True}


def _run(op: str, f: str, args: Mapping[str, Any]) -> Any:
    if f in ("write", "write_once"):
        return _write(op, args, once=f == "write_once")
    if f == "read":
        return {"count": _first(CLIENT.execute(schema.READ_SQL, idempotent=True))}
    if f == "slow_read":
        CLIENT.execute(schema.SLOW_READ_SQL, (float(args["seconds"]),), idempotent=True)
        return {}
    if f == "burst":
        return _burst(args)
    if f == "long_tx":
        return _long_tx(args)
    if f == "reap":
        return _reap(args)
    if f == "rejected":
        return _rejected(args)
    raise ProtocolError(f"unknown operation {f!r}")


def _serve(cmd: Invoke) -> None:
    global _current_op
    _current_op = cmd.op
    expiry = getattr(CLIENT, "lease_expiry", None)
    # No connection yet: the op will run under a fresh lease, so it starts valid.
    # A driver without leases has nothing to be valid: None.
    lease_valid: bool | None = True if expiry is None else float(expiry) > time.time()
    if _spec is not None and _spec.api != "lease":
        lease_valid = None
    _send(
        Invoked(
            op=cmd.op,
            f=cmd.f,
            value=_jsonable(dict(cmd.value)),
            lease_valid=lease_valid,
            backend_pid=getattr(CLIENT, "backend_pid", None),
            **_stamp(),
        )
    )
    try:
        result = _run(cmd.op, cmd.f, cmd.args)
    except Exception as exc:
        done = Completed(
            op=cmd.op,
            type=classify(cmd.f, exc),
            error=error_info(exc),
            backend_pid=getattr(CLIENT, "backend_pid", None),
            **_stamp(),
        )
    else:
        done = Completed(
            op=cmd.op,
            type="ok",
            result=_jsonable(result),
            backend_pid=getattr(CLIENT, "backend_pid", None),
            **_stamp(),
        )
    finally:
        _current_op = None
        end = getattr(CLIENT, "end_invocation", None)
        if end is not None:
            with contextlib.suppress(Exception):
                end()
    _send(done)


def _die_with_parent() -> None:
    """SIGKILL this worker if its parent (the forkserver) dies: a backstop against orphans
    (SIGKILL also ends a stopped process)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(conn: Connection, spec: WorkerSpec) -> None:
    """The worker process's target."""
    global CLIENT, _conn, _spec
    _conn, _spec = conn, spec
    _die_with_parent()
    if spec.nice > 0:
        os.nice(spec.nice)
    # Ctrl-C reaches the whole process group: the controller handles it and tears
    # the fleet down; a worker must not die of it with a misleading "crash".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        CLIENT = build_client(spec)
        _send(Ready(os_pid=os.getpid(), **_stamp()))
        while True:
            cmd = _recv()
            if isinstance(cmd, Invoke):
                _serve(cmd)
            elif isinstance(cmd, Continue):
                continue  # a late continue for an op that already ended
            else:
                _handle_control(cmd)
    except (ControllerGone, SystemExit):
        pass
    except BaseException:
        with contextlib.suppress(BaseException):
            _send(Crashed(traceback=traceback.format_exc(), **_stamp()))
        raise
    finally:
        client, CLIENT = CLIENT, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
