"""smoke: a few clients through their own proxies, one socket reset mid-query.

The foundation end to end: a real PostgreSQL behind the proxy server, three
plain psycopg clients each through its own proxy, queries on all of them, and
one socket cut with ``reset_peer`` while that client waits in ``pg_sleep``.
What must hold: the cut reaches that client as a connection error (not a
hang), the other clients never notice, and the cut client works again on a
fresh connection once the toxic is gone. Like every scenario it records its
history (each query an operation of its client) and the ``pg_stat_activity``
samples, so its report has the same files and the same chart.
Judges: S1 (the cut is an error), S2 (the others unaffected), S3 (recovery).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from typing import Any

import psycopg

from harness.check import RunConfig, Verdict
from harness.check.run import Run
from harness.cli import Context, Scenario, main_for
from harness.fleet.classify import error_info
from harness.history import FinalState, HistoryWriter, OpF, load_history
from harness.infra.toxiproxy import Proxy
from harness.observe import ActivitySampler
from harness.report import ScenarioResult
from harness.wait import poll

CLIENTS = 3
QUERIES = 50
SLEEP_S = 1.0
VICTIM = 1


class Smoke:
    """The clients, their proxies, and what happened to them."""

    def __init__(self, ctx: Context, history: HistoryWriter) -> None:
        self.ctx, self.history = ctx, history
        pg = ctx.pg
        self.proxies: list[Proxy] = [
            ctx.proxies.create_proxy(f"smoke-{i}", (pg.host, pg.port)) for i in range(CLIENTS)
        ]
        self.conns = [self.connect(i) for i in range(CLIENTS)]
        self.latencies: dict[int, list[float]] = {i: [] for i in range(CLIENTS)}
        self.errors: dict[int, list[str]] = {i: [] for i in range(CLIENTS)}
        self.cut_error: list[BaseException] = []
        self.hung = False
        self.recovered = False
        self._n = 0

    def connect(self, i: int) -> psycopg.Connection[Any]:
        p = self.proxies[i]
        dsn = self.ctx.pg.dsn(host=p.host, port=p.port, application_name=f"smoke-{i}")
        conn = psycopg.connect(dsn, autocommit=True)
        self.history.worker_event("spawn", worker=f"c{i}", os_pid=conn.info.backend_pid)
        return conn

    def query(self, i: int, sql: str, f: OpF = "read", params: Any = None) -> bool:
        """One statement, recorded as an operation of client ``c<i>``; True if it worked."""
        self._n += 1
        inv = self.history.invoke(
            op=f"smoke-{self._n}", worker=f"c{i}", f=f, value={}, lease_valid=True
        )
        t = time.perf_counter()
        try:
            self.conns[i].execute(sql, params).fetchall()
        except psycopg.Error as e:
            self.history.complete(inv, "fail", error=error_info(e))
            if i == VICTIM and f == "slow_read":
                self.cut_error.append(e)
            else:
                self.errors[i].append(f"{type(e).__name__}: {e}")
            return False
        self.latencies[i].append(time.perf_counter() - t)
        self.history.complete(inv, "ok")
        return True

    def cut_mid_query(self) -> None:
        """The victim sleeps in the server; its socket is cut once the server runs it."""
        thread = threading.Thread(
            target=self.query, args=(VICTIM, "SELECT pg_sleep(%s)", "slow_read", (SLEEP_S,))
        )
        with psycopg.connect(self.ctx.pg.admin_dsn, autocommit=True) as admin:
            thread.start()
            poll(
                lambda: admin.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = %s"
                    " AND state = 'active'",
                    (f"smoke-{VICTIM}",),
                ).fetchone(),
                timeout=10,
                what=f"smoke-{VICTIM} running its query on the server",
            )
            self.history.fault("socket_reset", worker=f"c{VICTIM}", value={"mode": "reset_peer"})
            self.proxies[VICTIM].add_toxic("reset_peer", name="cut", stream="downstream", timeout=0)
            for i in range(CLIENTS):  # the others go on while the victim's query is in flight
                if i != VICTIM:
                    self.query(i, "SELECT 1")
            thread.join(timeout=SLEEP_S + 15)
            self.hung = thread.is_alive()
        self.history.fault("heal", worker=f"c{VICTIM}", value={"undo": "socket_reset"})
        self.proxies[VICTIM].remove_toxic("cut")

    def recover(self) -> None:
        self.conns[VICTIM].close()
        self.conns[VICTIM] = self.connect(VICTIM)
        self.recovered = self.query(VICTIM, "SELECT 1")
        for i in range(CLIENTS):
            if i != VICTIM:
                self.query(i, "SELECT 1")

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for p in self.proxies:
            p.delete()

    def verdicts(self) -> list[Verdict]:
        cut = self.cut_error
        cut_ok = not self.hung and len(cut) == 1 and isinstance(cut[0], psycopg.OperationalError)
        others = {i: e for i, e in self.errors.items() if e}
        if cut:
            said = f"client {VICTIM} got {type(cut[0]).__name__}"
        else:
            said = "the client hung" if self.hung else "the client saw no error"
        return [
            Verdict(
                "S1",
                "socket reset reaches the client as a connection error",
                "ok" if cut_ok else "fail",
                said,
                evidence=[]
                if cut_ok
                else [
                    {
                        "clause": "S1",
                        "explain": said,
                        "error": [str(e) for e in cut],
                        "hung": self.hung,
                    }
                ],
            ),
            Verdict(
                "S2",
                "other clients unaffected",
                "fail" if others else "ok",
                "no error on the other clients" if not others else f"errors: {others}",
                evidence=[
                    {"clause": "S2", "explain": f"client {i}: {e[0]}", "client": i, "errors": e}
                    for i, e in others.items()
                ],
            ),
            Verdict(
                "S3",
                "the cut client recovers on a fresh connection",
                "ok" if self.recovered else "fail",
                "SELECT 1 answered after reconnecting" if self.recovered else "no answer",
                evidence=[]
                if self.recovered
                else [{"clause": "S3", "explain": "no answer after reconnecting"}],
            ),
        ]


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def run(ctx: Context) -> ScenarioResult:
    progress, run_dir = ctx.progress, ctx.run_dir.path
    history_path = run_dir / "history.jsonl"
    with (
        HistoryWriter(history_path) as history,
        ActivitySampler(ctx.pg.admin_dsn, ctx.pg.app_db, path=run_dir / "activity.jsonl") as s,
    ):
        smoke = Smoke(ctx, history)
        try:
            progress(f"{CLIENTS} clients, {QUERIES} queries each through their own proxy")
            for _ in range(QUERIES):
                for i in range(CLIENTS):
                    smoke.query(i, "SELECT count(*) FROM generate_series(1, 100)")
            progress(f"client {VICTIM} sleeps {SLEEP_S}s in the server; cutting its socket")
            smoke.cut_mid_query()
            said = _first_line(smoke.cut_error[0]) if smoke.cut_error else "no error"
            progress(f"client {VICTIM}: {said}")
            smoke.recover()
        finally:
            smoke.close()
        samples = s.samples
    config = RunConfig(
        service="smoke",
        connection_limit=CLIENTS,
        lease_ttl=0.0,
        min_idle=0.0,
        max_cooldown=0.0,
        grace=0.0,
        slack=0.0,
        retry_budget_s=0.0,
        own_app_prefix="smoke-",
        clock_start=progress.started,
    )
    recorded = Run(load_history(history_path), samples, FinalState({}, 0, 0), config)
    p50 = {
        f"client_{i}_p50_ms": round(statistics.median(v) * 1000, 3)
        for i, v in smoke.latencies.items()
    }
    return ScenarioResult(
        "smoke",
        smoke.verdicts(),
        counts={"clients": CLIENTS, "queries": len(recorded.timeline.ops)},
        timings=p50,
        notes=[
            f"proxy server: {ctx.proxies.kind} {ctx.proxies.version}",
            f"cut error: {said}",
        ],
        run=recorded,
    )


SCENARIO = Scenario(
    "smoke", "clients through the proxy, one socket reset mid-query", run, judges="S1-S3"
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
