"""The chaos suites as one test command, for mutation testing (``make mutate``).

Run from the root of a copy of the repository (a mutation worker's clone): every
fleet scenario (``python -m harness run NAME``, in the order ``scripts/mutate.toml``
gives), then the stateful machine under the ``ci`` profile
(``CI=true HYPOTHESIS_PROFILE=ci pytest tests/chaos/test_machine.py``). It stops at the
first step that exits non-zero, so a killed mutant costs one scenario, not all.

Nothing but the chaos suites runs: the lease client's own unit and integration tests
and ``tests/detection`` are not part of this command, on purpose (the score says how
much the *chaos* harness catches).

What it promises, so ``scripts/mutate.py`` can count honestly:

- every step's outcome is one ``MUTATE-STEP {json}`` line on stdout (exit status,
  seconds, and for a scenario the properties its ``summary.json`` says failed or could
  not be judged), and the last line is ``MUTATE-SUITE {json}`` with the verdict:
  ``killed`` (a step exited non-zero by itself, 2 excepted), ``unjudged`` (a step
  exited 2: the harness could not judge the run, which is never a kill), ``timeout``
  (a step ran past its
  deadline and was stopped by this script: the harness did not notice by itself, so it
  is not a kill), ``survived`` (every step exited 0) or ``error`` (this script could
  not run the suite, e.g. the ``harness`` imported is not this copy's);
- a step past its deadline gets SIGTERM (the harness tears down and exits 143), then
  SIGKILL to its process group after a grace; the harness's watchdog removes what a
  killed run leaves;
- SIGTERM to this script is passed on to the running step, which is waited for.

Exit status: 0 survived, 1 killed, 3 timeout, 4 error, 5 unjudged (only the JSON line is
read by the tool; the status is for a person).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

CONFIG = Path(__file__).resolve().parent / "mutate.toml"
STEP_TAG = "MUTATE-STEP "
SUITE_TAG = "MUTATE-SUITE "
MACHINE = "machine"
EXIT = {"survived": 0, "killed": 1, "timeout": 3, "error": 4, "unjudged": 5}
_RUN_LINE = re.compile(r"^(?P<name>[\w-]+): \w+\s+\((?P<path>[^()]+)\)\s*$")


@dataclass
class Step:
    """One step's outcome, as printed on the ``MUTATE-STEP`` line."""

    name: str
    exit: int | None
    seconds: float
    timed_out: bool = False
    failed: list[str] = field(default_factory=list)
    unjudged: list[str] = field(default_factory=list)
    why: str = ""


@dataclass(frozen=True)
class SuiteConfig:
    """The suite's part of ``scripts/mutate.toml`` (``[thawproof-mutate.suite]``)."""

    scenarios: tuple[str, ...]
    machine: bool
    scenario_timeout: float
    machine_timeout: float
    kill_grace: float

    @classmethod
    def load(cls, path: Path = CONFIG) -> SuiteConfig:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["thawproof-mutate"]["suite"]
        return cls(
            scenarios=tuple(raw["scenarios"]),
            machine=bool(raw.get("machine", True)),
            scenario_timeout=float(raw["scenario_timeout"]),
            machine_timeout=float(raw["machine_timeout"]),
            kill_grace=float(raw["kill_grace"]),
        )


class _Running:
    """The step's process, so a SIGTERM to the suite reaches it."""

    proc: subprocess.Popen[str] | None = None
    stopping = False


def _on_term(signum: int, frame: FrameType | None) -> None:
    _Running.stopping = True
    proc = _Running.proc
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)


def _stop(proc: subprocess.Popen[str], grace: float) -> None:
    """SIGTERM, then SIGKILL to the process group once ``grace`` has passed."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_step(
    name: str, argv: list[str], env: Mapping[str, str], timeout: float, grace: float
) -> tuple[Step, str]:
    """Run one step in its own process group; its combined output is returned whole."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _Running.proc = proc
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc, grace)
        out, _ = proc.communicate()
    finally:
        _Running.proc = None
    step = Step(name, proc.returncode, round(time.monotonic() - started, 2), timed_out)
    return step, out


