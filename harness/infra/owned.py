"""What this process owns, written down as it is acquired, so nothing survives the harness.

Every process, cluster and directory the harness starts or makes is recorded in
an append-only file under ``$TMPDIR/thawproof-runs-<uid>/`` the moment it exists
(one ``write(2)`` per line), and marked released when it is gone. Three things
read these records:

- the **watchdog** (:mod:`harness.infra.watchdog`, testcontainers' Ryuk in a
  process of its own session), started with the first record: when its parent
  disappears — even by SIGKILL — it stops the clusters, kills the processes
  (continued first: a stopped process must not linger) and removes the
  directories that were never released;
- :func:`clean_dead_runs` (``thawproof clean``, and the start of every run):
  the records of owners that are dead and whose watchdog is dead too;
- nothing else: a live run's records are never touched.

A process is named by its pid *and* its start time (``/proc/<pid>/stat`` field
22), so a reused pid is never mistaken for one of ours.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUNS_DIR_NAME = "thawproof-runs"


def runs_dir() -> Path:
    """Where this user's records live (created on demand, private to the user)."""
    path = Path(tempfile.gettempdir()) / f"{RUNS_DIR_NAME}-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def same_process(pid: int, started: int | None) -> bool:
    """``pid`` is alive and is the process that started at ``started``."""
    now = start_time(pid)
    return now is not None and (started is None or now == started)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is over: acquiring a resource and
    recording it happen together or not at all."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_in_child() -> None:
    """``preexec_fn`` for a server started inside :func:`signals_held`: a child inherits
    the signal mask, and a server must see SIGTERM (it only calls ``pthread_sigmask``)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@dataclass(frozen=True)
class Record:
    """One owned thing: ``kind`` process | cluster | dir, and how to find it."""

    key: str
    kind: str
    pid: int | None = None
    started: int | None = None
    path: str | None = None
    label: str = ""


class Owned:
    """The records of one owner process (use :func:`owned` for this process's)."""

    def __init__(self, *, watchdog: bool = True) -> None:
        self.owner = os.getpid()
        self.owner_started = start_time(self.owner)
        self.path = runs_dir() / f"{self.owner}-{self.owner_started}.jsonl"
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._seq = 0
        self._live: dict[str, Record] = {}
        self.watchdog: subprocess.Popen[bytes] | None = None
        self._write({"kind": "owner", "pid": self.owner, "started": self.owner_started})
        if watchdog:
            self._start_watchdog()
        atexit.register(self.close)

    def _write(self, line: dict[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)

    def _start_watchdog(self) -> None:
        env = dict(os.environ)
        repo = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
        self.watchdog = subprocess.Popen(
            [sys.executable, "-m", "harness.infra.watchdog", str(self.path), str(self.owner)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C is not for it
            env=env,
        )
        self._write(
            {
                "kind": "watchdog",
                "pid": self.watchdog.pid,
                "started": start_time(self.watchdog.pid),
            }
        )

    def _add(self, kind: str, **fields: Any) -> str:
        with self._lock:
            self._seq += 1
            key = f"{kind}-{self._seq}"
        record = Record(key=key, kind=kind, **fields)
        self._live[key] = record
        self._write({"kind": kind, "key": key, **fields})
        return key

    def process(self, pid: int, label: str = "") -> str:
        """A process this run started (killed, continued first, if the run dies)."""
        return self._add("process", pid=pid, started=start_time(pid), label=label)

    def directory(self, path: str | os.PathLike[str], label: str = "") -> str:
        """A directory this run made (removed if the run dies)."""
        return self._add("dir", path=str(path), label=label)

    def cluster(self, data_dir: str | os.PathLike[str], label: str = "") -> str:
        """A PostgreSQL data directory whose postmaster this run started (stopped with
        an immediate shutdown if the run dies; the directory is recorded apart)."""
        return self._add("cluster", path=str(data_dir), label=label)

    def release(self, key: str) -> None:
        """The thing is gone (the run released it itself)."""
        if self._live.pop(key, None) is not None:
            self._write({"kind": "release", "key": key})

    def close(self) -> None:
        """The owner exits normally: release what is still live, remove the record."""
        atexit.unregister(self.close)
        leftover = list(self._live.values())
        for record in reversed(leftover):
            clean_record(record)
            self.release(record.key)
        with self._lock, contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self.watchdog is not None and self.owner == os.getpid():
            # nothing is left for it to clean (the record is gone); it ignores
            # SIGTERM by design, and would otherwise outlive this process
            with contextlib.suppress(ProcessLookupError):
                self.watchdog.kill()
            self.watchdog.wait()
            self.watchdog = None


_OWNED: Owned | None = None
_OWNED_LOCK = threading.Lock()


def owned() -> Owned:
    """This process's records (and its watchdog), started on first use."""
    global _OWNED
    with _OWNED_LOCK:
        if _OWNED is None or _OWNED.owner != os.getpid():
            _OWNED = Owned()
        return _OWNED


# -------------------------------------------------------------------- cleaning up


def read_records(path: Path) -> tuple[dict[str, Any], list[Record]]:
    """The owner line (with its watchdog) and the records never released."""
    head: dict[str, Any] = {}
    live: dict[str, Record] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return head, []
    for line in lines:
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # a torn last line
        kind = raw.get("kind")
        if kind == "owner":
            head.update(owner=raw.get("pid"), owner_started=raw.get("started"))
        elif kind == "watchdog":
            head.update(watchdog=raw.get("pid"), watchdog_started=raw.get("started"))
        elif kind == "release":
            live.pop(str(raw.get("key")), None)
        elif kind in ("process", "dir", "cluster"):
            fields = {k: raw.get(k) for k in ("pid", "started", "path", "label")}
            live[str(raw["key"])] = Record(key=str(raw["key"]), kind=kind, **fields)
    return head, list(live.values())


def _kill(pid: int, started: int | None) -> bool:
    if not same_process(pid, started):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # never leave a stopped process behind
        os.kill(pid, signal.SIGKILL)
    return True


def _stop_postmaster(data_dir: Path) -> None:
    """SIGQUIT (``pg_ctl stop -m immediate``) the postmaster of ``data_dir``, then
    SIGKILL it if it does not go within 5 s."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    if start_time(pid) is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 5
    while start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)  # a dead owner's postmaster: nothing else to wait on
    with contextlib.suppress(ProcessLookupError):
        if start_time(pid) is not None:
            os.kill(pid, signal.SIGKILL)


def clean_record(record: Record) -> str | None:
    """Undo one owned thing; a sentence saying what was done (None: nothing was left)."""
    if record.kind == "process" and record.pid is not None:
        if _kill(record.pid, record.started):
            return f"killed process {record.pid} ({record.label or 'unnamed'})"
    elif record.kind == "cluster" and record.path:
        data = Path(record.path)
        if (data / "postmaster.pid").exists():
            _stop_postmaster(data)
            return f"stopped the PostgreSQL cluster in {data}"
    elif record.kind == "dir" and record.path and os.path.exists(record.path):
        shutil.rmtree(record.path, ignore_errors=True)
        return f"removed {record.path}"
    return None


def clean_file(path: Path) -> list[str]:
    """Clean everything a (dead) owner's record file lists, then remove the file.
    Processes first, then clusters, then directories."""
    _, records = read_records(path)
    order = {"process": 0, "cluster": 1, "dir": 2}
    done = [
        said
        for record in sorted(records, key=lambda r: order[r.kind])
        if (said := clean_record(record)) is not None
    ]
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return done


def clean_dead_runs() -> list[str]:
    """What earlier runs that died (owner and watchdog both gone) left behind, cleaned;
    one sentence per thing. A live run's records are left alone."""
    done: list[str] = []
    for path in sorted(runs_dir().glob("*.jsonl")):
        head, _ = read_records(path)
        owner, watchdog = head.get("owner"), head.get("watchdog")
        if isinstance(owner, int) and same_process(owner, head.get("owner_started")):
            continue
        if isinstance(watchdog, int) and same_process(watchdog, head.get("watchdog_started")):
            continue  # its watchdog is on it
        done += clean_file(path)
    return done
