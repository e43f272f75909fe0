"""frozen_reaper: zombies, and a reaper frozen while it holds the leader lock.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the five properties.
Options: ``client=<bug-zoo name>`` (default ``correct``), ``workers=N``.
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Burst, FreezeMid, Invoke, Reclaim
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "frozen_reaper",
    "zombies, and a reaper frozen while it holds the leader lock",
    [Burst(3), Reclaim(0), FreezeMid("reap"), Invoke("write")],
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
