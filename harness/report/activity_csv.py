"""``activity.csv``: the ``pg_stat_activity`` samples, one line per (sample, backend)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from harness.history import Sample

COLUMNS = (
    "time",
    "wall",
    "pid",
    "application_name",
    "state",
    "state_change",
    "backend_start",
    "xact_start",
    "usename",
)


def write_activity_csv(samples: Iterable[Sample], path: Path) -> None:
    """Write the samples; an empty cell is a NULL."""
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for s in samples:
            for r in s.rows:
                row = (
                    s.time,
                    s.wall,
                    r.pid,
                    r.application_name,
                    r.state,
                    r.state_change,
                    r.backend_start,
                    r.xact_start,
                    r.usename,
                )
                out.writerow("" if v is None else v for v in row)
