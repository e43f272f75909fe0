"""P7 — the lease protocol, observed: what the client claims matches what the server shows.

A property of its own rather than clauses of P6: P6 judges the reaper's
choices, P7 the client's side of the lease (LEASE_SPEC.md, "Client") — what it
put on the server, what it believed, and when it sent. It reads the backend
mappings (each a lease the server confirmed), the statements about to be sent
(``query_start``, with the lease the client held), the samples and the clock
skews in the history.

Fencing is judged only where the record proves it, so the correct client never
trips it on timing noise. A correct client decides to send with its own clock
reading ``c(d)`` and sends only if ``expiry - c(d) > fence_margin``; the
recorded stamp ``s`` comes later (``d <= s``). Two facts bound ``d`` from below
without measuring it: the op's invoke, and the previous statement of the same op
(each decision is taken after the previous statement was sent). The client's
clock only moves forward (skews aside, taken at their most lenient), so:

- if the lease already had less than the margin left at such a point ``p <= d``,
  no correct client would have sent (exact);
- otherwise, if it had less than the margin *less the tolerance* left at ``s``
  and the worker was not frozen between ``p`` and ``s``, the decision was more
  than the tolerance of running time before the stamp: scheduling noise cannot
  explain it.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from typing import Any

from harness.check import wire
from harness.check.run import Run, lease_expiry_ms, lease_instance
from harness.check.timeline import Op
from harness.check.verdict import Verdict, verdict
from harness.history import (
    BackendEvent,
    ConnectionEvent,
    QueryErrorEvent,
    QueryStartEvent,
    WorkerEvent,
    to_json,
)

P7_TITLE = "lease protocol"

EXACT = 1e-3
"""The expiry is whole milliseconds in the token: local and token agree to this."""
PIPE_SLACK = 1.0
"""A clock skew recorded this long before an op's invoke may still not be applied."""
STALE_S = 60.0
"""How long before the server authorized a connection the lease it began with may have
expired, skews aside, and still have been minted for that connection: a client mints
its lease just before it connects, and one attempt lasts at most its connect timeout
(seconds here); a minute is far beyond any attempt, even on a starved machine."""


class _Views:
    """Per-worker, per-backend indexes of the mappings and statements, by time."""

    def __init__(self, run: Run) -> None:
        self.maps: dict[tuple[str, int], list[BackendEvent]] = defaultdict(list)
        self.tokens: dict[int, set[str]] = defaultdict(set)
        self.instances: dict[int, set[str]] = defaultdict(set)
        self.queries: dict[str, list[QueryStartEvent]] = defaultdict(list)
        for e in run.timeline.events:
            if isinstance(e, BackendEvent):
                self.maps[(e.worker, e.backend_pid)].append(e)
                self.tokens[e.backend_pid].add(e.application_name)
                if (i := lease_instance(e.application_name)) is not None:
                    self.instances[e.backend_pid].add(i)
            elif isinstance(e, QueryStartEvent):
                self.queries[e.worker].append(e)

    def mapping_at(self, worker: str, pid: int, t: float) -> BackendEvent | None:
        ms = [m for m in self.maps.get((worker, pid), ()) if m.time <= t]
        return ms[-1] if ms else None


def _op_at(run: Run, worker: str, t: float) -> Op | None:
    ops = run.timeline.in_progress(worker, t)
    return ops[-1] if ops else None


def _bound_before(run: Run, v: _Views, worker: str, t: float) -> tuple[float, float, str] | None:
    """The latest recorded point (time, wall, what) surely before the client's decision
    to send what it sent at ``t``: the op's invoke or the op's previous statement."""
    op = _op_at(run, worker, t)
    if op is None:
        return None
    best = (op.invoke.time, op.invoke.wall, f"op {op.id}'s invoke")
    for q in v.queries.get(worker, ()):
        if op.start <= q.time < t and q.time > best[0]:
            best = (q.time, q.wall, "its previous statement")
    return best


def _lenient_skew(run: Run, worker: str, t: float) -> float:
    """The skew of ``worker``'s lease clock at ``t`` that gives the client the most time."""
    op = _op_at(run, worker, t)
    start = (op.start if op else t) - PIPE_SLACK
    return min(run.timeline.skews_between(worker, start, t))


# ------------------------------------------------------------------ what the server shows


