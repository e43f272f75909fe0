"""``Fleet``: the fleet core plus the faults it can inflict (the nemesis).

Every fault records its ``fault`` event (``time``/``wall`` of the harness)
BEFORE it acts, and a ``heal`` event when it is undone. Faults that interrupt an
operation wait for a sync point first, never for a fixed time:

- ``freeze``/``thaw``/``reclaim`` at rest; ``blackhole=True`` also adds a
  ``timeout`` toxic (timeout 0) in both directions of the worker's proxy, so the
  server keeps the backend as a true zombie (a frozen process's kernel would
  otherwise keep the TCP session healthy). ``thaw`` removes the blackhole
  (which closes the connection it held) before SIGCONT. ``reclaim`` is SIGKILL
  of the frozen process (the one signal a stopped process acts on); with a
  blackhole the controller first takes duplicates of the worker's sockets so
  the death sends no FIN (a reclaimed VM sends none), held until the fleet closes.
- ``freeze_mid_query``: a ``slow_read``; waits for the worker's ``on_query_start``
  and then for the server to show that backend ``active`` in ``pg_sleep``; SIGSTOP.
- ``freeze_mid_tx``: a ``long_tx``; waits for "paused inside the transaction";
  SIGSTOP. ``thaw`` then sends ``continue`` so it tries to commit.
- ``freeze_mid_reap``: a ``reap`` op paused at ``locked`` (or ``scanned``) by the
  worker's ``on_reap`` hook; SIGSTOP; ``thaw`` sends ``continue``.
- ``socket_reset`` of a started op, once its statement runs on the server:
  ``reset_peer`` (a downstream ``reset_peer`` toxic: fires when the result comes
  back; removed at the worker's first query error or the op's end) or
  ``disable`` (the proxy disabled, which closes at once while the server is
  silent, then enabled again).
- ``ack_lost``: a downstream ``timeout`` toxic (``timeout_ms``, 300 by default)
  added BEFORE a write is sent, so the server commits and the answer never
  arrives; removed (``heal``) when the op ends.
- ``latency``, ``bandwidth``, ``proxy_down``/``proxy_up`` on one worker's proxy;
  ``pg_restart`` (immediate); ``terminate_backend`` of a worker's current backend
  from an admin session; ``clock_skew`` of one worker's lease clock.
- ``heal``: remove every toxic of the live workers' proxies and enable them all
  (a reclaimed worker's zombie stays until a reaper or the teardown ends it).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Literal

import psycopg

from harness.fleet import _sockets, procs
from harness.fleet._core import FleetConfig, FleetCore, _Worker
from harness.fleet.pending import FleetError, FleetTimeout, OpResult, Pending, WorkerUnavailable
from harness.fleet.procs import SignalTimeout

__all__ = ["Fleet", "FleetConfig"]

ResetMode = Literal["reset_peer", "disable"]


class Fleet(FleetCore):
    """Lambda-like workers, their proxies, the history, and the faults."""

    # ------------------------------------------------------------------ at rest

    def freeze(self, worker: str, *, blackhole: bool = False) -> None:
        """SIGSTOP a worker (optionally blackholing its link once it is stopped).

        A worker parked by routing is already stopped: the fault is recorded (and
        the blackhole added) without a second signal."""
        with self._cond:
            w = self._live(worker)
            value = {"blackhole": blackhole, "already_frozen": w.frozen}
            if w.frozen:
                self._fault("freeze", w.name, {"cause": "fault", **value})
            else:
                self._freeze_locked(w, cause="fault", value=value)
            if blackhole and not w.blackholed:
                self._blackhole_locked(w)

    def thaw(self, worker: str, *, resume: bool = True) -> None:
        """SIGCONT a frozen worker (blackhole removed first); ``resume``: a paused op goes on."""
        with self._cond:
            w = self._live(worker)
            if not w.frozen:
                raise WorkerUnavailable(f"worker {worker} is not frozen")
            self._thaw_locked(w, cause="fault")
            if resume and w.paused_at is not None:
                self._continue_locked(w)

    def resume(self, worker: str) -> None:
        """Let a paused (not frozen) op go on."""
        with self._cond:
            w = self._live(worker)
            if w.paused_at is None:
                raise WorkerUnavailable(f"worker {worker} is not paused")
            self._continue_locked(w)

    def reclaim(
        self, worker: str, *, blackhole: bool = False, timeout: float | None = None
    ) -> None:
        """SIGKILL a frozen worker (frozen first if it is not), and wait until it is gone.

        With ``blackhole`` (or if its link already is), the worker's TCP sockets to its
        proxy are first duplicated into the controller (see ``_sockets``), so its death
        sends no FIN, as a torn-down VM's would not, and its link is blackholed: the
        server keeps the backend as a true zombie until a reaper kills it or the
        fleet closes (:meth:`heal` leaves it alone). Its proxy stays until then."""
        with self._cond:
            w = self._live(worker)
            if not w.frozen:
                self._freeze_locked(w, cause="reclaim")
            blackhole = blackhole or w.blackholed
            if blackhole and w.link is not None:
                # A torn-down VM sends no FIN: keep its sockets open from here.
                w.held_fds = _sockets.hold_sockets(w.os_pid, w.link.port)
            self._fault(
                "reclaim",
                w.name,
                {"blackhole": blackhole, "os_pid": w.os_pid, "held_sockets": len(w.held_fds)},
            )
            if blackhole and not w.blackholed:
                self._blackhole_locked(w)
            w.end_reason = "reclaim"
            procs.kill(w.os_pid)
        limit = self.config.signal_timeout if timeout is None else timeout
        if not w.exited.wait(limit):
            raise FleetTimeout(f"reclaimed worker {worker} (pid {w.os_pid}) not gone in {limit}s")

    # ------------------------------------------------------------------ mid-operation

    def freeze_mid_query(
        self,
        *,
        worker: str | None = None,
        seconds: float = 5.0,
        blackhole: bool = False,
        timeout: float | None = None,
    ) -> Pending:
        """Start a ``slow_read`` and freeze its worker while the server runs it."""
        pending = self.start("slow_read", worker=worker, seconds=seconds)
        started = self.wait_query_started(pending.worker, after=pending.since, timeout=timeout)
        self.wait_backend_active(int(started["payload"]["backend_pid"]), "pg_sleep", timeout)
        self._freeze_busy(pending, "freeze_mid_query", blackhole)
        return pending

    def freeze_mid_tx(
        self, *, worker: str | None = None, blackhole: bool = False, timeout: float | None = None
    ) -> Pending:
        """Start a ``long_tx`` and freeze its worker inside the open transaction."""
        pending = self.start("long_tx", worker=worker)
        self.wait_paused(pending.worker, "tx", after=pending.since, timeout=timeout)
        self._freeze_busy(pending, "freeze_mid_tx", blackhole)
        return pending

    def freeze_mid_reap(
        self,
        *,
        worker: str | None = None,
        pause_at: Literal["locked", "scanned"] = "locked",
        blackhole: bool = False,
        timeout: float | None = None,
    ) -> Pending:
        """Start a ``reap`` op and freeze its worker at ``pause_at`` (holding the leader lock)."""
        pending = self.start("reap", worker=worker, pause_at=pause_at)
        self.wait_paused(pending.worker, pause_at, after=pending.since, timeout=timeout)
        self._freeze_busy(pending, "freeze_mid_reap", blackhole)
        return pending

    def socket_reset(
        self, pending: Pending, *, mode: ResetMode = "reset_peer", timeout: float | None = None
    ) -> None:
        """Cut the socket of a started op once its statement runs on the server."""
        started = self.wait_query_started(pending.worker, after=pending.since, timeout=timeout)
        self.wait_backend_active(int(started["payload"]["backend_pid"]), None, timeout)
        w = self._live(pending.worker)
        link = self.link(w.name)
        self._fault("socket_reset", w.name, {"mode": mode, "op": pending.op})
        if mode == "reset_peer":
            link.add("reset_peer", name="reset_peer_downstream", stream="downstream", timeout=0)
            self._undo_at_first_error(w, pending, "reset_peer_downstream", "socket_reset")
        elif mode == "disable":
            link.disable()
            link.enable()
        else:
            raise FleetError(f"unknown socket_reset mode {mode!r}")

    def ack_lost(
        self,
        *,
        f: Literal["write", "write_once"] = "write",
        amount: int = 1,
        worker: str | None = None,
        timeout_ms: int = 300,
        timeout: float | None = None,
    ) -> OpResult:
        """A write whose answer is lost: the server commits, the client never hears."""
        w = self._acquire(worker)
        op = self.new_op_id()
        link = self.link(w.name)
        self._fault("ack_lost", w.name, {"op": op, "timeout_ms": timeout_ms})
        try:
            link.add("timeout", name="ack_lost_downstream", stream="downstream", timeout=timeout_ms)
        except BaseException:
            self._release(w)
            raise
        try:
            return self._send_op(w, f, {"amount": amount}, op=op).wait(timeout)
        finally:
            self._fault("heal", w.name, {"undo": "ack_lost", "op": op})
            link.remove("ack_lost_downstream")

    # ------------------------------------------------------------------ network

    def latency(
        self, worker: str, latency_ms: int, *, jitter_ms: int = 0, stream: str = "downstream"
    ) -> None:
        link = self.link(worker)
        self._fault(
            "latency", worker, {"latency_ms": latency_ms, "jitter_ms": jitter_ms, "stream": stream}
        )
        link.add(
            "latency", name=f"latency_{stream}", stream=stream, latency=latency_ms, jitter=jitter_ms
        )

    def bandwidth(self, worker: str, rate_kb: int, *, stream: str = "downstream") -> None:
        link = self.link(worker)
        self._fault("bandwidth", worker, {"rate_kb": rate_kb, "stream": stream})
        link.add("bandwidth", name=f"bandwidth_{stream}", stream=stream, rate=rate_kb)

    def proxy_down(self, worker: str) -> None:
        link = self.link(worker)
        self._fault("proxy_down", worker, {})
        link.disable()

    def proxy_up(self, worker: str) -> None:
        link = self.link(worker)
        self._fault("proxy_up", worker, {})
        link.enable()

    def heal(self) -> None:
        """Remove every toxic of the live workers' proxies and enable them all.

        A reclaimed worker's link stays as it is: its sandbox is gone and will never
        answer again, so a zombie it left behind stays a zombie until a reaper (or
        the fleet's teardown) ends it. Healing the network does not resurrect it."""
        self._fault("heal", None, {"undo": "all"})
        with self._cond:
            workers = [w for w in self._workers.values() if w.alive]
        for w in workers:
            if w.link is not None and not w.link.deleted:
                w.link.clear()
                w.blackholed = False

    # ------------------------------------------------------------------ server side

    def pg_restart(self) -> None:
        """Restart PostgreSQL with ``-m immediate`` (every backend dies, no checkpoint)."""
        self._fault("pg_restart", None, {"mode": "immediate"})
        self.pg.restart("immediate")

    def terminate_backend(self, worker: str) -> int | None:
        """``pg_terminate_backend`` of the worker's current backend from an admin session;
        the pid (None if the worker had none)."""
        w = self._live(worker)
        pid = w.backend_pid
        self._fault("terminate_backend", worker, {"backend_pid": pid})
        if pid is not None:
            with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
                # wait=true (timeout in ms): returns once the backend has exited, so the
                # worker's socket already holds the FATAL and the EOF when it next looks.
                conn.execute(
                    "SELECT pg_terminate_backend(%s, %s)",
                    (pid, int(self.config.signal_timeout * 1000)),
                )
        return pid

    def clock_skew(self, worker: str, seconds: float) -> None:
        """The worker's lease clock becomes ``time.time() + seconds`` (applied when it next
        reads the pipe: at once if idle or paused, after the running op otherwise)."""
        w = self._live(worker)
        self._fault("clock_skew", worker, {"seconds": seconds})
        assert w.conn is not None
        w.conn.send({"kind": "skew", "seconds": float(seconds)})

    def wait_backend_active(
        self, pid: int, query_contains: str | None, timeout: float | None = None
    ) -> None:
        """Wait until ``pg_stat_activity`` shows backend ``pid`` active (running a query
        containing ``query_contains``): the statement really reached the server."""
        limit = self.config.op_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = 0.002
        last: tuple[str | None, str | None] | None = None
        with psycopg.connect(self.admin_dsn(), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)
                ).fetchone()
                last = None if row is None else (row[0], row[1])
                if (
                    last is not None
                    and last[0] == "active"
                    and (query_contains is None or query_contains in (last[1] or ""))
                ):
                    return
                if time.monotonic() >= deadline:
                    raise FleetTimeout(
                        f"backend {pid} not active within {limit}s (last seen: {last})"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    # ------------------------------------------------------------------ helpers

    def _live(self, name: str) -> _Worker:
        w = self._get(name)
        if not w.alive or w.process is None:
            raise WorkerUnavailable(f"worker {name} is {w.state}")
        return w

    def _freeze_busy(self, pending: Pending, f: str, blackhole: bool) -> None:
        with self._cond:
            w = self._live(pending.worker)
            if pending.done():
                raise FleetError(f"{pending.f} op {pending.op} ended before {f} could freeze it")
            self._freeze_locked(
                w, cause="fault", f=f, value={"op": pending.op, "blackhole": blackhole}
            )
            if blackhole:
                self._blackhole_locked(w)

    def _blackhole_locked(self, w: _Worker) -> None:
        assert w.link is not None
        w.link.blackhole()
        w.blackholed = True

    def _continue_locked(self, w: _Worker) -> None:
        assert w.conn is not None
        w.paused_at = None
        w.conn.send({"kind": "continue"})

    def _release(self, w: _Worker) -> None:
        """Give back a worker acquired for an op that was never sent."""
        with self._cond:
            if w.state == "busy":
                w.state = "idle"
                if self.config.freeze_idle and not w.frozen:
                    with contextlib.suppress(SignalTimeout, ProcessLookupError):
                        self._freeze_locked(w, cause="idle")
            self._cond.notify_all()

    def _undo_at_first_error(self, w: _Worker, pending: Pending, toxic: str, fault: str) -> None:
        """Remove ``toxic`` at the worker's first query error or the op's end (once)."""
        done: list[bool] = []

        def undo(*_: Any) -> None:
            if done:
                return
            done.append(True)
            self._fault("heal", w.name, {"undo": fault, "op": pending.op})
            if w.link is not None and not w.link.deleted:
                w.link.remove(toxic)

        with self._cond:
            w.on_error.append(undo)
        pending.on_done(undo)
