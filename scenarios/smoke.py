"""smoke: a few clients through their own proxies, one socket reset mid-query.

The foundation end to end: a real PostgreSQL behind the proxy server, three
plain psycopg clients each through its own proxy, queries on all of them, and
one socket cut with ``reset_peer`` while that client waits in ``pg_sleep``.
What must hold: the cut reaches that client as a connection error (not a
hang), the other clients never notice, and the cut client works again on a
fresh connection once the toxic is gone.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import psycopg

from harness.check import Verdict
from harness.cli import Context, Scenario, main_for
from harness.report import ScenarioResult
from harness.wait import poll

CLIENTS = 3
QUERIES = 50
SLEEP_S = 1.0


def _wait_active(admin: psycopg.Connection[tuple[object, ...]], app: str, timeout: float) -> None:
    """Block until the backend named ``app`` runs a statement (the event we cut on)."""
    poll(
        lambda: admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND state = 'active'",
            (app,),
        ).fetchone(),
        timeout=timeout,
        what=f"{app} running its query on the server",
    )


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def run(ctx: Context) -> ScenarioResult:
    pg, progress = ctx.pg, ctx.progress
    proxies = [ctx.proxies.create_proxy(f"smoke-{i}", (pg.host, pg.port)) for i in range(CLIENTS)]
    conns = [
        psycopg.connect(
            pg.dsn(host=p.host, port=p.port, application_name=f"smoke-{i}"), autocommit=True
        )
        for i, p in enumerate(proxies)
    ]
    latencies: dict[int, list[float]] = {i: [] for i in range(CLIENTS)}
    errors: dict[int, list[str]] = {i: [] for i in range(CLIENTS)}
    try:
        progress(f"{CLIENTS} clients, {QUERIES} queries each through their own proxy")
        for _ in range(QUERIES):
            for i, conn in enumerate(conns):
                t = time.perf_counter()
                conn.execute("SELECT count(*) FROM generate_series(1, 100)").fetchone()
                latencies[i].append(time.perf_counter() - t)

        victim = 1
        progress(f"client {victim} sleeps {SLEEP_S}s in the server; cutting its socket mid-query")
        cut_error: list[BaseException] = []

        def sleeper() -> None:
            try:
                conns[victim].execute("SELECT pg_sleep(%s)", (SLEEP_S,))
            except psycopg.Error as e:
                cut_error.append(e)

        with psycopg.connect(pg.admin_dsn, autocommit=True) as admin:
            thread = threading.Thread(target=sleeper, name="smoke-sleeper")
            thread.start()
            _wait_active(admin, f"smoke-{victim}", timeout=10)
            proxies[victim].add_toxic("reset_peer", name="cut", stream="downstream", timeout=0)
            # the others go on while the victim's query is in flight
            for i, conn in enumerate(conns):
                if i != victim:
                    try:
                        conn.execute("SELECT 1").fetchone()
                    except psycopg.Error as e:
                        errors[i].append(f"{type(e).__name__}: {e}")
            thread.join(timeout=SLEEP_S + 15)
            hung = thread.is_alive()
        proxies[victim].remove_toxic("cut")
        progress(f"client {victim}: {_first_line(cut_error[0]) if cut_error else 'no error'}")

        recovered = False
        conns[victim].close()
        conns[victim] = psycopg.connect(
            pg.dsn(host=proxies[victim].host, port=proxies[victim].port), autocommit=True
        )
        recovered = conns[victim].execute("SELECT 1").fetchone() == (1,)
        for i, conn in enumerate(conns):
            if i != victim:
                try:
                    conn.execute("SELECT 1").fetchone()
                except psycopg.Error as e:
                    errors[i].append(f"{type(e).__name__}: {e}")
    finally:
        for conn in conns:
            conn.close()
        for p in proxies:
            p.delete()

    cut_ok = not hung and len(cut_error) == 1 and isinstance(cut_error[0], psycopg.OperationalError)
    others = {i: e for i, e in errors.items() if e}
    verdicts = [
        Verdict(
            "S1",
            "socket reset reaches the client as a connection error",
            "ok" if cut_ok else "fail",
            f"client {victim} got {type(cut_error[0]).__name__}"
            if cut_error
            else ("the client hung" if hung else "the client saw no error"),
            evidence=[] if cut_ok else [{"error": [str(e) for e in cut_error], "hung": hung}],
        ),
        Verdict(
            "S2",
            "other clients unaffected",
            "fail" if others else "ok",
            "no error on the other clients" if not others else f"errors: {others}",
            evidence=[{"client": i, "errors": e} for i, e in others.items()],
        ),
        Verdict(
            "S3",
            "the cut client recovers on a fresh connection",
            "ok" if recovered else "fail",
            "SELECT 1 answered after reconnecting" if recovered else "no answer",
        ),
    ]
    p50 = {
        f"client_{i}_p50_ms": round(statistics.median(v) * 1000, 3) for i, v in latencies.items()
    }
    return ScenarioResult(
        "smoke",
        verdicts,
        counts={"clients": CLIENTS, "queries": CLIENTS * QUERIES + 2 * (CLIENTS - 1) + 1},
        timings=p50,
        notes=[
            f"proxy server: {ctx.proxies.kind} {ctx.proxies.version}",
            f"cut error: {_first_line(cut_error[0])}" if cut_error else "cut error: none",
        ],
    )


SCENARIO = Scenario("smoke", "clients through the proxy, one socket reset mid-query", run)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
