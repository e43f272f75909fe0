"""What ``make mutate`` keeps and reports: the cosmic-ray session, the counting, the score.

- The **session** is cosmic-ray's own sqlite work database
  (``reports/mutate/session.sqlite``); each work item's job id is the mutant's key
  (:mod:`mutate_sample`), so a result found there under that key is kept.
- **Counting** (:func:`classify`): *killed* when a step of the suite exited non-zero by
  itself; *survived* when every step exited 0; *timeout* when a step ran past its
  deadline and the suite stopped it, or cosmic-ray's backstop timeout fired: a hang the
  harness did not end itself is not a kill, so it is counted with the survivors;
  *error* when the suite could not run (then nothing is scored and the item runs again).
- The **score** is killed / (sampled - equivalent), the equivalent ones being the
  survivors listed in ``scripts/mutants-equivalent.toml`` with a reason.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mutate_sample import REPO, Mutant

EQUIVALENTS = REPO / "scripts" / "mutants-equivalent.toml"
SUITE_TAG = "MUTATE-SUITE "
STEP_TAG = "MUTATE-STEP "
OUTCOMES = ("killed", "survived", "timeout", "unjudged")


# ----------------------------------------------------------------- the session


def prepare_session(session: Path, wanted: Mapping[str, Mutant | None]) -> list[str]:
    """Make the session hold a work item for every wanted key that has no usable result
    (``None``: the baseline, no mutation); pending items no longer wanted and results
    that are errors are dropped first. Returns the keys to run, in ``wanted``'s order."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import MutationSpec, WorkItem

    with use_db(str(session), WorkDB.Mode.create) as db:
        done = {item.job_id: result for item, result in db.completed_work_items}
        retry = {k for k, r in done.items() if classify(r)[0] == "error"}
        delete_items(db, [item.job_id for item in db.pending_work_items] + sorted(retry))
        todo = [k for k in wanted if k not in done or k in retry]
        items = []
        for k in todo:
            m = wanted[k]
            specs = []
            if m is not None:
                where = ((m.line, m.col), (m.line, m.col + 1))
                specs.append(MutationSpec(m.module, m.operator, m.occurrence, *where))
            items.append(WorkItem(job_id=k, mutations=specs))
        db.add_work_items(items)
    return todo


def delete_items(db: Any, keys: Sequence[str]) -> None:
    """Remove work items and their results (cosmic-ray's WorkDB has no call for it)."""
    from cosmic_ray.work_db import MutationSpecStorage, WorkItemStorage, WorkResultStorage

    if not keys:
        return
    with db._session_maker.begin() as s:
        for model in (WorkResultStorage, MutationSpecStorage, WorkItemStorage):
            s.query(model).filter(model.job_id.in_(list(keys))).delete(synchronize_session=False)


def forget(session: Path, keys: Sequence[str]) -> None:
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(session), WorkDB.Mode.open) as db:
        delete_items(db, keys)


def results(session: Path) -> dict[str, Any]:
    """Every result in the session, by key."""
    from cosmic_ray.work_db import WorkDB, use_db

    with use_db(str(session), WorkDB.Mode.open) as db:
        return {item.job_id: result for item, result in db.completed_work_items}


# ----------------------------------------------------------------- counting


