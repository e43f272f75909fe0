"""The zombie backends of a run, each with since when, and whether invocations kept arriving.

DESIGN.md: a *zombie* is a backend whose worker is gone (reclaimed, crashed,
exited), or whose worker is frozen past its lease — idle in transaction
included. Derived here once from the history and the samples:

- a worker's backends are the pids of its backend mappings; a backend is the same
  one while the samples show that pid with a lease of that worker's client
  instance (a pid reused by another client is another backend);
- it is a zombie from its worker's death, if the samples still show it at or
  after that; or, within a frozen interval of its worker, from the moment its
  lease on the server (the ``e=`` the samples show) ran out, if that is before the
  thaw. A thaw ends it: the thawed client fences the connection itself.

*Invocations still arrive* is what obliges a reaper to run (reapers run when a
client connects or renews). :func:`covered_deadline` counts the bound only over
time when an invocation came within the last ``gap`` seconds, so a schedule
that deliberately lets time pass with nothing invoked never makes a zombie late.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from harness.check.run import IDLE_STATES, Run, lease_expiry_ms, lease_instance
from harness.check.timeline import Op
from harness.history import BackendEvent, FaultEvent, WorkerEvent


@dataclass(frozen=True, slots=True)
class Zombie:
    """One zombie backend: ``pid`` of ``worker``'s client ``instance``, a zombie over
    [since, until] (``until``: the thaw that ended it, or +inf)."""

    pid: int
    worker: str
    instance: str
    since: float
    why: str
    until: float
    last_seen: float
    """The last sample that shows it."""
    gone_at: float | None
    """The first sample after ``last_seen`` (None: still there at the last sample)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "worker": self.worker,
            "instance": self.instance,
            "since": self.since,
            "why": self.why,
            "until": None if math.isinf(self.until) else self.until,
            "last_seen": self.last_seen,
            "gone_at": self.gone_at,
        }


@dataclass(frozen=True, slots=True)
class _Seen:
    """A sample showing the backend: when, until when its lease ran on the server and
    since when it had been idle (both on the monotonic clock; None: none / active)."""

    time: float
    expiry: float | None
    idle_since: float | None


def _presence(run: Run, pid: int, instance: str) -> list[_Seen]:
    out = []
    for s in run.sorted_samples:
        r = s.row(pid)
        if r is None or lease_instance(r.application_name) != instance:
            continue
        e = lease_expiry_ms(r.application_name)
        idle = r.state in IDLE_STATES and r.state_change is not None
        out.append(
            _Seen(
                s.time,
                None if e is None else e / 1000 - s.wall + s.time,
                r.state_change - s.wall + s.time if idle and r.state_change is not None else None,
            )
        )
    return out


def _reapable_from(seen: list[_Seen], start: float, end: float, *, expired: bool) -> float | None:
    """The first moment in [start, end] the samples show the backend idle (and, with
    ``expired``, past its lease): a reaper could not have touched it before."""
    for x in seen:
        if not start <= x.time <= end or x.idle_since is None:
            continue
        if expired and (x.expiry is None or x.expiry > x.time):
            continue
        return max(start, x.idle_since, x.expiry if expired and x.expiry is not None else start)
    return None


def _death_kind(run: Run, worker: str) -> str:
    for e in run.timeline.events:
        if e.worker != worker:
            continue
        if isinstance(e, FaultEvent) and e.f == "reclaim":
            return "reclaimed"
        if isinstance(e, WorkerEvent) and e.f in ("exit", "crash"):
            return "crashed" if e.f == "crash" else "exited"
    return "gone"


def zombies(run: Run) -> list[Zombie]:
    """Every zombie backend of the run, by since-when."""
    tl = run.timeline
    backends: dict[tuple[str, int], str] = {}
    for e in tl.events:
        if isinstance(e, BackendEvent) and (i := lease_instance(e.application_name)) is not None:
            backends.setdefault((e.worker, e.backend_pid), i)
    by_worker: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for (w, pid), i in backends.items():
        by_worker[w].append((pid, i))
    sample_times = run.sample_times
    out: list[Zombie] = []
    for w, pids in by_worker.items():
        death = tl.deaths.get(w, math.inf)
        for pid, inst in pids:
            seen = _presence(run, pid, inst)
            if not seen:
                continue
            last = seen[-1].time
            k = bisect.bisect_right(sample_times, last)
            gone = sample_times[k] if k < len(sample_times) else None
            since, why, until = math.inf, "", math.inf
            for iv in tl.frozen.get(w, ()):
                found = _reapable_from(seen, iv.start, min(iv.end, death), expired=True)
                if found is not None:
                    since, why = found, "frozen past its lease"
                    until = math.inf if iv.end >= death else iv.end
                    break
            if since == math.inf and last >= death:
                found = _reapable_from(seen, death, math.inf, expired=False)
                if found is not None:
                    since, why, until = found, _death_kind(run, w), math.inf
            if since < math.inf and last >= since:
                out.append(Zombie(pid, w, inst, since, why, until, last, gone))
    return sorted(out, key=lambda z: z.since)


def holding_slots(zs: list[Zombie], t: float) -> list[Zombie]:
    """The zombies that held a server slot at ``t``: a zombie from ``since`` until its
    thaw, or until the first sample without it."""
    return [
        z for z in zs if z.since <= t < min(z.until, math.inf if z.gone_at is None else z.gone_at)
    ]


def overdue(run: Run, zs: list[Zombie], t: float) -> list[Zombie]:
    """The zombies holding a slot at ``t`` that have been zombies longer than the
    convergence bound: those a reaper should have ended by then."""
    bound = run.config.convergence_bound
    return [z for z in holding_slots(zs, t) if t > z.since + bound]


def refused_at_capacity(run: Run, zs: list[Zombie], op: Op) -> bool:
    """``op`` failed with 53300 while the service's own backends filled its limit (a
    sample during the op shows it) and no zombie older than the bound held a slot:
    the server was full of live backends and of zombies still within their bound,
    which is the fleet's size against the server, not a failure to converge."""
    if op.sqlstate != "53300" or op.end is None or overdue(run, zs, op.end):
        return False
    during = [s for s in run.sorted_samples if op.start <= s.time <= op.end]
    return any(run.service_count(s) >= run.config.connection_limit for s in during)


def covered_deadline(run: Run, since: float, bound: float, gap: float) -> float | None:
    """The time by which ``bound`` seconds have passed since ``since`` counting only time
    within ``gap`` after some invocation; None if the history runs out first."""
    invokes = sorted(op.start for op in run.timeline.ops)
    need, t = bound, since
    i = bisect.bisect_right(invokes, since) - 1
    while need > 0:
        last = invokes[i] if i >= 0 else -math.inf
        covered_until = last + gap
        nxt = invokes[i + 1] if i + 1 < len(invokes) else None
        if t < covered_until:
            stop = covered_until if nxt is None else min(covered_until, nxt)
            if stop - t >= need:
                return t + need
            need -= stop - t
            t = stop
        if nxt is None:
            return None
        t, i = max(t, nxt), i + 1
    return t