def _p7_unconfirmed(run: Run, v: _Views) -> list[dict[str, Any]]:
    """The server shows, for a worker's backend, a lease of that worker's client it never
    had confirmed — and the worker sent on that backend afterwards all the same."""
    out: list[dict[str, Any]] = []
    reported: set[tuple[int, str | None]] = set()
    for s in run.sorted_samples:
        for r in s.rows:
            pid, app = r.pid, r.application_name
            if pid not in v.tokens or app in v.tokens[pid] or (pid, app) in reported:
                continue
            if lease_instance(app) not in v.instances[pid]:
                continue  # not this client's lease: a pid reused by someone else
            later = [
                (w, q)
                for (w, p), _ in v.maps.items()
                if p == pid
                for q in v.queries.get(w, ())
                if q.backend_pid == pid and q.time > s.time
            ]
            if not later:
                continue  # a renewal that was never confirmed, then dropped: allowed
            reported.add((pid, app))
            w, q = later[0]
            out.append(
                {
                    "clause": "P7-unconfirmed",
                    "explain": f"the server showed backend {pid} of worker {w} with {app!r} at"
                    f" {run.at(s.time)}, a lease its client never had confirmed, and the"
                    f" client sent on that backend again at {run.at(q.time)}",
                    "sample": {"time": s.time, "row": to_json(r)},
                    "confirmed": sorted(v.tokens[pid]),
                    "worker": w,
                }
            )
    return out


def _p7_ahead(run: Run, v: _Views) -> list[dict[str, Any]]:
    """The client's local expiry never runs ahead of the token on the server: not of
    the token it reported confirmed, not of what the samples showed before it sent."""
    out: list[dict[str, Any]] = []
    for ms in v.maps.values():
        for m in ms:
            token_ms = lease_expiry_ms(m.application_name)
            if token_ms is None or m.lease_expiry <= 0:
                continue
            if m.lease_expiry > token_ms / 1000 + EXACT:
                out.append(
                    {
                        "clause": "P7-ahead",
                        "explain": f"worker {m.worker} recorded backend {m.backend_pid} at"
                        f" {run.at(m.time)} with a local expiry"
                        f" {m.lease_expiry - token_ms / 1000:.3f}s past the expiry of the token"
                        " it had confirmed",
                        "mapping": to_json(m),
                    }
                )
    for w, qs in v.queries.items():
        for q in qs:
            if q.lease_expiry is None or q.backend_pid is None:
                continue
            mapped = v.mapping_at(w, q.backend_pid, q.time)
            if mapped is None:
                out.append(
                    {
                        "clause": "P7-ahead",
                        "explain": f"worker {w} sent on backend {q.backend_pid} at"
                        f" {run.at(q.time)} holding a lease no server had confirmed to it",
                        "query_start": to_json(q),
                    }
                )
                continue
            bound = _server_expiry_bound(run, v, w, q, mapped)
            if bound is not None and q.lease_expiry > bound + EXACT:
                out.append(
                    {
                        "clause": "P7-ahead",
                        "explain": f"worker {w} sent on backend {q.backend_pid} at"
                        f" {run.at(q.time)} believing its lease ran"
                        f" {q.lease_expiry - bound:.3f}s longer than the one the server had",
                        "query_start": to_json(q),
                        "server_expiry": bound,
                    }
                )
    return out


def _server_expiry_bound(
    run: Run, v: _Views, worker: str, q: QueryStartEvent, m: BackendEvent
) -> float | None:
    """The latest expiry the server can have had on ``q``'s backend at ``q``: the most
    recent confirmed token, or what the last sample since the connection showed plus
    any renewal confirmed after that sample. An upper bound: never a false alarm."""
    pid = q.backend_pid
    assert pid is not None
    first = v.maps[(worker, pid)][0].time
    instance = lease_instance(m.application_name)
    shown: tuple[float, float] | None = None
    ss = run.sorted_samples
    for i in range(bisect.bisect_right(run.sample_times, q.time) - 1, -1, -1):
        s = ss[i]
        if s.time < first:
            break
        r = s.row(pid)
        e = lease_expiry_ms(r.application_name) if r is not None else None
        if r is not None and e is not None and lease_instance(r.application_name) == instance:
            shown = (s.time, e / 1000)
            break
    token_ms = lease_expiry_ms(m.application_name)
    confirmed = None if token_ms is None else token_ms / 1000
    if shown is None:
        return confirmed
    renewed = [
        (lease_expiry_ms(b.application_name) or 0) / 1000
        for b in v.maps[(worker, pid)]
        if shown[0] < b.time <= q.time
    ]
    return max([shown[1], *renewed])