def suite_lines(output: str | None) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The suite's verdict line and its step lines, from a result's captured stdout."""
    verdict: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = []
    for line in (output or "").splitlines():
        if line.startswith(SUITE_TAG):
            verdict = json.loads(line.removeprefix(SUITE_TAG))
        elif line.startswith(STEP_TAG):
            steps.append(json.loads(line.removeprefix(STEP_TAG)))
    return verdict, steps


def _value(x: Any) -> Any:
    return getattr(x, "value", x)


def classify(result: Any) -> tuple[str, list[dict[str, Any]]]:
    """killed | survived | timeout | error, and the steps, from one cosmic-ray result."""
    if _value(result.worker_outcome) != "normal":
        return "error", []
    if (result.output or "").strip() == "timeout":
        return "timeout", []  # cosmic-ray's own backstop stopped the suite
    verdict, steps = suite_lines(result.output)
    outcome = str((verdict or {}).get("verdict"))
    survived = _value(result.test_outcome) == "survived"
    if outcome not in OUTCOMES or (outcome == "survived") != survived:
        return "error", steps
    if outcome == "killed" and steps and _does_not_load(steps[-1]):
        return "invalid", steps
    return outcome, steps


def _does_not_load(step: dict[str, Any]) -> bool:
    """A scenario that exited 1 with no property failed: the interpreter, not a check,
    stopped it (a scenario that runs exits 1 only with a failed property). The mutant
    is not valid Python (cosmic-ray makes some, e.g. ``*,`` -> ``|,``): no kill."""
    return (
        step.get("name") != "machine"
        and step.get("exit") == 1
        and not step.get("failed")
        and "SyntaxError" in str(step.get("why") or "")
    )


@dataclass(frozen=True)
class Judged:
    """A sampled mutant, what the suite did to it, and what the notes file says of it."""

    mutant: Mutant
    outcome: str
    steps: list[dict[str, Any]]
    diff: str
    equivalent: str | None = None
    missed: str | None = None

    @property
    def caught_by(self) -> str | None:
        """The step that killed it, its exit status and the properties that failed."""
        if self.outcome != "killed" or not self.steps:
            return None
        last = self.steps[-1]
        props = ",".join(last.get("failed") or [])
        if not props:
            props = ",".join(f"{p}?" for p in last.get("unjudged") or [])
        return f"{last['name']} (exit {last['exit']}{': ' + props if props else ''})"


def load_notes(path: Path = EQUIVALENTS) -> tuple[dict[str, str], dict[str, str]]:
    """``[[equivalent]]`` reasons and ``[[missed]]`` analyses, by mutant id."""
    if not path.exists():
        return {}, {}
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    eq = {str(e["id"]): str(e["reason"]) for e in raw.get("equivalent", [])}
    missed = {str(e["id"]): str(e["why"]) for e in raw.get("missed", [])}
    return eq, missed


def score_of(judged: Sequence[Judged], sites: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The counts and the score; with ``sites`` (sites per module) also the estimate for
    the whole population, each module's kill rate weighted by its share of the sites."""
    killed = sum(j.outcome == "killed" for j in judged)
    equivalent = sum(
        j.equivalent is not None and j.outcome not in ("killed", "invalid") for j in judged
    )
    invalid = sum(j.outcome == "invalid" for j in judged)
    denominator = len(judged) - equivalent - invalid
    out: dict[str, Any] = {
        "sampled": len(judged),
        "killed": killed,
        "survived": sum(j.outcome == "survived" for j in judged),
        "timeout": sum(j.outcome == "timeout" for j in judged),
        "unjudged": sum(j.outcome == "unjudged" for j in judged),
        "invalid": invalid,
        "equivalent": equivalent,
        "score": (killed / denominator) if denominator else None,
    }
    if sites:
        per: dict[str, list[Judged]] = defaultdict(list)
        for j in judged:
            if j.outcome == "killed" or (j.equivalent is None and j.outcome != "invalid"):
                per[j.mutant.module].append(j)
        total = sum(n for m, n in sites.items() if per[m])
        out["weighted_score"] = (
            sum(
                sites[m] / total * sum(j.outcome == "killed" for j in js) / len(js)
                for m, js in per.items()
                if js
            )
            if total
            else None
        )
    return out


def score_line(s: Mapping[str, Any]) -> str:
    pct = "n/a" if s["score"] is None else f"{100 * s['score']:.1f}%"
    return (
        f"mutation score {pct}: {s['killed']} killed of {s['sampled']} sampled"
        f" - {s['equivalent']} equivalent ({s['survived']} survived, {s['timeout']} timeout,"
        f" {s.get('unjudged', 0)} unjudged, {s.get('invalid', 0)} not valid Python)"
    )


