"""The recorded run, stored in its run directory so it can be judged again from files.

What a run directory holds for that (Jepsen's ``store/``):

- ``history.jsonl``   the history, written as it happened (the fleet's writer);
- ``activity.jsonl``  the ``pg_stat_activity`` samples, written as they were taken;
- ``final.json``      the database at the end (ledger rows per op_id, the counter);
- ``config.json``     the :class:`~harness.check.RunConfig` — every field but ``verify``,
                      a function that holds the service's secret, so it is never
                      written (whether it was set is) — and how much of each file the
                      verdicts judged.

The files written live keep growing after the verdicts (the fleet's teardown
records its workers' exits, the sampler goes on until it is stopped), so
``config.json`` says how many leading events and samples were judged:
:func:`load_run` reads exactly those, and so judges exactly what the run did.
If a live file does not begin with what was judged (a run assembled some other
way), the judged events or samples are written beside it instead
(``history.judged.jsonl`` / ``activity.judged.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from harness.check import Run, RunConfig
from harness.errors import HistoryFormatError, UsageError
from harness.history import (
    Event,
    FinalState,
    Sample,
    dumps,
    from_json,
    load_history,
    load_samples,
    to_json,
)

HISTORY, SAMPLES, FINAL, CONFIG = "history.jsonl", "activity.jsonl", "final.json", "config.json"
FORMAT = 1
"""Version of ``config.json``'s layout."""

T = TypeVar("T")


# ----------------------------------------------------------------------------- RunConfig


def config_to_json(config: RunConfig) -> dict[str, Any]:
    """Every field of ``config`` except ``verify`` (sets become sorted lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name == "verify":
            continue
        v = getattr(config, f.name)
        out[f.name] = sorted(v) if isinstance(v, frozenset) else v
    return out


def config_from_json(
    raw: Mapping[str, Any], verify: Callable[[str], bool] | None = None
) -> RunConfig:
    """The config back, with ``verify`` given by the caller (it is never stored)."""
    kwargs: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(RunConfig)}
    for key, v in raw.items():
        f = names.get(key)
        if f is None or key == "verify":
            raise HistoryFormatError(f"{CONFIG}: unknown RunConfig field {key!r}")
        kwargs[key] = frozenset(v) if isinstance(f.default, frozenset) else v
    try:
        return RunConfig(**kwargs, verify=verify)
    except TypeError as e:
        raise HistoryFormatError(f"{CONFIG}: {e}") from e


# ----------------------------------------------------------------------------- writing


def _prefix_matches(on_disk: Sequence[T], judged: Sequence[T]) -> bool:
    return len(on_disk) >= len(judged) and all(
        a == b for a, b in zip(on_disk, judged, strict=False)
    )


def _store_lines(
    path: Path, name: str, judged: Sequence[Any], load: Callable[[Path], Sequence[Any]]
) -> dict[str, Any]:
    """Where the judged items are: the live file if it begins with them, else a copy."""
    live = path / name
    if live.exists() and _prefix_matches(load(live), judged):
        return {"file": name, "count": len(judged)}
    target = live if not live.exists() else path / name.replace(".jsonl", ".judged.jsonl")
    with target.open("w", encoding="utf-8") as f:
        for item in judged:
            f.write(dumps(item))
    return {"file": target.name, "count": len(judged)}


def store_run(path: Path, run: Run) -> None:
    """Write what :func:`load_run` needs to judge ``run`` again from ``path``."""
    history = _store_lines(path, HISTORY, list(run.events), load_history)
    samples = _store_lines(path, SAMPLES, list(run.samples), load_samples)
    (path / FINAL).write_text(json.dumps(to_json(run.final), indent=2) + "\n")
    stored = {
        "format": FORMAT,
        "config": config_to_json(run.config),
        "verify": run.config.verify is not None,
        "judged": {"history": history, "samples": samples},
    }
    (path / CONFIG).write_text(json.dumps(stored, indent=2, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class StoredRun:
    """A run read back from its directory, and what its config said about ``verify``."""

    run: Run
    config: dict[str, Any]
    """The stored config fields (as in ``config.json``)."""
    had_verify: bool
    """The run was judged with a signature check (``verify`` set)."""


def has_stored_run(path: Path) -> bool:
    return (path / CONFIG).is_file()


def load_run(
    path: Path, verify_for: Callable[[str], Callable[[str], bool] | None] | None = None
) -> StoredRun:
    """The run stored in ``path``, exactly as it was judged.

    ``verify_for(service)`` gives back the signature check for the stored
    service (None: judge without one). :class:`UsageError` if ``path`` holds no
    stored run, :class:`HistoryFormatError` if a file is malformed."""
    if not has_stored_run(path):
        raise UsageError(f"{path} holds no stored run to judge (no {CONFIG})")
    try:
        stored = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        final_raw = json.loads((path / FINAL).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise HistoryFormatError(f"{path}: {e}") from e
    if not isinstance(stored, dict) or stored.get("format") != FORMAT:
        raise HistoryFormatError(f"{path / CONFIG}: not a format-{FORMAT} config")
    raw_config = dict(stored["config"])
    verify = verify_for(str(raw_config.get("service"))) if verify_for else None
    config = config_from_json(raw_config, verify)
    judged = stored["judged"]
    events: list[Event] = load_history(path / judged["history"]["file"])
    samples: list[Sample] = load_samples(path / judged["samples"]["file"])
    n_events, n_samples = int(judged["history"]["count"]), int(judged["samples"]["count"])
    if len(events) < n_events or len(samples) < n_samples:
        raise HistoryFormatError(
            f"{path}: the run judged {n_events} events and {n_samples} samples, the files hold"
            f" {len(events)} and {len(samples)}"
        )
    final = from_json(FinalState, final_raw, where=FINAL)
    run = Run(events[:n_events], samples[:n_samples], final, config)
    return StoredRun(run, raw_config, bool(stored.get("verify")))
