"""neighbours: foreign backends, a Node peer racing a reaper, skewed clocks.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties (P1-P7).
Options: ``client=<bug-zoo name>`` (default ``correct``), ``workers=N``.
"""

from __future__ import annotations

import sys

from harness.chaos.steps import (
    Burst,
    ClockSkew,
    ForeignBackend,
    Linger,
    PeerRace,
    QueryOutlivesLease,
    Reap,
)
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "neighbours",
    "foreign backends, a Node peer racing a reaper, skewed clocks",
    [
        ForeignBackend("other_app"),
        ForeignBackend("forged"),
        ForeignBackend("other_secret"),
        ForeignBackend("superuser"),
        ClockSkew(0, 0.4),
        Burst(2),
        Linger(),
        Reap(1),
        PeerRace(),
        QueryOutlivesLease(),
    ],
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
