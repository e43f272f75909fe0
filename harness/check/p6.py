"""P6 — the reaper keeps its own rules (LEASE_SPEC.md, "Reaper").

Judged at every ledger entry from the entry itself (the scanned row the reaper
acted on, its own clock ``at``, the server's ``idle_for``, its own backend),
from the ``pg_stat_activity`` samples around it and from the passes
(:mod:`harness.check.passes`). A rule broken is a violation even when no worker
noticed: P1 asks whether a connection in use was hurt, P6 whether the reaper
did what the spec lets it do. An attempt the server carried out (``killed``)
or refused (``denied``) counts alike for the rules of choice: the choice was
the bug. See :func:`check_p6` for the clauses.
"""

from __future__ import annotations

import itertools
from typing import Any

from harness.check.evidence import programming_error, reap_json
from harness.check.passes import Pass, reaper_passes
from harness.check.run import IDLE_STATES, Run, lease_expiry_ms
from harness.check.verdict import Verdict, verdict
from harness.history import LockProbeEvent, ReapEvent, ReapPassEvent, Sample, to_json

P6_TITLE = "the reaper keeps its own rules"

EXACT = 1e-3
"""Slack for values the reaper and the checker compute from the same numbers (ms
rounding of an expiry, float seconds): not a timing tolerance."""
SAME_INSTANT = 1e-4
"""Two ``state_change`` readings of one row (µs on the server) that are one instant."""


def _ev(run: Run, clause: str, e: ReapEvent, why: str, **extra: Any) -> dict[str, Any]:
    did = "killed" if e.result == "killed" else f"tried to kill ({e.result})"
    by = f"reaper {e.worker}" + (f" (backend {e.reaper_pid})" if e.reaper_pid else "")
    return {
        "clause": clause,
        "explain": f"{by} {did} backend {e.pid} at {run.at(e.time)}: {why}",
        "reap": {**reap_json(e), "idle_for": e.idle_for, "at": e.at, "reaper_pid": e.reaper_pid},
        **extra,
    }


# ------------------------------------------------------------------ the rules of choice


def _lease(run: Run, e: ReapEvent) -> list[dict[str, Any]]:
    """The victim carried a lease of this service with a valid signature."""
    cfg, app = run.config, e.application_name or ""
    if not app.startswith(cfg.own_app_prefix) or lease_expiry_ms(app) is None:
        return [
            _ev(run, "P6-lease", e, f"its application_name {app!r} is no lease of this service")
        ]
    if cfg.verify is not None and not cfg.verify(app):
        return [
            _ev(run, "P6-lease", e, f"the lease in {app!r} is not signed with the service's secret")
        ]
    return []


def _expired(run: Run, e: ReapEvent) -> list[dict[str, Any]]:
    """Expired by more than the grace by the REAPER's clock (``at``, its skew included).

    Exact: the reaper decided with a clock reading taken before ``at``, so a
    correct reaper's ``at`` is always past expiry + grace."""
    expiry_ms = lease_expiry_ms(e.application_name)
    if expiry_ms is None:
        expiry_ms = e.lease_expiry_ms
    if expiry_ms is None or e.at is None:
        return []
    expiry, grace = expiry_ms / 1000.0, run.config.grace
    if e.at > expiry + grace - EXACT:
        return []
    if e.at < expiry:
        state = f"the lease still had {expiry - e.at:.3f}s to run"
    else:
        state = f"the lease had expired only {e.at - expiry:.3f}s before"
    return [
        _ev(
            run,
            "P6-expired",
            e,
            f"by its own clock {state}; it may kill only once it is {grace:.3f}s (the grace)"
            " past its expiry",
            lease_expiry_ms=expiry_ms,
        )
    ]


def _idle(run: Run, e: ReapEvent) -> list[dict[str, Any]]:
    """Idle (or idle in transaction) at least ``min_idle``: by the server's own
    measure at the scan (``idle_for``, exact) and by ``state_change`` against the
    kill's wall time (the server's and the harness's clocks, within the tolerance)."""
    cfg, out = run.config, []
    if e.idle_for is not None and e.idle_for < cfg.min_idle - EXACT:
        out.append(
            _ev(
                run,
                "P6-idle",
                e,
                f"the server measured it idle {e.idle_for:.3f}s at the scan, less than the"
                f" minimum {cfg.min_idle:.3f}s",
            )
        )
    elif (
        e.state_change is not None and e.wall - e.state_change < cfg.min_idle - cfg.clock_tolerance
    ):
        out.append(
            _ev(
                run,
                "P6-idle",
                e,
                f"its state had last changed {e.wall - e.state_change:.3f}s before the kill,"
                f" less than the minimum idle {cfg.min_idle:.3f}s",
            )
        )
    return out


