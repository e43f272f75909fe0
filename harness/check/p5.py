"""P5 — foreign safety: backends that are not the service's own are never terminated.

Judged from the ledger, the foreign registrations in the history and the
samples. See :func:`check_p5`.
"""

from __future__ import annotations

from typing import Any

from harness.check.evidence import killer_words, reap_json
from harness.check.run import Run
from harness.check.verdict import Verdict, verdict
from harness.history import BackendEvent, Event, ForeignEvent, ReapEvent

P5_TITLE = "foreign safety"


def _foreign_at(run: Run, pid: int, t: float) -> ForeignEvent | None:
    """The registration making ``pid`` foreign at ``t`` (latest of foreign/backend events)."""
    latest: Event | None = None
    for e in run.timeline.events:
        if e.time > t:
            break
        if (isinstance(e, ForeignEvent) and e.backend_pid == pid) or (
            isinstance(e, BackendEvent) and e.backend_pid == pid
        ):
            latest = e
    if isinstance(latest, ForeignEvent) and latest.f == "register":
        return latest
    return None


def _p5_kill(run: Run, kill: ReapEvent) -> list[dict[str, Any]]:
    cfg, app = run.config, kill.application_name or ""
    reasons = []
    reg = _foreign_at(run, kill.pid, kill.time)
    if reg is not None or kill.pid in cfg.foreign_pids:
        kind = reg.kind if reg else "configured"
        reasons.append(("P5-foreign", f"a registered foreign backend ({kind})"))
    if not app.startswith(cfg.own_app_prefix):
        reasons.append(("P5-prefix", f"not the service's ({app!r} lacks {cfg.own_app_prefix!r})"))
    elif cfg.verify is not None and not cfg.verify(app):
        reasons.append(("P5-signature", "carrying a lease not signed with the service's secret"))
    did = "killed" if kill.result == "killed" else f"tried to kill ({kill.result} by the server)"
    return [
        {
            "clause": clause,
            "explain": f"{killer_words(kill)} {did} backend {kill.pid} at {run.at(kill.time)},"
            f" {why}",
            "reap": reap_json(kill),
        }
        for clause, why in reasons
    ]


def _p5_vanished(run: Run) -> list[dict[str, Any]]:
    """Registered foreign backends that left the samples with nothing to explain it."""
    tl, out = run.timeline, []
    explainers = tl.faults_of({"terminate_backend", "pg_restart"})
    for reg in (e for e in tl.events if isinstance(e, ForeignEvent) and e.f == "register"):
        pid = reg.backend_pid
        later = [s for s in run.sorted_samples if s.time >= reg.time]
        seen = [i for i, s in enumerate(later) if s.row(pid) is not None]
        if not seen or seen[-1] == len(later) - 1:
            continue
        last, gone = later[seen[-1]], later[seen[-1] + 1]
        explained = any(
            reg.time <= f.time <= gone.time
            and (f.f == "pg_restart" or f.value.get("backend_pid") == pid)
            for f in explainers
        ) or any(
            isinstance(e, ForeignEvent)
            and e.f == "release"
            and e.backend_pid == pid
            and reg.time <= e.time <= gone.time
            for e in tl.events
        )
        if explained or any(k.pid == pid for k in run.judged_kills):
            continue  # a ledger kill of it is reported as a kill
        out.append(
            {
                "clause": "P5-vanished",
                "explain": f"foreign backend {pid} ({reg.kind}) disappeared between samples at"
                f" {run.at(last.time)} and {run.at(gone.time)} with no external terminate,"
                " restart or release to explain it",
                "pid": pid,
                "kind": reg.kind,
                "last_seen": last.time,
                "first_missing": gone.time,
            }
        )
    return out


def check_p5(run: Run) -> Verdict:
    """P5: foreign safety.

    No ledger entry ``killed`` — or ``denied``: the attempt is the reaper's bug even
    when the server refused it — a backend that was registered foreign at the
    time (a ``foreign`` event not superseded by a later backend mapping of
    that pid, or a pid in ``RunConfig.foreign_pids``), or whose
    application_name does not start with ``own_app_prefix``, or — when
    ``verify`` is given — whose lease signature ``verify`` rejects. And no
    registered foreign backend disappears from the samples (seen, then absent
    from a later sample) unless a ``terminate_backend`` of it, a
    ``pg_restart`` or a ``foreign`` ``release`` of it came first.
    """
    denied = [e for e in run.ledger if e.result == "denied"]
    judged = run.judged_kills + denied
    evidence = [e for k in judged for e in _p5_kill(run, k)] + _p5_vanished(run)
    checked = run.config.verify is not None
    ok = (
        f"none of {len(run.judged_kills)} termination(s) (reaper or server) nor"
        f" {len(denied)} denied kill attempt(s) touched a foreign backend"
    )
    if not checked:
        ok += " (signatures NOT checked: no verify function given)"
    return verdict(
        "P5",
        P5_TITLE,
        evidence,
        ok,
        cannot_judge=run.sampling_problems,
        signatures_checked=checked,
    )
