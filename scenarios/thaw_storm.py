"""thaw_storm: cold starts, zombies from reclaimed workers, thaws after leases expired.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the five properties.
Options: ``client=<bug-zoo name>`` (default ``correct``), ``workers=N``.
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
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
