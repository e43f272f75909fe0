"""reaper_race: several reapers at once.

Provokes: zombies left by reclaimed sandboxes, then three sandboxes starting a
reaper pass at the same moment: they contend for the leader lock.
Judges: P1 and P5 (whoever leads, only expired zombies of this service die), P2,
P3, P4.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Age, Burst, Invoke, ReaperRace, Reclaim
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "reaper_race",
    "several reapers at once",
    [Burst(5), Reclaim(0), Reclaim(0), Age(), ReaperRace(3), Invoke("read")],
    judges="P1-P7",
    workers=5,
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