# ------------------------------------------------------------------ fencing


def _p7_fence(run: Run, v: _Views) -> list[dict[str, Any]]:
    margin = run.config.fence_margin
    if margin is None:
        return []
    tol = run.config.clock_tolerance
    out: list[dict[str, Any]] = []
    for w, qs in v.queries.items():
        for q in qs:
            if q.lease_expiry is None:
                continue
            found = _fence_breach(run, v, w, q.time, q.wall, q.lease_expiry, margin, tol)
            if found is not None:
                out.append({**found, "query_start": to_json(q)})
    for (w, _pid), ms in v.maps.items():
        for prev, m in itertools.pairwise(ms):
            if not m.renewed or prev.lease_expiry <= 0:
                continue
            # the renewal is a statement on the old lease, sent before m was stamped; its
            # round trip is unbounded, so only the exact rule applies to it
            found = _fence_breach(
                run, v, w, m.time, m.wall, prev.lease_expiry, margin, None, renewal=True
            )
            if found is not None:
                out.append({**found, "renewal": to_json(m)})
    return out


def _p7_renew(run: Run, v: _Views) -> list[dict[str, Any]]:
    """No statement goes out on a lease that, already at a point surely before the
    decision to send (the op's invoke, its previous statement), had less than the
    heartbeat margin left by the client's own clock (its skew at its most lenient):
    the client renews first (LEASE_SPEC, "Client"), and a renewed statement carries
    the new lease. Exact, like P7-fence's first rule."""
    margin = run.config.heartbeat_margin
    if margin is None:
        return []
    out: list[dict[str, Any]] = []
    for w, qs in v.queries.items():
        for q in qs:
            if q.lease_expiry is None:
                continue
            bound = _bound_before(run, v, w, q.time)
            if bound is None:
                continue
            p_time, p_wall, p_what = bound
            left = q.lease_expiry - (p_wall + _lenient_skew(run, w, q.time))
            if left < margin - EXACT:
                out.append(
                    {
                        "clause": "P7-renew",
                        "explain": f"worker {w} sent a statement at {run.at(q.time)} on a lease"
                        f" that had only {left:.3f}s left by its own clock already at {p_what}"
                        f" ({run.at(p_time)}), without renewing it first; the heartbeat"
                        f" margin is {margin:.3f}s",
                        "left_at_bound_s": left,
                        "bound": p_time,
                        "query_start": to_json(q),
                    }
                )
    return out


def _p7_early(run: Run, v: _Views) -> list[dict[str, Any]]:
    """No renewal while the lease still had more than the heartbeat margin left: the
    spec's fence says send then (LEASE_SPEC, "Client"), and each needless renewal is a
    round trip on every statement. Judged on each backend's first renewal only, against
    its connect (a later renewal's predecessor may have been undone by a rolled-back
    transaction). Exact: the client decided with its own clock reading ``c <= E_new -
    ttl + 1 ms`` (the new token's expiry is that reading plus the TTL, cut to whole ms)
    and its own expiry ``E_connect``, so it had at least ``E_connect - E_new + ttl - 1 ms``
    left, whatever the clock skews."""
    margin, ttl = run.config.heartbeat_margin, run.config.lease_ttl
    if margin is None or not run.config.renews_only_at_margin:
        return []
    out: list[dict[str, Any]] = []
    for (worker, pid), maps in sorted(v.maps.items()):
        ordered = sorted(maps, key=lambda m: m.time)
        for first, second in itertools.pairwise(ordered):
            if first.renewed or not second.renewed:
                continue
            left = first.lease_expiry - second.lease_expiry + ttl - EXACT
            if left > margin + EXACT:
                out.append(
                    {
                        "clause": "P7-early",
                        "explain": f"worker {worker} renewed its lease on backend {pid} at"
                        f" {run.at(second.time)} with at least {left:.3f}s of it left by its"
                        f" own clock; it renews only within the heartbeat margin"
                        f" ({margin:.3f}s)",
                        "worker": worker,
                        "backend_pid": pid,
                        "left_at_least_s": left,
                        "connect": to_json(first),
                        "renewal": to_json(second),
                    }
                )
            break
    return out