def _readable(run: Run, e: ReapEvent) -> list[dict[str, Any]]:
    """A row with NULL state or state_change is never a candidate; an active one neither."""
    if e.state is None or e.state_change is None:
        missing = "state" if e.state is None else "state_change"
        return [
            _ev(
                run,
                "P6-unreadable",
                e,
                f"the row it acted on had a NULL {missing} (unknown is not idle)",
            )
        ]
    if e.state not in IDLE_STATES:
        return [_ev(run, "P6-state", e, f"the row it acted on was in state {e.state!r}, not idle")]
    return []


def _own(run: Run, e: ReapEvent, p: Pass | None) -> list[dict[str, Any]]:
    own = {pid for pid in (e.reaper_pid, p.reaper_pid if p else None) if pid is not None}
    if e.pid not in own:
        return []
    return [_ev(run, "P6-own", e, "that is the reaper's own backend")]


def _row_at(run: Run, pid: int, t: float) -> tuple[Sample, Any] | None:
    """The last sample at or before ``t`` that shows ``pid``, with its row."""
    for s in reversed(run.sorted_samples):
        if s.time > t:
            continue
        r = s.row(pid)
        if r is not None:
            return s, r
    return None


def _protected(run: Run, e: ReapEvent, reaper_roles: dict[int, str]) -> list[dict[str, Any]]:
    """A superuser session of another role is never the reaper's to kill (by the samples)."""
    seen = _row_at(run, e.pid, e.time)
    if seen is None or not seen[1].superuser:
        return []
    s, victim = seen
    role = reaper_roles.get(e.reaper_pid) if e.reaper_pid is not None else None
    if role is None or role == victim.usename:
        return []  # its own role's session, or the reaper's role is not known
    return [
        _ev(
            run,
            "P6-protected",
            e,
            f"it was a superuser session of role {victim.usename!r} (the reaper is {role!r}),"
            f" as the sample at {run.at(s.time)} shows",
            sample={"time": s.time, "row": to_json(victim)},
        )
    ]


# ------------------------------------------------------------------ the guarded kill


def _recheck(run: Run, e: ReapEvent, p: Pass | None) -> list[dict[str, Any]]:
    """The kill re-checked the row: a sample taken before the kill was sent (by more
    than the tolerance, so its snapshot surely came first) shows it changed since the
    scan — a newer state_change, or (after the scan) another application_name or
    state — and the kill went through all the same."""
    if e.result != "killed":
        return []
    tol, scan = run.config.clock_tolerance, (p.scanned.time if p and p.scanned else None)
    for s in run.sorted_samples:
        if s.time > e.time - tol:
            break
        r = s.row(e.pid)
        if r is None:
            continue
        newer = (
            e.state_change is not None
            and r.state_change is not None
            and r.state_change > e.state_change + SAME_INSTANT
        )
        after_scan = scan is not None and s.time >= scan
        changed = after_scan and (r.application_name != e.application_name or r.state != e.state)
        if not (newer or changed):
            continue
        what = (
            f"state_change {r.state_change:.6f} newer than the scanned {e.state_change:.6f}"
            if newer
            else f"application_name {r.application_name!r} / state {r.state!r} after the scan"
        )
        return [
            _ev(
                run,
                "P6-recheck",
                e,
                f"the sample at {run.at(s.time)}, before the kill was sent, shows the row"
                f" changed ({what}); a re-check at kill time would have skipped it",
                sample={"time": s.time, "row": to_json(r)},
            )
        ]
    return []


# ------------------------------------------------------------------ per pass