def diff_of(root: Path, m: Mutant) -> str:
    """The mutation's diff, made by cosmic-ray's own mutator (so also for a kept result)."""
    from cosmic_ray.mutating import mutate_code
    from cosmic_ray.plugins import get_operator

    source = (root / m.module).read_text(encoding="utf-8")
    mutated = mutate_code(source, get_operator(m.operator)(), m.occurrence)
    if mutated is None:
        return "(cosmic-ray made no mutation here)"
    lines = difflib.unified_diff(
        source.split("\n"), mutated.split("\n"), f"a/{m.module}", f"b/{m.module}", lineterm=""
    )
    return "\n".join(lines)


# ----------------------------------------------------------------- the report


def write_report(
    out: Path, judged: Sequence[Judged], s: Mapping[str, Any], about: Mapping[str, Any]
) -> None:
    """``mutate.json`` (everything) and ``score.md`` (for a person) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    mutants = [
        {
            **asdict(j.mutant),
            "outcome": j.outcome,
            "caught_by": j.caught_by,
            "steps": j.steps,
            "equivalent": j.equivalent,
            "missed": j.missed,
            "diff": j.diff,
        }
        for j in judged
    ]
    data = {**about, "score": dict(s), "mutants": mutants}
    (out / "mutate.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "score.md").write_text("\n".join(_markdown(judged, s, about)) + "\n", encoding="utf-8")


def _markdown(
    judged: Sequence[Judged], s: Mapping[str, Any], about: Mapping[str, Any]
) -> list[str]:
    md = ["# Mutation score of harness/lease against the chaos suites", ""]
    md += [f"**{score_line(s)}**", ""]
    if s.get("weighted_score") is not None:
        md += [
            f"Weighted by each module's share of mutation sites: {100 * s['weighted_score']:.1f}%"
            " (the sample is stratified by module).",
            "",
        ]
    md += [f"- {k}: {v}" for k, v in about.items()]
    by_step: dict[str, int] = defaultdict(int)
    for j in judged:
        if j.caught_by:
            by_step[j.steps[-1]["name"]] += 1
    md += ["", "## Kills by step", ""] + [f"- {k}: {v}" for k, v in sorted(by_step.items())]
    md += ["", "## Per module", ""]
    md += [
        "| module | sampled | killed | equivalent | not valid Python | not killed |",
        "|---|---|---|---|---|---|",
    ]
    per: dict[str, list[Judged]] = defaultdict(list)
    for j in judged:
        per[j.mutant.module].append(j)
    for mod, js in per.items():
        k = sum(j.outcome == "killed" for j in js)
        bad = sum(j.outcome == "invalid" for j in js)
        e = sum(j.outcome not in ("killed", "invalid") and j.equivalent is not None for j in js)
        md.append(f"| {mod} | {len(js)} | {k} | {e} | {bad} | {len(js) - k - e - bad} |")
    md += ["", "## Not killed", ""]
    for j in judged:
        if j.outcome not in ("killed", "invalid"):
            md += _survivor(j)
    md += ["## Not valid Python (no suite can run them; not counted)", ""]
    md += [
        f"- {j.mutant.id}: {j.mutant.module}:{j.mutant.line}"
        for j in judged
        if j.outcome == "invalid"
    ]
    md += [""]
    md += ["## Killed", "", "| id | where | operator | caught by |", "|---|---|---|---|"]
    for j in judged:
        if j.outcome == "killed":
            m = j.mutant
            op = m.operator.removeprefix("core/")
            md.append(f"| {m.id} | {m.module}:{m.line} | {op} | {j.caught_by} |")
    return md


def _survivor(j: Judged) -> list[str]:
    m = j.mutant
    label = "equivalent" if j.equivalent else "NOT equivalent"
    md = [f"### {m.id}: {m.module}:{m.line} {m.operator} ({j.outcome}, {label})", ""]
    if j.equivalent:
        md += [f"Equivalent: {j.equivalent}", ""]
    if j.missed:
        md += [f"Why the chaos suites miss it: {j.missed}", ""]
    if not j.equivalent and not j.missed:
        md += ["Not analysed yet (add it to scripts/mutants-equivalent.toml).", ""]
    return [*md, "```diff", j.diff.strip(), "```", ""]
