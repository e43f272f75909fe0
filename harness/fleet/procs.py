"""Process states from ``/proc``, signals that wait for their effect, and the leftover check.

A signal is asynchronous: ``kill(pid, SIGSTOP)`` returns before the process is
stopped. :func:`stop` and :func:`cont` return only once ``/proc`` shows the new
state, so the step after a freeze really happens to a frozen process; they fail
loudly at their deadline.

Workers are forked by multiprocessing's forkserver, so they are grandchildren
of the controller: :func:`assert_no_leftover_processes` looks at every
descendant of this process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterable

from harness.errors import SignalTimeout
from harness.wait import poll

STOPPED_STATES = frozenset({"T", "t"})
GONE_STATES = frozenset({"Z", "X"})

_live_lock = threading.Lock()
_live_workers: dict[int, str] = {}
"""Worker os pids started by any fleet of this process and not yet reaped, with a label."""


def register_worker(pid: int, label: str) -> None:
    with _live_lock:
        _live_workers[pid] = label


def unregister_worker(pid: int) -> None:
    with _live_lock:
        _live_workers.pop(pid, None)


def live_workers() -> dict[int, str]:
    with _live_lock:
        return dict(_live_workers)


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``R``, ``S``, ``T``, ``Z``...), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: the state follows the LAST ')'.
    return data.rsplit(")", 1)[1].split()[0]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def descendants(root: int | None = None) -> list[int]:
    """Every live descendant of ``root`` (this process by default), from ``/proc``."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ppid = _ppid(int(name))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(name))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    state = proc_state(pid)
    return state is not None and state not in GONE_STATES


def wait_state(pid: int, want: Iterable[str], timeout: float, *, what: str) -> str:
    """Wait until ``pid`` is in one of the states ``want`` (None stands for gone)."""
    wanted = set(want)

    def reached() -> str | None:
        state = proc_state(pid)
        if state in wanted or (state is None and "gone" in wanted):
            return state or "gone"
        return None

    return poll(
        reached,
        timeout=timeout,
        what=f"{what}: pid {pid} in state {sorted(wanted)}",
        interval=0.0005,
        max_interval=0.01,
        error=SignalTimeout,
        describe=lambda: proc_state(pid),
    )


def stop(pid: int, timeout: float) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped."""
    os.kill(pid, signal.SIGSTOP)
    wait_state(pid, STOPPED_STATES | GONE_STATES | {"gone"}, timeout, what="SIGSTOP")


def cont(pid: int, timeout: float) -> None:
    """SIGCONT ``pid`` and wait until it is no longer stopped."""
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        return
    poll(
        lambda: None if proc_state(pid) in STOPPED_STATES else True,
        timeout=timeout,
        what=f"SIGCONT: pid {pid} no longer stopped",
        interval=0.0005,
        max_interval=0.01,
        error=SignalTimeout,
        describe=lambda: proc_state(pid),
    )


def kill(pid: int) -> None:
    """SIGKILL ``pid`` (the one signal a stopped process acts on without being continued)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def leftover_processes(root: int | None = None) -> list[str]:
    """Descriptions of what a test must not leave behind: stopped descendants, and fleet
    workers (registered by any fleet of this process) that are still alive."""
    problems: list[str] = []
    for pid in descendants(root):
        state = proc_state(pid)
        if state in STOPPED_STATES:
            problems.append(f"pid {pid} is stopped (state {state})")
    for pid, label in live_workers().items():
        if alive(pid):
            problems.append(f"worker {label} (pid {pid}) is still alive ({proc_state(pid)})")
    return problems


def assert_no_leftover_processes(root: int | None = None) -> None:
    """Fail if any descendant is stopped or any fleet worker is still alive."""
    problems = leftover_processes(root)
    if problems:
        raise AssertionError("leftover processes: " + "; ".join(problems))
