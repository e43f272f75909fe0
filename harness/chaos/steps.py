"""Fault schedules as pure data: what happens to a fleet, in words.

A schedule is a short tuple of :class:`Step` values. Each step is a frozen
dataclass (so Hypothesis can generate and shrink it) that says what it does in
a sentence (:meth:`Step.describe`); :mod:`harness.chaos.interpreter` applies it
to a live fleet. Importing this module imports neither psycopg nor the fleet,
and starts nothing (an import-linter contract keeps it so).

Steps refer to workers by index into the fleet's idle workers, so a schedule
stays meaningful when shrinking removes steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from harness.history.events import NeighbourShape as NeighbourShape

InvokeF = Literal["write", "write_once", "read", "burst"]
ForeignWho = Literal["other_app", "forged", "other_secret", "superuser"]
NeighbourRole = Literal["app", "plain_role", "signal_role", "superuser"]
"""Who the neighbour connects as: the service's own role, another role without
privileges, another role in ``pg_signal_backend``, a superuser."""


class Step:
    """One thing that happens to the fleet."""

    def describe(self) -> str:
        raise NotImplementedError


# -- ordinary life -------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoke(Step):
    f: InvokeF

    def describe(self) -> str:
        return f"invoke {self.f} (routed like Lambda: a warm worker, else a cold start)"


@dataclass(frozen=True)
class Rejected(Step):
    """A write that is refused: by the server, or by the driver before it is sent."""

    side: Literal["server", "client"]

    def describe(self) -> str:
        by = "the server (NOT NULL)" if self.side == "server" else "the driver (a NUL byte)"
        return f"invoke a write that {by} refuses; the client must hand the refusal back"


@dataclass(frozen=True)
class Burst(Step):
    n: int

    def describe(self) -> str:
        return f"{self.n} concurrent reads (cold starts up to the concurrency cap)"


@dataclass(frozen=True)
class ColdStartWave(Step):
    """More sandboxes cold-start at once than the server admits.

    ``prestarted``: the sandboxes' processes are started (and parked) before the wave,
    so its invocations arrive at once, at Lambda's pace, instead of at the pace this
    machine forks processes; each still opens its connection when invoked."""

    n: int
    prestarted: bool = False

    def describe(self) -> str:
        ahead = ", their processes started ahead" if self.prestarted else ""
        return (
            f"a wave of {self.n} invocations in flight at once, each in its own sandbox{ahead},"
            " more than the server admits (refusals with 53300, retries with jitter)"
        )


@dataclass(frozen=True)
class InvokeWarm(Step):
    """Traffic reaches a warm sandbox that holds a connection (Lambda reuses warm ones)."""

    def describe(self) -> str:
        return "an invocation reaches a warm sandbox that already holds a connection"


@dataclass(frozen=True)
class Age(Step):
    def describe(self) -> str:
        return (
            "let time pass until every idle worker's lease has expired"
            " (past the grace) and its backend has idled past min_idle"
        )


@dataclass(frozen=True)
class Linger(Step):
    def describe(self) -> str:
        return "let idle backends idle past min_idle (their leases still valid)"


@dataclass(frozen=True)
class Reclaim(Step):
    worker: int
    blackhole: bool = True

    def describe(self) -> str:
        how = (
            "its link blackholed first, so its backend stays as a zombie"
            if self.blackhole
            else "its socket closed by the kernel"
        )
        return f"reclaim idle worker #{self.worker} (SIGKILL while frozen; {how})"


@dataclass(frozen=True)
class Reap(Step):
    worker: int
    standalone: bool = False
    """A cron-style pass on a short-lived connection of its own (``Reaper.run_once``)
    rather than on the client's connection."""

    def describe(self) -> str:
        if self.standalone:
            return (
                f"idle worker #{self.worker} runs a standalone reaper pass (a short-lived"
                " connection of its own, as a scheduled cleanup function would)"
            )
        return f"idle worker #{self.worker} runs a reaper pass"


# -- freezes in the middle of something ----------------------------------------------------


@dataclass(frozen=True)
class FreezeMid(Step):
    what: Literal["query", "tx", "reap"]

    def describe(self) -> str:
        return {
            "query": "a slow read, its worker frozen while the server runs it",
            "tx": "a long transaction, its worker frozen inside it (row lock held)",
            "reap": "a reaper pass, its worker frozen holding the leader lock",
        }[self.what]


@dataclass(frozen=True)
class Thaw(Step):
    index: int

    def describe(self) -> str:
        return f"thaw frozen-in-the-middle worker #{self.index}; it finishes what it was doing"


# -- the network and the server ------------------------------------------------------------


@dataclass(frozen=True)
class AckLost(Step):
    f: Literal["write", "write_once"]
    heal: Literal["at_error", "at_end"] = "at_error"
    """``at_error``: the link heals at the client's first error (its retry reaches the
    server); ``at_end``: not before the op ends (every retry finds the server silent)."""

    def describe(self) -> str:
        what = "the answer to its COMMIT" if self.f == "write_once" else "its answer"
        then = (
            "its retries reach the server"
            if self.heal == "at_error"
            else "the server stays silent until the op ends"
        )
        return f"{self.f} whose {what} is lost (the server commits, no reply comes; {then})"


@dataclass(frozen=True)
class SocketReset(Step):
    mode: Literal["reset_peer", "disable"]

    def describe(self) -> str:
        how = (
            "a TCP reset when the answer comes back"
            if self.mode == "reset_peer"
            else "its proxy closed while the server is silent"
        )
        return f"a slow read whose socket is cut mid-query ({how})"


@dataclass(frozen=True)
class PgRestart(Step):
    def describe(self) -> str:
        return "PostgreSQL restarts (immediate: every backend dies)"


