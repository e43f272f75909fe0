"""reclaim_zombies: sandboxes reclaimed without a goodbye: their backends stay as zombies.

Provokes: warm sandboxes SIGKILLed while frozen with their links blackholed (a
torn-down VM sends no FIN, so the server keeps each backend), while the rest of
the fleet goes on writing; then a standalone reaper pass (a scheduled cleanup
function on a short-lived connection of its own) once the zombies' leases expired.
Judges: P2 (every zombie gone within the bound), P1 (no live sandbox's backend is
killed), P3, P4, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Age, Burst, Invoke, Reap, Reclaim
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "reclaim_zombies",
    "sandboxes reclaimed without a goodbye: their backends stay as zombies",
    [
        Burst(3),
        Reclaim(0),
        Invoke("write"),
        Reclaim(1),
        Invoke("write"),
        Age(),
        Reap(0, standalone=True),
        Invoke("read"),
    ],
    judges="P1-P7",
    workers=4,
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
