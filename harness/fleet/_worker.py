"""One Lambda-like worker process: init phase, then invocations served over a pipe.

Runs in a process forked by multiprocessing's forkserver (which preloads psycopg,
``harness.lease`` and this module). :func:`main` is the process's target:

- init phase: build ONE client at module scope (``CLIENT``) from the spec, with a
  lease clock ``time.time() + skew`` (skew set by the ``skew`` control message);
- serve ``invoke`` messages one at a time, reporting invoke, hook events and the
  completion (see :mod:`harness.fleet.spec` for the protocol);
- an unhandled exception is reported (``crash`` with the traceback) and then
  re-raised: the process dies with a nonzero exit status, it is never hidden.

Outcome classification is in :mod:`harness.fleet._classify`.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import decimal
import importlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from harness.fleet import schema
from harness.fleet._classify import classify, error_info
from harness.fleet.spec import WorkerSpec

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


def _send(kind: str, **fields: Any) -> None:
    assert _conn is not None and _spec is not None
    msg = {"kind": kind, "worker": _spec.name, "time": time.monotonic(), "wall": time.time()}
    msg.update(fields)
    with _send_lock:
        try:
            _conn.send(msg)
        except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
            raise ControllerGone from exc


def _recv() -> dict[str, Any]:
    assert _conn is not None
    try:
        msg = _conn.recv()
    except (EOFError, ConnectionResetError, OSError) as exc:
        raise ControllerGone from exc
    if not isinstance(msg, dict) or "kind" not in msg:
        raise RuntimeError(f"worker got a malformed message: {msg!r}")
    return msg


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


def _handle_control(msg: dict[str, Any]) -> bool:
    """Apply a control message; True if it was ``continue``."""
    global _skew
    kind = msg["kind"]
    if kind == "skew":
        _skew = float(msg["seconds"])
        return False
    if kind == "continue":
        return True
    if kind == "stop":
        raise SystemExit(0)
    raise RuntimeError(f"worker got {kind!r} while busy")


def _pause(at: str) -> None:
    """Report that the op is paused at ``at`` and block until the controller says continue."""
    _send("paused", op=_current_op, at=at)
    while not _handle_control(_recv()):
        pass


# ---------------------------------------------------------------- hooks


def _forward(name: str) -> Callable[[dict[str, Any]], None]:
    def hook(payload: dict[str, Any]) -> None:
        _send("hook", hook=name, payload=_jsonable(payload))

    return hook


def _on_reap(payload: dict[str, Any]) -> None:
    global _pause_at
    _send("hook", hook="on_reap", payload=_jsonable(payload))
    if _pause_at is not None and payload.get("event") == _pause_at:
        _pause_at = None
        _pause(str(payload["event"]))


_FORWARDED = (
    "on_connect",
    "on_reconnect",
    "on_heartbeat",
    "on_heartbeat_fail",
    "on_query_start",
    "on_query_end",
    "on_query_error",
    "on_query_retry",
    "on_client_dead",
)


def _hooks() -> dict[str, Callable[[dict[str, Any]], None]]:
    hooks = {name: _forward(name) for name in _FORWARDED}
    hooks["on_reap"] = _on_reap
    return hooks


# ---------------------------------------------------------------- init phase


def load_class(path: str) -> Any:
    """``package.module:Name`` -> the object."""
    module, _, name = path.partition(":")
    if not module or not name:
        raise ValueError(f"client_class must look like 'package.module:Class', got {path!r}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def build_client(spec: WorkerSpec) -> Any:
    from harness.lease import LeaseConfig

    config = LeaseConfig(**dict(spec.lease), clock=lease_clock)
    cls = load_class(spec.client_class)
    return cls(spec.conninfo, config, hooks=_hooks(), **dict(spec.client_kwargs))


# ---------------------------------------------------------------- workloads


def _first(rows: list[tuple[Any, ...]]) -> Any:
    return rows[0][0] if rows and rows[0] else None


def _run(op: str, f: str, args: dict[str, Any]) -> Any:
    global _pause_at
    assert _spec is not None
    client = CLIENT
    if f == "write":
        params = (op, _spec.name, int(args.get("amount", 1)))
        return {"counter": _first(client.execute(schema.WRITE_SQL, params))}
    if f == "write_once":
        params = (op, _spec.name, int(args.get("amount", 1)))
        return {"counter": _first(client.execute_once(op, schema.WRITE_SQL, params))}
    if f == "read":
        return {"count": _first(client.execute(schema.READ_SQL, idempotent=True))}
    if f == "slow_read":
        client.execute(schema.SLOW_READ_SQL, (float(args["seconds"]),), idempotent=True)
        return {}
    if f == "burst":
        n = int(args.get("n", 10))
        for _ in range(n):
            client.execute(schema.BURST_SQL, idempotent=True)
        return {"n": n}
    if f == "long_tx":

        def body(tx: Any) -> None:
            tx.execute(schema.HOT_SQL, (_spec.slot if _spec else 0,))
            _pause("tx")

        client.transaction(body)
        return {}
    if f == "reap":
        _pause_at = args.get("pause_at")
        try:
            decisions = client.reap_now()
        finally:
            _pause_at = None
        return {"decisions": decisions}
    raise ValueError(f"unknown operation {f!r}")


def _serve(msg: dict[str, Any]) -> None:
    global _current_op
    op, f, args = str(msg["op"]), str(msg["f"]), dict(msg.get("args") or {})
    _current_op = op
    expiry = getattr(CLIENT, "lease_expiry", None)
    # No connection yet: the op will run under a fresh lease, so it starts valid.
    lease_valid = True if expiry is None else float(expiry) > time.time()
    _send(
        "invoke",
        op=op,
        f=f,
        value=_jsonable(msg.get("value") or {}),
        lease_valid=lease_valid,
        backend_pid=getattr(CLIENT, "backend_pid", None),
    )
    try:
        result = _run(op, f, args)
    except Exception as exc:
        _send(
            "complete",
            op=op,
            type=classify(f, exc),
            result=None,
            error=error_info(exc),
            backend_pid=getattr(CLIENT, "backend_pid", None),
        )
    else:
        _send(
            "complete",
            op=op,
            type="ok",
            result=_jsonable(result),
            error=None,
            backend_pid=getattr(CLIENT, "backend_pid", None),
        )
    finally:
        _current_op = None


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
    # Ctrl-C reaches the whole process group: the controller handles it and tears
    # the fleet down; a worker must not die of it with a misleading "crash".
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        CLIENT = build_client(spec)
        _send("ready", os_pid=os.getpid())
        while True:
            msg = _recv()
            if msg["kind"] == "invoke":
                _serve(msg)
            elif msg["kind"] == "continue":
                continue  # a late continue for an op that already ended
            else:
                _handle_control(msg)
    except (ControllerGone, SystemExit):
        pass
    except BaseException:
        with contextlib.suppress(BaseException):
            _send("crash", traceback=traceback.format_exc())
        raise
    finally:
        client, CLIENT = CLIENT, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
