"""slow_network: latency, jitter and a narrow link.

Provokes: 50 ms of latency on one sandbox's link, 30 +/- 25 ms of jitter on
another's, 64 KB/s on a third's, under writes and bursts of reads.
Judges: P4 (slow is not dead: everything completes within the retry budget once
healed), P1 (a slow statement is never mistaken for an idle one), P2, P3, P5.

Runs on a live fleet of worker processes, each behind its own proxy, then
settles (faults healed, invocations still arriving for the convergence bound,
every frozen worker thawed and invoked once) and judges the properties. Options:
see ``scenarios._fleet`` (client, workers, seed, duration, timings).
"""

from __future__ import annotations

import sys

from harness.chaos.steps import Burst, Invoke, NetworkFault
from harness.cli import main_for
from scenarios._fleet import fleet_scenario

SCENARIO = fleet_scenario(
    "slow_network",
    "latency, jitter and a narrow link",
    [
        Burst(3),
        NetworkFault(0, "latency"),
        NetworkFault(1, "jitter"),
        NetworkFault(2, "bandwidth"),
        Invoke("write"),
        Burst(3),
        Invoke("read"),
    ],
    judges="P1-P7",
)

if __name__ == "__main__":
    sys.exit(main_for(SCENARIO, sys.argv[1:]))
