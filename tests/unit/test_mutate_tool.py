"""``make mutate``'s pure parts: the sample, the keys, the counting, the score.

The sample must be deterministic and must not move when a module is edited
elsewhere; a kept result must be found again exactly when nothing it depends on
changed; a hang stopped by the suite is never counted as a kill.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cosmic_ray import work_item
from cosmic_ray.commands import init as cosmic_init
from cosmic_ray.work_db import WorkDB, use_db

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import mutate_results as results  # noqa: E402
import mutate_sample as sampling  # noqa: E402
import mutate_suite as suite  # noqa: E402

MODULE = """\
from __future__ import annotations


def fence(remaining: float, margin: float | None = None) -> bool:
    if margin is None:
        margin = 1.0
    return remaining <= margin and remaining > 0


def total(xs: list[int]) -> int:
    n: int | None = 0
    for x in xs:
        n = n + x * 2
    return n
"""


def specs_of(tmp_path: Path, source: str, name: str = "mod.py") -> list[Any]:
    """cosmic-ray's own population of ``source`` (its ``init``, in-process)."""
    path = tmp_path / name
    path.write_text(source, encoding="utf-8")
    with use_db(str(tmp_path / f"{name}.sqlite"), WorkDB.Mode.create) as db:
        cosmic_init([path], db, {})
        found = [m for item in db.work_items for m in item.mutations]
    for m in found:  # relative, as the tool names modules
        object.__setattr__(m, "module_path", Path(name))
    return found


def config(tmp_path: Path, sample: dict[str, int], seed: str = "s") -> sampling.Config:
    return sampling.Config(tmp_path / "m.toml", seed, 2, 60.0, 0.9, sample, {"scenarios": []})


# ----------------------------------------------------------------- the sample


def test_annotations_are_found_only_under_the_future_import() -> None:
    spans = sampling.annotation_spans(MODULE)
    assert ((4, 21), (4, 26)) in spans  # remaining: float
    assert ((4, 36), (4, 48)) in spans  # float | None
    assert ((11, 7), (11, 17)) in spans  # n: int | None
    assert sampling.in_spans((4, 42), spans)
    assert not sampling.in_spans((5, 7), spans)  # "margin is None" is code
    assert sampling.annotation_spans(MODULE.replace("from __future__ import annotations", "")) == []


def test_no_site_lies_in_an_annotation(tmp_path: Path) -> None:
    specs = specs_of(tmp_path, MODULE)
    assert any(s.operator_name.endswith("BitOr_BitAnd") for s in specs)  # cosmic-ray offers them
    sites = sampling.sites_of(MODULE, "mod.py", specs)
    spans = sampling.annotation_spans(MODULE)
    assert sites
    assert all(not sampling.in_spans((s.line, s.col), spans) for s in sites)
    assert {s.code for s in sites} >= {"if margin is None:", "n = n + x * 2"}


def test_the_sample_is_deterministic_and_one_mutant_a_site(tmp_path: Path) -> None:
    specs = specs_of(tmp_path, MODULE)
    sites = sampling.sites_of(MODULE, "mod.py", specs)
    first = sampling.choose("seed-a", sites, 4)
    assert first == sampling.choose("seed-a", sites, 4)
    assert len({(s.line, s.col) for s, _ in first}) == 4
    assert sampling.choose("seed-b", sites, len(sites)) != sampling.choose("seed-a", sites, 99)