@dataclass(frozen=True)
class TerminateBackend(Step):
    worker: int

    def describe(self) -> str:
        return f"an operator terminates idle worker #{self.worker}'s backend"


@dataclass(frozen=True)
class NetworkFault(Step):
    worker: int
    fault: Literal["latency", "jitter", "proxy_down", "bandwidth"]

    def describe(self) -> str:
        what = {
            "latency": "50 ms of latency on",
            "jitter": "30 ± 25 ms of latency (jitter) on",
            "proxy_down": "the proxy goes down for",
            "bandwidth": "bandwidth limited to 64 KB/s for",
        }[self.fault]
        return f"{what} idle worker #{self.worker}'s link (until the faults heal)"


@dataclass(frozen=True)
class ClockSkew(Step):
    worker: int
    fraction: float
    """Of the reaper grace, in [-0.5, 0.5]: skew the correct client tolerates."""

    def describe(self) -> str:
        return f"idle worker #{self.worker}'s clock skewed by {self.fraction:+.2f} x the grace"


@dataclass(frozen=True)
class ForeignBackend(Step):
    who: ForeignWho

    def describe(self) -> str:
        return {
            "other_app": "another application connects (plain application_name)",
            "forged": "a backend with a forged lease of this service (bad signature)",
            "other_secret": "a backend with a lease of this service signed with another secret",
            "superuser": "a superuser session carrying an expired lease of this service",
        }[self.who]


@dataclass(frozen=True)
class Neighbour(Step):
    """A backend that is not the service's, generated: an application_name of one
    ``shape`` built from ``text`` (the junk, signature, service or cut it needs), a
    lease ``expired`` an hour ago or valid for an hour, connected as ``role``. It stays
    connected and idle until the run ends; the reaper must leave it alone (P5, P6).

    A genuine lease of this service on a role that is not a superuser would be the
    service's own backend (the spec lets the reaper kill it once expired), so
    ``genuine`` is only generated unexpired, or on a superuser."""

    shape: NeighbourShape
    role: NeighbourRole
    expired: bool
    text: str = ""
    """Shape-specific: ``plain`` the name; ``wrong_signature``/``non_base64url``/
    ``padded_signature`` the signature or the padding; ``other_service`` the service."""
    cut: int = 0
    """``truncated``: how many characters of the token are kept."""

    def describe(self) -> str:
        lease = "expired" if self.expired else "unexpired"
        detail = f"cut to {self.cut}" if self.shape == "truncated" else repr(self.text)
        return (
            f"a neighbour connects as {self.role.replace('_', ' ')} with an {lease}"
            f" {self.shape.replace('_', ' ')} application_name ({detail})"
        )


@dataclass(frozen=True)
class CheckpointRestore(Step):
    """A background-task runner's suspend: snapshot, compute freed, restored later."""

    worker: int

    def describe(self) -> str:
        return (
            f"idle worker #{self.worker} is checkpointed (frozen, its link cut), the server"
            " ends its idle backend meanwhile, then it is restored: the pool object survives"
            " but its socket is dead on first use"
        )


# -- races made deterministic --------------------------------------------------------------


@dataclass(frozen=True)
class QueryOutlivesLease(Step):
    """A query of unknown length outlives its lease while another worker reaps."""

    def describe(self) -> str:
        return (
            "a read of unknown length runs past its lease; meanwhile another worker"
            " runs a reaper pass"
        )


@dataclass(frozen=True)
class PeerRace(Step):
    """A pg-aequor peer of the service (same secret, no fencing) reuses its expired
    connection between a reaper's scan and its kill."""

    def describe(self) -> str:
        return (
            "a Node peer of this service leaves an expired idle connection; a reaper"
            " scans it, then the peer starts a query on it before the kill"
        )


@dataclass(frozen=True)
class ReaperRace(Step):
    """Several workers start a reaper pass at the same moment."""

    n: int

    def describe(self) -> str:
        return f"{self.n} workers run a reaper pass at once (they contend for the leader lock)"


@dataclass(frozen=True)
class WriteLockedRow(Step):
    """A write that needs the row a frozen transaction holds."""

    def describe(self) -> str:
        return (
            "another worker writes the row a frozen transaction holds locked (it waits until"
            " the idle-in-transaction zombie is reaped)"
        )


@dataclass(frozen=True)
class ThawIntoTx(Step):
    """A worker thawed after its lease expired opens a transaction and holds it."""

    worker: int

    def describe(self) -> str:
        return (
            f"idle worker #{self.worker} is thawed after its lease expired and holds a"
            " transaction open past min_idle while another worker reaps"
        )


@dataclass(frozen=True)
class TerminateInTx(Step):
    """An operator terminates a backend between two statements of its transaction."""

    retryable: bool

    def describe(self) -> str:
        kind = "retryable" if self.retryable else "non-retryable"
        return (
            f"an operator terminates the backend of a {kind} transaction between its"
            " statements; the transaction goes on (lost before COMMIT)"
        )


def described_runs(steps: Sequence[Step]) -> list[tuple[int, int, str]]:
    """The schedule in words with repeats folded: ``(first, last, description)`` for
    each run of consecutive steps (numbered from 1) that read the same, so a storm's
    150 reclaims are one line, not 150."""
    runs: list[tuple[int, int, str]] = []
    for i, step in enumerate(steps, 1):
        text = step.describe()
        if runs and runs[-1][2] == text:
            runs[-1] = (runs[-1][0], i, text)
        else:
            runs.append((i, i, text))
    return runs


def numbered(first: int, last: int, text: str) -> str:
    """One folded run as a line: ``3. text`` or ``3-152. text (x150)``."""
    if first == last:
        return f"{first}. {text}"
    return f"{first}-{last}. {text} (x{last - first + 1})"