def _pass_rules(run: Run, p: Pass) -> list[dict[str, Any]]:
    """At most ``max_kills`` a pass; kills sent in the decision's order, oldest expiry first."""
    out: list[dict[str, Any]] = []
    cfg, who = run.config, f"the pass of reaper {p.worker} locked at {run.at(p.locked.time)}"
    cands = list(p.scanned.candidates) if p.scanned else None
    n = max(len(p.entries), len(cands or ()))
    if cfg.max_kills is not None and n > cfg.max_kills:
        out.append(
            {
                "clause": "P6-max",
                "explain": f"{who} chose {n} backends to kill, more than its maximum"
                f" {cfg.max_kills} a pass",
                "pass": p.to_json(),
            }
        )
    sent = [e.pid for e in p.entries]
    if cands is not None and sent != cands[: len(sent)]:
        out.append(
            {
                "clause": "P6-decision",
                "explain": f"{who} decided to kill {cands} but sent kills to {sent}",
                "pass": p.to_json(),
            }
        )
    keyed = [
        ((lease_expiry_ms(e.application_name) or e.lease_expiry_ms or 0, e.pid), e)
        for e in p.entries
    ]
    for (a, ea), (b, eb) in itertools.pairwise(keyed):
        if b < a:
            out.append(
                {
                    "clause": "P6-order",
                    "explain": f"{who} killed backend {eb.pid} (lease expiring"
                    f" {(b[0] - a[0]) / 1000:+.3f}s from the previous one's) after backend"
                    f" {ea.pid}: the oldest expiry goes first",
                    "pass": p.to_json(),
                }
            )
            break
    return out


def _leadership(run: Run, passes: list[Pass]) -> list[dict[str, Any]]:
    """No pass took the lock while another held it, on the server's clock. A pass
    without ``pass_end`` held it for an unknown time: only its taking is compared."""
    out = []
    held = [p for p in passes if p.held_from is not None and p.held_to is not None]
    for a in passes:
        if a.held_from is None:
            continue
        for b in held:
            assert b.held_from is not None
            assert b.held_to is not None
            if b is a or not b.held_from < a.held_from < b.held_to:
                continue
            out.append(
                {
                    "clause": "P6-leader",
                    "explain": f"reaper {a.worker} (backend {a.reaper_pid}) took the lock at"
                    f" {run.at(a.locked.time)} while reaper {b.worker} (backend {b.reaper_pid})"
                    f" held it: the server's clock shows {a.held_from - b.held_from:.6f}s"
                    f" after {b.worker} took it and {b.held_to - a.held_from:.6f}s before"
                    " it let go",
                    "passes": [a.to_json(), b.to_json()],
                }
            )
    return out


def _ledger_vs_server(run: Run, passes: list[Pass]) -> list[dict[str, Any]]:
    """The ledger says what the reaper did: every termination the server's log
    attributes to a reaper pass's own backend is a ``killed`` entry of that victim.
    (Only where the log was read: a run without its terminations is not judged here;
    the other direction, a kill the server never logged, is the run's cross-check.)"""
    reapers = {p.reaper_pid for p in passes if p.reaper_pid is not None}
    out = []
    for t in run.terminations:
        if t.server is None or t.killer_pid not in reapers or t.ledger is not None:
            continue
        entries = [e for e in run.ledger if e.pid == t.pid and e.reaper_pid == t.killer_pid]
        said = ", ".join(sorted({e.result for e in entries})) or "nothing"
        out.append(
            {
                "clause": "P6-ledger",
                "explain": f"the server logged backend {t.pid} terminated at {run.at(t.time)}"
                f" by reaper backend {t.killer_pid} ({t.by}), whose ledger said {said}"
                " of it",
                "pid": t.pid,
                "killer_pid": t.killer_pid,
                "ledger": [{"result": e.result, "time": e.time} for e in entries],
            }
        )
    return out


def _pass_bugs(run: Run) -> list[dict[str, Any]]:
    """A pass that raised a mistake of the reaper's own code. The client swallows a
    failed pass (it must never fail the caller's query), so no worker notices: the
    pass's ``error`` step is the only witness."""
    return [
        {
            "clause": "P6-bug",
            "explain": f"a reaper pass of {e.worker} failed at {run.at(e.time)} with"
            f" {e.error}: a mistake in the reaper's own code, not a fault's effect",
            "worker": e.worker,
            "error": e.error,
            "time": e.time,
        }
        for e in run.timeline.events
        if isinstance(e, ReapPassEvent)
        and e.f == "error"
        and e.error is not None
        and programming_error(e.error)
    ]


