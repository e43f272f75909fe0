"""The ``pg_stat_activity`` sampler: what the server saw, recorded beside the history.

:class:`ActivitySampler` snapshots ``pg_stat_activity`` of the service's
database many times a second (20 Hz by default; at least 10 is the promise)
from a superuser connection, on its own thread. Each sample is appended to a
JSON-lines file as soon as it is taken, so a crashed run still leaves the
timeline. It rides out a server restart: it reconnects and records the gap.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import psycopg

from harness.errors import UsageError
from harness.history import ActivityRow, Sample, dumps
from harness.wait import poll

SAMPLER_APPLICATION = "thawproof-sampler"
"""The sampler's own ``application_name`` (it never samples itself)."""

SAMPLER_NICE = -10
"""The nice value of the sampler thread and its backend, where raising priority is allowed."""

_SAMPLE_SQL = """
SELECT a.pid, a.application_name, a.state,
       extract(epoch FROM a.state_change)::float8,
       extract(epoch FROM a.backend_start)::float8,
       extract(epoch FROM a.xact_start)::float8,
       a.usename, a.backend_type, r.rolsuper
  FROM pg_stat_activity a
  LEFT JOIN pg_roles r ON r.oid = a.usesysid
 WHERE a.datname = %s AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
"""


class ActivitySampler:
    """Samples ``pg_stat_activity`` of ``dbname`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        admin_dsn: str,
        dbname: str,
        *,
        interval: float = 0.05,
        path: Path | None = None,
    ) -> None:
        if interval <= 0 or interval > 0.1:
            raise UsageError(f"interval must be in (0, 0.1] s (at least 10 Hz), got {interval}")
        self._dsn = admin_dsn
        self._dbname = dbname
        self._interval = interval
        self._path = path
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: IO[str] | None = None
        self.errors = 0
        self.gaps: list[tuple[float, float]] = []  # (from, to) monotonic, server unreachable
        self.elevated = False  # the thread and its current backend run at SAMPLER_NICE

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> Self:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("a", buffering=1)
        self._thread = threading.Thread(target=self._loop, name="activity-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- results -------------------------------------------------------------------
    @property
    def samples(self) -> list[Sample]:
        with self._lock:
            return list(self._samples)

    def rate_hz(self) -> float:
        """Samples per second over the sampler's life so far."""
        samples = self.samples
        if len(samples) < 2:
            return 0.0
        return (len(samples) - 1) / (samples[-1].time - samples[0].time)

    def wait_for(self, predicate: Callable[[Sample], bool], timeout: float) -> Sample:
        """Block until a sample taken from now on satisfies ``predicate``; fail loudly."""
        seen = len(self.samples)

        def probe() -> Sample | None:
            nonlocal seen
            samples = self.samples
            found = next((s for s in samples[seen:] if predicate(s)), None)
            seen = len(samples)
            return found

        return poll(
            probe,
            timeout=timeout,
            what="a pg_stat_activity sample satisfying the condition",
            interval=self._interval / 2,
            max_interval=self._interval / 2,
        )

    # -- the thread ------------------------------------------------------------------
    def _loop(self) -> None:
        conn: psycopg.Connection[tuple[Any, ...]] | None = None
        gap_start: float | None = None
        thread_raised = _raise_priority(threading.get_native_id())
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = psycopg.connect(
                            self._dsn,
                            autocommit=True,
                            connect_timeout=2,
                            application_name=SAMPLER_APPLICATION,
                        )
                        backend = conn.info.backend_pid
                        self.elevated = (
                            thread_raised
                            and _is_local_backend(backend)
                            and (_raise_priority(backend))
                        )
                    now, wall = time.monotonic(), time.time()
                    rows = conn.execute(_SAMPLE_SQL, (self._dbname,)).fetchall()
                    self._record(Sample(now, wall, tuple(_row(r) for r in rows)))
                    if gap_start is not None:
                        self.gaps.append((gap_start, now))
                        gap_start = None
                except psycopg.Error:
                    self.errors += 1
                    if gap_start is None:
                        gap_start = time.monotonic()
                    if conn is not None:
                        conn.close()
                    conn = None
                next_at += self._interval
                delay = next_at - time.monotonic()
                if delay < 0:  # fell behind (e.g. during a restart): do not burst to catch up
                    next_at = time.monotonic()
                    delay = 0
                self._stop.wait(delay)
        finally:
            if conn is not None:
                conn.close()

    def _record(self, sample: Sample) -> None:
        with self._lock:
            self._samples.append(sample)
        if self._file is not None:
            self._file.write(dumps(sample))


def _raise_priority(pid: int) -> bool:
    """Set ``pid``'s (a process's or a thread's) nice value to :data:`SAMPLER_NICE`;
    False where that is not permitted."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, SAMPLER_NICE)
    except OSError:
        return False
    return True


def _is_local_backend(pid: int) -> bool:
    """Whether ``pid`` on this machine is a PostgreSQL backend whose parent is a
    postmaster (a server in a container has pids of its own: leave those alone)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        status = Path(f"/proc/{pid}/status").read_text()
        parent = int(status.split("PPid:", 1)[1].split()[0])
        own = Path(f"/proc/{pid}/comm").read_text().strip()
        postmaster = Path(f"/proc/{parent}/comm").read_text().strip()
        return own == "postgres" and postmaster == "postgres"
    return False


def _row(r: tuple[Any, ...]) -> ActivityRow:
    pid, app, state, state_change, backend_start, xact_start, usename, backend_type, su = r
    return ActivityRow(
        pid=int(pid),
        application_name=app,
        state=state,
        state_change=state_change,
        backend_start=backend_start,
        xact_start=xact_start,
        usename=usename,
        backend_type=backend_type,
        superuser=su,
    )
