"""frozen_reaper: zombies, and a reaper frozen while it holds the leader lock.

Provokes: zombies, then a reaper pass frozen right after it took the leader lock
(its transaction stays open), while other sandboxes go on.
Judges: P2 (the frozen leader loses the lock when the server ends its idle
transaction, and the next reaper converges), P1, P3, P4, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
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
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
