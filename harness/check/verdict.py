"""A property's verdict: ``ok``, ``fail`` or ``unknown``, with the evidence in sentences.

Jepsen's ``:valid?`` is true, false or ``:unknown``: a property that could not
be judged (nothing invoked after P2's deadline, a history that fails
validation, a sampler that fell behind) is ``unknown`` — never ``ok``, and
never the client's failure. A property that found a violation fails whatever
else was missing: evidence is evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True)
class Verdict:
    """One property's verdict on one run."""

    prop: str
    """``P1`` … ``P5`` (``S1`` … for the smoke scenario's own checks)."""
    title: str
    status: Status
    summary: str
    evidence: list[dict[str, Any]] = field(default_factory=list)
    """One dict per violation, each with a ``clause`` and an ``explain`` sentence."""
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    @property
    def unknown(self) -> bool:
        return self.status == "unknown"

    def to_json(self) -> dict[str, Any]:
        return {
            "property": self.prop,
            "title": self.title,
            "status": self.status,
            "ok": self.ok,
            "summary": self.summary,
            "evidence": self.evidence,
            "measured": self.measured,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Verdict:
        return cls(
            str(raw["property"]),
            str(raw["title"]),
            raw["status"],
            str(raw["summary"]),
            list(raw.get("evidence") or []),
            dict(raw.get("measured") or {}),
        )


def verdict(
    prop: str,
    title: str,
    evidence: list[dict[str, Any]],
    ok_summary: str,
    *,
    cannot_judge: list[str] | None = None,
    **measured: Any,
) -> Verdict:
    """``fail`` with the evidence if there is any; else ``unknown`` if something kept
    the property from being judged (``cannot_judge``: why, in sentences); else ``ok``."""
    if evidence:
        clauses = sorted({e["clause"] for e in evidence})
        summary = f"{len(evidence)} violation(s) ({', '.join(clauses)}): {evidence[0]['explain']}"
        return Verdict(prop, title, "fail", summary, evidence, dict(measured))
    if cannot_judge:
        summary = "NOT JUDGED: " + "; ".join(cannot_judge)
        return Verdict(prop, title, "unknown", summary, [], {**measured, "unjudged": cannot_judge})
    return Verdict(prop, title, "ok", ok_summary, [], dict(measured))


def worst(verdicts: list[Verdict]) -> Status:
    """``fail`` if any failed, else ``unknown`` if any is unknown, else ``ok``."""
    if any(v.failed for v in verdicts):
        return "fail"
    if any(v.unknown for v in verdicts):
        return "unknown"
    return "ok"


def render_verdict(v: Verdict, *, max_evidence: int = 20) -> str:
    """A verdict in words a person can follow: the headline, then one line per violation."""
    state = {"ok": "holds", "fail": "VIOLATED", "unknown": "NOT JUDGED"}[v.status]
    lines = [f"{v.prop} {v.title}: {state}", f"  {v.summary}"]
    for e in v.evidence[:max_evidence]:
        lines.append(f"  - [{e['clause']}] {e['explain']}")
    if len(v.evidence) > max_evidence:
        lines.append(f"  … and {len(v.evidence) - max_evidence} more")
    if v.measured:
        shown = ", ".join(f"{k}={_fmt(x)}" for k, x in v.measured.items())
        lines.append(f"  measured: {shown}")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)