def _p7_stale(run: Run) -> list[dict[str, Any]]:
    """No backend of this service begins with a lease that was dead long before: every
    connection the server authorized (its log) with a validly signed lease of the
    service, workers' and standalone reapers' alike (not the harness's registered
    neighbours, forged stale on purpose), carries an expiry no more than
    :data:`STALE_S` plus the run's largest clock skew before the authorization."""
    verify, prefix = run.config.verify, run.config.own_app_prefix
    if verify is None or not run.config.renews_only_at_margin:
        return []
    skews = [
        abs(float(f.value.get("seconds", 0.0))) for f in run.timeline.faults_of({"clock_skew"})
    ]
    slack = STALE_S + max(skews, default=0.0)
    out = []
    harness_made = run.foreign_pids  # the harness's forged neighbours: stale on purpose
    for e in run.timeline.events:
        if not isinstance(e, ConnectionEvent) or e.pid in harness_made:
            continue
        app = e.application_name
        if app is None or not app.startswith(prefix) or not verify(app):
            continue
        ms = lease_expiry_ms(app)
        if ms is None or ms / 1000 >= e.wall - slack:
            continue
        out.append(
            {
                "clause": "P7-stale",
                "explain": f"the server authorized backend {e.pid} at {run.at(e.time)} with"
                f" {app!r}, a lease that had expired {e.wall - ms / 1000:.0f}s before: no"
                " client mints such a lease for a connection it is opening",
                "pid": e.pid,
                "application_name": app,
                "expired_before_s": e.wall - ms / 1000,
            }
        )
    return out


def _p7_hooks(run: Run) -> list[dict[str, Any]]:
    """The client's hooks say what happened (LEASE_SPEC, "Client": ``on_connect``,
    ``on_reconnect``, ``on_query_error``): a worker process's first connect is not
    called a reconnect and every later one is; an error the client called lost (it took
    the connection) is never followed by a statement on that same backend. Judged where
    the client said (a driver that does not report these is not judged)."""
    out: list[dict[str, Any]] = []
    connected: dict[str, bool] = {}
    lost_at: dict[tuple[str, int], QueryErrorEvent] = {}
    for e in run.timeline.events:
        if isinstance(e, WorkerEvent) and e.f == "spawn":
            connected.pop(e.worker, None)  # a new process: its client starts afresh
        elif isinstance(e, BackendEvent) and not e.renewed:
            lost_at.pop((e.worker, e.backend_pid), None)  # a new backend, even if a pid recurs
            said, was = e.reconnect, connected.get(e.worker, False)
            connected[e.worker] = True
            if said is not None and said != was:
                out.append(
                    {
                        "clause": "P7-hooks",
                        "explain": f"worker {e.worker}'s client connected to backend"
                        f" {e.backend_pid} at {run.at(e.time)} and its on_connect said"
                        f" reconnect={said}, but it was its"
                        f" {'second or later' if was else 'first'} connect",
                        "worker": e.worker,
                        "backend": to_json(e),
                    }
                )
        elif isinstance(e, QueryErrorEvent) and e.lost and e.backend_pid is not None:
            lost_at[(e.worker, e.backend_pid)] = e
        elif isinstance(e, QueryStartEvent) and e.backend_pid is not None:
            said_lost = lost_at.pop((e.worker, e.backend_pid), None)
            if said_lost is not None:
                out.append(
                    {
                        "clause": "P7-hooks",
                        "explain": f"worker {e.worker}'s client said the {said_lost.error}"
                        f" on backend {e.backend_pid} at {run.at(said_lost.time)} took the"
                        f" connection (on_query_error lost=True), then sent on that backend"
                        f" again at {run.at(e.time)}",
                        "worker": e.worker,
                        "query_error": to_json(said_lost),
                        "query_start": to_json(e),
                    }
                )
    return out


