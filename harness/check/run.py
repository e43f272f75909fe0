"""The run being judged: what was recorded, how it was configured, and the facts every
property reads the same way.

Jepsen's checker: a :class:`Run` holds only what was recorded — the history,
the ``pg_stat_activity`` samples, the final database state — and the
:class:`RunConfig` that says how the run was set up. Each fact several
properties (or the report) need is computed here once: the convergence bound
(:func:`convergence_bound`), the service's own backends in a sample
(:meth:`Run.service_count`, foreign pids excluded), the lease expiry of an
application_name (through :mod:`harness.check.wire`), and whether the
recorded inputs are good enough to judge at all (:meth:`Run.input_problems`).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from harness.check import wire
from harness.check.terminations import Termination
from harness.check.terminations import build as build_terminations
from harness.check.timeline import Timeline
from harness.history import (
    FREEZE_FAULTS,
    Event,
    FaultEvent,
    FinalState,
    ForeignEvent,
    Problem,
    ReapEvent,
    Sample,
    TerminationEvent,
    validate,
)

DEFAULT_ESCAPED: frozenset[str] = frozenset({"OperationalError", "InterfaceError"})
"""psycopg errors that should never reach the caller raw: the client classifies them."""

ZOMBIE_FAULTS: frozenset[str] = FREEZE_FAULTS | {"reclaim", "overload"}
"""Faults that can leave a zombie backend behind (or refusals, for an overload); P2's
clock starts at the last one."""

IDLE_STATES: frozenset[str] = frozenset(
    {"idle", "idle in transaction", "idle in transaction (aborted)"}
)
"""The states a reaper may kill in (LEASE_SPEC: idle, or idle in transaction)."""

MIN_SAMPLE_HZ = 10.0
"""The sampler's promise; below it, what the samples say cannot be trusted."""
MAX_SAMPLE_GAP_S = 0.5
"""A gap between samples longer than this, not explained by a server restart,
means the sampler fell behind: a short zombie or kill could have gone unseen."""


def convergence_bound(
    lease_ttl: float, min_idle: float, max_cooldown: float, slack: float
) -> float:
    """P2's bound after the last zombie-making fault: lease TTL + minimum idle + the
    longest cooldown + slack (one reaper pass, a lock timeout, scheduling noise)."""
    return lease_ttl + min_idle + max_cooldown + slack


def is_routine_freeze(fault: FaultEvent) -> bool:
    """The fleet parks every worker when its invocation returns (``cause: idle``):
    that is Lambda's normal life, not a fault that makes zombies, so it does not
    move P2's anchor (it still makes the worker frozen for P1)."""
    return fault.f == "freeze" and fault.value.get("cause") == "idle"


def lease_expiry_ms(application_name: str | None) -> int | None:
    """The expiry of the lease token in ``application_name`` (ms), None when it is none."""
    lease = wire.parse(application_name)
    return None if lease is None else lease.expiry_ms


def lease_instance(application_name: str | None) -> str | None:
    """The client instance of the lease token in ``application_name``, None when it is none."""
    lease = wire.parse(application_name)
    return None if lease is None else lease.instance


@dataclass(frozen=True)
class RunConfig:
    """What the checker needs to know about how the run was configured.

    ``own_app_prefix`` defaults to ``s=<service>;``. ``foreign_pids`` adds to
    the foreign backends registered in the history. ``verify`` says whether an
    application_name carries a lease signed with the service's secret; without
    it P5 cannot check signatures and says so.
    """

    service: str
    connection_limit: int
    lease_ttl: float
    min_idle: float
    max_cooldown: float
    grace: float
    slack: float
    retry_budget_s: float
    own_app_prefix: str = ""
    foreign_pids: frozenset[int] = frozenset()
    verify: Callable[[str], bool] | None = None
    escaped_error_classes: frozenset[str] = DEFAULT_ESCAPED
    sample_interval: float | None = None
    """The sampler's interval; when given, a run whose samples fell behind it (see
    :attr:`Run.sampling_problems`) cannot be judged on what the samples show."""
    max_kills: int | None = None
    """The reaper's most kills a pass (``LeaseConfig.max_kills``); None: not judged."""
    fence_margin: float | None = None
    """The client's fence (``LeaseConfig.fence_margin``): it never sends on a connection
    whose lease has less than this left by its own clock. None: fencing not judged."""
    heartbeat_margin: float | None = None
    """The client's heartbeat margin (``LeaseConfig.heartbeat_margin``): it renews before
    sending on a lease with less than this left by its own clock. None: not judged."""
    renews_only_at_margin: bool = False
    """The client renews only when the heartbeat margin requires it (the bundled lease
    client, whose worker operations declare no expected duration): ``P7-early`` judges
    renewals made with more left. False for clients with a renewal rule of their own."""
    clock_tolerance: float = 0.05
    """How far apart two stamps of one process may be when the code takes them at what
    should be one instant (scheduling noise on a loaded machine), and how far the
    server's clock may be from the harness's. Only clauses that compare such stamps
    use it; the rest are exact."""
    clock_start: float | None = None
    """Monotonic time where the run's progress clock started; when given it is the
    run's zero (:attr:`Run.t0`), so evidence and the report's chart count from where
    the progress output does."""

    def __post_init__(self) -> None:
        if not self.own_app_prefix:
            object.__setattr__(self, "own_app_prefix", f"s={self.service};")

    @property
    def convergence_bound(self) -> float:
        """See :func:`convergence_bound`."""
        return convergence_bound(self.lease_ttl, self.min_idle, self.max_cooldown, self.slack)