def test_an_edit_elsewhere_leaves_the_other_sites_chosen(tmp_path: Path) -> None:
    """Lines added above shift every line number; the chosen sites and ids stay."""
    edited = MODULE.replace(
        "def total(", "def other(a: int) -> int:\n    return a - 1\n\n\ndef total("
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = sampling.sites_of(MODULE, "mod.py", specs_of(tmp_path / "a", MODULE))
    after = sampling.sites_of(edited, "mod.py", specs_of(tmp_path / "b", edited))
    old = {s.ident for s in before}
    new = {s.ident for s in after}
    assert old <= new  # every old site is still there under the same name
    chosen_before = [s.ident for s, _ in sampling.choose("x", before, len(before))]
    chosen_after = [s.ident for s, _ in sampling.choose("x", after, len(after)) if s.ident in old]
    assert chosen_after == chosen_before  # same relative rank


def git_repo(root: Path) -> None:
    files = {
        "harness/__init__.py": "",
        "harness/check.py": "X = 1\n",
        "harness/lease/a.py": MODULE,
        "harness/lease/b.py": MODULE.replace("2", "3"),
        "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '-q'\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(root)], check=True)


def test_keys_follow_the_mutated_module_and_the_code_outside_lease(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    git_repo(root)
    cfg = config(root, {"harness/lease/a.py": 3, "harness/lease/b.py": 3})

    def keys() -> dict[str, set[str]]:
        specs = specs_of(tmp_path / "pa", (root / "harness/lease/a.py").read_text(), "a.py")
        specs += specs_of(tmp_path / "pb", (root / "harness/lease/b.py").read_text(), "b.py")
        for s in specs:
            object.__setattr__(s, "module_path", Path("harness/lease") / s.module_path)
        chosen = sampling.sample(root, cfg, specs, sampling.outside_hash(root, cfg))
        out: dict[str, set[str]] = {"harness/lease/a.py": set(), "harness/lease/b.py": set()}
        for m in chosen:
            out[m.module].add(m.key)
        return out

    (tmp_path / "pa").mkdir()
    (tmp_path / "pb").mkdir()
    first = keys()
    assert all(len(v) == 3 for v in first.values())
    assert keys() == first  # nothing changed: the same keys, so nothing runs again
    (root / "harness/lease/b.py").write_text(MODULE.replace("2", "4"), encoding="utf-8")
    second = keys()
    assert second["harness/lease/a.py"] == first["harness/lease/a.py"]
    assert not second["harness/lease/b.py"] & first["harness/lease/b.py"]
    (root / "harness/check.py").write_text("X = 2\n", encoding="utf-8")
    third = keys()
    assert not third["harness/lease/a.py"] & second["harness/lease/a.py"]


# ----------------------------------------------------------------- counting


def result(output: str, *, survived: bool, worker: Any = work_item.WorkerOutcome.NORMAL) -> Any:
    outcome = work_item.TestOutcome.SURVIVED if survived else work_item.TestOutcome.KILLED
    return work_item.WorkResult(worker_outcome=worker, output=output, test_outcome=outcome, diff="")


def lines(verdict: str, *steps: dict[str, Any]) -> str:
    body = [suite.STEP_TAG + json.dumps(s) for s in steps]
    return "\n".join([*body, suite.SUITE_TAG + json.dumps({"verdict": verdict})])


STEP = {"name": "thaw_storm", "exit": 1, "failed": ["P1"], "unjudged": [], "seconds": 9.0}


@pytest.mark.parametrize(
    ("output", "survived", "expected"),
    [
        (lines("killed", STEP), False, "killed"),
        (lines("survived", {**STEP, "exit": 0, "failed": []}), True, "survived"),
        (lines("timeout", {**STEP, "exit": -15, "timed_out": True}), False, "timeout"),
        ("timeout", False, "timeout"),  # cosmic-ray's own backstop
        (lines("unjudged", {**STEP, "exit": 2, "failed": []}), False, "unjudged"),
        # not valid Python: the interpreter stopped the scenario, no property did
        (
            lines("killed", {**STEP, "failed": [], "why": "SyntaxError: invalid syntax"}),
            False,
            "invalid",
        ),
        (lines("killed", {**STEP, "failed": [], "why": "Traceback"}), False, "killed"),
        (lines("survived"), False, "error"),  # says survived but exited non-zero
        (lines("killed"), True, "error"),
        (lines("error"), False, "error"),
        ("Traceback (most recent call last): ...", False, "error"),  # no verdict line
    ],
)
def test_classify(output: str, survived: bool, expected: str) -> None:
    assert results.classify(result(output, survived=survived))[0] == expected


def test_a_worker_failure_is_an_error_not_a_kill() -> None:
    r = result(lines("killed", STEP), survived=False, worker=work_item.WorkerOutcome.ABNORMAL)
    assert results.classify(r)[0] == "error"


def mutant(ident: str, module: str = "harness/lease/a.py") -> sampling.Mutant:
    return sampling.Mutant(ident, module, "core/AddNot", 0, 1, 0, "x", None, "k" + ident)


def test_score_leaves_mutants_that_are_not_valid_python_out() -> None:
    judged = [results.Judged(mutant(f"k{i}"), "killed", [STEP], "") for i in range(3)]
    judged.append(results.Judged(mutant("s1"), "survived", [], ""))
    judged.append(results.Judged(mutant("x1"), "invalid", [STEP], ""))
    s = results.score_of(judged)
    assert (s["sampled"], s["killed"], s["invalid"]) == (5, 3, 1)
    assert s["score"] == pytest.approx(3 / 4)
    assert "1 not valid Python" in results.score_line(s)


def test_score_leaves_only_equivalent_survivors_out() -> None:
    judged = [results.Judged(mutant(f"k{i}"), "killed", [STEP], "") for i in range(8)]
    judged.append(results.Judged(mutant("s1"), "survived", [], "", equivalent="same"))
    judged.append(results.Judged(mutant("s2"), "timeout", [], ""))
    judged.append(results.Judged(mutant("k9"), "killed", [STEP], "", equivalent="wrong"))
    s = results.score_of(judged)
    assert (s["sampled"], s["killed"], s["equivalent"], s["timeout"]) == (11, 9, 1, 1)
    assert s["score"] == pytest.approx(9 / 10)
    assert judged[0].caught_by == "thaw_storm (exit 1: P1)"
    assert "90.0%" in results.score_line(s)


def test_weighted_score_weights_modules_by_their_sites() -> None:
    judged = [
        results.Judged(mutant("a1"), "killed", [STEP], ""),
        results.Judged(mutant("a2"), "survived", [], ""),
        results.Judged(mutant("b1", "harness/lease/b.py"), "killed", [STEP], ""),
    ]
    s = results.score_of(judged, {"harness/lease/a.py": 30, "harness/lease/b.py": 10})
    assert s["weighted_score"] == pytest.approx(0.75 * 0.5 + 0.25 * 1.0)


def test_session_runs_only_what_has_no_result(tmp_path: Path) -> None:
    session = tmp_path / "s.sqlite"
    a, b, c = mutant("a"), mutant("b"), mutant("c")
    wanted: dict[str, sampling.Mutant | None] = {a.key: a, b.key: b, "base": None}
    assert results.prepare_session(session, wanted) == [a.key, b.key, "base"]
    with use_db(str(session), WorkDB.Mode.open) as db:
        db.set_result(a.key, result(lines("killed", STEP), survived=False))
        db.set_result(b.key, result("no verdict", survived=False))  # an error: runs again
    assert results.prepare_session(session, {a.key: a, b.key: b, c.key: c}) == [b.key, c.key]
    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = {item.job_id for item in db.pending_work_items}
        specs = {item.job_id: item.mutations for item in db.pending_work_items}
    assert pending == {b.key, c.key}  # the stale pending baseline is gone
    assert specs[c.key][0].operator_name == "core/AddNot"
    with use_db(str(session), WorkDB.Mode.open) as db:
        for k in (b.key, c.key):
            db.set_result(k, result(lines("survived"), survived=True))
    assert results.prepare_session(session, {a.key: a, b.key: b, c.key: c}) == []


# ----------------------------------------------------------------- the suite's own parsing


def test_run_dir_is_read_from_the_summary_line() -> None:
    out = "[x 1.0s] starting\nthaw_storm: FAIL  (/tmp/r/reports/thaw_storm/20260101T000000Z)\n"
    assert suite.run_dir_of("thaw_storm", out) == Path("/tmp/r/reports/thaw_storm/20260101T000000Z")
    assert suite.run_dir_of("lost_ack", out) is None


def test_verdicts_are_read_from_summary_json(tmp_path: Path) -> None:
    verdicts = [
        {"property": "P1", "status": "fail"},
        {"property": "P2", "status": "unknown"},
        {"property": "P3", "status": "ok"},
    ]
    summary = {"verdicts": verdicts, "why": "P1 failed: a kill"}
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    step = suite.Step("x", 1, 1.0)
    suite.read_verdicts(step, tmp_path)
    assert (step.failed, step.unjudged, step.why) == (["P1"], ["P2"], "P1 failed: a kill")


@pytest.mark.parametrize(
    ("exit", "timed_out", "expected"),
    [(0, False, None), (1, False, "killed"), (2, False, "unjudged"), (-15, True, "timeout")],
)
def test_a_step_that_could_not_be_judged_is_no_kill(
    exit: int, timed_out: bool, expected: str | None
) -> None:
    step = suite.Step("thaw_storm", exit, 1.0, timed_out)
    assert suite.step_verdict(step) == expected