def run_dir_of(name: str, output: str) -> Path | None:
    """The run directory the harness printed on its summary line (``NAME: pass  (DIR)``)."""
    for line in output.splitlines():
        m = _RUN_LINE.match(line)
        if m and m.group("name") == name:
            return Path(m.group("path"))
    return None


def read_verdicts(step: Step, run_dir: Path) -> None:
    """The failed and unjudged properties and the first reason, from ``summary.json``."""
    try:
        summary: dict[str, Any] = json.loads((run_dir / "summary.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        step.why = f"no summary.json: {exc}"
        return
    for v in summary.get("verdicts", []):
        if v.get("status") == "fail":
            step.failed.append(str(v.get("property")))
        elif v.get("status") == "unknown":
            step.unjudged.append(str(v.get("property")))
    why = summary.get("why") or ""
    step.why = (why if isinstance(why, str) else json.dumps(why))[:400]


def machine_why(output: str) -> str:
    """The pytest lines that say why the machine failed (E-lines, the short summary)."""
    keep = [ln for ln in output.splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))]
    return "\n".join(keep[-6:])[:600]


def emit(tag: str, payload: Mapping[str, Any]) -> None:
    print(tag + json.dumps(payload, sort_keys=True), flush=True)


def check_imports(root: Path) -> str | None:
    """Why this copy's ``harness`` would not be the one the steps import, if so."""
    import harness

    where = Path(harness.__file__).resolve()
    if not where.is_relative_to(root):
        return f"harness is imported from {where}, not from {root}"
    return None


def step_verdict(step: Step) -> str | None:
    """What one step's end makes of the mutant (None: on to the next step)."""
    if step.timed_out:
        return "timeout"
    if step.exit == 2:
        # the harness could not judge the run (a setup failure, a harness fault, a
        # property it could not judge): not a property's failure, so not a kill
        return "unjudged"
    if step.exit != 0:
        return "killed"
    return None


def main() -> int:
    root = Path.cwd().resolve()
    signal.signal(signal.SIGTERM, _on_term)
    cfg = SuiteConfig.load()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(root))
    problem = check_imports(root)
    if problem is not None:
        emit(SUITE_TAG, {"verdict": "error", "why": problem})
        return EXIT["error"]
    steps: list[Step] = []
    verdict = "survived"
    plan = [(s, [sys.executable, "-m", "harness", "run", s]) for s in cfg.scenarios]
    if cfg.machine:
        plan.append(
            (
                MACHINE,
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/chaos/test_machine.py",
                ],
            )
        )
    for name, argv in plan:
        step_env = dict(env)
        timeout = cfg.scenario_timeout
        if name == MACHINE:
            step_env.update(CI="true", HYPOTHESIS_PROFILE="ci")
            timeout = cfg.machine_timeout
        step, out = run_step(name, argv, step_env, timeout, cfg.kill_grace)
        if name != MACHINE:
            run_dir = run_dir_of(name, out)
            if run_dir is not None and run_dir.resolve().is_relative_to(root):
                read_verdicts(step, run_dir)
                shutil.rmtree(run_dir, ignore_errors=True)  # the clone is scratch
            elif run_dir is not None:
                emit(SUITE_TAG, {"verdict": "error", "why": f"{name} wrote to {run_dir}"})
                return EXIT["error"]
            elif not step.timed_out:
                step.why = "\n".join(out.splitlines()[-4:])[:400]
        else:
            step.why = machine_why(out)
        steps.append(step)
        emit(STEP_TAG, asdict(step))
        if _Running.stopping:
            emit(SUITE_TAG, {"verdict": "error", "why": "the suite was stopped (SIGTERM)"})
            return EXIT["error"]
        ended = step_verdict(step)
        if ended is not None:
            verdict = ended
            break
    emit(SUITE_TAG, {"verdict": verdict, "steps": len(steps)})
    return EXIT[verdict]


if __name__ == "__main__":
    sys.exit(main())