def _fence_breach(
    run: Run,
    v: _Views,
    worker: str,
    t: float,
    wall: float,
    expiry: float,
    margin: float,
    tol: float | None,
    *,
    renewal: bool = False,
) -> dict[str, Any] | None:
    """Evidence that the send stamped ``t`` went out on a lease within the fence."""
    bound = _bound_before(run, v, worker, t)
    if bound is None:
        return None
    p_time, p_wall, p_what = bound
    skew = _lenient_skew(run, worker, t)
    what = "renewed its lease (a statement on the old one)" if renewal else "sent a statement"
    left_p = expiry - (p_wall + skew)
    if left_p < margin - EXACT:
        return {
            "clause": "P7-fence",
            "explain": f"worker {worker} {what} at {run.at(t)} on a lease that had only"
            f" {left_p:.3f}s left by its own clock already at {p_what} ({run.at(p_time)});"
            f" the fence margin is {margin:.3f}s",
            "left_at_bound_s": left_p,
            "bound": p_time,
            "skew_assumed": skew,
        }
    if tol is None:
        return None
    left_s = expiry - (wall + skew)
    if left_s >= margin - tol or run.timeline.frozen_during(worker, p_time, t):
        return None
    return {
        "clause": "P7-fence",
        "explain": f"worker {worker} {what} at {run.at(t)} with {left_s:.3f}s left on its lease"
        f" by its own clock (fence margin {margin:.3f}s, tolerance {tol:.3f}s), not frozen since"
        f" {p_what} ({run.at(p_time)})",
        "left_s": left_s,
        "bound": p_time,
        "skew_assumed": skew,
    }


def _p7_wire(run: Run, v: _Views) -> list[dict[str, Any]]:
    """Every token a client had confirmed on the server is one the spec allows: its
    format, this service's tag, its signature (by the run's ``verify``). Judged by
    :mod:`harness.check.wire`, the checker's own reading of the spec."""
    verify = run.config.verify
    if verify is None:
        return []
    out = []
    seen: set[str] = set()
    for (worker, pid), maps in sorted(v.maps.items()):
        for m in maps:
            app = m.application_name
            if app in seen:
                continue
            seen.add(app)
            why = wire.problem(app, run.config.service, verify)
            if why is not None:
                out.append(
                    {
                        "clause": "P7-wire",
                        "explain": f"worker {worker}'s backend {pid} carried {app!r} at"
                        f" {run.at(m.time)}: {why}",
                        "worker": worker,
                        "backend_pid": pid,
                        "application_name": app,
                    }
                )
    return out


def check_p7(run: Run) -> Verdict:
    """P7: the lease protocol, observed.

    ``P7-unconfirmed``: a sample shows a worker's backend (a pid with backend
    mappings) with a lease of that client's instance that no mapping of the pid
    confirmed, and a worker sent on that pid after the sample. ``P7-ahead``: a
    mapping's local expiry is later than its token's ``e=`` (beyond the ms); a
    statement is sent on a backend the worker has no mapping of, or believing a
    lease later than the server can have had (see :func:`_server_expiry_bound`).
    ``P7-fence`` (needs ``fence_margin``): a statement or a renewal was sent on a
    lease that had less than the fence margin left by the client's clock (its
    recorded skew at its most lenient) at a point surely before the decision to
    send (the op's invoke, the op's previous statement); or, for a statement,
    less than the margin minus ``clock_tolerance`` at its own stamp while the
    worker was not frozen since that point. ``P7-renew`` (needs ``heartbeat_margin``):
    a statement was sent on a lease that had less than the heartbeat margin left at
    such a point, without a renewal first. ``P7-wire`` (needs ``verify``): a token a
    mapping confirmed is not one the spec allows (format, service tag, signature;
    :mod:`harness.check.wire`). ``P7-early`` (needs ``heartbeat_margin`` and
    ``renews_only_at_margin``): a backend's first renewal came with more than the
    heartbeat margin left (see :func:`_p7_early`). ``P7-stale`` (the same, and
    ``verify``): the server authorized a connection whose lease had long expired (see
    :func:`_p7_stale`). ``P7-hooks``: the client's on_connect and on_query_error
    said something that did not happen (see :func:`_p7_hooks`).
    """
    v = _Views(run)
    evidence = (
        _p7_wire(run, v)
        + _p7_unconfirmed(run, v)
        + _p7_ahead(run, v)
        + _p7_fence(run, v)
        + _p7_renew(run, v)
        + _p7_early(run, v)
        + _p7_stale(run)
        + _p7_hooks(run)
    )
    sends = sum(len(qs) for qs in v.queries.values())
    renewals = sum(1 for ms in v.maps.values() for m in ms if m.renewed)
    fenced = run.config.fence_margin is not None
    ok = (
        f"{sends} statement(s) and {renewals} renewal(s): every lease the server showed was"
        " confirmed, no local expiry ran ahead of the server's"
    )
    ok += ", none sent past the fence" if fenced else " (fencing NOT checked: no fence margin)"
    return verdict(
        "P7",
        P7_TITLE,
        evidence,
        ok,
        cannot_judge=run.sampling_problems,
        statements=sends,
        renewals=renewals,
        fence_checked=fenced,
    )