@dataclass(frozen=True)
class Run:
    """Everything recorded about one run, ready to be judged."""

    events: Sequence[Event]
    samples: Sequence[Sample]
    final: FinalState
    config: RunConfig
    harness_faults: tuple[str, ...] = ()
    """What the harness's own machinery did wrong during the run (a worker's line it
    could not read, a proxy that refused a worker no fault had cut off...): with any,
    nothing recorded can be trusted and the run is not judged."""

    @cached_property
    def timeline(self) -> Timeline:
        return Timeline(self.events)

    @cached_property
    def sorted_samples(self) -> list[Sample]:
        return sorted(self.samples, key=lambda s: s.time)

    @cached_property
    def ledger(self) -> list[ReapEvent]:
        """The reaper ledger: every ``reap`` entry, by time."""
        return [e for e in self.timeline.events if isinstance(e, ReapEvent)]

    @cached_property
    def kills(self) -> list[ReapEvent]:
        return [e for e in self.ledger if e.result == "killed"]

    # -- every termination the server performed (harness/check/terminations.py) ----------

    @cached_property
    def terminations(self) -> list[Termination]:
        """Every backend the server ended, from its log and the ledger, attributed."""
        server = [e for e in self.timeline.events if isinstance(e, TerminationEvent)]
        return build_terminations(self.timeline, self.ledger, server)

    @cached_property
    def judged_kills(self) -> list[ReapEvent]:
        """What P1 and P5 judge: every termination not done by the harness itself, in the
        ledger's shape (the ledger entry where there is one)."""
        return [t.as_kill() for t in self.terminations if not t.by_harness]

    @cached_property
    def _server_timeouts(self) -> frozenset[tuple[int, float]]:
        return frozenset(
            (t.pid, t.time) for t in self.terminations if t.cause != "terminate_backend"
        )

    def decided_kill(self, kill: ReapEvent) -> bool:
        """Someone chose to kill (a ``pg_terminate_backend``), as opposed to the server
        ending a session by that session's own idle timeout: only a chosen kill can break
        a lease's promise (P1's lease clause)."""
        return (kill.pid, kill.time) not in self._server_timeouts

    @cached_property
    def attempts(self) -> list[ReapEvent]:
        """Kills the reaper attempted and the server carried out or DENIED: a denied
        attempt on a backend that was not the reaper's to kill is its bug all the same."""
        return [e for e in self.ledger if e.result in ("killed", "denied")]

    @cached_property
    def t0(self) -> float:
        """The run's zero: the config's ``clock_start``, else the earliest recorded time.
        Evidence sentences say times relative to it."""
        if self.config.clock_start is not None:
            return self.config.clock_start
        times = [self.timeline.start] if self.timeline.events else []
        if self.sorted_samples:
            times.append(self.sorted_samples[0].time)
        return min(times, default=0.0)

    def at(self, t: float) -> str:
        """A time as a person reads it: seconds since the start of the run."""
        if math.isinf(t):
            return "the end" if t > 0 else "the start"
        return f"t={t - self.t0:+.3f}s"

    @cached_property
    def sample_times(self) -> list[float]:
        """The times of :attr:`sorted_samples`, for bisecting."""
        return [s.time for s in self.sorted_samples]

    def last_sample_before(self, t: float) -> Sample | None:
        ss = self.sorted_samples
        i = bisect.bisect_left(self.sample_times, t)
        return ss[i - 1] if i else None

    @cached_property
    def foreign_pids(self) -> frozenset[int]:
        """Backends registered foreign at any time, plus the configured ones."""
        registered = {
            e.backend_pid
            for e in self.timeline.events
            if isinstance(e, ForeignEvent) and e.f == "register"
        }
        return frozenset(registered) | self.config.foreign_pids

    def is_service_row(self, application_name: str | None, pid: int) -> bool:
        """A backend of the service: its prefix, and not registered foreign (a forged
        lease carries the prefix but is nobody's connection)."""
        return (application_name or "").startswith(
            self.config.own_app_prefix
        ) and pid not in self.foreign_pids

    def service_count(self, sample: Sample) -> int:
        """The service's own backends in ``sample`` (P2 and the report's plot both use this)."""
        return sum(1 for r in sample.rows if self.is_service_row(r.application_name, r.pid))

    # -- can this run be judged at all?

    @cached_property
    def history_problems(self) -> list[Problem]:
        """Ways the history breaks the invoke/complete discipline (none: it can be judged)."""
        return validate(self.events)

    @cached_property
    def sampling_problems(self) -> list[str]:
        """Ways the sampler fell behind its promise (none: the samples can be trusted).

        Judged only when the config says the sampler's interval: the achieved rate
        over the history must be at least :data:`MIN_SAMPLE_HZ`, and no stretch of the
        history longer than :data:`MAX_SAMPLE_GAP_S` (nor five intervals) may go
        unsampled, unless a server restart explains it."""
        interval = self.config.sample_interval
        if interval is None:
            return []
        ss, tl = self.sorted_samples, self.timeline
        if not ss:
            return ["no pg_stat_activity sample was recorded"]
        out: list[str] = []
        span = ss[-1].time - ss[0].time
        if len(ss) > 1 and span > 0 and (rate := (len(ss) - 1) / span) < MIN_SAMPLE_HZ:
            out.append(f"the sampler achieved {rate:.1f} Hz, below its {MIN_SAMPLE_HZ:g} Hz")
        restarts = [f.time for f in tl.faults_of({"pg_restart"})]
        limit = max(MAX_SAMPLE_GAP_S, 5 * interval)
        edges = [tl.start, *(s.time for s in ss), tl.end] if tl.events else [s.time for s in ss]
        for a, b in itertools.pairwise(edges):
            if b - a > limit and not any(a - 1 <= r <= b for r in restarts):
                out.append(
                    f"no pg_stat_activity sample for {b - a:.3f}s between {self.at(a)}"
                    f" and {self.at(b)} (no server restart explains it)"
                )
                break
        return out
