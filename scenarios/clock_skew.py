"""clock_skew: sandboxes whose clocks run ahead and behind.

Provokes: two sandboxes' lease clocks skewed by nearly half the reaper's grace,
ahead and behind, while their neighbours reap before and after the leases expire.
Judges: P1 (a skewed clock never makes a live, leased backend look expired), P2
(nor does it hide a zombie), P3, P4, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Age, Burst, ClockSkew, Invoke, Linger, Reap
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "clock_skew",
    "sandboxes whose clocks run ahead and behind",
    [
        Burst(3),
        ClockSkew(0, 0.45),
        ClockSkew(1, -0.45),
        Linger(),
        Reap(2),
        Age(),
        Reap(0),
        Invoke("write"),
    ],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