def _aequor_key(run: Run) -> list[dict[str, Any]]:
    """While a pass leads it holds pg-aequor's key too (LEASE_SPEC, "Reaper": so that a
    Node reaper of the same service cannot run a pass beside it): the harness's probe,
    made while a pass was frozen holding the leader lock, must have found the key held."""
    return [
        {
            "clause": "P6-aequor",
            "explain": f"while reaper {e.worker}'s pass was frozen holding the leader lock,"
            f" pg-aequor's key ({e.namespace}, hashtext({e.tag!r})) was free at"
            f" {run.at(e.time)}: a pg-aequor reaper of the service could have led a pass"
            " beside it",
            "worker": e.worker,
            "namespace": e.namespace,
            "time": e.time,
        }
        for e in run.timeline.events
        if isinstance(e, LockProbeEvent) and e.got
    ]


def _reaper_roles(run: Run) -> dict[int, str]:
    """Each reaper backend's role, from any sample that shows it."""
    pids = {e.reaper_pid for e in run.ledger if e.reaper_pid is not None}
    roles: dict[int, str] = {}
    for s in run.sorted_samples:
        for r in s.rows:
            if r.pid in pids and r.usename is not None:
                roles.setdefault(r.pid, r.usename)
    return roles


def check_p6(run: Run) -> Verdict:
    """P6: the reaper keeps its own rules.

    For every ledger entry (result ``killed``, ``denied`` or ``skipped``: each is
    a decision to kill) of victim pid at time t: its application_name is a lease
    of this service with a valid signature (``P6-lease``); by the reaper's own
    clock ``at`` it had expired more than the grace before (``P6-expired``); the
    server measured it idle at least ``min_idle`` (``idle_for``) and its
    ``state_change`` is that old at the kill's wall time (``P6-idle``); the row
    had a known, idle state (``P6-unreadable``, ``P6-state``); it was not the
    reaper's own backend (``P6-own``); the samples do not show it a superuser
    session of a role other than the reaper's (``P6-protected``). For every
    ``killed`` entry: no sample taken before the kill shows the row changed since
    the scan (``P6-recheck``). For every pass: at most ``max_kills`` chosen
    (``P6-max``), kills sent as decided (``P6-decision``) and by expiry, oldest
    first (``P6-order``); no pass took the lock while another held it, by the
    server's clock (``P6-leader``). Every termination the server's log attributes
    to a pass's own backend is a ``killed`` entry of that victim (``P6-ledger``).
    No pass fails with a programming error (``P6-bug``, the classes of P4-bug). A
    pass frozen holding the leader lock holds pg-aequor's key too (``P6-aequor``: the
    harness's lock probe found it held).
    """
    passes, loose = reaper_passes(run.timeline.events)
    pass_of = {id(e): p for p in passes for e in p.entries}
    roles = _reaper_roles(run)
    evidence: list[dict[str, Any]] = []
    for e in run.ledger:
        p = pass_of.get(id(e))
        evidence += (
            _lease(run, e)
            + _expired(run, e)
            + _idle(run, e)
            + _readable(run, e)
            + _own(run, e, p)
            + _protected(run, e, roles)
            + _recheck(run, e, p)
        )
    for p in passes:
        evidence += _pass_rules(run, p)
    evidence += _leadership(run, passes)
    evidence += _ledger_vs_server(run, passes)
    evidence += _pass_bugs(run)
    evidence += _aequor_key(run)
    unstamped = sum(1 for e in run.ledger if e.at is None)
    return verdict(
        "P6",
        P6_TITLE,
        evidence,
        f"{len(run.ledger)} ledger entr(ies) ({len(run.kills)} kill(s)) in {len(passes)} pass(es),"
        " each within the reaper's rules; no two passes led at once",
        cannot_judge=run.sampling_problems,
        entries=len(run.ledger),
        kills=len(run.kills),
        passes=len(passes),
        unfinished_passes=sum(1 for p in passes if p.end is None),
        entries_outside_passes=len(loose),
        entries_without_reaper_clock=unstamped,
        signatures_checked=run.config.verify is not None,
        max_kills_checked=run.config.max_kills is not None,
        largest_pass=max((len(p.entries) for p in passes), default=0),
    )
