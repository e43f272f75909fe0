"""What the timeline draws, derived from a recorded run: pure data, no plotting.

One clock for everything: seconds since :attr:`harness.check.Run.t0` (where the
progress output starts when the scenario said so, else the first recorded
time), the same zero the evidence sentences count from.

- one :class:`Lane` per worker, in spawn order, with its *states* over time —
  ``cold-starting`` (spawned, first operation not begun), ``running`` (alive, not
  frozen), ``parked`` (frozen between invocations: Lambda's normal life, cause
  ``idle``), ``frozen`` (frozen by a fault), ``reclaimed`` / ``crashed`` (after
  its end) — taken from :class:`harness.check.Timeline`'s frozen intervals and
  deaths, the definitions the properties judge by;
- its operations as bars (``ok`` / ``fail`` / ``info``; an open one is ``info``);
- the faults that hit it: windows (a socket reset until its heal, latency until
  the heal, a proxy down until it is up, ...) and points (a terminate, a clock
  skew, a freeze, a reclaim), each with a label; faults of no worker
  (``pg_restart``, the global ``heal``) are marks across every lane;
- every reaper kill on its victim's lane (the owner of the backend pid at the
  kill's time, :meth:`harness.check.Timeline.owner`; a pid nobody owned goes on
  an ``other backends`` lane);
- the service's backends per sample (:meth:`harness.check.Run.service_count`,
  the count P2 judges) against the limit, P2's deadline (its verdict's measured
  ``deadline``) and the violation windows its evidence names;
- the schedule's steps.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.check import Run, Verdict, is_routine_freeze
from harness.history import FaultEvent, StepEvent, WorkerEvent

State = Literal["cold-starting", "running", "parked", "frozen", "reclaimed", "crashed"]
STATES: tuple[State, ...] = ("cold-starting", "running", "parked", "frozen", "reclaimed", "crashed")
Outcome = Literal["ok", "fail", "info"]
OTHER_LANE = "other backends"
"""The lane of kills whose victim no worker owned (a foreign backend, or unknown)."""

WINDOW_FAULTS: frozenset[str] = frozenset(
    {"socket_reset", "ack_lost", "latency", "bandwidth", "proxy_down"}
)
"""Faults that last until something ends them: drawn as a band on their worker's lane."""
_Rel = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end] in seconds since the run's zero."""

    start: float
    end: float


@dataclass(frozen=True, slots=True)
class StateSpan(Span):
    state: State


@dataclass(frozen=True, slots=True)
class OpBar(Span):
    op: str
    f: str
    outcome: Outcome
    open: bool
    """No completion was recorded (drawn as ``info``: its outcome is unknown)."""


@dataclass(frozen=True, slots=True)
class FaultMark(Span):
    """A fault on a lane: a window when ``end > start``, else a point."""

    f: str
    label: str
    window: bool


@dataclass(frozen=True, slots=True)
class KillMark:
    time: float
    pid: int
    reaper: str | None
    victim_state: str | None


@dataclass
class Lane:
    name: str
    states: list[StateSpan] = field(default_factory=list)
    ops: list[OpBar] = field(default_factory=list)
    faults: list[FaultMark] = field(default_factory=list)
    kills: list[KillMark] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class GlobalMark:
    time: float
    f: str
    label: str


@dataclass(frozen=True, slots=True)
class StepMark:
    time: float
    n: int
    text: str


def folded_steps(steps: list[StepMark]) -> list[tuple[StepMark, StepMark]]:
    """Runs of consecutive steps that read the same, as (first, last): a storm's 30
    reclaims are one mark and one line, not 30."""
    runs: list[tuple[StepMark, StepMark]] = []
    for s in steps:
        if runs and runs[-1][1].text == s.text and runs[-1][1].n == s.n - 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


@dataclass
class Chart:
    """Everything the timeline shows, on one clock (seconds since the run's zero)."""

    end: float
    lanes: list[Lane]
    globals: list[GlobalMark]
    steps: list[StepMark]
    counts: list[tuple[float, int]]
    """(time, service backends) per sample, as P2 counts them."""
    limit: int
    kills: list[tuple[float, int]]
    """(time, service backends at the last sample before it) per reaper kill."""
    deadline: float | None
    """P2's deadline, from its verdict (None without a P2 verdict)."""
    violations: list[Span]
    """P2-count evidence windows."""


