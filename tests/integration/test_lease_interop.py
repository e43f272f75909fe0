"""Interop with pg-aequor 0.1.4 itself, run from its own source in Node.

pg-aequor is not on npm, so these tests need a checkout of
github.com/dimaq12/pg-aequor (tag v0.1.4) in ``PG_AEQUOR_DIR``, ``node`` on PATH and
``make node-drivers`` (npm's ``pg``, from ``harness/drivers/node/package-lock.json``);
without them they skip, saying which is missing. The token vectors in
``tests/unit/test_lease_token.py`` were made with the same code and need no Node.

What is shown here, against a real PostgreSQL:

- the token rules agree on random names (a differential over 2000 names, both ways);
- a pg-aequor client and a Python client of one service and secret reap each other's
  zombies (each verifies the other's signed lease);
- mixed fleets, measured: pg-aequor leads with a SESSION lock on
  ``(0x50474151, hashtext(tag))``, ours with a transaction lock on its own namespace,
  so they do not exclude each other; ours also tries pg-aequor's key, non-blocking and
  transaction-scoped, which keeps pg-aequor reapers out while a Python pass runs; and
  a frozen pg-aequor leader keeps its session lock for as long as it is frozen, which
  is why ours never waits for that key (harness/lease/README.md, "Mixed fleets").
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from harness.infra.postgres import PostgresServer
from harness.lease import LeaseClient, token
from tests.integration.lease_support import (
    SECRET,
    Recorder,
    backend_alive,
    config,
    service_name,
    wait_for,
    wait_gone,
    wait_idle,
)

REPO = Path(__file__).resolve().parents[2]
DRIVERS = REPO / "harness" / "drivers" / "node"
AEQUOR_NS = 0x50474151  # pg-aequor's Reaper.LOCK_NS ("PGAQ"), lib/reaper.js
AEQUOR_DIR = os.environ.get("PG_AEQUOR_DIR", "")


def _missing() -> str | None:
    if not AEQUOR_DIR:
        return (
            "PG_AEQUOR_DIR is unset: it must name a checkout of github.com/dimaq12/pg-aequor "
            "v0.1.4 (not on npm; CI reaches only PyPI, Debian and npm)"
        )
    if not (Path(AEQUOR_DIR) / "lib" / "lease.js").is_file():
        return f"PG_AEQUOR_DIR={AEQUOR_DIR} has no lib/lease.js: not a pg-aequor checkout"
    if shutil.which("node") is None:
        return "node is not on PATH"
    if not (DRIVERS / "node_modules" / "pg").is_dir():
        return f"npm's pg is not installed in {DRIVERS}: run `make node-drivers`"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


class AequorDriver:
    """A Node process running a pg-aequor client (harness/drivers/node/aequor_driver.js)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(DRIVERS / "aequor_driver.js")],
            cwd=DRIVERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PG_AEQUOR_DIR": AEQUOR_DIR},
        )
        self._messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self._ids = iter(range(1, 1 << 30))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_event("ready", timeout=30)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._messages.put(json.loads(line))

    def _next(self, deadline: float, what: str) -> dict[str, Any]:
        try:
            msg = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"pg-aequor driver: timed out waiting for {what}") from None
        if "event" in msg:
            self.events.append(msg)
        return msg

    def call(self, cmd: str, timeout: float = 30.0, **args: Any) -> dict[str, Any]:
        ident = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": ident, "cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            msg = self._next(deadline, f"the reply to {cmd}")
            if msg.get("reply") == ident:
                if "error" in msg:
                    raise RuntimeError(f"pg-aequor driver: {cmd}: {msg['error']}")
                return msg

    def wait_event(
        self,
        name: str,
        timeout: float = 30.0,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
    ) -> dict[str, Any]:
        """The first event ``name`` (matching ``where``) not yet waited for."""
        seen = getattr(self, "_consumed", 0)
        deadline = time.monotonic() + timeout
        while True:
            for i in range(seen, len(self.events)):
                e = self.events[i]
                if e["event"] == name and where(e):
                    self._consumed = i + 1
                    return e
            seen = len(self.events)
            self._next(deadline, f"event {name!r}")

    def connect(self, pg: PostgresServer, service: str, **kw: Any) -> dict[str, Any]:
        params = conninfo_to_dict(pg.app_dsn)
        conn = {
            "host": params["host"],
            "port": int(str(params["port"])),
            "user": params["user"],
            "password": params.get("password"),
            "database": params["dbname"],
        }
        return self.call(
            "connect",
            conn=conn,
            service=service,
            secret=kw.pop("secret", SECRET),
            leaseTtlMs=kw.pop("lease_ttl_ms", 60_000),
            minIdleSec=kw.pop("min_idle_sec", 0.001),
        )

    def stop(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.cont()
            try:
                self.call("exit", timeout=5)
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def aequor() -> Iterator[Callable[[], AequorDriver]]:
    """Start pg-aequor clients (each a Node process); all are ended afterwards."""
    started: list[AequorDriver] = []

    def start() -> AequorDriver:
        d = AequorDriver()
        started.append(d)
        return d

    yield start
    for d in started:
        d.close()


@pytest.fixture
def admin(pg: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        yield conn


def aequor_lock_holder(admin: psycopg.Connection[Any], service: str) -> int | None:
    """The backend holding pg-aequor's advisory lock of ``service``, if any."""
    row = admin.execute(
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.classid = %s::bigint::oid AND l.objsubid = 2"
        " AND l.objid = (hashtext(%s)::bigint & 4294967295)::oid",
        (AEQUOR_NS, token.service_tag(service)),
    ).fetchone()
    return int(row[0]) if row else None


# -------------------------------------------------------------------- tokens


def _random_name(rng: random.Random) -> str:
    """Mostly ASCII, with what UTF-16 makes different: emoji and other astral
    characters, lone surrogates, combining marks, BMP letters, delimiters."""
    pools: list[Callable[[], str]] = [
        lambda: rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"),
        lambda: rng.choice(" /.;=%\u00e9\u00fc\u00df"),
        lambda: chr(rng.randrange(0x300, 0x370)),
        lambda: chr(rng.randrange(0x4E00, 0x9FFF)),
        lambda: chr(rng.randrange(0x1F600, 0x1F650)),
        lambda: chr(rng.choice([0x10000, 0x1D400, 0x20000, 0x1F3FB, 0x10FFFF])),
        lambda: chr(rng.randrange(0xD800, 0xE000)),
    ]
    weights = [70, 6, 3, 3, 3, 2, 1]
    return "".join(rng.choices(pools, weights)[0]() for _ in range(rng.randrange(1, 30)))


def test_token_rules_agree_with_aequor_on_random_names(aequor: Callable[[], AequorDriver]) -> None:
    """2000 random names: pg-aequor's tokens equal ours, and each side accepts the
    other's (pg-aequor's view: its reaper's prefix and parseAndVerify)."""
    rng = random.Random(20260101)
    secret = "differential-secret-0123"
    names = [_random_name(rng) for _ in range(2000)]
    cases = [(n, token.new_instance(), rng.randrange(10**12, 10**13)) for n in names]
    assert sum(any(ord(c) > 0xFFFF for c in n) for n in names) > 300  # the hard cases are there
    node = aequor()
    minted = node.call(
        "tokens",
        requests=[
            {"op": "encode", "service": s, "instance": i, "secret": secret, "expiry": e}
            for s, i, e in cases
        ],
    )["results"]
    ours = [token.encode(s, i, e, secret) for s, i, e in cases]
    encode_mismatches = [
        (s, o, m)
        for (s, _, _), o, m in zip(cases, ours, minted, strict=True)
        if o != m.get("token")
    ]
    assert encode_mismatches == []
    rejected_by_us = [
        m["token"]
        for (s, _, _), m in zip(cases, minted, strict=True)
        if not token.verify(m["token"], s, secret)
    ]
    assert rejected_by_us == []
    verdicts = node.call(
        "tokens",
        requests=[
            {"op": "verify", "service": s, "instance": "AAAAAAAA", "secret": secret, "token": t}
            for (s, _, _), t in zip(cases, ours, strict=True)
        ],
    )["results"]
    assert [t for t, v in zip(ours, verdicts, strict=True) if not v.get("ok")] == []


# ------------------------------------------------ reaping each other's zombies


def test_aequor_and_python_reap_each_others_zombies(
    pg: PostgresServer, admin: psycopg.Connection[Any], aequor: Callable[[], AequorDriver]
) -> None:
    """Same service, same secret: each verifies the other's lease and kills the other's
    expired, idle connection; each client survives the kill (crash safety)."""
    svc = service_name("interop")
    node = aequor()
    node_pid = node.connect(pg, svc, lease_ttl_ms=300)["pid"]
    assert node.wait_event("reap")["locked"] is True  # its pass on connect
    wait_idle(admin, node_pid)
    row = admin.execute(
        "SELECT application_name FROM pg_stat_activity WHERE pid = %s", (node_pid,)
    ).fetchone()
    assert row is not None
    minted = token.verify(row[0], svc, SECRET)  # pg-aequor's lease, verified here
    assert minted is not None
    assert minted.service == token.service_tag(svc)
    assert token.verify(row[0], svc, SECRET + "x") is None
    with LeaseClient(pg.app_dsn, config(svc)) as py:
        py.connect()
        wait_for(lambda: node_pid in killed_by(py.reap_now()), "our reaper to kill pg-aequor's")
        wait_gone(admin, node_pid)
        assert node.wait_event("client_dead")["err"]["code"] == "57P01"
    # and back: a Python client's expired lease, reaped by pg-aequor's own code
    with LeaseClient(pg.app_dsn, config(svc, lease_ttl=0.5)) as victim:
        victim.connect()
        victim_pid = victim.backend_pid
        assert victim_pid is not None
        other = aequor()
        other.connect(pg, svc)
        other.wait_event("reap")

        def aequor_kills() -> bool:
            other.call("reconnect")
            return other.wait_event("reap")["killed"] >= 1 and not backend_alive(admin, victim_pid)

        wait_for(aequor_kills, "pg-aequor's reaper to kill our expired connection", 20)
        assert victim.execute("SELECT 1") == [(1,)]  # reconnected, nothing raised
        assert victim.backend_pid != victim_pid


def killed_by(ledger: list[dict[str, Any]]) -> set[int]:
    return {e["pid"] for e in ledger if e["result"] == "killed"}


# ------------------------------------------------------------ mixed fleets


def _aequor_mid_pass(node: AequorDriver) -> int:
    """Make ``node`` start a reaper pass and stop it right after it took its session
    lock; its backend pid."""
    node.call("pause_next_scan")
    node.call("reconnect")
    return int(node.wait_event("paused")["pid"])


def _aequor_pass_during_python_pass(
    py: LeaseClient, rec: Recorder, node: AequorDriver
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One pg-aequor pass while a Python pass leads (run from its ``locked`` event):
    (the Python ``locked`` event, pg-aequor's ``reap`` result)."""
    seen: dict[str, dict[str, Any]] = {}

    def during(payload: dict[str, Any]) -> None:
        if payload.get("event") == "locked":
            seen["locked"] = payload
            node.call("reconnect")
            seen["aequor"] = node.wait_event("reap")

    rec.on["on_reap"] = during
    try:
        py.reap_now()
    finally:
        rec.on.pop("on_reap")
    assert set(seen) == {"locked", "aequor"}, "the Python pass did not lead"
    return seen["locked"], seen["aequor"]


def test_without_aequor_key_the_two_reapers_never_exclude_each_other(
    pg: PostgresServer, admin: psycopg.Connection[Any], aequor: Callable[[], AequorDriver]
) -> None:
    """(a) What a mixed fleet had before: our xact lock on our namespace and
    pg-aequor's session lock on 0x50474151 are different keys."""
    svc = service_name("mixed-a")
    node = aequor()
    node.connect(pg, svc)
    node.wait_event("reap")
    rec = Recorder()
    with LeaseClient(
        pg.app_dsn, config(svc, aequor_lock_namespace=None), rec.hooks("on_reap")
    ) as py:
        py.connect()
        holder = _aequor_mid_pass(node)
        assert aequor_lock_holder(admin, svc) == holder
        py.reap_now()
        assert [e["event"] for e in rec.of("on_reap")][:1] == ["locked"]  # led beside it
        node.call("resume")
        assert node.wait_event("reap")["locked"] is True
        locked, theirs = _aequor_pass_during_python_pass(py, rec, node)
        assert locked["aequor_lock"] is None
        assert theirs["locked"] is True  # pg-aequor led during our pass too


def test_a_python_pass_keeps_aequor_reapers_out(
    pg: PostgresServer, aequor: Callable[[], AequorDriver]
) -> None:
    """(b) With pg-aequor's key also taken (xact-scoped, non-blocking), a pg-aequor
    pass that starts while ours runs finds the lock busy, and leads again after."""
    svc = service_name("mixed-b")
    node = aequor()
    node.connect(pg, svc)
    node.wait_event("reap")
    rec = Recorder()
    with LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as py:
        py.connect()
        locked, theirs = _aequor_pass_during_python_pass(py, rec, node)
        assert locked["aequor_lock"] is True
        assert theirs == {"event": "reap", "locked": False, "killed": 0}
        node.call("reconnect")
        assert node.wait_event("reap")["locked"] is True  # our COMMIT released it


def test_a_live_aequor_leader_does_not_stop_a_python_pass(
    pg: PostgresServer, admin: psycopg.Connection[Any], aequor: Callable[[], AequorDriver]
) -> None:
    """(b) The other way: pg-aequor's session lock refuses us its key, and our pass
    leads anyway on our own key (it only tries pg-aequor's)."""
    svc = service_name("mixed-b2")
    node = aequor()
    node.connect(pg, svc)
    node.wait_event("reap")
    rec = Recorder()
    with LeaseClient(pg.app_dsn, config(svc), rec.hooks("on_reap")) as py:
        py.connect()
        holder = _aequor_mid_pass(node)
        assert aequor_lock_holder(admin, svc) == holder
        py.reap_now()
        events = rec.of("on_reap")
        assert events[0]["event"] == "locked"
        assert events[0]["aequor_lock"] is False
        assert events[-1]["event"] == "pass_end"
        node.call("resume")
        assert node.wait_event("reap")["locked"] is True


def test_a_frozen_aequor_leader_keeps_its_key_and_our_reaper_reaps_it(
    pg: PostgresServer, admin: psycopg.Connection[Any], aequor: Callable[[], AequorDriver]
) -> None:
    """(c) A pg-aequor leader SIGSTOPped holding its session lock keeps it for as long
    as it is frozen (its session is idle, outside a transaction: no timeout of ours
    applies), and every pg-aequor reaper of the service is stalled. Had our reaper
    needed that key it would be stalled too; it leads on its own key, and once the
    frozen leader's lease expired it kills it, which gives pg-aequor its lock back."""
    svc = service_name("mixed-c")
    lock_timeout = 0.5
    lease_ms = 2500  # the frozen leader's lease: expires well after lock_timeout
    frozen = aequor()
    frozen.connect(pg, svc, lease_ttl_ms=lease_ms)
    frozen.wait_event("reap")
    holder = _aequor_mid_pass(frozen)
    frozen.stop()
    stopped_at = time.monotonic()
    other = aequor()
    other.connect(pg, svc)
    assert other.wait_event("reap")["locked"] is False  # pg-aequor's fleet is stalled
    rec = Recorder()
    cfg = config(svc, reaper_lock_timeout=lock_timeout)
    passes: list[tuple[float, bool, int | None]] = []
    with LeaseClient(pg.app_dsn, cfg, rec.hooks("on_reap")) as py:

        def our_pass_kills_it() -> bool:
            ledger = py.reap_now()
            locked = rec.of("on_reap", "locked")[-1]
            passes.append(
                (
                    time.monotonic() - stopped_at,
                    locked["aequor_lock"],
                    aequor_lock_holder(admin, svc),
                )
            )
            return holder in killed_by(ledger)

        wait_for(our_pass_kills_it, "our reaper to kill the frozen pg-aequor leader", 30)
    before_kill = passes[:-1]
    # Every pass before the kill led (on our key), was refused pg-aequor's key, and
    # found it still held by the frozen leader, long after our lock timeout.
    assert before_kill
    assert all(a is False and h == holder for _, a, h in before_kill)
    assert before_kill[-1][0] > lock_timeout * 3
    assert not rec.of("on_reap", "busy")
    wait_for(lambda: aequor_lock_holder(admin, svc) is None, "pg-aequor's lock to be released")

    def aequor_leads() -> bool:
        other.call("reconnect")
        return bool(other.wait_event("reap")["locked"])

    wait_for(aequor_leads, "pg-aequor's fleet to lead again", 10)


_FROZEN_REAPER = """
import sys
from harness.lease import LeaseConfig, Reaper

def hook(payload):
    if payload.get("event") == "locked":
        print("LOCKED", payload["reaper_pid"], payload["aequor_lock"], flush=True)
        sys.stdin.read()  # hold the locks until SIGSTOPped (and beyond)

cfg = LeaseConfig(service=sys.argv[2], secret=sys.argv[3], lease_ttl=1.0,
                  reaper_lock_timeout=float(sys.argv[4]))
Reaper(cfg, {"on_reap": hook}).run_once(sys.argv[1])
"""


def test_a_frozen_python_reaper_gives_aequor_its_key_back_within_its_timeout(
    pg: PostgresServer, admin: psycopg.Connection[Any], aequor: Callable[[], AequorDriver]
) -> None:
    """Taking pg-aequor's key costs pg-aequor nothing when we freeze: it is held in our
    transaction, which the server ends after ``reaper_lock_timeout``."""
    svc = service_name("mixed-frozen-py")
    lock_timeout = 1.0
    node = aequor()
    node.connect(pg, svc)
    node.wait_event("reap")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _FROZEN_REAPER,
            pg.app_dsn,
            svc,
            SECRET,
            str(lock_timeout),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    stopped = False
    try:
        assert child.stdout is not None
        line = wait_for(child.stdout.readline, "the child reaper to lead", 30).split()
        assert line[0] == "LOCKED"
        assert line[2] == "True"
        child_backend = int(line[1])
        os.kill(child.pid, signal.SIGSTOP)
        stopped = True
        frozen_at = time.monotonic()
        assert aequor_lock_holder(admin, svc) == child_backend
        node.call("reconnect")
        assert node.wait_event("reap")["locked"] is False

        def aequor_leads() -> bool:
            node.call("reconnect")
            return bool(node.wait_event("reap")["locked"])

        wait_for(aequor_leads, "pg-aequor to get its key back", lock_timeout + 10)
        took = time.monotonic() - frozen_at
        assert took < lock_timeout + 3.0, f"pg-aequor's key came back after {took:.2f}s"
        wait_gone(admin, child_backend)  # 25P03: idle_in_transaction_session_timeout
    finally:
        if stopped:
            os.kill(child.pid, signal.SIGCONT)
        child.kill()
        child.wait(10)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()
