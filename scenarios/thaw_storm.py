"""thaw_storm: cold starts, zombies from reclaimed workers, thaws after leases expired.

Provokes: a burst of cold starts, two sandboxes reclaimed with their links
blackholed (their backends stay on the server as true zombies), the leases of the
rest left to expire, and a sandbox thawed after its lease expired that opens a
transaction and holds it while another reaps.
Judges: P1 (nothing active or leased is killed, the thawed one fences itself),
P2 (the zombies are reaped within the bound), P3, P4, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Age, Burst, Invoke, Reclaim, ThawIntoTx
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "thaw_storm",
    "cold starts, zombies from reclaimed workers, thaws after leases expired",
    [
        Burst(3),
        Invoke("write"),
        Reclaim(0),
        Reclaim(0),
        Age(),
        Invoke("write"),
        ThawIntoTx(0),
        Burst(3),
    ],
    judges="P1-P5",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