def _natural(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def fault_label(e: FaultEvent) -> str:
    """A fault in a few words, as its mark's label."""
    v = e.value
    match e.f:
        case "latency":
            jitter = f"±{v['jitter_ms']}" if v.get("jitter_ms") else ""
            return f"latency {v.get('latency_ms', '?')}{jitter} ms"
        case "bandwidth":
            return f"bandwidth {v.get('rate_kb', '?')} KB/s"
        case "terminate_backend":
            return f"terminate pid {v.get('backend_pid')}"
        case "clock_skew":
            return f"clock skew {float(v.get('seconds', 0)):+g} s"
        case "socket_reset":
            return "socket reset" if v.get("mode", "reset_peer") == "reset_peer" else "socket cut"
        case "pg_restart":
            return "PostgreSQL restart"
        case "heal":
            return "heal" if v.get("undo") in (None, "all") else f"heal {v.get('undo')}"
        case _:
            return e.f.replace("_", " ")


def _window_end(e: FaultEvent, later: Sequence[FaultEvent], end: float) -> float:
    """When a window fault ended: its own heal (or ``proxy_up``), a global heal, else the end."""
    for g in later:
        if g.time < e.time:
            continue
        if g.f == "heal" and g.worker is None:
            return g.time
        if g.worker != e.worker:
            continue
        same_op = "op" not in e.value or g.value.get("op") == e.value.get("op")
        if g.f == "heal" and g.value.get("undo") == e.f and same_op:
            return g.time
        if e.f == "proxy_down" and g.f == "proxy_up":
            return g.time
    return end


def _p2_verdict(verdicts: Sequence[Verdict]) -> Verdict | None:
    return next((v for v in verdicts if v.prop == "P2"), None)


def build_chart(run: Run, verdicts: Sequence[Verdict] = ()) -> Chart:
    """The chart of ``run`` (``verdicts`` give P2's deadline and violation windows)."""
    t0, tl = run.t0, run.timeline
    samples = run.sorted_samples
    last = max([tl.end if tl.events else t0, samples[-1].time if samples else t0])
    end = last - t0

    def rel(t: float) -> float:
        return (min(t, last) if math.isinf(t) else t) - t0

    spawns, crashed = _spawns(run)
    names = sorted(spawns, key=lambda w: (spawns[w], _natural(w)))
    lanes = {w: Lane(w) for w in names}
    for w, lane in lanes.items():
        lane.states = _states(run, w, spawns[w], w in crashed, last, rel)
        for op in tl.ops_of(w):
            done = op.completion
            outcome: Outcome = "info" if done is None or done.type == "invoke" else done.type
            bar = OpBar(rel(op.start), rel(op.end), op.id, op.invoke.f, outcome, done is None)
            lane.ops.append(bar)
    marks = _fault_marks(run, lanes, last, rel)

    kills: list[tuple[float, int]] = []
    for k in run.kills:
        owner = tl.owner(k.pid, k.time)
        name = owner.worker if owner is not None and owner.worker in lanes else OTHER_LANE
        if name not in lanes:
            lanes[name] = Lane(name)
        lanes[name].kills.append(KillMark(rel(k.time), k.pid, k.worker, k.state))
        before = run.last_sample_before(k.time)
        kills.append((rel(k.time), run.service_count(before) if before else 0))

    steps = [StepMark(rel(e.time), e.n, e.text) for e in tl.events if isinstance(e, StepEvent)]
    p2 = _p2_verdict(verdicts)
    deadline = p2.measured.get("deadline") if p2 is not None else None
    violations = [
        Span(rel(float(ev["from"])), rel(float(ev["to"])))
        for ev in (p2.evidence if p2 is not None else [])
        if ev.get("clause") == "P2-count" and "from" in ev and "to" in ev
    ]
    return Chart(
        end=end,
        lanes=list(lanes.values()),
        globals=marks,
        steps=steps,
        counts=[(s.time - t0, run.service_count(s)) for s in samples],
        limit=run.config.connection_limit,
        kills=kills,
        deadline=None if deadline is None else rel(float(deadline)),
        violations=violations,
    )


def _spawns(run: Run) -> tuple[dict[str, float], set[str]]:
    """When each worker was first seen (its spawn, else its first event), and which crashed."""
    spawns: dict[str, float] = {}
    crashed: set[str] = set()
    for e in run.timeline.events:
        if isinstance(e, WorkerEvent):
            if e.f == "spawn":
                spawns.setdefault(e.worker, e.time)
            elif e.f == "crash":
                crashed.add(e.worker)
        if e.worker is not None and not isinstance(e, StepEvent):
            spawns.setdefault(e.worker, e.time)  # a worker seen without its spawn
    return spawns, crashed


def _fault_marks(run: Run, lanes: dict[str, Lane], last: float, rel: _Rel) -> list[GlobalMark]:
    """Each fault on the lane it hit (windows where it lasts), and the run-wide ones."""
    tl = run.timeline
    marks: list[GlobalMark] = []
    for e in tl.faults:
        if e.worker is None:
            marks.append(GlobalMark(rel(e.time), e.f, fault_label(e)))
            continue
        lane = lanes[e.worker]
        if e.f in WINDOW_FAULTS:
            stop = _window_end(e, tl.faults, last)
            lane.faults.append(FaultMark(rel(e.time), rel(stop), e.f, fault_label(e), True))
        elif e.f in ("thaw", "heal", "proxy_up") or is_routine_freeze(e):
            continue  # ends of states or windows, drawn by those
        elif e.f == "freeze" and e.value.get("cause") == "reclaim":
            continue  # the freeze a reclaim makes on its way: the reclaim is the mark
        else:
            lane.faults.append(FaultMark(rel(e.time), rel(e.time), e.f, fault_label(e), False))
    return marks


def _states(
    run: Run, worker: str, spawned: float, crashed: bool, last: float, rel: _Rel
) -> list[StateSpan]:
    """The worker's states from its spawn to its end (an ``exit``) or the end of the run.

    The state over each stretch between change points is the state at its middle:
    after its death ``reclaimed`` / ``crashed``; inside a frozen interval ``parked``
    (routine, cause ``idle``) or ``frozen``; before its first op ``cold-starting``;
    else ``running``."""
    tl = run.timeline
    first_op = min((op.start for op in tl.ops_of(worker)), default=math.inf)
    death = tl.deaths.get(worker, math.inf)
    exited = math.isfinite(death) and worker in _exited(run)
    stop = death if exited else last
    frozen = sorted(tl.frozen.get(worker, ()), key=lambda iv: iv.start)
    cuts = {spawned, stop, first_op, death}
    for iv in frozen:
        cuts.update((iv.start, iv.end))
    points = sorted(t for t in cuts if math.isfinite(t) and spawned <= t <= stop)
    out: list[StateSpan] = []
    i = 0
    for a, b in itertools.pairwise(points):
        if b <= a:
            continue
        m = (a + b) / 2
        while i < len(frozen) and frozen[i].end < m:
            i += 1
        st: State
        if m > death:
            st = "crashed" if crashed else "reclaimed"
        elif i < len(frozen) and frozen[i].start <= m:
            st = "parked" if is_routine_freeze(frozen[i].opened_by) else "frozen"
        elif m < first_op:
            st = "cold-starting"
        else:
            st = "running"
        out.append(StateSpan(rel(a), rel(b), st))
    return _merge(out)


def _exited(run: Run) -> set[str]:
    """Workers that ended by ``exit`` (the fleet stopped them, or they left on their own):
    their lane just ends there."""
    return {e.worker for e in run.timeline.events if isinstance(e, WorkerEvent) and e.f == "exit"}


def _merge(spans: list[StateSpan]) -> list[StateSpan]:
    out: list[StateSpan] = []
    for s in spans:
        if out and out[-1].state == s.state and math.isclose(out[-1].end, s.start):
            out[-1] = StateSpan(out[-1].start, s.end, s.state)
        else:
            out.append(s)
    return out


def state_counts(chart: Chart, points: int = 600) -> tuple[list[float], dict[State, list[int]]]:
    """How many lanes are in each state at ``points`` evenly spaced times: the summary a
    few hundred thin lanes need. A lane is counted at ``t`` in the state whose span
    holds ``t`` (start included, end excluded)."""
    end = max(chart.end, 1e-9)
    grid = [end * i / (points - 1) for i in range(points)]
    out: dict[State, list[int]] = {}
    for st in STATES:
        starts = sorted(s.start for lane in chart.lanes for s in lane.states if s.state == st)
        ends = sorted(s.end for lane in chart.lanes for s in lane.states if s.state == st)
        if starts:
            out[st] = [bisect.bisect_right(starts, t) - bisect.bisect_right(ends, t) for t in grid]
    return grid, out


__all__ = [
    "OTHER_LANE",
    "STATES",
    "Chart",
    "FaultMark",
    "GlobalMark",
    "KillMark",
    "Lane",
    "OpBar",
    "Span",
    "StateSpan",
    "StepMark",
    "build_chart",
    "fault_label",
    "state_counts",
]
